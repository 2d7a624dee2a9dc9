package i18n_test

import (
	"testing"

	"github.com/kinlink/kinlink/internal/i18n"
)

func TestCatalogsAreCompleteAndNegotiationPicksTheRightLanguage(t *testing.T) {
	c, err := i18n.Load() // fails if a key lacks a translation
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ chosen, accept, want string }{
		{"", "", "en"},
		{"", "es-MX,es;q=0.9,en;q=0.8", "es"},
		{"", "fr-FR,fr;q=0.9", "en"},
		{"", "fr;q=0.9,es;q=0.5", "es"},
		{"", "en-US,en;q=0.9,es;q=0.8", "en"},
		{"en", "es-MX", "en"},
		{"es", "", "es"},
		{"de", "es", "es"},
		{"", "garbage;;;q=x", "en"},
	}
	for _, tc := range cases {
		if got := c.Negotiate(tc.chosen, tc.accept); got != tc.want {
			t.Errorf("Negotiate(%q, %q) = %q, want %q", tc.chosen, tc.accept, got, tc.want)
		}
	}
	if c.T("es", "nav.login") == c.T("en", "nav.login") {
		t.Errorf("the Login button reads %q in both languages", c.T("es", "nav.login"))
	}
}
