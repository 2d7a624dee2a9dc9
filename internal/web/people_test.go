package web_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const roster = "resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n" +
	"A100,García,José,FSP,B-12,active,\n" +
	"A101,Smith,John,LCI,C-1,active,\n" +
	"A102,Gone,Gary,FSP,C-2,released,\n"

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "roster.csv")
	os.WriteFile(file, []byte(content), 0o600)
	return file
}

func (w *world) importRoster(t *testing.T, csv string) string {
	t.Helper()
	return w.operator(t, "roster", "import", "--agency", "FLDOC", writeTemp(t, csv), "--apply")
}

func TestFindAddAndApproveAContact(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		if out := w.importRoster(t, roster); !strings.Contains(out, "2 new") {
			t.Fatalf("roster import: %s", out)
		}
		w.signUp(t, "family@example.org")
		_, login := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "family@example.org", "password": password})
		token := login["token"].(string)
		auth := []string{"Authorization", "Bearer " + token}

		res, body := w.JSON(t, "GET", "/api/v1/agencies", nil, auth...)
		if res.StatusCode != 200 || !strings.Contains(res.Raw, `"code":"FLDOC"`) || !strings.Contains(res.Raw, `"state":"FL"`) {
			t.Fatalf("agencies: %d %s", res.StatusCode, res.Raw)
		}
		_ = body
		res, _ = w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=a100", nil, auth...)
		if res.StatusCode != 200 || strings.Count(res.Raw, `"resident_id"`) != 1 || strings.Contains(res.Raw, "B-12") {
			t.Fatalf("search by ID (no housing unit shown): %s", res.Raw)
		}
		res, found := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&last_name=GARCIA&first_name=j", nil, auth...)
		list := found["residents"].([]any)
		if len(list) != 1 {
			t.Fatalf("search by name without accents: %s", res.Raw)
		}
		resident := list[0].(map[string]any)
		if resident["first_name"] != "José" || resident["facility"].(map[string]any)["code"] != "FSP" {
			t.Fatalf("result: %v", resident)
		}
		if res, _ := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A102", nil, auth...); strings.Contains(res.Raw, "A102") {
			t.Errorf("a released resident is found: %s", res.Raw)
		}
		if res, _ := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC", nil, auth...); res.StatusCode != 400 {
			t.Errorf("a search with neither ID nor name: %d", res.StatusCode)
		}
		if res, _ := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A100", nil); res.StatusCode != 401 {
			t.Errorf("search without a token: %d", res.StatusCode)
		}

		res, c := w.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": resident["id"]}, auth...)
		if res.StatusCode != http.StatusCreated || c["status"] != "pending" {
			t.Fatalf("add contact: %d %s", res.StatusCode, res.Raw)
		}

		// The facility admin of FSP approves; an admin of LCI does not see it.
		secret := w.enrolStaff(t, "fsp.admin@example.org", "staff pass 42!", "--role", "facility_admin", "--facility", "FSP")
		lciSecret := w.enrolStaff(t, "lci.admin@example.org", "staff pass 43!", "--role", "facility_admin", "--facility", "LCI")
		lci := w.browser(t)
		lci.portalLogin(t, "lci.admin@example.org", "staff pass 43!", lciSecret)
		if _, page := lci.get(t, "/facility/contacts"); strings.Contains(page, "José") {
			t.Errorf("an LCI admin sees an FSP request")
		}
		if res, _ := lci.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"approve"}}); res.StatusCode != 404 {
			t.Errorf("an LCI admin decided an FSP request: %d", res.StatusCode)
		}
		staff := w.browser(t)
		staff.portalLogin(t, "fsp.admin@example.org", "staff pass 42!", secret)
		_, page := staff.get(t, "/facility/contacts")
		if !strings.Contains(page, "José García") || !strings.Contains(page, "family@example.org") {
			t.Fatalf("the request is not in the FSP queue:\n%s", page)
		}
		if res, page := staff.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"deny"}}); res.StatusCode != 400 || !strings.Contains(page, "Write a reason") {
			t.Errorf("deny without a reason: %d", res.StatusCode)
		}
		if res, page := staff.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"maybe"}, "reason": {"Not sure"}}); res.StatusCode != 400 || !strings.Contains(page, "Choose Approve or Deny") {
			t.Errorf("a decision that is neither: %d", res.StatusCode)
		}
		if res, page := staff.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"deny"}, "reason": {strings.Repeat("x", 501)}}); res.StatusCode != 400 || !strings.Contains(page, "500 characters") {
			t.Errorf("a reason of 501 characters: %d", res.StatusCode)
		}
		if res, page := staff.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"deny"}, "reason": {"Not on the list\u202e"}}); res.StatusCode != 400 || !strings.Contains(page, "invisible characters") {
			t.Errorf("a reason with a direction override: %d", res.StatusCode)
		}
		if res, _ := staff.post(t, "/facility/contacts/"+c["id"].(string), url.Values{"decision": {"approve"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("approve: %d", res.StatusCode)
		}
		// A form left open, or sent twice, does not turn the decision around.
		for _, decision := range []url.Values{{"decision": {"deny"}, "reason": {"Not on the visiting list"}}, {"decision": {"approve"}}} {
			if res, page := staff.post(t, "/facility/contacts/"+c["id"].(string), decision); res.StatusCode != http.StatusConflict || !strings.Contains(page, "already decided") {
				t.Errorf("a second decision (%s): %d", decision.Get("decision"), res.StatusCode)
			}
		}
		res, mine := w.JSON(t, "GET", "/api/v1/contacts", nil, auth...)
		contacts := mine["contacts"].([]any)
		if len(contacts) != 1 || contacts[0].(map[string]any)["status"] != "approved" {
			t.Fatalf("my people after approval: %s", res.Raw)
		}
		// A search that cannot be made says what is wrong with it, and keeps it.
		long := strings.Repeat("7", 5000)
		for _, c := range []struct{ query, says string }{
			{"agency=XX&resident_id=A100", "Choose the state or agency from the list"},
			{"agency=FLDOC&resident_id=" + long, "too long or has unusual characters"},
			{"agency=FLDOC", "ID number, or both a last name"},
		} {
			res, page := w.get(t, "/people?"+c.query)
			if res.StatusCode != 400 || !strings.Contains(page, c.says) || (strings.Contains(c.query, long) && !strings.Contains(page, `value="`+long+`"`)) {
				t.Errorf("people search %.40s: %d", c.query, res.StatusCode)
			}
		}
		// The web page shows it too.
		_, page = w.get(t, "/people")
		if !strings.Contains(page, "José García") || !strings.Contains(page, "Approved") {
			t.Errorf("my people page: %s", regexp.MustCompile(`\s+`).ReplaceAllString(page, " "))
		}

		// A transfer keeps the contact: the family does not re-link.
		w.importRoster(t, strings.Replace(roster, "A100,García,José,FSP", "A100,García,José,LCI", 1))
		_, mine = w.JSON(t, "GET", "/api/v1/contacts", nil, auth...)
		moved := mine["contacts"].([]any)[0].(map[string]any)
		if moved["status"] != "approved" || moved["resident"].(map[string]any)["facility"].(map[string]any)["code"] != "LCI" {
			t.Errorf("after a transfer: %v", moved)
		}

		// Another family sees none of it.
		other := w.browser(t)
		other.signUp(t, "other@example.org")
		if _, page := other.get(t, "/people"); strings.Contains(page, "José García") {
			t.Errorf("another family sees Ana's people")
		}
		if out := w.operator(t, "audit", "verify"); !strings.Contains(out, "intact") {
			t.Errorf("audit: %s", out)
		}
	})
}
