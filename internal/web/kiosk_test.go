package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database/dbtest"
)

const residentCookie = "__Host-kinlink_resident"

func TestKioskEnrolmentAndResidentLogin(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		w.importRoster(t, roster)
		secret := w.enrolStaff(t, "fsp.admin@example.org", "staff pass 42!", "--role", "facility_admin", "--facility", "FSP")
		staff := w.browser(t)
		staff.portalLogin(t, "fsp.admin@example.org", "staff pass 42!", secret)

		_, page := staff.get(t, "/facility/kiosks")
		fspID := regexp.MustCompile(`<option value="([0-9a-f]+)">Florida State Prison</option>`).FindStringSubmatch(page)
		if fspID == nil {
			t.Fatalf("no FSP in the kiosk form:\n%s", page)
		}
		if res, page := staff.post(t, "/facility/kiosks", url.Values{"name": {"Unit B dayroom"}}); res.StatusCode != 400 || !strings.Contains(page, "Choose the facility") {
			t.Errorf("a kiosk without a facility: %d", res.StatusCode)
		}
		res, page := staff.post(t, "/facility/kiosks", url.Values{"facility": {fspID[1]}, "name": {"Unit B dayroom"}})
		code := regexp.MustCompile(`id="kiosk-code">([A-Z0-9-]+)<`).FindStringSubmatch(page)
		if res.StatusCode != 200 || code == nil {
			t.Fatalf("create kiosk: %d", res.StatusCode)
		}

		// An unenrolled browser cannot sign a resident in.
		stranger := w.browser(t)
		if res, page := stranger.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"4826"}}); res.StatusCode != http.StatusForbidden || !strings.Contains(page, "This kiosk is not enrolled") {
			t.Errorf("resident login from an unenrolled browser: %d", res.StatusCode)
		}

		kiosk := w.browser(t)
		if _, page := kiosk.get(t, "/kiosk"); !strings.Contains(page, `id="kiosk-enrol-submit"`) {
			t.Fatalf("a new device does not ask for its code")
		}
		if res, _ := kiosk.post(t, "/kiosk/enrol", url.Values{"code": {"WRONG-CODE1"}}); res.StatusCode != 400 {
			t.Errorf("a wrong enrolment code: %d", res.StatusCode)
		}
		res, _ = kiosk.post(t, "/kiosk/enrol", url.Values{"code": {strings.ToLower(code[1])}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("enrol: %d", res.StatusCode)
		}
		if res, _ := stranger.post(t, "/kiosk/enrol", url.Values{"code": {code[1]}}); res.StatusCode != 400 {
			t.Errorf("an enrolment code worked twice: %d", res.StatusCode)
		}

		// Staff set the first PIN; trivial ones are refused.
		_, page = staff.get(t, "/facility/residents?q=A100")
		rid := regexp.MustCompile(`/facility/residents/([0-9a-f]+)/pin`).FindStringSubmatch(page)
		if rid == nil || !strings.Contains(page, "B-12") {
			t.Fatalf("staff resident search:\n%s", page)
		}
		for _, weak := range []string{"1234", "0000", "1990", "121212", "98765"} {
			if res, _ := staff.post(t, "/facility/residents/"+rid[1]+"/pin", url.Values{"pin": {weak}}); res.StatusCode != 400 {
				t.Errorf("PIN %s accepted: %d", weak, res.StatusCode)
			}
		}
		if res, _ := staff.post(t, "/facility/residents/"+rid[1]+"/pin", url.Values{"pin": {"4826"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("set PIN: %d", res.StatusCode)
		}
		// Staff who may find a resident but not set a PIN are not offered the form.
		invSecret := w.enrolStaff(t, "investigator@example.org", "staff pass 44!", "--role", "investigator")
		investigator := w.browser(t)
		investigator.portalLogin(t, "investigator@example.org", "staff pass 44!", invSecret)
		if _, page := investigator.get(t, "/facility/residents?q=A100"); !strings.Contains(page, "García, José") || strings.Contains(page, "/pin\"") {
			t.Errorf("an investigator's resident search offers the PIN form, or finds nobody")
		}
		// The audit log says whose PIN it was, as staff know the resident.
		adminSecret := w.enrolStaff(t, "fl.admin@example.org", "staff pass 42!", "--role", "agency_admin")
		admin := w.browser(t)
		admin.portalLogin(t, "fl.admin@example.org", "staff pass 42!", adminSecret)
		if _, page := admin.get(t, "/facility/audit?action=resident.pin_set"); !regexp.MustCompile(`<td>resident\.pin_set</td><td><bdi>José García · A100</bdi></td>`).MatchString(page) {
			t.Errorf("the audit row of the PIN does not name the resident:\n%s", page)
		}

		// First login: the resident must choose their own PIN.
		res, _ = kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"a100"}, "pin": {"4826"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("resident login: %d", res.StatusCode)
		}
		if _, page := kiosk.get(t, "/kiosk"); !strings.Contains(page, `id="kiosk-pin-submit"`) {
			t.Fatalf("no PIN change at first login")
		}
		if res, _ := kiosk.post(t, "/kiosk/pin", url.Values{"pin": {"5937"}, "pin_again": {"5938"}}); res.StatusCode != 400 {
			t.Errorf("mismatched PINs: %d", res.StatusCode)
		}
		if res, page := kiosk.post(t, "/kiosk/pin", url.Values{"pin": {"4826"}, "pin_again": {"4826"}}); res.StatusCode != 400 || !strings.Contains(page, "different from the one you have now") {
			t.Errorf("keeping the PIN staff chose: %d", res.StatusCode)
		}
		if res, _ := kiosk.post(t, "/kiosk/pin", url.Values{"pin": {"5937"}, "pin_again": {"5937"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("change PIN: %d", res.StatusCode)
		}
		_, page = kiosk.get(t, "/kiosk")
		if !strings.Contains(page, "José García") || !strings.Contains(page, "Florida State Prison") || !strings.Contains(page, `data-idle-seconds="900"`) {
			t.Fatalf("resident home:\n%s", page)
		}
		session := kiosk.Cookie(residentCookie)
		kiosk.post(t, "/kiosk/logout", nil)
		replay := w.browser(t)
		replay.SetCookie("__Host-kinlink_kiosk", kiosk.Cookie("__Host-kinlink_kiosk"))
		replay.SetCookie(residentCookie, session)
		if _, page := replay.get(t, "/kiosk"); strings.Contains(page, "José García") {
			t.Errorf("a logged-out kiosk session still shows the resident")
		}

		// A resident of another facility cannot sign in here.
		if res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A101"}, "pin": {"5937"}}); res.StatusCode != 401 {
			t.Errorf("an LCI resident on an FSP kiosk: %d", res.StatusCode)
		}

		// Five wrong PINs lock; even the right one is refused until staff unlock.
		for i := range 5 {
			kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"1" + strings.Repeat("3", i) + "97"}})
		}
		// It answers as a wrong PIN does (401, the same words, which say what a lock
		// means): a 423 told whoever tried IDs which residents have a PIN (issue 13,
		// item 3).
		if res, page := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"5937"}}); res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "ask staff to unlock it") {
			t.Fatalf("right PIN after 5 wrong ones: %d", res.StatusCode)
		}
		if _, page := staff.get(t, "/facility/residents?q=A100"); !strings.Contains(page, "PIN locked") {
			t.Errorf("staff do not see the lock")
		}
		staff.post(t, "/facility/residents/"+rid[1]+"/pin", url.Values{"pin": {"7351"}})
		if res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"7351"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("login after unlock: %d", res.StatusCode)
		}

		// A PIN set by staff is changed at once without asking for it; a voluntary
		// change needs the current PIN.
		if res, _ := kiosk.post(t, "/kiosk/pin", url.Values{"pin": {"6284"}, "pin_again": {"6284"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the forced change after unlock: %d", res.StatusCode)
		}
		if res, _ := kiosk.post(t, "/kiosk/pin", url.Values{"current": {"1111"}, "pin": {"3917"}, "pin_again": {"3917"}}); res.StatusCode != 400 {
			t.Errorf("a voluntary change with a wrong current PIN: %d", res.StatusCode)
		}
		if res, _ := kiosk.post(t, "/kiosk/pin", url.Values{"current": {"6284"}, "pin": {"3917"}, "pin_again": {"3917"}}); res.StatusCode != http.StatusSeeOther {
			t.Errorf("a voluntary change with the current PIN: %d", res.StatusCode)
		}

		// 15 minutes idle end the session on the server.
		db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
		if _, err := db.Write().Exec("UPDATE kiosk_sessions SET last_seen_at = $1", time.Now().UTC().Add(-16*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, page := kiosk.get(t, "/kiosk"); strings.Contains(page, "José García") || !strings.Contains(page, `id="kiosk-login-submit"`) {
			t.Errorf("a session idle for 16 minutes is still open")
		}

		// One kiosk takes a bounded number of wrong sign-ins, whichever resident they
		// are for: spraying a common PIN over many IDs stops.
		throttled := false
		for i := range 25 {
			res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {fmt.Sprintf("Z%03d", i)}, "pin": {"2580"}})
			if res.StatusCode == http.StatusTooManyRequests {
				throttled = true
				break
			}
		}
		if !throttled {
			t.Errorf("25 wrong sign-ins at one kiosk were all checked")
		}

		// A revoked kiosk is a stranger again.
		_, page = staff.get(t, "/facility/kiosks")
		kid := regexp.MustCompile(`/facility/kiosks/([0-9a-f]+)/revoke`).FindStringSubmatch(page)
		staff.post(t, "/facility/kiosks/"+kid[1]+"/revoke", nil)
		if res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"7351"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("login on a revoked kiosk: %d", res.StatusCode)
		}
		if out := w.operator(t, "audit", "verify"); !strings.Contains(out, "intact") {
			t.Errorf("audit: %s", out)
		}
	})
}

// A kiosk keeps its enrolment through a failure of the database: the credential is
// shown once, at enrolment, so a momentary error must not make the device forget it.
func TestKioskKeepsItsEnrolmentThroughADatabaseFailure(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		_, fspAdmin := approvedContact(t, w, "ana@example.org")
		kiosk := residentAtKiosk(t, w, fspAdmin)
		kiosk.post(t, "/kiosk/logout", nil)
		db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
		if _, err := db.Write().Exec("ALTER TABLE kiosks RENAME TO kiosks_away"); err != nil {
			t.Fatal(err)
		}
		res, _ := kiosk.post(t, "/kiosk/login", url.Values{"resident_id": {"A100"}, "pin": {"5937"}})
		if _, err := db.Write().Exec("ALTER TABLE kiosks_away RENAME TO kiosks"); err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(res.Header.Get("Set-Cookie"), "kinlink_kiosk=;") {
			t.Errorf("sign-in while the database fails: %d, Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
		}
		if _, page := kiosk.get(t, "/kiosk"); strings.Contains(page, `id="kiosk-enrol-submit"`) {
			t.Errorf("the kiosk forgot its enrolment")
		}
	})
}
