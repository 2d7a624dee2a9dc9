package api_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/mail/mailtest"
)

// world is a running kinlink with a real SMTP server, its answers checked against
// the OpenAPI document.
type world struct {
	*apptest.Instance
	smtp *mailtest.Server
}

func start(t *testing.T, setting string, env map[string]string) *world {
	t.Helper()
	smtp := mailtest.Start(t)
	full := map[string]string{
		"KINLINK_SMTP_HOST": smtp.Host, "KINLINK_SMTP_PORT": smtp.PortString(), "KINLINK_SMTP_TLS": "none",
		"KINLINK_BASE_URL": "https://kinlink.example.org", "KINLINK_HASH_QUEUE": "200",
	}
	for k, v := range env {
		full[k] = v
	}
	in := apptest.Start(t, "serve", setting, full)
	c := loadContract(t)
	in.OnResponse = c.check
	return &world{Instance: in, smtp: smtp}
}

// eachEngine runs fn on SQLite and, when configured, PostgreSQL.
func eachEngine(t *testing.T, env map[string]string, fn func(t *testing.T, w *world)) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) { fn(t, start(t, e.Setting, env)) })
	}
}

var digits = regexp.MustCompile(`\b(\d{6})\b`)

// mailTo waits for the n-th mail (counting from 1) to an address and returns it.
func (w *world) mailTo(t *testing.T, to string, n int) mailtest.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var got []mailtest.Message
		for _, m := range w.smtp.Messages() {
			if len(m.To) > 0 && m.To[0] == to {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got[n-1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("mail #%d to %s never arrived", n, to)
	return mailtest.Message{}
}

func (w *world) mailCount(to string) int {
	n := 0
	for _, m := range w.smtp.Messages() {
		if len(m.To) > 0 && m.To[0] == to {
			n++
		}
	}
	return n
}

func codeIn(t *testing.T, m mailtest.Message) string {
	t.Helper()
	c := digits.FindStringSubmatch(m.Text)
	if c == nil {
		t.Fatalf("no code in the text part of %q:\n%s", m.Subject, m.Text)
	}
	return c[1]
}

const goodPassword = "correct horse battery staple"

func signupBody(email string) map[string]any {
	return map[string]any{"email": email, "password": goodPassword, "full_name": "Ana García",
		"security_question_id": "first_pet", "security_answer": "Canela", "locale": "es"}
}

// register makes an active account through the API and returns its token.
func (w *world) register(t *testing.T, email string) string {
	t.Helper()
	before := w.mailCount(email)
	res, _ := w.JSON(t, "POST", "/api/v1/signup", signupBody(email))
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("signup %s: %d %s", email, res.StatusCode, res.Raw)
	}
	code := codeIn(t, w.mailTo(t, email, before+1))
	res, body := w.JSON(t, "POST", "/api/v1/signup/verify", map[string]any{"email": email, "code": code, "password": goodPassword})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("verify %s: %d %s", email, res.StatusCode, res.Raw)
	}
	return body["token"].(string)
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func TestSignupVerifyMeLogout(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		res, _ := w.JSON(t, "GET", "/api/v1/security-questions", nil, "Accept-Language", "es")
		if res.StatusCode != 200 || !strings.Contains(res.Raw, "¿Cómo se llamaba su primera mascota?") {
			t.Fatalf("questions in Spanish: %d %s", res.StatusCode, res.Raw)
		}
		if strings.Count(res.Raw, `"id"`) < 8 {
			t.Errorf("fewer than 8 questions: %s", res.Raw)
		}

		res, body := w.JSON(t, "POST", "/api/v1/signup", signupBody("ana@example.org"))
		if res.StatusCode != http.StatusAccepted || body["status"] != "verification_sent" {
			t.Fatalf("signup: %d %s", res.StatusCode, res.Raw)
		}
		m := w.mailTo(t, "ana@example.org", 1)
		code := codeIn(t, m)
		if !strings.Contains(m.Subject, "código") || !strings.Contains(m.Text, "https://kinlink.example.org/signup/verify?t=") {
			t.Errorf("sign-up mail (Spanish, with a link from the base URL): %q\n%s", m.Subject, m.Text)
		}

		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		res, body = w.JSON(t, "POST", "/api/v1/signup/verify", map[string]any{"email": "ana@example.org", "code": wrong, "password": goodPassword})
		if res.StatusCode != 400 || errCode(body) != "invalid_code" {
			t.Fatalf("wrong code: %d %s", res.StatusCode, res.Raw)
		}
		res, body = w.JSON(t, "POST", "/api/v1/signup/verify", map[string]any{"email": "ANA@example.org ", "code": code, "password": goodPassword})
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("verify: %d %s", res.StatusCode, res.Raw)
		}
		token := body["token"].(string)
		exp, err := time.Parse(time.RFC3339, body["expires_at"].(string))
		if err != nil || exp.Before(time.Now().Add(29*24*time.Hour)) {
			t.Errorf("token expires %v (%v); want about 30 days", body["expires_at"], err)
		}
		res, again := w.JSON(t, "POST", "/api/v1/signup/verify", map[string]any{"email": "ana@example.org", "code": code, "password": goodPassword})
		if res.StatusCode != 400 || errCode(again) != "invalid_code" {
			t.Errorf("a used code worked again: %d %s", res.StatusCode, res.Raw)
		}

		res, me := w.JSON(t, "GET", "/api/v1/me", nil, bearer(token)...)
		if res.StatusCode != 200 || me["email"] != "ana@example.org" || me["full_name"] != "Ana García" || me["locale"] != "es" || me["two_factor_enabled"] != false {
			t.Fatalf("me: %d %s", res.StatusCode, res.Raw)
		}
		res, _ = w.JSON(t, "POST", "/api/v1/logout", nil, bearer(token)...)
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("logout: %d", res.StatusCode)
		}
		res, body = w.JSON(t, "GET", "/api/v1/me", nil, bearer(token)...)
		if res.StatusCode != 401 || errCode(body) != "unauthenticated" {
			t.Fatalf("token after logout: %d %s", res.StatusCode, res.Raw)
		}

		res, body = w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": goodPassword})
		if res.StatusCode != 200 || len(body["token"].(string)) < 40 {
			t.Fatalf("login: %d %s", res.StatusCode, res.Raw)
		}
	})
}

