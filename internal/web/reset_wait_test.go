package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/identity"
)

// Issue 13, item 24: "Forgot password" was a dead end without the security answer.

var (
	stopLink  = regexp.MustCompile(`https://kinlink\.example\.org/password/stop\?t=([A-Za-z0-9_-]+)`)
	readyLink = regexp.MustCompile(`https://kinlink\.example\.org/password/ready\?t=([A-Za-z0-9_-]+)`)
	hoursLeft = regexp.MustCompile(`in (23 hours and \d+ minutes|24 hours( and 1 minute)?)`)
)

// toQuestion goes from "Forgot password" to the question step in this browser,
// reading the n-th mail to the address for the code.
func (w *world) toQuestion(t *testing.T, email string, n int) string {
	t.Helper()
	if res, body := w.post(t, "/password/forgot", url.Values{"email": {email}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("forgot: %d\n%s", res.StatusCode, body)
	}
	res, body := w.post(t, "/password/verify", url.Values{"email": {email}, "code": {code(t, w.lastMailTo(t, email, n))}})
	if res.Header.Get("Location") != "/password/question" {
		t.Fatalf("verify: %d %s\n%s", res.StatusCode, res.Header.Get("Location"), body)
	}
	_, page := w.get(t, "/password/question")
	return page
}

// waitIsOver does what a day does to the account's reset without the answer: its
// wait ends, and its "ready" job is due.
func (w *world) waitIsOver(t *testing.T) {
	t.Helper()
	db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
	now := time.Now().UTC()
	if _, err := db.Write().Exec("UPDATE reset_waits SET ready_at = $1 WHERE ended_at IS NULL", now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write().Exec("UPDATE jobs SET run_after = $1 WHERE kind = $2 AND state = 'available'", now, identity.ResetWaitJob); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, re *regexp.Regexp, text string) string {
	t.Helper()
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, text)
	}
	return m[1]
}

