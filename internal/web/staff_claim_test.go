package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/mail/mailtest"
)

// Issue 13, item 7: a staff account waiting for its enrolment cannot be claimed or
// changed through the families' sign-up. The sign-up answers as for any address (it
// reveals nothing), mails no code that could activate it, and the staff member's own
// enrolment link still works, under the name the agency gave.
func TestFamilySignupCannotClaimAStaffAccount(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		out := w.operator(t, "admin", "create-staff", "--agency", "FLDOC", "--email", "officer@example.org", "--name", "Officer Díaz", "--role", "mail_reviewer", "--facility", "FSP")
		link := enrolLink.FindStringSubmatch(out)
		if link == nil {
			t.Fatalf("no enrolment link:\n%s", out)
		}
		w.lastMailTo(t, "officer@example.org", 1) // the enrolment mail

		form := signupForm("officer@example.org")
		form.Set("full_name", "Mallory")
		if res, _ := w.post(t, "/signup", form); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/signup/verify") {
			t.Fatalf("the sign-up does not answer as for any address: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		w.JobsSettled(t)
		var mails []mailtest.Message
		for _, m := range w.smtp.Messages() {
			if m.To[0] == "officer@example.org" {
				mails = append(mails, m)
			}
		}
		if len(mails) != 1 {
			t.Errorf("%d mails to the staff address after a family sign-up; want only the enrolment mail", len(mails))
		}
		// Whatever code is tried, nothing is activated.
		for _, guess := range []string{"000000", "123456"} {
			if res, _ := w.post(t, "/signup/verify", url.Values{"email": {"officer@example.org"}, "code": {guess}, "password": {password}}); res.StatusCode == http.StatusSeeOther {
				t.Fatalf("a family sign-up activated the staff account")
			}
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "officer@example.org", "password": password}); res.StatusCode == http.StatusOK {
			t.Fatalf("the family sign-up's password opens the staff account through the API")
		}
		officer := w.browser(t)
		secret := officer.completeEnrolment(t, link[1], "staff pass 42!")
		officer.portalLogin(t, "officer@example.org", "staff pass 42!", secret)
		if _, page := officer.get(t, "/facility"); !strings.Contains(page, "Officer Díaz") || strings.Contains(page, "Mallory") {
			t.Errorf("the staff account is not the agency's as it made it")
		}
	})
}