func TestSignupWithATakenEmailLooksTheSameAndTellsTheOwner(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		w.register(t, "ana@example.org")
		first, _ := w.JSON(t, "POST", "/api/v1/signup", signupBody("new@example.org"))
		other := signupBody("ana@example.org")
		other["password"] = "an entirely different passphrase"
		again, _ := w.JSON(t, "POST", "/api/v1/signup", other)
		if first.StatusCode != again.StatusCode || first.Raw != again.Raw {
			t.Fatalf("new email: %d %s; taken email: %d %s", first.StatusCode, first.Raw, again.StatusCode, again.Raw)
		}
		notice := w.mailTo(t, "ana@example.org", 2)
		if !strings.Contains(notice.Subject, "Alguien intentó crear una cuenta") || digits.MatchString(notice.Text) {
			t.Errorf("owner's notice: %q\n%s", notice.Subject, notice.Text)
		}
		// Nothing changed: the old password still works, the new one does not.
		res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": "an entirely different passphrase"})
		if res.StatusCode != 401 {
			t.Errorf("the second sign-up's password logs in: %d", res.StatusCode)
		}
		res, _ = w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": goodPassword})
		if res.StatusCode != 200 {
			t.Errorf("the owner's password stopped working: %d", res.StatusCode)
		}
	})
}

