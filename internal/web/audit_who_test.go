package web_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// Issue 13, item 12: the audit log's "who" is a search by a colleague's name (any
// part, any accents or case), as staff know each other; the log's own form of an
// actor still finds exactly that actor.
func TestAuditWhoIsANameSearch(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		secret := w.enrolStaff(t, "admin@example.org", "staff pass 42!", "--role", "agency_admin")
		admin := w.browser(t)
		admin.portalLogin(t, "admin@example.org", "staff pass 42!", secret)
		out := w.operator(t, "admin", "create-staff", "--agency", "FLDOC", "--email", "diaz@example.org", "--name", "Marta Díaz", "--role", "mail_reviewer", "--facility", "FSP")
		link := enrolLink.FindStringSubmatch(out)
		diaz := w.browser(t)
		diazSecret := diaz.completeEnrolment(t, link[1], "staff pass 43!")
		diaz.portalLogin(t, "diaz@example.org", "staff pass 43!", diazSecret)

		res, page := admin.get(t, "/facility/audit?actor=DIAZ")
		rows := regexp.MustCompile(`(?s)<tr><td>.*?</tr>`).FindAllString(page, -1)
		if res.StatusCode != http.StatusOK || len(rows) == 0 {
			t.Fatalf("a search by name found nothing: %d\n%s", res.StatusCode, page)
		}
		for _, row := range rows {
			if !strings.Contains(row, "Marta Díaz") {
				t.Errorf("a row of someone else: %s", row)
			}
		}
		id := regexp.MustCompile(`staff:[0-9a-f]+`).FindString(rows[0])
		if _, page := admin.get(t, "/facility/audit?actor="+id); !strings.Contains(page, "Marta Díaz") {
			t.Errorf("the exact actor %s finds nothing", id)
		}
		if _, page := admin.get(t, "/facility/audit?actor=nobody+at+all"); strings.Contains(page, "<tr><td>") {
			t.Errorf("a name no one has found rows")
		}
	})
}
