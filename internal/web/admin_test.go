package web_test

import (
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/database/dbtest"
)

func TestAgencyAdministration(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	setupAgency(t, w)
	w.importRoster(t, roster)
	secret := w.enrolStaff(t, "admin@example.org", "staff pass 42!", "--role", "agency_admin")
	admin := w.browser(t)
	admin.portalLogin(t, "admin@example.org", "staff pass 42!", secret)

	// Adding staff mails them a link; the admin never sees it.
	res, page := admin.post(t, "/facility/staff", url.Values{"full_name": {"Rita Reviewer"}, "email": {"rita@example.org"}, "role": {"mail_reviewer"}})
	if res.StatusCode != 400 || !strings.Contains(page, `value="rita@example.org"`) {
		t.Fatalf("a facility role without a facility: %d", res.StatusCode)
	}
	_, page = admin.get(t, "/facility/kiosks")
	fsp := strings.Split(strings.Split(page, `">Florida State Prison</option>`)[0], `<option value="`)
	fspID := fsp[len(fsp)-1]
	res, page = admin.post(t, "/facility/staff", url.Values{"full_name": {"Rita Reviewer"}, "email": {"rita@example.org"}, "role": {"mail_reviewer"}, "facility": {fspID}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add staff: %d\n%s", res.StatusCode, page)
	}
	_, page = admin.get(t, "/facility/staff?done=added")
	if strings.Contains(page, "/facility/enrol?t=") || !strings.Contains(page, "rita@example.org") {
		t.Errorf("the staff page shows the enrolment link or lacks the new member")
	}
	ritaSecret := enrolFromMail(t, w, "rita@example.org", "rita pass 42!")
	rita := w.browser(t)
	rita.portalLogin(t, "rita@example.org", "rita pass 42!", ritaSecret)

	// An administrator's reset ends Rita's sessions and mails her a new link.
	_, page = admin.get(t, "/facility/staff")
	ids := strings.Split(page, "/reset\"")
	var ritaID string
	for _, part := range ids {
		if i := strings.LastIndex(part, "/facility/staff/"); i >= 0 && strings.Contains(part, "rita@example.org") {
			ritaID = part[i+len("/facility/staff/"):]
		}
	}
	if ritaID == "" {
		t.Fatal("no reset button for Rita")
	}
	if res, _ := admin.post(t, "/facility/staff/"+ritaID+"/reset", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reset: %d", res.StatusCode)
	}
	if res, page := rita.get(t, "/facility"); res.StatusCode != 200 || !strings.Contains(page, `id="portal-login-submit"`) {
		t.Errorf("Rita stayed signed in after the reset")
	}
	if res, _ := w.browser(t).post(t, "/facility/login", url.Values{"email": {"rita@example.org"}, "password": {"rita pass 42!"}}); res.StatusCode != 401 {
		t.Errorf("Rita's old password still works after the reset: %d", res.StatusCode)
	}
	m := w.lastMailTo(t, "rita@example.org", 2)
	link := anyEnrolLink.FindStringSubmatch(m.Text)
	if link == nil {
		t.Fatal("no new enrolment link after the reset")
	}
	w.completeEnrolment(t, link[1], "rita new pass 7")

	// Policies: visits without approval make new contacts approved at once.
	res, page = admin.post(t, "/facility/agency/policies", url.Values{"stamp_price_cents": {"25"}, "message_max_chars": {"100"},
		"videogram_seconds": {"30"}, "message_retention_days": {"365"}, "recording_retention_days": {"365"}})
	if res.StatusCode != 400 || !strings.Contains(page, `value="100"`) {
		t.Fatalf("a 100-character limit: %d", res.StatusCode)
	}
	// A VideoGram is at most two minutes (issue 14), where this server offers them.
	if res, page := admin.post(t, "/facility/agency/policies", url.Values{"stamp_price_cents": {"25"}, "message_max_chars": {"8000"},
		"videogram_seconds": {"121"}, "message_retention_days": {"365"}, "recording_retention_days": {"365"}}); offersVideoGrams() &&
		(res.StatusCode != 400 || !strings.Contains(page, `value="121"`)) {
		t.Errorf("a 121-second VideoGram: %d", res.StatusCode)
	}
	res, _ = admin.post(t, "/facility/agency/policies", url.Values{"stamp_price_cents": {"25"}, "message_max_chars": {"8000"},
		"videogram_seconds": {"45"}, "message_retention_days": {"365"}, "recording_retention_days": {"180"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save policies: %d", res.StatusCode)
	}
	w.signUp(t, "family@example.org")
	_, login := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "family@example.org", "password": password})
	auth := []string{"Authorization", "Bearer " + login["token"].(string)}
	_, found := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A100", nil, auth...)
	id := found["residents"].([]any)[0].(map[string]any)["id"]
	if _, c := w.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": id}, auth...); c["status"] != "approved" {
		t.Errorf("a contact where no approval is needed: %v", c["status"])
	}

	// Facilities: a bad time zone is explained and what was typed stays.
	res, page = admin.post(t, "/facility/agency/facilities", url.Values{"code": {"NEW"}, "name": {"New Unit"}, "type": {"jail"}, "timezone": {"Florida"}, "population": {"90"}})
	if res.StatusCode != 400 || !strings.Contains(page, `value="New Unit"`) {
		t.Fatalf("bad time zone: %d", res.StatusCode)
	}
	if res, _ := admin.post(t, "/facility/agency/facilities", url.Values{"code": {"NEW"}, "name": {"New Unit"}, "type": {"jail"}, "timezone": {"America/New_York"}, "population": {"90"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add facility: %d", res.StatusCode)
	}
	// Roles: the last agency admin stays; Rita gains and loses a role; then she is
	// disabled and signed out everywhere.
	_, page = admin.get(t, "/facility/staff")
	adminID := ""
	if i := strings.Index(page, "· admin@example.org"); i >= 0 {
		if m := regexp.MustCompile(`/facility/staff/([0-9a-f]+)/roles`).FindStringSubmatch(page[i:]); m != nil {
			adminID = m[1]
		}
	}
	if adminID == "" {
		t.Fatal("the admin is not listed")
	}
	if res, _ := admin.post(t, "/facility/staff/"+adminID+"/roles", url.Values{"action": {"remove"}, "role": {"agency_admin"}}); res.StatusCode != 400 {
		t.Errorf("removing the last agency admin: %d", res.StatusCode)
	}
	if res, _ := admin.post(t, "/facility/staff/"+adminID+"/disable", nil); res.StatusCode != 400 {
		t.Errorf("an admin disabling themselves: %d", res.StatusCode)
	}
	if res, _ := admin.post(t, "/facility/staff/"+ritaID+"/roles", url.Values{"role": {"visitation_officer"}, "facility": {fspID}}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("add a role: %d", res.StatusCode)
	}
	if res, _ := admin.post(t, "/facility/staff/"+ritaID+"/roles", url.Values{"action": {"remove"}, "role": {"mail_reviewer"}, "facility": {fspID}}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("remove a role: %d", res.StatusCode)
	}
	if res, page := admin.post(t, "/facility/staff/"+ritaID+"/roles", url.Values{"action": {"remove"}, "role": {"mail_reviewer"}, "facility": {fspID}}); res.StatusCode != http.StatusConflict ||
		!strings.Contains(page, "already been removed") {
		t.Errorf("removing the role again: %d", res.StatusCode)
	}
	_, page = admin.get(t, "/facility/staff")
	if !strings.Contains(page, "Visitation officer") {
		t.Errorf("the new role is not listed")
	}
	rita2 := w.browser(t)
	if res, _ := admin.post(t, "/facility/staff/"+ritaID+"/disable", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", res.StatusCode)
	}
	if res, _ := rita2.post(t, "/facility/login", url.Values{"email": {"rita@example.org"}, "password": {"rita new pass 7"}}); res.StatusCode != 401 {
		t.Errorf("a disabled staff member can still log in: %d", res.StatusCode)
	}
	if res, _ := admin.post(t, "/facility/staff/"+ritaID+"/reset", nil); res.StatusCode != 400 {
		t.Errorf("a disabled staff member was reset back in: %d", res.StatusCode)
	}

	for query, says := range map[string]string{"from=notadate": "does not look right", "from=2026-05-02&to=2026-05-01": "end date is before the start date"} {
		if res, page := admin.get(t, "/facility/audit?"+query); res.StatusCode != 400 || !strings.Contains(page, says) {
			t.Errorf("audit search %s: %d", query, res.StatusCode)
		}
	}
	_, page = admin.get(t, "/facility/audit?action=staff.")
	// Who did it is named (the id stays beside it, for searching).
	for _, want := range []string{"staff.create", "staff.reset", "staff.grant", "staff.revoke_role", "staff.disable", "<td><bdi>Staff admin@example.org</bdi><br>"} {
		if !strings.Contains(page, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
}

// A staff member whose last role is removed while signed in is told so at the login,
// not that the session timed out.
func TestStaffWithoutRolesIsToldSo(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	setupAgency(t, w)
	secret := w.enrolStaff(t, "admin@example.org", "staff pass 42!", "--role", "agency_admin")
	admin := w.browser(t)
	admin.portalLogin(t, "admin@example.org", "staff pass 42!", secret)
	_, page := admin.get(t, "/facility/kiosks")
	fsp := strings.Split(strings.Split(page, `">Florida State Prison</option>`)[0], `<option value="`)
	fspID := fsp[len(fsp)-1]
	admin.post(t, "/facility/staff", url.Values{"full_name": {"Rita Reviewer"}, "email": {"rita@example.org"}, "role": {"mail_reviewer"}, "facility": {fspID}})
	ritaSecret := enrolFromMail(t, w, "rita@example.org", "rita pass 42!")
	rita := w.browser(t)
	rita.portalLogin(t, "rita@example.org", "rita pass 42!", ritaSecret)

	_, page = admin.get(t, "/facility/staff")
	i := strings.Index(page, "rita@example.org")
	m := regexp.MustCompile(`/facility/staff/([0-9a-f]+)/roles`).FindStringSubmatch(page[i:])
	if m == nil {
		t.Fatal("Rita is not listed")
	}
	if res, _ := admin.post(t, "/facility/staff/"+m[1]+"/roles", url.Values{"action": {"remove"}, "role": {"mail_reviewer"}, "facility": {fspID}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove Rita's last role: %d", res.StatusCode)
	}
	res, _ := rita.get(t, "/facility/review")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/facility?notice=noroles" {
		t.Fatalf("Rita without roles: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if _, page := rita.get(t, "/facility?notice=noroles"); !strings.Contains(page, "no role in the portal any more") {
		t.Errorf("the login page does not say why")
	}
}

// offersVideoGrams is whether the server under test offers VideoGrams: where
// ffmpeg is installed.
func offersVideoGrams() bool {
	_, err := exec.LookPath("ffmpeg")
	return err == nil
}