func TestSignupValidation(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting, nil)
	cases := []struct {
		name    string
		change  map[string]any
		code    string
		reasons []string
	}{
		{"short password", map[string]any{"password": "Tr0ub4dor&3"}, "weak_password", []string{"too_short"}},
		{"common password", map[string]any{"password": "1234567890123456"}, "weak_password", []string{"common"}},
		{"service name", map[string]any{"password": "kinlinkkinlink1234"}, "weak_password", []string{"context"}},
		{"own email", map[string]any{"email": "marisol.fernandez@example.org", "password": "marisol.fernandez1"}, "weak_password", []string{"context"}},
		{"own address, whole", map[string]any{"email": "marisol.fernandez@example.org", "password": "marisol.fernandez@example.org"}, "weak_password", []string{"context"}},
		{"repetitive", map[string]any{"password": "aaaaaaaaaaaaaaaaaaaa"}, "weak_password", []string{"common", "repetitive"}},
		{"over 1 KiB", map[string]any{"password": strings.Repeat("x", 1025)}, "weak_password", []string{"too_long"}},
		{"bad email", map[string]any{"email": "ana at example"}, "invalid_request", nil},
		{"control character in the name", map[string]any{"full_name": "Ana\u0001García"}, "invalid_characters", nil},
		{"control character in the answer", map[string]any{"security_answer": "Canela\u0007"}, "invalid_characters", nil},
		{"no name", map[string]any{"full_name": " "}, "invalid_request", nil},
		{"direction override in the name", map[string]any{"full_name": "Ana \u202eaicraG"}, "invalid_request", nil},
		{"zero-width space in the name", map[string]any{"full_name": "Ana\u200bGarcía"}, "invalid_request", nil},
		{"unknown question", map[string]any{"security_question_id": "mothers_maiden_name"}, "invalid_request", nil},
		{"empty answer", map[string]any{"security_answer": ""}, "invalid_request", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := signupBody("case@example.org")
			for k, v := range tc.change {
				body[k] = v
			}
			res, got := w.JSON(t, "POST", "/api/v1/signup", body)
			if res.StatusCode != 400 || errCode(got) != tc.code {
				t.Fatalf("%d %s", res.StatusCode, res.Raw)
			}
			for _, r := range tc.reasons {
				if !strings.Contains(res.Raw, `"`+r+`"`) {
					t.Errorf("reasons lack %q: %s", r, res.Raw)
				}
			}
		})
	}
	t.Run("a name with a direction override is refused on its field", func(t *testing.T) {
		body := signupBody("override@example.org")
		body["full_name"] = "Ana \u202eaicraG"
		if res, _ := w.JSON(t, "POST", "/api/v1/signup", body); res.StatusCode != 400 || !strings.Contains(res.Raw, `"full_name":"hidden_characters"`) {
			t.Fatalf("%d %s", res.StatusCode, res.Raw)
		}
	})
	t.Run("long passphrase in any script is fine", func(t *testing.T) {
		body := signupBody("unicode@example.org")
		body["password"] = "我的密码是一只会唱歌的小猫咪啊"
		if res, _ := w.JSON(t, "POST", "/api/v1/signup", body); res.StatusCode != http.StatusAccepted {
			t.Fatalf("%d %s", res.StatusCode, res.Raw)
		}
		body = signupBody("long@example.org")
		body["password"] = strings.Repeat("abcdefgh", 12) // 96 characters
		if res, _ := w.JSON(t, "POST", "/api/v1/signup", body); res.StatusCode != http.StatusAccepted {
			t.Fatalf("96 characters refused: %d %s", res.StatusCode, res.Raw)
		}
	})
}

// Unknown email, wrong password and an unverified account look exactly alike.
func TestLoginFailuresAreIndistinguishable(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		w.register(t, "ana@example.org")
		w.JSON(t, "POST", "/api/v1/signup", signupBody("pending@example.org"))
		var answers []string
		for _, creds := range [][2]string{
			{"nobody@example.org", goodPassword},
			{"ana@example.org", "not the right passphrase"},
			{"pending@example.org", goodPassword},
		} {
			res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": creds[0], "password": creds[1]})
			answers = append(answers, fmt.Sprintf("%d %s", res.StatusCode, res.Raw))
		}
		for i := 1; i < len(answers); i++ {
			if answers[i] != answers[0] {
				t.Errorf("answers differ:\n%s\n%s", answers[0], answers[i])
			}
		}
		if !strings.HasPrefix(answers[0], "401 ") || !strings.Contains(answers[0], "invalid_credentials") {
			t.Errorf("answer: %s", answers[0])
		}
	})
}

