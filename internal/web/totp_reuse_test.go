package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// Issue 13, item 14: a staff code used already within its 30 seconds is said to be
// used, with what to do, not called wrong.
func TestAReusedStaffCodeIsSaidUsed(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		secret := w.enrolStaff(t, "admin@example.org", "staff pass 42!", "--role", "agency_admin")
		staff := w.browser(t)
		code, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
		for i := range 2 {
			staff.post(t, "/facility/login", url.Values{"email": {"admin@example.org"}, "password": {"staff pass 42!"}})
			res, page := staff.post(t, "/facility/code", url.Values{"code": {code}})
			if i == 0 && res.StatusCode != http.StatusSeeOther {
				t.Fatalf("the first use of the code: %d", res.StatusCode)
			}
			if i == 1 && (res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "already used") || !strings.Contains(page, "next code")) {
				t.Errorf("the same code again: %d\n%s", res.StatusCode, page)
			}
			staff.post(t, "/facility/logout", nil)
		}
	})
}