// Someone who proved the mailbox but forgot the answer asks for a reset without it,
// is told to wait a day (and told again, in words, when trying early), then proves
// the mailbox again with the "ready" mail and sets a new password and question; the
// owner's mailbox hears of each step, and every device is signed out.
func TestForgottenAnswerWaitsADayThenRenews(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org") // mail 1
		other := w.browser(t)
		other.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})

		reset := w.browser(t)
		page := reset.toQuestion(t, "ana@example.org", 2)
		if !strings.Contains(page, `id="forgot-answer"`) || !strings.Contains(page, "I don&#39;t remember my answer") ||
			!strings.Contains(page, "this takes 24 hours") {
			t.Fatalf("the question step offers no way out without the answer:\n%s", page)
		}
		// Before: only "That answer is not right." Now the tries left are said too.
		res, page := reset.post(t, "/password/question", url.Values{"answer": {"wrong school"}})
		if res.StatusCode != 400 || !strings.Contains(page, "That answer is not right. You have 2 more tries before this reset stops.") {
			t.Fatalf("a wrong answer: %d\n%s", res.StatusCode, page)
		}

		res, _ = reset.post(t, "/password/forgot-answer", nil)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/password/waiting" {
			t.Fatalf("I don't remember my answer: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if c := setCookie(res, "__Host-kinlink_reset"); c == nil || c.MaxAge >= 0 {
			t.Errorf("the spent reset stays in the browser")
		}
		if _, page := reset.get(t, "/password/waiting"); !strings.Contains(page, "only after 24 hours") {
			t.Errorf("the waiting page does not say how long:\n%s", page)
		}
		warning := w.lastMailTo(t, "ana@example.org", 3)
		if !strings.Contains(warning.Subject, "without your security answer") || !strings.Contains(warning.Text, "we wait 24 hours") ||
			!strings.Contains(warning.Text, "after "+time.Now().UTC().Add(24*time.Hour).Format("Jan 2, 2006")) {
			t.Errorf("the warning mail:\n%s\n%s", warning.Subject, warning.Text)
		}
		link(t, stopLink, warning.Text)

		// Trying to finish before the wait is over says how long is left, in words.
		early := w.browser(t)
		page = early.toQuestion(t, "ana@example.org", 4)
		if !strings.Contains(page, `id="wait-waiting"`) || !hoursLeft.MatchString(page) || strings.Contains(page, `id="forgot-answer"`) {
			t.Errorf("the question step does not say a reset is waiting, and for how long:\n%s", page)
		}
		res, page = early.post(t, "/password/forgot-answer", nil)
		if res.StatusCode != http.StatusConflict || !strings.Contains(page, "is not ready yet: you can set a new password") || !hoursLeft.MatchString(page) {
			t.Errorf("asking again early: %d\n%s", res.StatusCode, page)
		}
		if res, _ := early.get(t, "/password/renew"); res.Header.Get("Location") != "/password/question" {
			t.Errorf("the last step opened early: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		res, page = early.post(t, "/password/renew", url.Values{"password": {"an attacker's new passphrase"},
			"security_question_id": {"first_pet"}, "security_answer": {"Rex"}})
		if res.StatusCode != http.StatusConflict || !hoursLeft.MatchString(page) {
			t.Errorf("finishing early: %d\n%s", res.StatusCode, page)
		}

		// A day later the address is mailed a link to finish.
		w.waitIsOver(t)
		ready := w.lastMailTo(t, "ana@example.org", 5)
		if !strings.Contains(ready.Subject, "You can now reset") {
			t.Fatalf("no ready mail: %q", ready.Subject)
		}
		token := link(t, readyLink, ready.Text)
		link(t, stopLink, ready.Text)

		later := w.browser(t)
		// Opening the link only shows a button: a mail scanner spends nothing.
		if res, page := later.get(t, "/password/ready?t="+token); res.StatusCode != 200 || !strings.Contains(page, `id="ready-submit"`) ||
			res.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("ready link page: %d\n%s", res.StatusCode, page)
		}
		res, _ = later.post(t, "/password/ready", url.Values{"t": {token}})
		if res.Header.Get("Location") != "/password/renew" {
			t.Fatalf("ready link: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if res, page := later.post(t, "/password/ready", url.Values{"t": {token}}); res.StatusCode != 400 || !strings.Contains(page, "This link no longer works") {
			t.Errorf("the ready link worked twice: %d", res.StatusCode)
		}
		if res, page := later.get(t, "/password/renew"); res.StatusCode != 200 || !strings.Contains(page, `id="security_question_id"`) {
			t.Fatalf("renew page: %d\n%s", res.StatusCode, page)
		}
		res, page = later.post(t, "/password/renew", url.Values{"password": {"ana@example.org"},
			"security_question_id": {"first_pet"}, "security_answer": {"Canela"}})
		if res.StatusCode != 400 || !strings.Contains(page, "Do not build your password on your name") ||
			!strings.Contains(page, `value="Canela"`) || !strings.Contains(page, `value="first_pet" selected`) {
			t.Fatalf("a weak new password: %d\n%s", res.StatusCode, page)
		}
		res, _ = later.post(t, "/password/renew", url.Values{"password": {"the renewed family passphrase"},
			"security_question_id": {"first_pet"}, "security_answer": {"Canela"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?notice=reset" {
			t.Fatalf("renew: %d %s", res.StatusCode, res.Header.Get("Location"))
		}

		// The consequences of a reset: everyone signed out, the owner told.
		for name, b := range map[string]*world{"the first": w, "another": other} {
			if res, _ := b.get(t, "/account"); res.StatusCode != http.StatusSeeOther {
				t.Errorf("%s device stayed signed in: %d", name, res.StatusCode)
			}
		}
		if res, _ := later.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}}); res.StatusCode == http.StatusSeeOther {
			t.Errorf("the old password still works")
		}
		if res, _ := later.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {"the renewed family passphrase"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the new password does not work: %d", res.StatusCode)
		}
		_, page = later.get(t, "/account")
		for _, want := range []string{"Password reset without the security answer asked for", "Password and security question reset without the old answer"} {
			if !strings.Contains(page, want) {
				t.Errorf("security events lack %q", want)
			}
		}
		if m := w.lastMailTo(t, "ana@example.org", 6); !strings.Contains(m.Subject, "password and security question were reset") {
			t.Errorf("no notice of the reset: %q", m.Subject)
		}
		// The new question is the one asked from now on.
		if page := w.browser(t).toQuestion(t, "ana@example.org", 7); !strings.Contains(page, "What was the name of your first pet?") {
			t.Errorf("the new question is not asked")
		}
	})
}

