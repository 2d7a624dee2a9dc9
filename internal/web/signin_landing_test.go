package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/database/dbtest"
)

// Issue 13, item 16: a sign-in lands on My people; while signed in, the home page
// (and the logo, which links to it) opens the app; "I have an account" on the home
// page no longer sends a signed-in family round in a loop.
func TestSigningInLandsInTheApp(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	if res, page := w.get(t, "/"); res.StatusCode != 200 || !strings.Contains(page, `href="/login"`) {
		t.Fatalf("the home page signed out: %d", res.StatusCode)
	}
	w.signUp(t, "ana@example.org")
	w.post(t, "/logout", nil)
	res, _ := w.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/people" {
		t.Fatalf("login lands on %q", res.Header.Get("Location"))
	}
	for _, path := range []string{"/", "/login"} {
		if res, _ := w.get(t, path); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/people" {
			t.Errorf("%s signed in: %d to %q", path, res.StatusCode, res.Header.Get("Location"))
		}
	}
	if res, page := w.get(t, "/people"); res.StatusCode != 200 || !strings.Contains(page, "My people") {
		t.Errorf("the people page: %d", res.StatusCode)
	}
}
