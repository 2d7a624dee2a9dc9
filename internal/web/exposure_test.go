package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Issue 13, item 8: what a signed-in family sees is never kept by a shared
// computer's browser or a proxy; the static files list no folder; a kiosk enrolment
// code cannot be guessed without limit.
func TestNothingIsKeptOrListedOrGuessed(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		for _, path := range []string{"/people", "/wallet", "/account", "/people/" + contact + "/messages", "/help"} {
			res, _ := w.get(t, path)
			if cc := res.Header.Get("Cache-Control"); res.StatusCode != 200 || !strings.Contains(cc, "no-store") {
				t.Errorf("%s signed in: %d, Cache-Control %q", path, res.StatusCode, cc)
			}
		}

		for _, path := range []string{"/static/", "/static/icons/"} {
			res, body := w.get(t, path)
			if res.StatusCode != http.StatusNotFound || strings.Contains(body, ".css") || strings.Contains(body, ".js") {
				t.Errorf("%s: %d\n%s", path, res.StatusCode, body)
			}
		}
		if res, _ := w.get(t, "/static/kinlink.css"); res.StatusCode != 200 {
			t.Errorf("a static file: %d", res.StatusCode)
		}

		kiosk := w.browser(t)
		for i := 1; i <= 10; i++ {
			if res, _ := kiosk.post(t, "/kiosk/enrol", url.Values{"code": {"AAAAA-AAAA" + string(rune('A'+i))}}); res.StatusCode != http.StatusBadRequest {
				t.Fatalf("wrong code %d: %d", i, res.StatusCode)
			}
		}
		res, page := kiosk.post(t, "/kiosk/enrol", url.Values{"code": {"AAAAA-AAAAZ"}})
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || !strings.Contains(page, "Too many attempts") {
			t.Errorf("the eleventh wrong code: %d %q", res.StatusCode, res.Header.Get("Retry-After"))
		}
	})
}