func TestLockHoldsEvenWithTheRightPassword(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		w.register(t, "ana@example.org")
		for i := range 10 {
			res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": " Ana@Example.org", "password": fmt.Sprintf("wrong guess number %d", i)})
			if res.StatusCode != 401 {
				t.Fatalf("guess %d: %d %s", i, res.StatusCode, res.Raw)
			}
		}
		res, body := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": goodPassword})
		if res.StatusCode != 429 || errCode(body) != "too_many_attempts" || res.Header.Get("Retry-After") == "" {
			t.Fatalf("right password while locked: %d %s (Retry-After %q)", res.StatusCode, res.Raw, res.Header.Get("Retry-After"))
		}
		// An unknown email is locked the same way.
		for range 10 {
			w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ghost@example.org", "password": "some guess here!"})
		}
		ghost, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ghost@example.org", "password": "some guess here!"})
		if ghost.StatusCode != 429 {
			t.Errorf("unknown email after 10 failures: %d", ghost.StatusCode)
		}
	})
}

func TestParallelGuessesGetNoMoreTriesThanTheLimit(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		w.register(t, "ana@example.org")
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": fmt.Sprintf("parallel guess %02d!", i)})
				mu.Lock()
				statuses[res.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if statuses[401] > 10 || statuses[401]+statuses[429]+statuses[503] != 50 {
			t.Fatalf("50 parallel guesses: %v; at most 10 may be checked", statuses)
		}
		if statuses[429] < 40 {
			t.Errorf("only %d of 50 were refused as too many: %v", statuses[429], statuses)
		}
	})
}

func TestSpoofedForwardedForDoesNotDodgeTheAddressLimit(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting, map[string]string{"KINLINK_LOGIN_MAX_PER_ADDRESS": "10"})
	for i := range 10 {
		res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": fmt.Sprintf("user%d@example.org", i), "password": "spray password 2024!"},
			"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		if res.StatusCode != 401 {
			t.Fatalf("spray %d: %d", i, res.StatusCode)
		}
	}
	res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "user99@example.org", "password": "spray password 2024!"},
		"X-Forwarded-For", "203.0.113.99")
	if res.StatusCode != 429 {
		t.Fatalf("11th spray attempt from one address with a new X-Forwarded-For: %d", res.StatusCode)
	}
}

