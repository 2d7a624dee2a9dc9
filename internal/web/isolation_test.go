package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Every staff route refuses another agency's objects, every admin route refuses
// staff without the role, and no page shows another agency's data (SECURITY.md 27, 33).
func TestAgenciesAndRolesAreIsolated(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		w.importRoster(t, roster)
		w.operator(t, "admin", "create-agency", "--code", "TXDOC", "--name", "Texas DOC", "--state", "TX")
		w.operator(t, "admin", "create-facility", "--agency", "TXDOC", "--code", "HUN", "--name", "Huntsville Unit",
			"--type", "prison", "--timezone", "America/Chicago", "--population", "1700")

		flSecret := w.enrolStaff(t, "fl.admin@example.org", "staff pass 42!", "--role", "agency_admin")
		fl := w.browser(t)
		fl.portalLogin(t, "fl.admin@example.org", "staff pass 42!", flSecret)
		w.operator(t, "admin", "create-staff", "--agency", "TXDOC", "--email", "tx.admin@example.org", "--name", "Tex", "--role", "agency_admin")
		txSecret := enrolFromMail(t, w, "tx.admin@example.org", "staff pass 43!")
		tx := w.browser(t)
		tx.portalLogin(t, "tx.admin@example.org", "staff pass 43!", txSecret)
		reviewerSecret := w.enrolStaff(t, "reviewer@example.org", "staff pass 44!", "--role", "mail_reviewer", "--facility", "FSP")
		reviewer := w.browser(t)
		reviewer.portalLogin(t, "reviewer@example.org", "staff pass 44!", reviewerSecret)

		// Florida objects.
		family := w.browser(t)
		family.signUp(t, "family@example.org")
		_, page := fl.get(t, "/facility/residents?q=A100")
		residentID := regexp.MustCompile(`/facility/residents/([0-9a-f]+)/pin`).FindStringSubmatch(page)[1]
		family.post(t, "/people", url.Values{"resident": {residentID}})
		_, page = fl.get(t, "/facility/contacts")
		contactID := regexp.MustCompile(`/facility/contacts/([0-9a-f]+)`).FindStringSubmatch(page)[1]
		_, page = fl.get(t, "/facility/kiosks")
		fspID := regexp.MustCompile(`<option value="([0-9a-f]+)">Florida State Prison</option>`).FindStringSubmatch(page)[1]
		fl.post(t, "/facility/kiosks", url.Values{"facility": {fspID}, "name": {"FL dayroom"}})
		_, page = fl.get(t, "/facility/kiosks")
		kioskID := regexp.MustCompile(`/facility/kiosks/([0-9a-f]+)/revoke`).FindStringSubmatch(page)[1]
		_, page = fl.get(t, "/facility/staff")
		staffID := regexp.MustCompile(`/facility/staff/([0-9a-f]+)/reset`).FindStringSubmatch(page)[1]
		_, page = fl.upload(t, "/facility/roster", "roster", "r.csv", roster)
		uploadID := regexp.MustCompile(`/facility/roster/([0-9a-f]+)/apply`).FindStringSubmatch(page)[1]
		fl.post(t, "/facility/roster/tokens", url.Values{"password": {"staff pass 42!"}})
		_, page = fl.get(t, "/facility/roster")
		tokenID := regexp.MustCompile(`/facility/roster/tokens/([0-9a-f]+)/revoke`).FindStringSubmatch(page)[1]
		fl.post(t, "/facility/review/reasons", url.Values{"reason_english": {"Florida only reason"}})
		_, page = fl.get(t, "/facility/review")
		reasonCode := regexp.MustCompile(`/facility/review/reasons/([0-9a-f]{32})`).FindStringSubmatch(page)[1]

		writes := []struct {
			path string
			form url.Values
		}{
			{"/facility/contacts/" + contactID, url.Values{"decision": {"approve"}}},
			{"/facility/kiosks/" + kioskID + "/revoke", nil},
			{"/facility/residents/" + residentID + "/pin", url.Values{"pin": {"4826"}}},
			{"/facility/staff/" + staffID + "/reset", nil},
			{"/facility/roster/" + uploadID + "/apply", nil},
			{"/facility/roster/tokens/" + tokenID + "/revoke", nil},
			{"/facility/kiosks", url.Values{"facility": {fspID}, "name": {"sneaky"}}},
			{"/facility/review/reasons/" + reasonCode, url.Values{"action": {"retire"}}},
		}
		for _, wr := range writes {
			res, _ := tx.post(t, wr.path, wr.form)
			if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusForbidden {
				t.Errorf("Texas admin POST %s: %d", wr.path, res.StatusCode)
			}
		}
		reads := map[string]string{
			"/facility/residents?q=A100": "García",
			"/facility/contacts":         "family@example.org",
			"/facility/kiosks":           "FL dayroom",
			"/facility/staff":            "fl.admin@example.org",
			"/facility/audit":            "roster.import",
			"/facility":                  "Florida",
			"/facility/review":           "Florida only reason",
		}
		for path, secret := range reads {
			if _, page := tx.get(t, path); strings.Contains(page, secret) {
				t.Errorf("Texas admin sees %q at %s", secret, path)
			}
		}
		// A mail reviewer is not an administrator.
		for _, path := range []string{"/facility/agency", "/facility/kiosks", "/facility/roster", "/facility/contacts", "/facility/audit"} {
			if res, page := reviewer.get(t, path); res.StatusCode != http.StatusForbidden || !strings.Contains(page, "does not have permission") ||
				strings.Contains(page, `href="/signup"`) {
				t.Errorf("a mail reviewer GET %s: %d", path, res.StatusCode)
			}
		}
		for _, wr := range writes[:4] {
			if res, _ := reviewer.post(t, wr.path, wr.form); res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusForbidden {
				t.Errorf("a mail reviewer POST %s: %d", wr.path, res.StatusCode)
			}
		}
		// Nobody signed in gets anything from the portal.
		anon := w.browser(t)
		for path := range reads {
			if res, page := anon.get(t, path); res.StatusCode != http.StatusSeeOther && !strings.Contains(page, `id="portal-login-submit"`) {
				t.Errorf("anonymous GET %s: %d", path, res.StatusCode)
			}
		}
		// The Florida objects are untouched.
		if _, page := fl.get(t, "/facility/contacts"); !strings.Contains(page, "family@example.org") {
			t.Errorf("the contact request was decided by someone else")
		}
		if _, page := fl.get(t, "/facility/kiosks"); !strings.Contains(page, "FL dayroom") || strings.Contains(page, "sneaky") {
			t.Errorf("kiosks changed by another agency")
		}
	})
}

var anyEnrolLink = regexp.MustCompile(`https://kinlink.example.org(/facility/enrol\?t=[A-Za-z0-9_-]+)`)

// enrolFromMail completes a staff enrolment from the mailed link.
func enrolFromMail(t *testing.T, w *world, email, password string) string {
	t.Helper()
	m := w.lastMailTo(t, email, 1)
	link := anyEnrolLink.FindStringSubmatch(m.Text)
	if link == nil {
		t.Fatalf("no enrolment link mailed to %s", email)
	}
	return w.completeEnrolment(t, link[1], password)
}
