package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/identity"
)

const staffCookie = "__Host-kinlink_staff"

// operator runs a kinlink command against the running server's database.
func (w *world) operator(t *testing.T, args ...string) string {
	t.Helper()
	return w.Command(t, args...)
}

var enrolLink = regexp.MustCompile(`https://kinlink.example.org(/facility/enrol\?t=[A-Za-z0-9_-]+)`)

// enrolStaff creates a staff member from the command line and enrols them through
// the emailed page; it returns the authenticator secret.
func (w *world) enrolStaff(t *testing.T, email, password string, args ...string) string {
	t.Helper()
	out := w.operator(t, append([]string{"admin", "create-staff", "--agency", "FLDOC", "--email", email, "--name", "Staff " + email}, args...)...)
	link := enrolLink.FindStringSubmatch(out)
	if link == nil {
		t.Fatalf("no enrolment link printed:\n%s", out)
	}
	m := w.lastMailTo(t, email, 1)
	if !strings.Contains(m.Text, link[1]) {
		t.Errorf("the enrolment mail does not carry the printed link")
	}
	return w.completeEnrolment(t, link[1], password)
}

// completeEnrolment opens an enrolment link and sets the password and authenticator;
// it returns the authenticator secret.
func (w *world) completeEnrolment(t *testing.T, link, password string) string {
	t.Helper()
	res, page := w.get(t, link)
	secret := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(page)
	if res.StatusCode != 200 || secret == nil {
		t.Fatalf("enrolment page: %d", res.StatusCode)
	}
	token := strings.TrimPrefix(link, "/facility/enrol?t=")
	code, _ := totp.GenerateCode(secret[1], time.Now())
	res, page = w.post(t, "/facility/enrol", url.Values{"t": {token}, "password": {password}, "code": {code}})
	if res.StatusCode != 200 || !strings.Contains(page, `id="recovery-codes"`) {
		t.Fatalf("enrol: %d\n%s", res.StatusCode, page)
	}
	return secret[1]
}

