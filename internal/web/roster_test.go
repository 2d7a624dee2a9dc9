package web_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func (w *world) upload(t *testing.T, path, field, filename, content string) (*http.Response, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, _ := mw.CreateFormFile(field, filename)
	part.Write([]byte(content))
	mw.Close()
	res := w.Do(t, "POST", path, &body, "Content-Type", mw.FormDataContentType(), "Sec-Fetch-Site", "same-origin")
	return res, readBody(t, res)
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	res.Body.Close()
	return b.String()
}

func TestRosterInThePortalAndByAPI(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		secret := w.enrolStaff(t, "admin@example.org", "staff pass 42!", "--role", "agency_admin")
		staff := w.browser(t)
		staff.portalLogin(t, "admin@example.org", "staff pass 42!", secret)

		if res, page := staff.upload(t, "/facility/roster", "roster", "notes.txt", "hello,world\n1,2\n"); res.StatusCode != 400 || !strings.Contains(page, "not a roster") {
			t.Errorf("a file that is not a roster: %d", res.StatusCode)
		}
		if res, page := staff.upload(t, "/facility/roster", "roster", "latin1.csv", roster+"A301,Mu\xf1oz,Ana,FSP,X,active,\n"); res.StatusCode != 400 || !strings.Contains(page, "Line 5 of the file is not UTF-8") {
			t.Errorf("a file with a Latin-1 line: %d", res.StatusCode)
		}
		res, page := staff.upload(t, "/facility/roster", "roster", "today.csv", roster+"A300,Bad,,FSP,X,active,\n")
		if res.StatusCode != 200 || !strings.Contains(page, `id="count-new">2<`) || !strings.Contains(page, `id="count-rejected">1<`) || !strings.Contains(page, "the last name or the first name is empty. <span class=\"hint\">(missing_name)</span>") {
			t.Fatalf("dry run: %d\n%s", res.StatusCode, page)
		}
		if out := w.operator(t, "roster", "import", "--agency", "FLDOC", writeTemp(t, roster)); !strings.Contains(out, "2 new") {
			t.Fatalf("the dry run changed the roster: %s", out)
		}
		apply := regexp.MustCompile(`action="(/facility/roster/[0-9a-f]+/apply)"`).FindStringSubmatch(page)
		res, page = staff.post(t, apply[1], nil)
		if res.StatusCode != 200 || !strings.Contains(page, "Applied") {
			t.Fatalf("apply: %d", res.StatusCode)
		}
		if res, _ := staff.post(t, apply[1], nil); res.StatusCode != http.StatusConflict {
			t.Errorf("applying twice: %d", res.StatusCode)
		}
		// A file checked before another roster was applied would now make changes its
		// check never showed (here: undo the other file's new housing for A101), so it
		// is refused until it is checked again.
		_, page = staff.upload(t, "/facility/roster", "roster", "later.csv", strings.Replace(roster, "B-12", "B-14", 1))
		if !strings.Contains(page, "Changed · A100 <bdi>José García</bdi> · housing unit <bdi>B-12</bdi> → <bdi>B-14</bdi>") {
			t.Errorf("the check does not say what changes:\n%s", page)
		}
		stale := regexp.MustCompile(`action="(/facility/roster/[0-9a-f]+/apply)"`).FindStringSubmatch(page)
		w.importRoster(t, strings.Replace(roster, "C-1", "C-9", 1))
		if res, page := staff.post(t, stale[1], nil); res.StatusCode != http.StatusConflict || !strings.Contains(page, "changed since this file was checked") {
			t.Errorf("applying a file checked before another was applied: %d", res.StatusCode)
		}
		_, page = staff.upload(t, "/facility/roster", "roster", "later.csv", strings.Replace(roster, "B-12", "B-14", 1))
		fresh := regexp.MustCompile(`action="(/facility/roster/[0-9a-f]+/apply)"`).FindStringSubmatch(page)
		if res, page := staff.post(t, fresh[1], nil); res.StatusCode != 200 || !strings.Contains(page, "Applied") {
			t.Errorf("applying it checked again: %d", res.StatusCode)
		}

		// A token for the daily sync, made with the password.
		if res, _ := staff.post(t, "/facility/roster/tokens", url.Values{"password": {"wrong one"}}); res.StatusCode != 401 {
			t.Errorf("a token without the right password: %d", res.StatusCode)
		}
		_, page = staff.post(t, "/facility/roster/tokens", url.Values{"password": {"staff pass 42!"}, "label": {"OMS nightly"}})
		token := regexp.MustCompile(`id="new-token">([A-Za-z0-9_-]+)<`).FindStringSubmatch(page)
		if token == nil {
			t.Fatalf("no token shown:\n%s", page)
		}
		auth := []string{"Authorization", "Bearer " + token[1], "Content-Type", "text/csv"}
		moved := strings.Replace(roster, "A100,García,José,FSP", "A100,García,José,LCI", 1)
		sync := w.Do(t, "POST", "/api/v1/roster", strings.NewReader(moved), auth...)
		body := readBody(t, sync)
		if sync.StatusCode != 200 || !strings.Contains(body, `"moved":1`) || !strings.Contains(body, `"applied":false`) {
			t.Fatalf("API dry run: %d %s", sync.StatusCode, body)
		}
		sync = w.Do(t, "POST", "/api/v1/roster?apply=true", strings.NewReader(moved), auth...)
		if body := readBody(t, sync); sync.StatusCode != 200 || !strings.Contains(body, `"applied":true`) {
			t.Fatalf("API apply: %d %s", sync.StatusCode, body)
		}
		if _, page := staff.get(t, "/facility/roster"); strings.Contains(page, "Not used yet") || !strings.Contains(page, "Last used") {
			t.Errorf("the token just used reads as unused")
		}
		// The staff token is not a family token.
		if res, _ := w.JSON(t, "GET", "/api/v1/contacts", nil, "Authorization", "Bearer "+token[1]); res.StatusCode != 401 {
			t.Errorf("a staff token opened a family endpoint: %d", res.StatusCode)
		}
		// Nor does a family token sync rosters.
		w.signUp(t, "family@example.org")
		_, login := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "family@example.org", "password": password})
		if res := w.Do(t, "POST", "/api/v1/roster", strings.NewReader(roster), "Authorization", "Bearer "+login["token"].(string)); res.StatusCode != 401 {
			t.Errorf("a family token synced a roster: %d", res.StatusCode)
		}
		// A revoked token stops at once.
		_, page = staff.get(t, "/facility/roster")
		id := regexp.MustCompile(`/facility/roster/tokens/([0-9a-f]+)/revoke`).FindStringSubmatch(page)
		staff.post(t, "/facility/roster/tokens/"+id[1]+"/revoke", nil)
		if res := w.Do(t, "POST", "/api/v1/roster", strings.NewReader(moved), auth...); res.StatusCode != 401 {
			t.Errorf("a revoked token still syncs: %d", res.StatusCode)
		}
	})
}
