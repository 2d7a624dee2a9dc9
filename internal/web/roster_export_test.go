package web_test

import (
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
)

// Issue 13, item 13: staff find residents by the start of an ID; the roster page
// offers a template and the current roster as a file, whose cells a spreadsheet can
// never run as formulas.
func TestRosterExportAndPartialIDs(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		w.importRoster(t, "resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"+
			"A100,García,José,FSP,B-12,active,\nA101,\"=HYPERLINK(\"\"http://evil.example\"\")\",Kim,FSP,-1+1,active,\nB200,Lee,Ana,LCI,@SUM(A1),active,no_photos\nA102,Gone,Gary,FSP,C-2,released,\n")
		secret := w.enrolStaff(t, "admin@example.org", "staff pass 42!", "--role", "agency_admin")
		staff := w.browser(t)
		staff.portalLogin(t, "admin@example.org", "staff pass 42!", secret)

		_, page := staff.get(t, "/facility/residents?q=a10")
		if !strings.Contains(page, "A100") || !strings.Contains(page, "A101") || strings.Contains(page, "B200") {
			t.Errorf("a search for the start of an ID:\n%s", page)
		}

		res, body := staff.get(t, "/facility/roster/template.csv")
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") ||
			!strings.HasPrefix(body, "resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n") {
			t.Errorf("the template: %d %q", res.StatusCode, body)
		}

		res, body = staff.get(t, "/facility/roster/export.csv")
		if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("the export: %d %v", res.StatusCode, res.Header)
		}
		records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil || len(records) != 4 { // the header and the three active residents
			t.Fatalf("the export is not the current roster: %v\n%s", err, body)
		}
		for _, rec := range records {
			for _, cell := range rec {
				if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
					t.Errorf("a cell a spreadsheet would run: %q", cell)
				}
			}
		}
		if !strings.Contains(body, `'=HYPERLINK(`) || !strings.Contains(body, "'-1+1") || !strings.Contains(body, "'@SUM(A1)") || strings.Contains(body, "Gary") {
			t.Errorf("the export:\n%s", body)
		}
		// The export, read back as a roster, changes nothing: it is the roster.
		if res, page := staff.upload(t, "/facility/roster", "roster", "export.csv", strings.NewReplacer("'=", "=", "'-", "-", "'@", "@").Replace(body)); res.StatusCode != 200 || !strings.Contains(page, `id="count-unchanged">3<`) {
			t.Errorf("the export read back: %d", res.StatusCode)
		}
	})
}