// portalLogin logs a staff member in with password and a code of the next time
// step (one step of skew is allowed, and the enrolment used the current one).
func (w *world) portalLogin(t *testing.T, email, password, secret string) *http.Response {
	t.Helper()
	res, _ := w.post(t, "/facility/login", url.Values{"email": {email}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/facility/code" {
		t.Fatalf("portal password step: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	code, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	res, _ = w.post(t, "/facility/code", url.Values{"code": {code}})
	return res
}

func setupAgency(t *testing.T, w *world) {
	t.Helper()
	w.operator(t, "admin", "create-agency", "--code", "FLDOC", "--name", "Florida Department of Corrections", "--state", "FL")
	w.operator(t, "admin", "create-facility", "--agency", "FLDOC", "--code", "FSP", "--name", "Florida State Prison",
		"--type", "prison", "--timezone", "America/New_York", "--population", "1400")
	w.operator(t, "admin", "create-facility", "--agency", "FLDOC", "--code", "LCI", "--name", "Lowell Correctional",
		"--type", "prison", "--timezone", "America/New_York", "--population", "2100")
}

func TestStaffEnrolAndPortalLogin(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		out := w.operator(t, "admin", "create-staff", "--agency", "FLDOC", "--email", "weak@example.org", "--name", "Weak", "--role", "agency_admin")
		link := enrolLink.FindStringSubmatch(out)
		token := strings.TrimPrefix(link[1], "/facility/enrol?t=")
		_, page := w.get(t, link[1])
		secret := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(page)[1]
		code, _ := totp.GenerateCode(secret, time.Now())
		res, page := w.post(t, "/facility/enrol", url.Values{"t": {token}, "password": {"short"}, "code": {code}})
		if res.StatusCode != 400 || !strings.Contains(page, "Use at least 8 characters") {
			t.Fatalf("a 5-character staff password: %d", res.StatusCode)
		}

		res, _ = w.post(t, "/facility/enrol", url.Values{"t": {token}, "password": {"a better staff pass"}, "code": {code}})
		if res.StatusCode != 200 {
			t.Fatalf("enrol with a good password: %d", res.StatusCode)
		}
		// The link works once.
		if res, page := w.get(t, link[1]); res.StatusCode != 404 || !strings.Contains(page, "not valid any more") {
			t.Fatalf("a used enrolment link: %d", res.StatusCode)
		}

		secret = w.enrolStaff(t, "ana.ruiz@example.org", "staff pass 42!", "--role", "agency_admin")

		// Password alone never opens the portal.
		res, _ = w.post(t, "/facility/login", url.Values{"email": {"ana.ruiz@example.org"}, "password": {"staff pass 42!"}})
		if setCookie(res, staffCookie) != nil {
			t.Fatal("a staff session was given before the second factor")
		}
		if res, page := w.get(t, "/facility"); res.StatusCode != 200 || !strings.Contains(page, `id="portal-login-submit"`) {
			t.Fatalf("the portal opened after the password alone")
		}
		res = w.portalLogin(t, "ana.ruiz@example.org", "staff pass 42!", secret)
		c := setCookie(res, staffCookie)
		if res.StatusCode != http.StatusSeeOther || c == nil || !c.Secure || !c.HttpOnly {
			t.Fatalf("portal login: %d, cookie %+v", res.StatusCode, c)
		}
		_, page = w.get(t, "/facility")
		for _, want := range []string{"Florida Department of Corrections", "Agency administrator", "Florida State Prison", "Lowell Correctional"} {
			if !strings.Contains(page, want) {
				t.Errorf("portal home lacks %q", want)
			}
		}
		// The staff session is not a family session.
		if res, _ := w.get(t, "/account"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("a staff session opened the family account page: %d", res.StatusCode)
		}
		if out := w.operator(t, "audit", "verify"); !strings.Contains(out, "intact") {
			t.Errorf("audit verify: %s", out)
		}
	})
}

func TestFamilyAndStaffDoorsAreSeparate(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	setupAgency(t, w)
	w.signUp(t, "family@example.org")
	secret := w.enrolStaff(t, "staff@example.org", "staff pass 42!", "--role", "facility_admin", "--facility", "FSP")

	portal := w.browser(t)
	res, famPage := portal.post(t, "/facility/login", url.Values{"email": {"family@example.org"}, "password": {password}})
	_, wrongPage := portal.post(t, "/facility/login", url.Values{"email": {"family@example.org"}, "password": {"nothing like it"}})
	if res.StatusCode != 401 || famPage != wrongPage {
		t.Errorf("a family account at the portal: %d; the page must be the wrong-password page", res.StatusCode)
	}
	site := w.browser(t)
	res, _ = site.post(t, "/login", url.Values{"email": {"staff@example.org"}, "password": {"staff pass 42!"}})
	if res.StatusCode != 401 {
		t.Errorf("a staff account at the family login: %d", res.StatusCode)
	}
	if api, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "staff@example.org", "password": "staff pass 42!"}); api.StatusCode != 401 || !strings.Contains(api.Raw, "invalid_credentials") {
		t.Errorf("a staff account at the app login: %d %s", api.StatusCode, api.Raw)
	}
	// Staff passwords are reset only by an administrator: no mail for them.
	site.post(t, "/password/forgot", url.Values{"email": {"staff@example.org"}})
	// Wait for the fact: the reset request has been looked at, and any mail it queued sent.
	if n := apptest.Succeeded(w.JobsSettled(t), identity.ResetJob); n != 1 {
		t.Fatalf("%d reset requests were looked at, want 1", n)
	}
	for _, m := range w.smtp.Messages() {
		if m.To[0] == "staff@example.org" && strings.Contains(m.Subject, "reset") {
			t.Errorf("a staff member got a self-service reset mail")
		}
	}
	// A facility admin sees only their facility.
	res = portal.portalLogin(t, "staff@example.org", "staff pass 42!", secret)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("portal login: %d", res.StatusCode)
	}
	_, page := portal.get(t, "/facility")
	if !strings.Contains(page, "Florida State Prison") || strings.Contains(page, "Lowell Correctional") {
		t.Errorf("a facility admin of FSP sees: %s", page)
	}
}

// A staff page opened after the session ended (idle too long, or signed out
// elsewhere) goes to the login, which says why, instead of a bare login page.
func TestEndedStaffSessionIsExplained(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	w.SetCookie(staffCookie, "a-session-that-has-ended")
	res, _ := w.get(t, "/facility/review")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/facility?notice=idle" {
		t.Fatalf("an ended session: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if _, page := w.get(t, "/facility?notice=idle"); !strings.Contains(page, "signed out after a while without activity") {
		t.Errorf("the login page does not say why")
	}
	if res, _ := w.browser(t).get(t, "/facility/review"); res.Header.Get("Location") != "/facility" {
		t.Errorf("a visitor who never signed in: %s", res.Header.Get("Location"))
	}
}
