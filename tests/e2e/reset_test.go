package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/mail/mailtest"
)

// mailText waits for the n-th mail to an address and returns its text part.
func mailText(t *testing.T, smtp *mailtest.Server, to string, n int) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		var got []mailtest.Message
		for _, m := range smtp.Messages() {
			if m.To[0] == to {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got[n-1].Text
		}
	}
	t.Fatalf("mail #%d to %s never arrived", n, to)
	return ""
}

// pathIn is the path and query of the first link to path in a mail, to open on
// the test server (the mail's links name the configured base URL).
func pathIn(t *testing.T, text, path string) string {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(path) + `\?t=[A-Za-z0-9_-]+`).FindString(text)
	if m == "" {
		t.Fatalf("no link to %s in:\n%s", path, text)
	}
	return m
}

var resetWords = map[string]map[string]string{
	"en": {"way_out": "I don't remember my answer", "tries": "You have 2 more tries", "waiting": "only after 24 hours",
		"not_yet": "can be finished after", "renewed": "Your password was changed.", "too_late": "Too late to stop it"},
	"es": {"way_out": "No recuerdo mi respuesta", "tries": "Le quedan 2 intentos", "waiting": "solo después de 24 horas",
		"not_yet": "Podrá terminarse después de", "renewed": "Se cambió su contraseña.", "too_late": "Demasiado tarde para detenerlo"},
}

