package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database/dbtest"
)

// spray is an attacker at a kiosk trying one common PIN against resident IDs until
// the kiosk refuses; it returns the refusal and how many tries were checked.
func spray(t *testing.T, kiosk *world, from int) (res *http.Response, page string, tries int) {
	t.Helper()
	for i := range 30 {
		res, page = kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {fmt.Sprintf("Z%03d", from+i)}, "pin": {"3917"}})
		switch res.StatusCode {
		case http.StatusTooManyRequests:
			return res, page, i
		case http.StatusUnauthorized:
		default:
			t.Fatalf("wrong PIN %d: %d", i+1, res.StatusCode)
		}
	}
	t.Fatalf("30 wrong PINs at one kiosk were all checked")
	return
}

func retryAfter(t *testing.T, res *http.Response) time.Duration {
	t.Helper()
	s, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After %q", res.Header.Get("Retry-After"))
	}
	return time.Duration(s) * time.Second
}

// Issue 13, item 3: one person typing wrong PINs at a kiosk paused it for everyone
// for 15 minutes, with no way to end the pause. Now ten wrong PINs pause it for a
// minute; the paused kiosk says how long is left and that staff can end it; staff
// end it from the portal (audited), and the resident waiting signs in at once.
func TestAGuesserPausesAKioskBrieflyAndStaffEndThePause(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		_, fsp := approvedContact(t, w, "ana@example.org")
		kiosk := residentAtKiosk(t, w, fsp) // A100, PIN 5937
		kiosk.post(t, "/kiosk/logout", nil)

		res, page, tries := spray(t, kiosk, 0)
		if tries != 10 {
			t.Errorf("the kiosk paused after %d wrong PINs, want 10", tries)
		}
		if wait := retryAfter(t, res); wait > time.Minute {
			t.Errorf("the first pause is %v; one person must not keep a kiosk from the others for long", wait)
		}
		for _, want := range []string{"This kiosk is paused", "within a minute", "Staff can end the pause", "ask staff"} {
			if !strings.Contains(page, want) {
				t.Errorf("the paused kiosk does not say %q:\n%s", want, page)
			}
		}
		if strings.Contains(page, `id="kiosk-login-submit"`) {
			t.Errorf("the paused kiosk still offers its sign-in form")
		}
		// It is paused for everyone, the right PIN too: nothing is checked meanwhile.
		if res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"5937"}}); res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the right PIN at a paused kiosk: %d", res.StatusCode)
		}
		// The kiosk's own page says it too, before anyone types.
		if res, page := kiosk.get(t, "/kiosk"); res.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, "This kiosk is paused") {
			t.Errorf("the paused kiosk's page: %d", res.StatusCode)
		}

		// Staff see the pause and end it.
		_, list := fsp.get(t, "/facility/kiosks")
		unpause := regexp.MustCompile(`action="(/facility/kiosks/[0-9a-f]+/unpause)"`).FindStringSubmatch(list)
		if unpause == nil || !strings.Contains(list, "Paused after too many wrong PINs") {
			t.Fatalf("the portal does not show the pause:\n%s", list)
		}
		// Only a facility administrator of the kiosk's facility may.
		investigator := w.browser(t)
		secret := w.enrolStaff(t, "investigator@example.org", "staff pass 42!", "--role", "investigator")
		investigator.portalLogin(t, "investigator@example.org", "staff pass 42!", secret)
		if res, _ := investigator.post(t, unpause[1], nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("an investigator ended a kiosk's pause: %d", res.StatusCode)
		}
		if res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"5937"}}); res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the kiosk after a refused unpause: %d", res.StatusCode)
		}
		res, _ = fsp.post(t, unpause[1], nil)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("end the pause: %d", res.StatusCode)
		}
		if _, page := fsp.get(t, res.Header.Get("Location")); !strings.Contains(page, "The pause has ended") || strings.Contains(page, "/unpause") {
			t.Errorf("the portal after ending the pause:\n%s", page)
		}
		if res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"5937"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the resident right after staff ended the pause: %d", res.StatusCode)
		}
		if _, page := investigator.get(t, "/facility/audit?action=kiosk.pause_cleared"); strings.Count(page, "<td>kiosk.pause_cleared</td>") != 1 {
			t.Errorf("the audit log does not show the pause ended once:\n%s", page)
		}
	})
}

// Issue 13, item 3: guessing that goes on is paused for longer each time (1 minute,
// 2, 4, 8, then 15, never more), so a PIN tried against many residents stays bounded
// at about ten tries a quarter of an hour; a quiet quarter of an hour starts again
// from a minute.
func TestAKioskPauseGrowsWhileGuessingGoesOnAndIsBounded(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		_, fsp := approvedContact(t, w, "ana@example.org")
		kiosk := residentAtKiosk(t, w, fsp)
		kiosk.post(t, "/kiosk/logout", nil)
		db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
		// endPause moves the kiosk's pause to have ended ago (the test's clock).
		endPause := func(ago time.Duration) {
			t.Helper()
			if _, err := db.Write().Exec("UPDATE throttles SET locked_until = $1 WHERE key LIKE 'kiosk:%' AND locked_until IS NOT NULL",
				time.Now().UTC().Add(-ago)); err != nil {
				t.Fatal(err)
			}
		}
		from := 0
		for i, want := range []time.Duration{1, 2, 4, 8, 15, 15} {
			res, page, tries := spray(t, kiosk, from)
			from += tries
			if tries != 10 {
				t.Errorf("pause %d came after %d wrong PINs, want 10", i+1, tries)
			}
			if got := retryAfter(t, res); got < want*time.Minute-2*time.Second || got > want*time.Minute {
				t.Errorf("pause %d in a row: %v, want %v", i+1, got, want*time.Minute)
			}
			if words := fmt.Sprintf("again in %d minutes", want); want > 1 && !strings.Contains(page, words) {
				t.Errorf("pause %d does not say %q", i+1, words)
			}
			endPause(time.Second)
		}
		endPause(16 * time.Minute) // a quiet quarter of an hour
		if res, _, _ := spray(t, kiosk, from); retryAfter(t, res) > time.Minute {
			t.Errorf("after a quiet quarter of an hour the pause is %v, want a minute", retryAfter(t, res))
		}
	})
}