func TestForgotPasswordJourneyAndItsGuards(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		old := w.register(t, "ana@example.org")
		_, login := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": goodPassword})
		second := login["token"].(string)

		known, _ := w.JSON(t, "POST", "/api/v1/password/forgot", map[string]any{"email": "ana@example.org"})
		unknown, _ := w.JSON(t, "POST", "/api/v1/password/forgot", map[string]any{"email": "nobody@example.org"})
		if known.StatusCode != 202 || known.Raw != unknown.Raw || known.StatusCode != unknown.StatusCode {
			t.Fatalf("known: %d %s; unknown: %d %s", known.StatusCode, known.Raw, unknown.StatusCode, unknown.Raw)
		}
		// An address that cannot be one is said so at once; it tells nothing of accounts.
		if res, body := w.JSON(t, "POST", "/api/v1/password/forgot", map[string]any{"email": "not an email"}); res.StatusCode != 400 || !strings.Contains(res.Raw, `"email"`) {
			t.Errorf("forgot password for %q: %d %s", "not an email", res.StatusCode, body)
		}
		m := w.mailTo(t, "ana@example.org", 2)
		code := codeIn(t, m)
		if !strings.Contains(m.Text, "https://kinlink.example.org/password/verify?t=") {
			t.Errorf("reset mail has no link from the base URL:\n%s", m.Text)
		}
		// Wait for the fact: both requests have been looked at, and any mail they queued sent.
		if n := apptest.Succeeded(w.JobsSettled(t), identity.ResetJob); n != 2 {
			t.Fatalf("%d reset requests were looked at, want 2", n)
		}
		if n := w.mailCount("nobody@example.org"); n != 0 {
			t.Errorf("%d mails went to an address with no account", n)
		}

		// The last step cannot be reached without a verified code.
		res, body := w.JSON(t, "POST", "/api/v1/password/reset", map[string]any{"reset_token": "made-up-token", "security_answer": "Canela", "new_password": "a brand new passphrase"})
		if res.StatusCode != 400 || errCode(body) != "invalid_token" {
			t.Fatalf("reset with a made-up token: %d %s", res.StatusCode, res.Raw)
		}

		res, step := w.JSON(t, "POST", "/api/v1/password/verify", map[string]any{"email": "ana@example.org", "code": code}, "Accept-Language", "en")
		if res.StatusCode != 200 || step["security_question"] != "What was the name of your first pet?" {
			t.Fatalf("verify: %d %s", res.StatusCode, res.Raw)
		}
		token := step["reset_token"].(string)
		res, body = w.JSON(t, "POST", "/api/v1/password/reset", map[string]any{"reset_token": token, "security_answer": "canela", "new_password": "short"})
		if res.StatusCode != 400 || errCode(body) != "weak_password" {
			t.Fatalf("weak new password: %d %s", res.StatusCode, res.Raw)
		}
		res, body = w.JSON(t, "POST", "/api/v1/password/reset", map[string]any{"reset_token": token, "security_answer": "Rex", "new_password": "a brand new passphrase"})
		if res.StatusCode != 400 || errCode(body) != "invalid_answer" {
			t.Fatalf("wrong answer: %d %s", res.StatusCode, res.Raw)
		}
		// Answers are forgiving about case and spaces.
		res, _ = w.JSON(t, "POST", "/api/v1/password/reset", map[string]any{"reset_token": token, "security_answer": "  CANELA ", "new_password": "a brand new passphrase"})
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("reset: %d %s", res.StatusCode, res.Raw)
		}
		res, _ = w.JSON(t, "POST", "/api/v1/password/reset", map[string]any{"reset_token": token, "security_answer": "Canela", "new_password": "yet another passphrase"})
		if res.StatusCode != 400 {
			t.Errorf("a finished reset worked twice: %d", res.StatusCode)
		}

		for _, tok := range []string{old, second} {
			if res, _ := w.JSON(t, "GET", "/api/v1/me", nil, bearer(tok)...); res.StatusCode != 401 {
				t.Errorf("a token from before the reset still works: %d", res.StatusCode)
			}
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": goodPassword}); res.StatusCode != 401 {
			t.Errorf("the old password still works: %d", res.StatusCode)
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": "a brand new passphrase"}); res.StatusCode != 200 {
			t.Errorf("the new password does not work: %d", res.StatusCode)
		}
		changed := w.mailTo(t, "ana@example.org", 3)
		if !strings.Contains(changed.Subject, "contraseña") {
			t.Errorf("password-changed mail: %q", changed.Subject)
		}
	})
}

