package web_test

import (
	"net/http"
	"strings"
	"testing"
)

// Bytes no person types are refused with a 400 however the form is sent: a
// parameter on the media type (";charset=UTF-8") is still a form, an idempotency key
// is one a page of ours makes, and a file's name with a NUL is no file name (Go's
// multipart reader drops it). None reaches the database (PostgreSQL refuses a NUL,
// which was a 500).
func TestBadBytesAreRefusedOnEveryPath(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		for _, ct := range []string{"application/x-www-form-urlencoded;charset=UTF-8", "Application/X-WWW-Form-URLEncoded; charset=utf-8"} {
			res := w.Do(t, "POST", "/login", strings.NewReader("email=ana%00%40example.org&password=x"),
				"Content-Type", ct, "Sec-Fetch-Site", "same-origin")
			if page := readBody(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "We could not read that form") {
				t.Errorf("a NUL in a form sent as %q: %d", ct, res.StatusCode)
			}
		}

		contact, fsp := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "5")
		res, page := w.sendForm(t, path, "key\x00forged", "Hola mijo")
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Hola mijo") {
			t.Errorf("a send whose key holds a NUL: %d", res.StatusCode)
		}
		if _, page := w.get(t, path); strings.Contains(page, "1 stamp") && strings.Contains(page, `class="message`) && strings.Contains(page, "Hola mijo</") {
			t.Errorf("the forged send was stored")
		}

		if res, page := fsp.upload(t, "/facility/roster", "roster", "roster\x00.csv", "resident_id,last_name\n"); res.StatusCode != http.StatusBadRequest ||
			!strings.Contains(page, "Choose a roster file") {
			t.Errorf("a roster whose file name holds a NUL: %d\n%s", res.StatusCode, page)
		}
	})
}
