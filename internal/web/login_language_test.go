package web_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
)

// Issue 13, item 17: the account's language applies at sign-in on every device, even
// one whose browser asks for another; the switch still changes it there.
func TestTheAccountsLanguageFollowsTheSignIn(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	w.signUp(t, "ana@example.org")
	if res, _ := w.post(t, "/account/settings", url.Values{"locale": {"es"}}); res.StatusCode != 303 {
		t.Fatalf("choosing Spanish: %d", res.StatusCode)
	}
	phone := w.browser(t)
	phone.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})
	res := phone.Do(t, "GET", "/people", nil, "Accept-Language", "en-US,en;q=0.9")
	if page := apptest.Body(t, res); !strings.Contains(page, `<html lang="es">`) {
		t.Errorf("another device after sign-in is not in the account's language")
	}
	phone.get(t, "/lang?to=en&next=/people")
	if _, page := phone.get(t, "/people"); !strings.Contains(page, `<html lang="en">`) {
		t.Errorf("the switch no longer changes the language")
	}
}
