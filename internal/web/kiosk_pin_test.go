package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A resident who mistypes the current PIN four times and then types it right changes
// it, and signs in with the new one: a right PIN clears the count, and only a wrong
// one can lock.
func TestARightPINAfterMistakesChangesIt(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		_, fsp := approvedContact(t, w, "ana@example.org")
		kiosk := residentAtKiosk(t, w, fsp) // A100 signed in, PIN 5937
		for _, guess := range []string{"1111", "2580", "0852", "9999"} {
			kiosk.post(t, "/kiosk/pin", url.Values{"current": {guess}, "pin": {"3917"}, "pin_again": {"3917"}})
		}
		if res, _ := kiosk.post(t, "/kiosk/pin", url.Values{"current": {"5937"}, "pin": {"3917"}, "pin_again": {"3917"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the right current PIN after four mistakes: %d", res.StatusCode)
		}
		kiosk.post(t, "/kiosk/logout", nil)
		if res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"3917"}}); res.StatusCode != http.StatusSeeOther {
			t.Errorf("signing in with the new PIN: %d", res.StatusCode)
		}
	})
}

// Issue 13, item 3: someone at a kiosk left signed in cannot find the resident's PIN
// by trying them on the change-PIN form. Wrong current PINs count as wrong sign-ins
// do: the fifth locks the PIN (and signs the resident out), and each is on the audit
// log for staff to see.
func TestChangingThePINIsNoWayToGuessIt(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		_, fsp := approvedContact(t, w, "ana@example.org")
		kiosk := residentAtKiosk(t, w, fsp) // A100 signed in, PIN 5937
		for i, guess := range []string{"1111", "2580", "0852", "9999"} {
			res, page := kiosk.post(t, "/kiosk/pin", url.Values{"current": {guess}, "pin": {"3917"}, "pin_again": {"3917"}})
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "current PIN is not right") {
				t.Fatalf("wrong current PIN %d: %d", i+1, res.StatusCode)
			}
		}
		res, page := kiosk.post(t, "/kiosk/pin", url.Values{"current": {"7777"}, "pin": {"3917"}, "pin_again": {"3917"}})
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "ask staff to unlock it") {
			t.Fatalf("the fifth wrong current PIN: %d", res.StatusCode)
		}
		if _, page := kiosk.get(t, "/kiosk"); strings.Contains(page, "José García") {
			t.Errorf("the resident is still signed in after the PIN locked")
		}
		// Even the right PIN now waits for staff.
		if res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"5937"}}); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("the right PIN after five wrong ones on the change form: %d", res.StatusCode)
		}
		if _, page := fsp.get(t, "/facility/residents?q=A100"); !strings.Contains(page, "PIN locked") {
			t.Errorf("staff do not see the lock")
		}
		admin := w.browser(t)
		secret := w.enrolStaff(t, "investigator@example.org", "staff pass 42!", "--role", "investigator")
		admin.portalLogin(t, "investigator@example.org", "staff pass 42!", secret)
		if _, page := admin.get(t, "/facility/audit?action=kiosk.pin"); strings.Count(page, "kiosk.pin_change_failed") != 4 || !strings.Contains(page, "kiosk.pin_locked") {
			t.Errorf("the audit log does not show the tries:\n%s", page)
		}
	})
}
