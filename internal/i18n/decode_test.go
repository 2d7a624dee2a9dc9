package i18n

import (
	"strings"
	"testing"
)

// A key given twice in a locale file is an error, not a silent replacement of the
// first message's text.
func TestLocaleKeysAreGivenOnce(t *testing.T) {
	if _, err := decodeMessages([]byte(`{"a": "one", "b": "two", "a": "three"}`)); err == nil || !strings.Contains(err.Error(), `"a" is given twice`) {
		t.Errorf("a duplicate key: %v", err)
	}
	m, err := decodeMessages([]byte(`{"a": "one", "b": "two"}`))
	if err != nil || m["a"] != "one" || m["b"] != "two" {
		t.Errorf("a plain file: %v %v", m, err)
	}
}