// Issue 13, item 24: a family who forgot the security answer takes the way out on
// the question step, waits the day (the mails announce it, with a stop link), then
// sets a new password and question from the "ready" mail. On a 360 px phone, in
// English and Spanish; every page passes axe-core and none scrolls sideways.
func TestForgottenAnswerJourney(t *testing.T) {
	b := newBrowser(t)
	smtp := mailtest.Start(t)
	in := apptest.Start(t, "serve", "sqlite:"+filepath.Join(t.TempDir(), "kinlink.db"), map[string]string{
		"KINLINK_SMTP_HOST": smtp.Host, "KINLINK_SMTP_PORT": smtp.PortString(), "KINLINK_SMTP_TLS": "none",
	})
	for _, lang := range []string{"en", "es"} {
		t.Run(lang, func(t *testing.T) {
			say := resetWords[lang]
			email := fmt.Sprintf("forgetful-%s@example.org", lang)
			const pass1, pass2 = "mi familia es lo primero", "the renewed family passphrase"
			at := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
			text := func(sel string) string {
				t.Helper()
				return eval[string](t, b, fmt.Sprintf(`document.querySelector(%q).innerText`, sel))
			}
			check := func(what, sel string) {
				t.Helper()
				b.screenshot(t, "reset-"+lang+"-"+what)
				b.checkAccessibility(t, what+" ("+lang+")")
				box := b.box(t, sel)
				if !box.Visible || box.Left < 0 || box.Right > box.ViewportWidth {
					t.Errorf("%s: %s is not on a 360 px screen: %+v", what, sel, box)
				}
				if box.ScrollWidth > box.ViewportWidth {
					t.Errorf("%s: the page is %.0f px wide in a %.0f px window", what, box.ScrollWidth, box.ViewportWidth)
				}
			}

			b.do(t, chromedp.EmulateViewport(360, 740), chromedp.Navigate(in.URL+"/lang?to="+lang+"&next=/signup"), at("#signup-submit"),
				chromedp.SendKeys(chromedp.CSS("#full_name"), "Rosa Delgado"),
				chromedp.SendKeys(chromedp.CSS("#email"), email),
				chromedp.SendKeys(chromedp.CSS("#password"), pass1),
				chromedp.SetValue(chromedp.CSS("#security_question_id"), "childhood_street"),
				chromedp.SendKeys(chromedp.CSS("#security_answer"), "Calle Luna"),
				chromedp.Click(chromedp.CSS("#signup-submit")), at("#verify-submit"))
			// (A mail is read once the step that sends it has run: Go evaluates the
			// arguments of one b.do before any of its steps.)
			b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), inbox(t, smtp, email, 1)), chromedp.SendKeys(chromedp.CSS("#password"), pass1),
				chromedp.Click(chromedp.CSS("#verify-submit")), at("#logout"),
				chromedp.Click(chromedp.CSS("#logout")), at("#login-submit"))

			// Forgot the password, and the answer.
			toQuestion := func(n int) {
				t.Helper()
				b.do(t, chromedp.Navigate(in.URL+"/password/forgot"), at("#forgot-submit"),
					chromedp.SendKeys(chromedp.CSS("#email"), email), chromedp.Click(chromedp.CSS("#forgot-submit")), at("#verify-submit"))
				b.do(t, chromedp.SendKeys(chromedp.CSS("#code"), inbox(t, smtp, email, n)), chromedp.Click(chromedp.CSS("#verify-submit")), at("#answer-submit"))
			}
			toQuestion(2)
			if got := text("#forgot-answer"); got != say["way_out"] {
				t.Errorf("the way out reads %q", got)
			}
			check("question", "#forgot-answer")
			b.do(t, chromedp.SendKeys(chromedp.CSS("#answer"), "Calle Sol"), chromedp.Click(chromedp.CSS("#answer-submit")), at("#form-message"))
			if got := text("#form-message"); !strings.Contains(got, say["tries"]) {
				t.Errorf("a wrong answer says %q", got)
			}
			check("question-wrong", "#forgot-answer")
			b.do(t, chromedp.Click(chromedp.CSS("#forgot-answer")), at("#waiting-lead"))
			if got := text("#waiting-lead"); !strings.Contains(got, say["waiting"]) {
				t.Errorf("the waiting page says %q", got)
			}
			check("waiting", "#waiting-login")

			// The owner's stop link opens a page with one button.
			warning := mailText(t, smtp, email, 3)
			b.do(t, chromedp.Navigate(in.URL+pathIn(t, warning, "/password/stop")), at("#stop-submit"))
			check("stop", "#stop-submit")

			// Back early: the question step says when.
			toQuestion(4)
			if got := text("#wait-waiting"); !strings.Contains(got, say["not_yet"]) {
				t.Errorf("early, the question step says %q", got)
			}
			check("question-waiting", "#wait-waiting")

			// A day later.
			db := dbtest.Open(t, in.Env["KINLINK_DATABASE"])
			now := time.Now().UTC()
			db.Write().Exec("UPDATE reset_waits SET ready_at = $1 WHERE ended_at IS NULL", now.Add(-time.Minute))
			db.Write().Exec("UPDATE jobs SET run_after = $1 WHERE kind = $2 AND state = 'available'", now, identity.ResetWaitJob)
			ready := mailText(t, smtp, email, 5)
			b.do(t, chromedp.Navigate(in.URL+pathIn(t, ready, "/password/ready")), at("#ready-submit"))
			check("ready", "#ready-submit")
			b.do(t, chromedp.Click(chromedp.CSS("#ready-submit")), at("#renew-submit"))
			check("renew", "#renew-submit")
			b.do(t, chromedp.SendKeys(chromedp.CSS("#password"), "too short"), chromedp.Click(chromedp.CSS("#renew-submit")), at("#password-error"))
			if eval[string](t, b, `document.getElementById("security_answer").getAttribute("aria-invalid")`) != "true" {
				t.Errorf("a missing answer is not marked")
			}
			check("renew-errors", "#renew-submit")
			b.do(t, chromedp.SendKeys(chromedp.CSS("#password"), pass2),
				chromedp.SetValue(chromedp.CSS("#security_question_id"), "first_pet"),
				chromedp.SendKeys(chromedp.CSS("#security_answer"), "Canela"),
				chromedp.Click(chromedp.CSS("#renew-submit")), at("#login-submit"))
			if !strings.Contains(text("main"), say["renewed"]) {
				t.Errorf("no notice after the renewal: %s", text("main"))
			}

			// The stop link, now: too late, and it says what to do.
			b.do(t, chromedp.Navigate(in.URL+pathIn(t, warning, "/password/stop")), at("#stop-submit"),
				chromedp.Click(chromedp.CSS("#stop-submit")), at("#stop-result"))
			if !strings.Contains(text("h1"), say["too_late"]) {
				t.Errorf("the stop link after the renewal says %q", text("h1"))
			}
			check("stop-too-late", "#forgot-again")

			b.do(t, chromedp.Navigate(in.URL+"/login"), at("#login-submit"),
				chromedp.SendKeys(chromedp.CSS("#email"), email), chromedp.SendKeys(chromedp.CSS("#password"), pass2),
				chromedp.Click(chromedp.CSS("#login-submit")), at("#logout"), chromedp.Click(chromedp.CSS("#logout")), at("#login-submit"))
		})
	}
}