func TestResetCodesAndAnswersAreLimited(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		w.register(t, "ana@example.org")
		w.JSON(t, "POST", "/api/v1/password/forgot", map[string]any{"email": "ana@example.org"})
		code := codeIn(t, w.mailTo(t, "ana@example.org", 2))
		wrong := "123456"
		if wrong == code {
			wrong = "654321"
		}
		for i := range 5 {
			res, body := w.JSON(t, "POST", "/api/v1/password/verify", map[string]any{"email": "ana@example.org", "code": wrong, "password": goodPassword})
			if res.StatusCode != 400 || errCode(body) != "invalid_code" {
				t.Fatalf("wrong code %d: %d %s", i, res.StatusCode, res.Raw)
			}
		}
		// Five wrong guesses stop this code for good. (This used to answer 429 and pause
		// the address for an hour, new codes included, which let anyone block the
		// owner's reset; issue 13. A new request gives a code that works at once:
		// TestStrangersWrongCodesNeverBlockTheOwnersReset.)
		res, body := w.JSON(t, "POST", "/api/v1/password/verify", map[string]any{"email": "ana@example.org", "code": code, "password": goodPassword})
		if res.StatusCode != 400 || errCode(body) != "invalid_code" {
			t.Fatalf("the right code after 5 wrong ones: %d %s", res.StatusCode, res.Raw)
		}

		// A new request gives a new code, but three wrong answers void it.
		w2 := start(t, dbtest.Engines(t)[0].Setting, nil)
		w2.register(t, "bo@example.org")
		w2.JSON(t, "POST", "/api/v1/password/forgot", map[string]any{"email": "bo@example.org"})
		code = codeIn(t, w2.mailTo(t, "bo@example.org", 2))
		_, step := w2.JSON(t, "POST", "/api/v1/password/verify", map[string]any{"email": "bo@example.org", "code": code})
		token := step["reset_token"].(string)
		for range 3 {
			w2.JSON(t, "POST", "/api/v1/password/reset", map[string]any{"reset_token": token, "security_answer": "wrong", "new_password": "a brand new passphrase"})
		}
		res, body = w2.JSON(t, "POST", "/api/v1/password/reset", map[string]any{"reset_token": token, "security_answer": "Canela", "new_password": "a brand new passphrase"})
		if res.StatusCode != 400 || errCode(body) != "invalid_token" {
			t.Fatalf("right answer after 3 wrong ones: %d %s", res.StatusCode, res.Raw)
		}
	})
}

func TestEveryAPIErrorIsJSON(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting, nil)
	asJSON := []string{"Content-Type", "application/json"}
	// The runner checks that each error is JSON with its code and a message.
	scenarios{w: w, tokens: map[string]string{"a made-up token": "nope"}}.run(t, []scenario{
		{name: "unknown path", who: "anonymous", method: "GET", path: "/api/v1/nothing-here", status: 404, code: "not_found"},
		{name: "wrong method", who: "anonymous", method: "GET", path: "/api/v1/login", status: 405, code: "method_not_allowed"},
		{name: "bad JSON", who: "anonymous", method: "POST", path: "/api/v1/login", raw: "{not json", headers: asJSON, status: 400, code: "invalid_request"},
		{name: "oversized body", who: "anonymous", method: "POST", path: "/api/v1/login", raw: strings.Repeat("x", 2<<20), headers: asJSON, status: 413, code: "payload_too_large"},
		{name: "cross-site", who: "anonymous", method: "POST", path: "/api/v1/login", raw: "{}", headers: append([]string{"Sec-Fetch-Site", "cross-site"}, asJSON...),
			status: 403, code: "cross_origin_request"},
		{name: "no token", who: "anonymous", method: "GET", path: "/api/v1/me", status: 401, code: "unauthenticated"},
		{name: "bad token", who: "a made-up token", method: "GET", path: "/api/v1/me", status: 401, code: "unauthenticated"},
	})
	t.Run("messages follow Accept-Language", func(t *testing.T) {
		res := w.Do(t, "GET", "/api/v1/me", nil, "Accept-Language", "es")
		if raw := apptest.Body(t, res); !strings.Contains(raw, "Inicie sesión") {
			t.Fatalf("%s", raw)
		}
	})
}

// Parallel sign-ups for one new address all get the same answer (a double tap on a
// phone, or an attacker probing): none fails.
func TestParallelSignupsForOneAddress(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		statuses := map[int]int{}
		for range 5 { // the per-email limit is 5 an hour
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, _ := w.JSON(t, "POST", "/api/v1/signup", signupBody("twice@example.org"))
				mu.Lock()
				statuses[res.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if statuses[http.StatusAccepted] != 5 {
			t.Fatalf("5 parallel sign-ups: %v", statuses)
		}
	})
}

