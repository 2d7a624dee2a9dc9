package api_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/identity"
)

// resetToken asks for a reset code and verifies the n-th mail's code.
func (w *world) resetToken(t *testing.T, email string, n int) (string, map[string]any) {
	t.Helper()
	if res, _ := w.JSON(t, "POST", "/api/v1/password/forgot", map[string]any{"email": email}); res.StatusCode != http.StatusAccepted {
		t.Fatalf("forgot: %d %s", res.StatusCode, res.Raw)
	}
	res, step := w.JSON(t, "POST", "/api/v1/password/verify", map[string]any{"email": email, "code": codeIn(t, w.mailTo(t, email, n))})
	if res.StatusCode != 200 {
		t.Fatalf("verify: %d %s", res.StatusCode, res.Raw)
	}
	return step["reset_token"].(string), step
}

func errorField(body map[string]any, name string) any {
	e, _ := body["error"].(map[string]any)
	return e[name]
}

var leftInSpanish = regexp.MustCompile(`dentro de (23 horas y \d+ minutos|24 horas( y 1 minuto)?)`)

// Issue 13, item 24, over the API: a wrong answer says the tries left; a reset
// without the answer starts a day's wait that the address hears of, refuses to
// finish early with the time left, and after the wait, with a new code, sets a new
// password and question and signs every token out.
func TestForgottenAnswerOverTheAPI(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		old := w.register(t, "ana@example.org") // mail 1; the account speaks Spanish
		token, step := w.resetToken(t, "ana@example.org", 2)
		if step["wait"] != nil {
			t.Errorf("a wait before any was asked for: %v", step["wait"])
		}
		res, body := w.JSON(t, "POST", "/api/v1/password/reset", map[string]any{"reset_token": token, "security_answer": "Rex", "new_password": "a brand new passphrase"}, "Accept-Language", "en")
		if res.StatusCode != 400 || errCode(body) != "invalid_answer" || errorField(body, "attempts_left") != 2.0 ||
			!strings.Contains(errorField(body, "message").(string), "You have 2 more tries") {
			t.Fatalf("a wrong answer: %d %s", res.StatusCode, res.Raw)
		}

		res, body = w.JSON(t, "POST", "/api/v1/password/forgot-answer", map[string]any{"reset_token": "made-up"})
		if res.StatusCode != 400 || errCode(body) != "invalid_token" {
			t.Errorf("without a verified code: %d %s", res.StatusCode, res.Raw)
		}
		res, wait := w.JSON(t, "POST", "/api/v1/password/forgot-answer", map[string]any{"reset_token": token})
		if res.StatusCode != http.StatusAccepted || wait["status"] != "waiting" {
			t.Fatalf("forgot answer: %d %s", res.StatusCode, res.Raw)
		}
		if at, err := time.Parse(time.RFC3339, wait["ready_at"].(string)); err != nil || at.Before(time.Now().Add(24*time.Hour-2*time.Minute)) {
			t.Errorf("ready at %v (%v), want a day from now", at, err)
		}
		// The code is spent: its token does nothing more.
		if res, body := w.JSON(t, "POST", "/api/v1/password/forgot-answer", map[string]any{"reset_token": token}); res.StatusCode != 400 || errCode(body) != "invalid_token" {
			t.Errorf("the same token again: %d %s", res.StatusCode, res.Raw)
		}
		warning := w.mailTo(t, "ana@example.org", 3)
		if !strings.Contains(warning.Subject, "sin su respuesta de seguridad") || !strings.Contains(warning.Text, "https://kinlink.example.org/password/stop?t=") {
			t.Errorf("the warning mail, in the account's language:\n%s\n%s", warning.Subject, warning.Text)
		}

		// Early: told how long is left, in words and in Retry-After.
		token, step = w.resetToken(t, "ana@example.org", 4)
		if sw, _ := step["wait"].(map[string]any); sw["status"] != "waiting" {
			t.Errorf("verify does not tell of the waiting reset: %s", step)
		}
		for _, try := range []struct{ path, what string }{
			{"/api/v1/password/forgot-answer", "asking again"}, {"/api/v1/password/renew", "finishing"},
		} {
			res, body := w.JSON(t, "POST", try.path, map[string]any{"reset_token": token, "new_password": "an attacker's new passphrase",
				"security_question_id": "first_school", "security_answer": "Escuela"}, "Accept-Language", "es")
			retry, _ := strconv.Atoi(res.Header.Get("Retry-After"))
			if res.StatusCode != http.StatusConflict || errCode(body) != "reset_wait_not_over" || retry < 23*3600 ||
				!leftInSpanish.MatchString(errorField(body, "message").(string)) {
				t.Errorf("%s early: %d Retry-After %q %s", try.what, res.StatusCode, res.Header.Get("Retry-After"), res.Raw)
			}
		}

		// A day later: the ready mail, then a new code finishes it.
		db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
		now := time.Now().UTC()
		db.Write().Exec("UPDATE reset_waits SET ready_at = $1", now)
		db.Write().Exec("UPDATE jobs SET run_after = $1 WHERE kind = $2 AND state = 'available'", now, identity.ResetWaitJob)
		if ready := w.mailTo(t, "ana@example.org", 5); !strings.Contains(ready.Text, "https://kinlink.example.org/password/ready?t=") {
			t.Fatalf("no ready mail: %s", ready.Subject)
		}
		// The mailbox must be proved again after the wait: a token from before is
		// refused even while it lives.
		res, body = w.JSON(t, "POST", "/api/v1/password/renew", map[string]any{"reset_token": token, "new_password": "an attacker's new passphrase",
			"security_question_id": "first_school", "security_answer": "Escuela"})
		if res.StatusCode != 400 || errCode(body) != "invalid_token" {
			t.Errorf("finishing with a code proved before the wait ended: %d %s", res.StatusCode, res.Raw)
		}
		token, step = w.resetToken(t, "ana@example.org", 6)
		if sw, _ := step["wait"].(map[string]any); sw["status"] != "ready" {
			t.Errorf("verify does not say the reset is ready: %s", step)
		}
		if res, body := w.JSON(t, "POST", "/api/v1/password/forgot-answer", map[string]any{"reset_token": token}); res.StatusCode != 200 || body["status"] != "ready" {
			t.Errorf("asking again when ready: %d %s", res.StatusCode, res.Raw)
		}
		res, body = w.JSON(t, "POST", "/api/v1/password/renew", map[string]any{"reset_token": token, "new_password": "short",
			"security_question_id": "first_school", "security_answer": "Escuela Martí"})
		if res.StatusCode != 400 || errCode(body) != "weak_password" {
			t.Errorf("a weak password: %d %s", res.StatusCode, res.Raw)
		}
		res, body = w.JSON(t, "POST", "/api/v1/password/renew", map[string]any{"reset_token": token, "new_password": "a renewed family passphrase",
			"security_question_id": "no_such_question", "security_answer": "x"})
		if f, _ := errorField(body, "fields").(map[string]any); res.StatusCode != 400 || f["security_question_id"] != "invalid" || f["security_answer"] != "too_short" {
			t.Errorf("a bad question and answer: %d %s", res.StatusCode, res.Raw)
		}
		res, _ = w.JSON(t, "POST", "/api/v1/password/renew", map[string]any{"reset_token": token, "new_password": "a renewed family passphrase",
			"security_question_id": "first_school", "security_answer": "Escuela Martí"})
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("renew: %d %s", res.StatusCode, res.Raw)
		}
		if res, _ := w.JSON(t, "GET", "/api/v1/me", nil, bearer(old)...); res.StatusCode != 401 {
			t.Errorf("a token from before still works: %d", res.StatusCode)
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": "a renewed family passphrase"}); res.StatusCode != 200 {
			t.Errorf("the new password does not work: %d", res.StatusCode)
		}
		if m := w.mailTo(t, "ana@example.org", 7); !strings.Contains(m.Subject, "Se restablecieron su contraseña y su pregunta de seguridad") {
			t.Errorf("notice mail: %q", m.Subject)
		}
		_, step = w.resetToken(t, "ana@example.org", 8)
		if step["security_question_id"] != "first_school" || step["wait"] != nil {
			t.Errorf("after the renewal: %v", step)
		}
		// Finishing needs a wait: none is live now.
		res, body = w.JSON(t, "POST", "/api/v1/password/renew", map[string]any{"reset_token": step["reset_token"], "new_password": "a third family passphrase",
			"security_question_id": "first_pet", "security_answer": "Rex"})
		if res.StatusCode != http.StatusConflict || errCode(body) != "no_reset_wait" {
			t.Errorf("renew with no wait: %d %s", res.StatusCode, res.Raw)
		}
	})
}

// Only a few resets without the answer a day: each mails the owner.
func TestResetsWithoutTheAnswerAreLimited(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		w.register(t, "ana@example.org")
		db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
		mails := 1
		for i := range 4 {
			token, _ := w.resetToken(t, "ana@example.org", mails+1)
			mails++
			res, body := w.JSON(t, "POST", "/api/v1/password/forgot-answer", map[string]any{"reset_token": token})
			if i < 3 {
				if res.StatusCode != http.StatusAccepted {
					t.Fatalf("start %d: %d %s", i+1, res.StatusCode, res.Raw)
				}
				mails++
				w.mailTo(t, "ana@example.org", mails) // the warning
				// Stopped, as the owner would: the next start is a new one.
				db.Write().Exec("UPDATE reset_waits SET ended_at = $1, ended_by = 'stop' WHERE ended_at IS NULL", time.Now().UTC())
				continue
			}
			if res.StatusCode != http.StatusTooManyRequests || errCode(body) != "too_many_attempts" || res.Header.Get("Retry-After") == "" ||
				!strings.Contains(errorField(body, "message").(string), "hours") {
				t.Errorf("a fourth start in a day: %d %s", res.StatusCode, res.Raw)
			}
		}
	})
}
