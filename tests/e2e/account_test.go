package e2e

import (
	"fmt"
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

var sixDigits = regexp.MustCompile(`\b(\d{6})\b`)

// inbox waits for the n-th mail to an address and returns the code in its text.
func inbox(t *testing.T, smtp *mailtest.Server, to string, n int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var got []mailtest.Message
		for _, m := range smtp.Messages() {
			if m.To[0] == to {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			c := sixDigits.FindStringSubmatch(got[n-1].Text)
			if c == nil {
				t.Fatalf("no code in mail %q", got[n-1].Subject)
			}
			return c[1]
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("mail #%d to %s never arrived", n, to)
	return ""
}

// words are what the pages say, per language, that the journey looks for.
var words = map[string]map[string]string{
	"en": {"welcome": "Welcome to Kinlink", "wrong": "The email or password is not right.", "answer": "That answer is not right. You have 2 more tries before this reset stops.",
		"reset": "Your password was changed.", "codes": "Your recovery codes", "short": "Use at least 15 characters"},
	"es": {"welcome": "¡Bienvenido a Kinlink!", "wrong": "El correo o la contraseña no son correctos.", "answer": "Esa respuesta no es correcta. Le quedan 2 intentos antes de que este restablecimiento se detenga.",
		"reset": "Se cambió su contraseña.", "codes": "Sus códigos de recuperación", "short": "Use al menos 15 caracteres"},
}

// A family member creates an account, logs out and in, forgets the password and
// resets it (reading the code from the mail), and turns on two-step verification,
// on a phone in Spanish and on a desktop in English. Every page passes axe-core.
func TestFamilyAccountJourney(t *testing.T) {
	b := newBrowser(t)
	smtp := mailtest.Start(t)
	in := apptest.Start(t, "serve", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), map[string]string{
		"KINLINK_SMTP_HOST": smtp.Host, "KINLINK_SMTP_PORT": smtp.PortString(), "KINLINK_SMTP_TLS": "none",
	})
	for _, run := range []struct {
		name, lang    string
		width, height int64
	}{{"phone-es", "es", 360, 740}, {"desktop-en", "en", 1280, 800}} {
		t.Run(run.name, func(t *testing.T) {
			say := words[run.lang]
			email := fmt.Sprintf("%s@example.org", run.name)
			const pass1, pass2 = "mi familia es lo primero", "the second family passphrase"
			at := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
			text := func(sel string) string {
				t.Helper()
				return eval[string](t, b, fmt.Sprintf(`document.querySelector(%q).innerText`, sel))
			}
			check := func(what string) {
				t.Helper()
				b.screenshot(t, run.name+"-"+what)
				b.checkAccessibility(t, what+" ("+run.name+")")
			}

			b.do(t, chromedp.EmulateViewport(run.width, run.height),
				chromedp.Navigate(in.URL+"/lang?to="+run.lang+"&next=/"), at("#login"))

			// Sign up from the home page.
			b.do(t, chromedp.Click(chromedp.CSS(`.site-nav a[href="/signup"]`)), at("#signup-submit"))
			check("signup")
			b.do(t,
				chromedp.SendKeys(chromedp.CSS("#full_name"), "Rosa Delgado"),
				chromedp.SendKeys(chromedp.CSS("#email"), email),
				chromedp.SendKeys(chromedp.CSS("#password"), pass1),
				chromedp.Click(chromedp.CSS(`button.toggle-password[data-target="password"]`)),
			)
			if typ := eval[string](t, b, `document.getElementById("password").type`); typ != "text" {
				t.Errorf("the show button left the password hidden (%s)", typ)
			}
			b.do(t,
				chromedp.SetValue(chromedp.CSS("#security_question_id"), "childhood_street"),
				chromedp.SendKeys(chromedp.CSS("#security_answer"), "Calle Luna"),
				chromedp.Click(chromedp.CSS("#signup-submit")), at("#verify-submit"))
			check("verify")
			b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), inbox(t, smtp, email, 1)), chromedp.SendKeys(chromedp.CSS("#password"), pass1),
				chromedp.Click(chromedp.CSS("#verify-submit")), at("#change-password"))
			if !strings.Contains(text("main"), say["welcome"]) {
				t.Errorf("no welcome after sign-up: %s", text("main"))
			}
			check("account")

			// Log out, fail once, log in.
			b.do(t, chromedp.Click(chromedp.CSS("#logout")), at("#login-submit"))
			check("login")
			b.do(t, chromedp.SendKeys(chromedp.CSS("#email"), email), chromedp.SendKeys(chromedp.CSS("#password"), "not the password at all"),
				chromedp.Click(chromedp.CSS("#login-submit")), at("#form-message"))
			if got := text("#form-message"); got != say["wrong"] {
				t.Errorf("wrong password says %q", got)
			}
			if kept := eval[string](t, b, `document.getElementById("email").value`); kept != email {
				t.Errorf("the typed email was lost: %q", kept)
			}
			b.do(t, chromedp.SendKeys(chromedp.CSS("#password"), pass1), chromedp.Click(chromedp.CSS("#login-submit")), at("#mine-title"))

			// Forget the password: email, code, question, new password.
			b.do(t, chromedp.Click(chromedp.CSS("#logout")), at("#login-submit"),
				chromedp.Click(chromedp.CSS("#forgot-link")), at("#forgot-submit"))
			check("forgot")
			b.do(t, chromedp.SendKeys(chromedp.CSS("#email"), email), chromedp.Click(chromedp.CSS("#forgot-submit")), at("#verify-submit"))
			b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), inbox(t, smtp, email, 2)),
				chromedp.Click(chromedp.CSS("#verify-submit")), at("#answer-submit"))
			check("question")
			b.do(t, chromedp.SendKeys(chromedp.CSS("#answer"), "Calle Sol"), chromedp.Click(chromedp.CSS("#answer-submit")), at("#form-message"))
			if got := text("#form-message"); got != say["answer"] {
				t.Errorf("wrong answer says %q", got)
			}
			b.do(t, chromedp.SendKeys(chromedp.CSS("#answer"), "calle luna"), chromedp.Click(chromedp.CSS("#answer-submit")), at("#new-password-submit"))
			check("new-password")
			b.do(t, chromedp.SendKeys(chromedp.CSS("#password"), "too short"), chromedp.Click(chromedp.CSS("#new-password-submit")), at("#password-error"))
			if got := text("#password-error"); !strings.Contains(got, say["short"]) {
				t.Errorf("short password says %q", got)
			}
			b.do(t, chromedp.SendKeys(chromedp.CSS("#password"), pass2), chromedp.Click(chromedp.CSS("#new-password-submit")), at("#login-submit"))
			if !strings.Contains(text("main"), say["reset"]) {
				t.Errorf("no notice after the reset: %s", text("main"))
			}
			b.do(t, chromedp.SendKeys(chromedp.CSS("#email"), email), chromedp.SendKeys(chromedp.CSS("#password"), pass2),
				chromedp.Click(chromedp.CSS("#login-submit")), at("#mine-title"), chromedp.Navigate(in.URL+"/account"), at("#change-password"))

			// Turn on two-step verification, then log in with a code.
			b.do(t, chromedp.Click(chromedp.CSS("#two-factor-link")), at("#two-factor-on"))
			check("two-factor")
			secret := text("#totp-secret")
			now := time.Now()
			code, _ := totp.GenerateCode(secret, now)
			b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.SendKeys(chromedp.CSS("#password"), pass2),
				chromedp.Click(chromedp.CSS("#two-factor-on")), at("#recovery-codes"))
			if !strings.Contains(text("main"), say["codes"]) {
				t.Errorf("recovery codes page: %s", text("main"))
			}
			check("recovery-codes")
			b.do(t, chromedp.Navigate(in.URL+"/account"), at("#logout"), chromedp.Click(chromedp.CSS("#logout")), at("#login-submit"),
				chromedp.SendKeys(chromedp.CSS("#email"), email), chromedp.SendKeys(chromedp.CSS("#password"), pass2),
				chromedp.Click(chromedp.CSS("#login-submit")), at("#code-submit"))
			check("login-code")
			next, _ := totp.GenerateCode(secret, now.Add(30*time.Second))
			b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), next), chromedp.Click(chromedp.CSS("#code-submit")), at("#mine-title"))
			b.do(t, chromedp.Click(chromedp.CSS("#logout")), at("#login-submit"))
		})
	}
}