// A second sign-up for an address whose owner has not entered the code yet cannot
// change what the owner's code activates.
func TestSecondSignupCannotHijackAPendingAccount(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		w.JSON(t, "POST", "/api/v1/signup", signupBody("ana@example.org"))
		ownerCode := codeIn(t, w.mailTo(t, "ana@example.org", 1))
		attacker := signupBody("ana@example.org")
		attacker["password"] = "the attacker's own passphrase"
		attacker["full_name"] = "Mallory"
		w.JSON(t, "POST", "/api/v1/signup", attacker)
		w.mailTo(t, "ana@example.org", 2)

		res, body := w.JSON(t, "POST", "/api/v1/signup/verify", map[string]any{"email": "ana@example.org", "code": ownerCode, "password": goodPassword})
		if res.StatusCode != http.StatusCreated || body["account"].(map[string]any)["full_name"] != "Ana García" {
			t.Fatalf("the owner's code: %d %s", res.StatusCode, res.Raw)
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": "the attacker's own passphrase"}); res.StatusCode != 401 {
			t.Errorf("the second sign-up's password opens the account: %d", res.StatusCode)
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": goodPassword}); res.StatusCode != 200 {
			t.Errorf("the owner's password does not: %d", res.StatusCode)
		}
	})
}

// Issue 13, item 1: someone who knows an address but not its mailbox signs up for it
// after the owner, with their own password and security answer. The owner's mailbox
// now holds both codes; whichever the owner types, with the password the owner
// chose, the account that comes out is the owner's. The other sign-up's password
// never finishes a sign-up, even with the right code.
func TestSignupsBySomeoneElseNeverOwnTheAccount(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		w.JSON(t, "POST", "/api/v1/signup", signupBody("ana@example.org"))
		w.mailTo(t, "ana@example.org", 1)
		attacker := signupBody("ana@example.org")
		attacker["password"] = "the attacker's own passphrase"
		attacker["full_name"] = "Mallory"
		attacker["security_question_id"] = "childhood_street"
		attacker["security_answer"] = "Mallory Lane"
		w.JSON(t, "POST", "/api/v1/signup", attacker)
		newest := codeIn(t, w.mailTo(t, "ana@example.org", 2))

		// The code alone finishes nothing: it proves the mailbox, not whose sign-up.
		res, body := w.JSON(t, "POST", "/api/v1/signup/verify", map[string]any{"email": "ana@example.org", "code": newest, "password": "not any of them at all"})
		if res.StatusCode != http.StatusUnauthorized || errCode(body) != "invalid_credentials" {
			t.Errorf("the newest code with a password no sign-up chose: %d %s", res.StatusCode, res.Raw)
		}
		res, body = w.JSON(t, "POST", "/api/v1/signup/verify", map[string]any{"email": "ana@example.org", "code": newest, "password": goodPassword})
		if res.StatusCode != http.StatusCreated || body["account"].(map[string]any)["full_name"] != "Ana García" {
			t.Fatalf("the owner with the newest code: %d %s", res.StatusCode, res.Raw)
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": "the attacker's own passphrase"}); res.StatusCode != 401 {
			t.Errorf("the other sign-up's password opens the account: %d", res.StatusCode)
		}
		if res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": goodPassword}); res.StatusCode != 200 {
			t.Errorf("the owner's password does not: %d", res.StatusCode)
		}
		// A reset asks the owner's question, with the owner's answer.
		w.JSON(t, "POST", "/api/v1/password/forgot", map[string]any{"email": "ana@example.org"})
		res, body = w.JSON(t, "POST", "/api/v1/password/verify", map[string]any{"email": "ana@example.org", "code": codeIn(t, w.mailTo(t, "ana@example.org", 3))})
		if res.StatusCode != 200 || body["security_question_id"] != "first_pet" {
			t.Errorf("the reset asks another question: %d %s", res.StatusCode, res.Raw)
		}
	})
}

func TestOverlongEmailIsRefusedWithoutWork(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting, nil)
	res, body := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": strings.Repeat("a", 300000) + "@example.org", "password": "whatever it is here"})
	if res.StatusCode != 401 || errCode(body) != "invalid_credentials" {
		t.Fatalf("%d %s", res.StatusCode, res.Raw)
	}
}

