package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/media/mediatest"
)

// Issue 13, item 27: the kiosk's idle time is a setting, the page counts down before
// it signs the resident out (in the resident's language), and "I'm still here"
// keeps the session on the server too, without a page load: a resident reading or
// writing for a while is not signed out by the server behind the page's back. A
// session that has ended stays ended.
func TestKioskIdleIsASettingAndStillHereKeepsTheSession(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			w := startWith(t, e.Setting, map[string]string{"KINLINK_KIOSK_SESSION_IDLE": "45s"})
			_, fsp := approvedContact(t, w, "ana@example.org")
			kiosk := residentAtKiosk(t, w, fsp)
			_, page := kiosk.get(t, "/kiosk")
			for _, want := range []string{`data-idle-seconds="45"`, `id="idle-warning"`, `role="alertdialog"`, "Are you still there?",
				`data-says="To keep your messages private, you will be signed out in %d seconds."`, "I&#39;m still here"} {
				if !strings.Contains(page, want) {
					t.Errorf("the kiosk page lacks %s", want)
				}
			}
			kiosk.get(t, "/kiosk/lang?to=es&next=/kiosk")
			if _, page = kiosk.get(t, "/kiosk"); !strings.Contains(page, "¿Sigue ahí?") || !strings.Contains(page, "Sigo aquí") {
				t.Errorf("the countdown is not in Spanish:\n%s", page)
			}

			db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
			lastSeen := func() time.Time {
				t.Helper()
				var at time.Time
				if err := db.Read().QueryRow("SELECT last_seen_at FROM kiosk_sessions WHERE ended_at IS NULL").Scan(&at); err != nil {
					t.Fatal(err)
				}
				return at
			}
			idle := func(ago time.Duration) {
				t.Helper()
				if _, err := db.Write().Exec("UPDATE kiosk_sessions SET last_seen_at = $1 WHERE ended_at IS NULL", time.Now().UTC().Add(-ago)); err != nil {
					t.Fatal(err)
				}
			}
			// 40 of 45 seconds idle: the countdown is on; the resident answers it.
			idle(40 * time.Second)
			res, _ := kiosk.post(t, "/kiosk/alive", nil)
			if res.StatusCode != http.StatusNoContent {
				t.Fatalf("I'm still here: %d", res.StatusCode)
			}
			if since := time.Since(lastSeen()); since > 5*time.Second {
				t.Errorf("I'm still here did not keep the session on the server: last seen %v ago", since)
			}
			// A session past the idle time is over: the page signs out.
			idle(46 * time.Second)
			if res, _ := kiosk.post(t, "/kiosk/alive", nil); res.StatusCode != http.StatusUnauthorized {
				t.Errorf("I'm still here after the idle time: %d", res.StatusCode)
			}
			if _, page := kiosk.get(t, "/kiosk"); strings.Contains(page, "José García") {
				t.Errorf("a session idle past the setting was revived")
			}
		})
	}
}

// Issue 13, item 26: a photo at the kiosk opens full screen, on a page inside the
// kiosk (where the photo's link leads, and what its script opens over the thread):
// with the kiosk's sign-out and idle countdown, a large way back to the
// conversation, and no link out of /kiosk. Only the resident's own photos.
func TestAKioskPhotoOpensFullScreenInsideTheKiosk(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, fsp := approvedContact(t, w, "ana@example.org")
		w.topUp(t, "5")
		if res, _ := w.sendWithPhotos(t, "/people/"+contact+"/messages", "Una foto", mediatest.JPEG(640, 480)); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("send: %d", res.StatusCode)
		}
		_, queue := fsp.get(t, "/facility/review")
		id := regexp.MustCompile(`href="/facility/review/([0-9a-f]+)"`).FindStringSubmatch(queue)[1]
		if res, _ := fsp.post(t, "/facility/review/"+id, url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("approve: %d", res.StatusCode)
		}
		kiosk := residentAtKiosk(t, w, fsp)
		thread := "/kiosk/messages/" + contact
		_, page := kiosk.get(t, thread)
		open := regexp.MustCompile(`<a class="photo-open" href="(` + thread + `/photos/([0-9a-f]+))" data-photo="/photos/([0-9a-f]+)"><img [^>]*alt="Photo 1 of 1">`).FindStringSubmatch(page)
		if open == nil || open[2] != open[3] {
			t.Fatalf("the kiosk's photo is no link to itself full screen:\n%s", page)
		}
		if !strings.Contains(page, `<dialog id="photo-viewer"`) || !strings.Contains(page, `id="photo-viewer-close"`) {
			t.Errorf("the thread has no full-screen viewer")
		}
		res, page := kiosk.get(t, open[1])
		if res.StatusCode != http.StatusOK || !strings.Contains(page, `src="/photos/`+open[2]+`"`) || !strings.Contains(page, `id="kiosk-logout-form"`) ||
			!strings.Contains(page, `id="idle-warning"`) || !regexp.MustCompile(`href="`+thread+`#m-[0-9a-f]+" class="button photo-close"`).MatchString(page) {
			t.Fatalf("the photo's page: %d\n%s", res.StatusCode, page)
		}
		for _, href := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(page, -1) {
			if !strings.HasPrefix(href[1], "/kiosk") && !strings.HasPrefix(href[1], "/static/") && href[1] != "/manifest.webmanifest" && href[1] != "#main" {
				t.Errorf("the photo's page links out of the kiosk: %s", href[1])
			}
		}
		// Another photo id, or another conversation, is not found, inside the kiosk.
		for _, path := range []string{thread + "/photos/0123456789abcdef0123456789abcdef", "/kiosk/messages/0123456789abcdef0123456789abcdef/photos/" + open[2]} {
			if res, page := kiosk.get(t, path); res.StatusCode != http.StatusNotFound || !strings.Contains(page, `id="kiosk-logout-form"`) {
				t.Errorf("%s: %d", path, res.StatusCode)
			}
		}
		// Signed out, the photo's page is the sign-in page.
		kiosk.post(t, "/kiosk/logout", nil)
		if res, _ := kiosk.get(t, open[1]); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/kiosk" {
			t.Errorf("the photo's page signed out: %d", res.StatusCode)
		}
	})
}
