package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Issue 13, item 10: a short file uploaded in the portal would release most of a
// prison. The dry run says so loudly and the apply asks for the number of releases
// typed in, with the thresholds the command line and the API use; without it, or with
// another number, nothing changes.
func TestMassReleaseFromThePortalNeedsTheNumberTyped(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		var full strings.Builder
		full.WriteString("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n")
		for i := range 40 {
			fmt.Fprintf(&full, "M%03d,Name%d,Person,FSP,A-%d,active,\n", i, i, i)
		}
		if out := w.importRoster(t, full.String()); !strings.Contains(out, "40 new") {
			t.Fatalf("roster: %s", out)
		}
		secret := w.enrolStaff(t, "admin@example.org", "staff pass 42!", "--role", "agency_admin")
		staff := w.browser(t)
		staff.portalLogin(t, "admin@example.org", "staff pass 42!", secret)

		short := "resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\nM000,Name0,Person,FSP,A-0,active,\nM001,Name1,Person,FSP,A-1,active,\nM002,Name2,Person,FSP,A-2,active,\n"
		res, page := staff.upload(t, "/facility/roster", "roster", "cut-off.csv", short)
		if res.StatusCode != 200 || !strings.Contains(page, `id="count-released">37<`) || !strings.Contains(page, `id="mass-release-warning"`) ||
			!strings.Contains(page, "releases 37 of the 40 residents") || !strings.Contains(page, `name="confirm_releases"`) {
			t.Fatalf("the dry run of a mass release does not warn and ask:\n%s", page)
		}
		apply := regexp.MustCompile(`action="(/facility/roster/[0-9a-f]+/apply)"`).FindStringSubmatch(page)[1]
		for _, typed := range []string{"", "36", "all", "3"} {
			res, page := staff.post(t, apply, url.Values{"confirm_releases": {typed}})
			if res.StatusCode != http.StatusConflict || !strings.Contains(page, "Nothing was changed") || !strings.Contains(page, `id="mass-release-warning"`) {
				t.Errorf("apply with %q typed: %d", typed, res.StatusCode)
			}
			// The field that asks for the number says what was wrong, and keeps what
			// was typed.
			if !strings.Contains(page, `value="`+typed+`" aria-invalid="true" aria-describedby="confirm_releases-error"`) ||
				!strings.Contains(page, `id="confirm_releases-error">That is not the number of residents this file releases.`) {
				t.Errorf("apply with %q typed: the field does not say what was wrong:\n%s", typed, page)
			}
		}
		if out := w.operator(t, "roster", "import", "--agency", "FLDOC", writeTemp(t, full.String())); !strings.Contains(out, "40 unchanged") {
			t.Fatalf("a refused apply changed the roster: %s", out)
		}
		if res, page := staff.post(t, apply, url.Values{"confirm_releases": {" 37 "}}); res.StatusCode != 200 || !strings.Contains(page, "Applied") {
			t.Fatalf("apply with the number typed: %d", res.StatusCode)
		}
		// A file that releases a few is applied as before, with no number to type.
		res, page = staff.upload(t, "/facility/roster", "roster", "one-less.csv", strings.Replace(short, "M002,Name2,Person,FSP,A-2,active,\n", "", 1))
		if res.StatusCode != 200 || strings.Contains(page, `name="confirm_releases"`) {
			t.Errorf("one release: %d, or it asks for confirmation", res.StatusCode)
		}
		apply = regexp.MustCompile(`action="(/facility/roster/[0-9a-f]+/apply)"`).FindStringSubmatch(page)[1]
		if res, page = staff.post(t, apply, nil); res.StatusCode != 200 || !strings.Contains(page, "Applied") {
			t.Errorf("a small change: %d", res.StatusCode)
		}
	})
}