// A JSON body holding bytes that are not UTF-8 is refused, not quietly repaired.
func TestJSONThatIsNotUTF8IsRefused(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting, nil)
	res := w.Do(t, "POST", "/api/v1/login", strings.NewReader("{\"email\": \"ana\xff@example.org\", \"password\": \"x\"}"), "Content-Type", "application/json")
	if body := apptest.Body(t, res); res.StatusCode != 400 || !strings.Contains(body, `"invalid_characters"`) {
		t.Errorf("a body that is not UTF-8: %d %s", res.StatusCode, body)
	}
}

// An app reads the account's settings from /me and changes any of them with PATCH
// /me: the mail when a VideoGram is watched is off until asked for; a change names
// only what changes; a refused field changes nothing. Every answer is checked
// against the OpenAPI document.
func TestAccountSettingsRoundTrip(t *testing.T) {
	eachEngine(t, nil, func(t *testing.T, w *world) {
		token := w.register(t, "ana@example.org")
		settings := func(res *apptest.Response, me map[string]any) (string, any) {
			t.Helper()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: %d %s", res.Request.Method, res.Request.URL.Path, res.StatusCode, res.Raw)
			}
			return fmt.Sprint(me["locale"]), me["email_when_videogram_watched"]
		}
		if locale, watched := settings(w.JSON(t, "GET", "/api/v1/me", nil, bearer(token)...)); locale != "es" || watched != false {
			t.Fatalf("a new account: %s, mail when watched %v", locale, watched)
		}
		if locale, watched := settings(w.JSON(t, "PATCH", "/api/v1/me", map[string]any{"email_when_videogram_watched": true}, bearer(token)...)); locale != "es" || watched != true {
			t.Errorf("turning the mail on answered %s, %v", locale, watched)
		}
		if locale, watched := settings(w.JSON(t, "GET", "/api/v1/me", nil, bearer(token)...)); locale != "es" || watched != true {
			t.Errorf("after turning the mail on: %s, %v", locale, watched)
		}
		res, body := w.JSON(t, "PATCH", "/api/v1/me", map[string]any{"locale": "fr", "email_when_videogram_watched": false}, bearer(token)...)
		if fields, _ := body["error"].(map[string]any)["fields"].(map[string]any); res.StatusCode != 400 || errCode(body) != "invalid_request" || fields["locale"] != "invalid" {
			t.Errorf("a language we do not speak: %d %s", res.StatusCode, res.Raw)
		}
		res, body = w.JSON(t, "PATCH", "/api/v1/me", map[string]any{"email_when_videogram_watched": "yes"}, bearer(token)...)
		if fields, _ := body["error"].(map[string]any)["fields"].(map[string]any); res.StatusCode != 400 || fields["email_when_videogram_watched"] != "wrong_type" {
			t.Errorf("a string for the box: %d %s", res.StatusCode, res.Raw)
		}
		if locale, watched := settings(w.JSON(t, "GET", "/api/v1/me", nil, bearer(token)...)); locale != "es" || watched != true {
			t.Errorf("refused changes changed the settings: %s, %v", locale, watched)
		}
		if locale, watched := settings(w.JSON(t, "PATCH", "/api/v1/me", map[string]any{"locale": "en"}, bearer(token)...)); locale != "en" || watched != true {
			t.Errorf("changing the language alone: %s, %v", locale, watched)
		}
		if locale, watched := settings(w.JSON(t, "PATCH", "/api/v1/me", map[string]any{"email_when_videogram_watched": false}, bearer(token)...)); locale != "en" || watched != false {
			t.Errorf("turning the mail off: %s, %v", locale, watched)
		}
		if res, body := w.JSON(t, "PATCH", "/api/v1/me", map[string]any{"email_when_videogram_watched": true}); res.StatusCode != 401 || errCode(body) != "unauthenticated" {
			t.Errorf("without a token: %d %s", res.StatusCode, res.Raw)
		}
	})
}
