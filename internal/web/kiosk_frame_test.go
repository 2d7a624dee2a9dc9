package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Issue 13, item 25: a kiosk page that fails stays a kiosk page: the kiosk's frame,
// the resident still signed in with Log out and the idle sign-out, and no link that
// leads out of /kiosk (no "Create account", no public site).
func TestKioskErrorsStayInsideTheKiosk(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		_, fsp := approvedContact(t, w, "ana@example.org")
		kiosk := residentAtKiosk(t, w, fsp)
		for _, path := range []string{"/kiosk/messages/0123456789abcdef0123456789abcdef", "/kiosk/messages/not-an-id", "/kiosk/nowhere"} {
			res, page := kiosk.get(t, path)
			if res.StatusCode != http.StatusNotFound || !strings.Contains(page, `<body class="kiosk">`) || !strings.Contains(page, `id="kiosk-logout"`) ||
				!strings.Contains(page, `data-idle-seconds="900"`) || strings.Contains(page, "Create account") {
				t.Errorf("%s: %d, not in the kiosk's frame:\n%s", path, res.StatusCode, page)
			}
			for _, href := range regexp.MustCompile(`<a [^>]*href="([^"]*)"`).FindAllStringSubmatch(page, -1) {
				if !strings.HasPrefix(href[1], "/kiosk") && !strings.HasPrefix(href[1], "/static/") && !strings.HasPrefix(href[1], "#") {
					t.Errorf("%s links out of the kiosk: %s", path, href[1])
				}
			}
		}
		// The kiosk's own pages link nowhere else either, the language switch included.
		_, home := kiosk.get(t, "/kiosk")
		for _, href := range regexp.MustCompile(`<a [^>]*href="([^"]*)"`).FindAllStringSubmatch(home, -1) {
			if !strings.HasPrefix(href[1], "/kiosk") && !strings.HasPrefix(href[1], "/static/") && !strings.HasPrefix(href[1], "#") {
				t.Errorf("the kiosk home links out: %s", href[1])
			}
		}
		if res, _ := kiosk.get(t, "/kiosk/lang?to=es&next=/kiosk"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/kiosk" {
			t.Errorf("the kiosk's language switch: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		// Nor does it lead out by a way the browser reads as going up.
		for _, next := range []string{"/kiosk/%2e%2e/people", "/kiosk/%2E%2E/account", "/kiosk/.%2e/people"} {
			res, _ := kiosk.get(t, "/kiosk/lang?to=en&next="+url.QueryEscape(next))
			if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/kiosk") || strings.Contains(strings.ToLower(loc), "%2e") {
				t.Errorf("the kiosk's language switch to %s leads to %q", next, loc)
			}
		}
	})
}
