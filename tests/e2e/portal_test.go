package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/mail/mailtest"
)

// A facility administrator enrols and logs in with an authenticator code, imports a
// roster after reading its dry run, approves a family's contact request and enrols a
// kiosk; a resident then signs in on that kiosk at a tablet's size. Every page
// passes axe-core.
func TestPortalAndKioskJourney(t *testing.T) {
	b := newBrowser(t)
	smtp := mailtest.Start(t)
	in := apptest.Start(t, "serve", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), map[string]string{
		"KINLINK_SMTP_HOST": smtp.Host, "KINLINK_SMTP_PORT": smtp.PortString(), "KINLINK_SMTP_TLS": "none",
	})
	operator := func(args ...string) string { t.Helper(); return in.Command(t, args...) }
	operator("admin", "create-agency", "--code", "FLDOC", "--name", "Florida Department of Corrections", "--state", "FL")
	operator("admin", "create-facility", "--agency", "FLDOC", "--code", "FSP", "--name", "Florida State Prison", "--type", "prison",
		"--timezone", "America/New_York", "--population", "1400")
	out := operator("admin", "create-staff", "--agency", "FLDOC", "--email", "admin@example.org", "--name", "Ana Ruiz",
		"--role", "facility_admin", "--facility", "FSP")
	link := regexp.MustCompile(`(/facility/enrol\?t=\S+)`).FindStringSubmatch(out)
	if link == nil {
		t.Fatalf("no enrolment link:\n%s", out)
	}
	at := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	text := func(sel string) string {
		t.Helper()
		return eval[string](t, b, fmt.Sprintf(`document.querySelector(%q).innerText`, sel))
	}
	b.do(t, chromedp.EmulateViewport(1280, 900))

	// Enrolment: password and authenticator.
	b.do(t, chromedp.Navigate(in.URL+link[1]), at("#enrol-submit"))
	b.checkAccessibility(t, "staff enrolment")
	secret := text("#totp-secret")
	now := time.Now()
	code, _ := totp.GenerateCode(secret, now)
	b.do(t, chromedp.SendKeys(chromedp.CSS("#password"), "portal pass 2026"), chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS("#enrol-submit")), at("#recovery-codes"))
	b.do(t, chromedp.Click(chromedp.CSS("#to-login")), at("#portal-login-submit"))
	b.checkAccessibility(t, "portal login")
	b.do(t, chromedp.SendKeys(chromedp.CSS("#email"), "admin@example.org"), chromedp.SendKeys(chromedp.CSS("#password"), "portal pass 2026"),
		chromedp.Click(chromedp.CSS("#portal-login-submit")), at("#portal-code-submit"))
	next, _ := totp.GenerateCode(secret, now.Add(30*time.Second))
	b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), next), chromedp.Click(chromedp.CSS("#portal-code-submit")), at("#roles"))
	b.screenshot(t, "portal-home")
	b.checkAccessibility(t, "portal home")

	// Roster: dry run, then apply.
	csv := filepath.Join(t.TempDir(), "roster.csv")
	os.WriteFile(csv, []byte("resident_id,last_name,first_name,facility_code,housing_unit,status\nA100,García,José,FSP,B-12,active\nA101,Smith,John,FSP,C-1,active\nA102,Nope,,FSP,C-2,active\n"), 0o600)
	b.do(t, chromedp.Click(chromedp.CSS("#roster-link")), at("#roster-upload"),
		chromedp.SetUploadFiles(chromedp.CSS("#roster"), []string{csv}), chromedp.Click(chromedp.CSS("#roster-upload")), at("#roster-summary"))
	if text("#count-new") != "2" || text("#count-rejected") != "1" {
		t.Errorf("dry run: %s new, %s rejected", text("#count-new"), text("#count-rejected"))
	}
	b.screenshot(t, "portal-roster")
	b.checkAccessibility(t, "roster dry run")
	b.do(t, chromedp.Click(chromedp.CSS("#roster-apply")), at("#roster-applied"))
	if !strings.Contains(text("#summary-title"), "Applied") {
		t.Errorf("after apply: %s", text("#summary-title"))
	}

	// A family asks to add José (through the API, as the app would) and the admin approves.
	signup, _ := in.JSON(t, "POST", "/api/v1/signup", map[string]any{"email": "family@example.org", "password": "a long family passphrase",
		"full_name": "Rosa", "security_question_id": "first_pet", "security_answer": "Rex", "locale": "en"})
	if signup.StatusCode != 202 {
		t.Fatalf("signup: %d", signup.StatusCode)
	}
	code6 := inbox(t, smtp, "family@example.org", 1)
	_, verified := in.JSON(t, "POST", "/api/v1/signup/verify", map[string]any{"email": "family@example.org", "code": code6, "password": "a long family passphrase"})
	auth := []string{"Authorization", "Bearer " + verified["token"].(string)}
	_, found := in.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A100", nil, auth...)
	id := found["residents"].([]any)[0].(map[string]any)["id"]
	in.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": id}, auth...)
	b.do(t, chromedp.Click(chromedp.CSS("#contacts-link")), at("#pending-contacts"))
	b.checkAccessibility(t, "contact requests")
	b.do(t, chromedp.Click(chromedp.CSS(`#pending-contacts button[value="approve"]`)), at("#no-pending"))
	if _, mine := in.JSON(t, "GET", "/api/v1/contacts", nil, auth...); !strings.Contains(fmt.Sprint(mine), "approved") {
		t.Errorf("the family does not see the approval: %v", mine)
	}

	// A PIN for José, then a kiosk.
	b.do(t, chromedp.Click(chromedp.CSS("#residents-link")), at("#residents-search"),
		chromedp.SendKeys(chromedp.CSS("#q"), "A100"), chromedp.Click(chromedp.CSS("#residents-search")), at("#staff-residents"),
		chromedp.SendKeys(chromedp.CSS(`#staff-residents input[name="pin"]`), "4826"),
		chromedp.Click(chromedp.CSS(`#staff-residents button`)), at("#residents-done"))
	b.checkAccessibility(t, "residents")
	b.do(t, chromedp.Click(chromedp.CSS("#kiosks-link")), at("#kiosk-create"),
		chromedp.SendKeys(chromedp.CSS("#name"), "Unit B dayroom"), chromedp.Click(chromedp.CSS("#kiosk-create")), at("#kiosk-code"))
	kioskCode := text("#kiosk-code")
	b.checkAccessibility(t, "kiosks")
	b.do(t, chromedp.Click(chromedp.CSS("#portal-logout")), at("#portal-login-submit"))

	// The kiosk, at a 10-inch tablet's size.
	b.do(t, chromedp.EmulateViewport(800, 1280), chromedp.Navigate(in.URL+"/kiosk"), at("#kiosk-enrol-submit"))
	b.checkAccessibility(t, "kiosk enrolment")
	b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), kioskCode), chromedp.Click(chromedp.CSS("#kiosk-enrol-submit")), at("#kiosk-login-submit"))
	b.checkAccessibility(t, "kiosk login")
	if box := b.box(t, "#kiosk-login-submit"); box.Bottom-box.Top < 60 {
		t.Errorf("the kiosk's sign-in button is %.0f px tall; touch targets must be large", box.Bottom-box.Top)
	}
	b.do(t, chromedp.SendKeys(chromedp.CSS("#resident_id"), "A100"), chromedp.SendKeys(chromedp.CSS("#pin"), "4826"),
		chromedp.Click(chromedp.CSS("#kiosk-login-submit")), at("#kiosk-pin-submit"))
	b.checkAccessibility(t, "kiosk PIN change")
	b.do(t, chromedp.SendKeys(chromedp.CSS("#pin"), "5937"), chromedp.SendKeys(chromedp.CSS("#pin_again"), "5937"),
		chromedp.Click(chromedp.CSS("#kiosk-pin-submit")), at("#resident-name"))
	if got := text("#resident-name"); got != "José García" {
		t.Errorf("kiosk home shows %q", got)
	}
	if !strings.Contains(text("#kiosk-contacts"), "Rosa") {
		t.Errorf("the approved contact is not on the kiosk: %s", text("main"))
	}
	b.screenshot(t, "kiosk-home")
	b.checkAccessibility(t, "kiosk home")
	b.do(t, chromedp.Click(chromedp.CSS("#kiosk-logout")), at("#kiosk-login-submit"))
	if strings.Contains(text("body"), "José") {
		t.Errorf("the next person at the kiosk sees the last resident's name")
	}
}
