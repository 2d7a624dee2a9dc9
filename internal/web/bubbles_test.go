package web_test

import (
	"regexp"
	"strings"
	"testing"
)

// Issue 13, item 22: every message says who wrote it, in words (for screen readers and
// for anyone who cannot tell the shades apart), on the family's page and at the kiosk.
func TestMessagesSayWhoWroteThem(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, fsp := approvedContact(t, w, "ana@example.org")
		path := "/people/" + contact + "/messages"
		w.topUp(t, "5")
		w.sendWithPhotos(t, path, "Hola mijo")
		kiosk := residentAtKiosk(t, w, fsp)
		_, home := kiosk.get(t, "/kiosk")
		thread := regexp.MustCompile(`href="(/kiosk/messages/[0-9a-f]+)(?:#latest)?"`).FindStringSubmatch(home)[1]
		_, tp := kiosk.get(t, thread)
		kiosk.post(t, thread, map[string][]string{"key": {sendKey.FindStringSubmatch(tp)[1]}, "text": {"Gracias mamá"}})

		_, page := w.get(t, path)
		if !strings.Contains(page, `<p class="who">You</p>`) || !strings.Contains(page, `<p class="who"><bdi>José García</bdi></p>`) {
			t.Errorf("the family's page does not say who wrote each message:\n%s", page)
		}
		_, tp = kiosk.get(t, thread)
		if !strings.Contains(tp, `<p class="who">You</p>`) || !strings.Contains(tp, `<p class="who"><bdi>Ana García</bdi></p>`) {
			t.Errorf("the kiosk does not say who wrote each message:\n%s", tp)
		}
	})
}