// The owner stops it with the link of the mail (one button, since mail scanners
// open links), and a login with the password ends it too; the pages then offer it
// afresh.
func TestTheOwnerStopsAResetWithoutTheAnswer(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org") // mail 1
		attacker := w.browser(t)       // who had a look into the mailbox
		attacker.toQuestion(t, "ana@example.org", 2)
		if res, _ := attacker.post(t, "/password/forgot-answer", nil); res.Header.Get("Location") != "/password/waiting" {
			t.Fatalf("start: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		stop := link(t, stopLink, w.lastMailTo(t, "ana@example.org", 3).Text)

		owner := w.browser(t)
		if res, page := owner.post(t, "/password/stop", url.Values{"t": {"made-up"}}); res.StatusCode != 400 || !strings.Contains(page, "does not stop anything") {
			t.Errorf("a made-up stop link: %d", res.StatusCode)
		}
		res, page := owner.get(t, "/password/stop?t="+stop)
		if res.StatusCode != 200 || !strings.Contains(page, `id="stop-submit"`) || res.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("stop page: %d\n%s", res.StatusCode, page)
		}
		res, page = owner.post(t, "/password/stop", url.Values{"t": {stop}})
		if res.StatusCode != 200 || !strings.Contains(page, "The reset is stopped") {
			t.Fatalf("stop: %d\n%s", res.StatusCode, page)
		}
		if _, page := owner.post(t, "/password/stop", url.Values{"t": {stop}}); !strings.Contains(page, "had already ended") {
			t.Errorf("stopping twice:\n%s", page)
		}

		// A day later the stopped reset cannot be finished, and no "ready" mail comes.
		w.waitIsOver(t)
		w.JobsSettled(t)
		page = attacker.toQuestion(t, "ana@example.org", 4)
		if strings.Contains(page, `id="wait-`) || !strings.Contains(page, `id="forgot-answer"`) {
			t.Errorf("a stopped reset is still shown:\n%s", page)
		}
		res, page = attacker.post(t, "/password/renew", url.Values{"password": {"an attacker's new passphrase"},
			"security_question_id": {"first_pet"}, "security_answer": {"Rex"}})
		if res.StatusCode != http.StatusConflict || !strings.Contains(page, "No reset without the security answer is waiting") {
			t.Errorf("finishing a stopped reset: %d\n%s", res.StatusCode, page)
		}
		if n := len(w.smtp.Messages()); n != 4 {
			t.Errorf("%d mails, want 4: a stopped reset mailed that it is ready", n)
		}

		// Asked for again, then the owner logs in with the password: it ends.
		if res, _ := attacker.post(t, "/password/forgot-answer", nil); res.Header.Get("Location") != "/password/waiting" {
			t.Fatalf("start again: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		stop = link(t, stopLink, w.lastMailTo(t, "ana@example.org", 5).Text)
		if res, _ := owner.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("login: %d", res.StatusCode)
		}
		if _, page := owner.get(t, "/account"); !strings.Contains(page, "ended by a login or a new password") {
			t.Errorf("the account's events do not say the login ended it")
		}
		w.waitIsOver(t)
		w.JobsSettled(t)
		page = attacker.toQuestion(t, "ana@example.org", 6)
		if strings.Contains(page, `id="wait-`) {
			t.Errorf("a reset ended by a login is still shown")
		}
		if res, _ := attacker.post(t, "/password/renew", url.Values{"password": {"an attacker's new passphrase"},
			"security_question_id": {"first_pet"}, "security_answer": {"Rex"}}); res.StatusCode != http.StatusConflict {
			t.Errorf("finishing a reset ended by a login: %d", res.StatusCode)
		}
		if _, page := owner.post(t, "/password/stop", url.Values{"t": {stop}}); !strings.Contains(page, "had already ended") {
			t.Errorf("the stop link of a reset ended by a login:\n%s", page)
		}
		if res, _ := owner.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}}); res.StatusCode != http.StatusSeeOther {
			t.Errorf("the password changed: %d", res.StatusCode)
		}
	})
}

// A completed reset with the answer ends a waiting one too.
func TestAResetWithTheAnswerEndsTheWait(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		attacker := w.browser(t)
		attacker.toQuestion(t, "ana@example.org", 2)
		attacker.post(t, "/password/forgot-answer", nil)
		w.lastMailTo(t, "ana@example.org", 3)

		owner := w.browser(t)
		owner.toQuestion(t, "ana@example.org", 4)
		if res, _ := owner.post(t, "/password/question", url.Values{"answer": {"Escuela Martí"}}); res.Header.Get("Location") != "/password/new" {
			t.Fatalf("answer: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if res, _ := owner.post(t, "/password/new", url.Values{"password": {"the owner's new passphrase"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("new password: %d", res.StatusCode)
		}
		w.waitIsOver(t)
		page := attacker.toQuestion(t, "ana@example.org", 6)
		if strings.Contains(page, `id="wait-`) {
			t.Errorf("a reset ended by the owner's reset is still shown")
		}
	})
}

// Each wrong answer says how many tries are left; the last one stops the reset, and
// the new start says why and how to go on without the answer.
func TestWrongAnswersSayTheTriesLeft(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		reset := w.browser(t)
		reset.toQuestion(t, "ana@example.org", 2)
		for _, want := range []string{"You have 2 more tries before this reset stops.", "You have 1 more try before this reset stops."} {
			if res, page := reset.post(t, "/password/question", url.Values{"answer": {"wrong school"}}); res.StatusCode != 400 || !strings.Contains(page, want) {
				t.Errorf("a wrong answer: %d, want %q\n%s", res.StatusCode, want, page)
			}
		}
		res, _ := reset.post(t, "/password/question", url.Values{"answer": {"wrong school"}})
		if res.Header.Get("Location") != "/password/forgot?locked=1" {
			t.Fatalf("the last wrong answer: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if _, page := reset.get(t, "/password/forgot?locked=1"); !strings.Contains(page, "Three wrong answers stopped that reset") ||
			!strings.Contains(page, "I don&#39;t remember my answer") {
			t.Errorf("the new start does not say why:\n%s", page)
		}
	})
}
