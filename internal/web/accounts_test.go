package web_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/mail/mailtest"
)

const sessionCookie = "__Host-kinlink_session"

type world struct {
	*apptest.Instance
	smtp *mailtest.Server
}

func start(t *testing.T, setting string) *world {
	t.Helper()
	return startWith(t, setting, nil)
}

// startWith starts a world with more settings.
func startWith(t *testing.T, setting string, more map[string]string) *world {
	t.Helper()
	smtp := mailtest.Start(t)
	env := map[string]string{
		"KINLINK_SMTP_HOST": smtp.Host, "KINLINK_SMTP_PORT": smtp.PortString(), "KINLINK_SMTP_TLS": "none",
		"KINLINK_BASE_URL": "https://kinlink.example.org", "KINLINK_HASH_QUEUE": "200",
	}
	maps.Copy(env, more)
	in := apptest.Start(t, "serve", setting, env)
	return &world{Instance: in, smtp: smtp}
}

func eachEngine(t *testing.T, fn func(t *testing.T, w *world)) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) { fn(t, start(t, e.Setting)) })
	}
}

// browser is a second cookie jar against the same server: another device.
func (w *world) browser(t *testing.T) *world {
	return &world{Instance: apptest.Attach(t, w.Instance), smtp: w.smtp}
}

// post submits a form as a same-origin browser would.
func (w *world) post(t *testing.T, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	res := w.Do(t, "POST", path, strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin", "Origin", w.URL)
	return res, apptest.Body(t, res)
}

func (w *world) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	res := w.Get(t, path)
	return res, apptest.Body(t, res)
}

var sixDigits = regexp.MustCompile(`\b(\d{6})\b`)

func (w *world) lastMailTo(t *testing.T, to string, n int) mailtest.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var got []mailtest.Message
		for _, m := range w.smtp.Messages() {
			if m.To[0] == to {
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

func code(t *testing.T, m mailtest.Message) string {
	t.Helper()
	c := sixDigits.FindStringSubmatch(m.Text)
	if c == nil {
		t.Fatalf("no code in %q", m.Text)
	}
	return c[1]
}

const password = "a long family passphrase"

func signupForm(email string) url.Values {
	return url.Values{"full_name": {"Ana García"}, "email": {email}, "password": {password},
		"security_question_id": {"first_school"}, "security_answer": {"Escuela Martí"}, "locale": {"en"}}
}

// signUp creates an active account through the pages and leaves the browser signed in.
func (w *world) signUp(t *testing.T, email string) {
	t.Helper()
	res, body := w.post(t, "/signup", signupForm(email))
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-up: %d\n%s", res.StatusCode, body)
	}
	c := code(t, w.lastMailTo(t, email, 1))
	res, body = w.post(t, "/signup/verify", url.Values{"email": {email}, "code": {c}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account?welcome=1" {
		t.Fatalf("verify: %d %s\n%s", res.StatusCode, res.Header.Get("Location"), body)
	}
}

func setCookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestSignupPagesKeepWhatWasTypedAndSignIn(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		_, page := w.get(t, "/signup")
		for _, want := range []string{`name="full_name"`, `name="email"`, `name="password"`, `name="security_question_id"`, "What was the name of your first pet?", `class="toggle-password"`, "15 or more characters"} {
			if !strings.Contains(page, want) {
				t.Errorf("sign-up page lacks %q", want)
			}
		}

		bad := signupForm("ana@example.org")
		bad.Set("password", "password123")
		bad.Set("full_name", "Ana María García")
		res, body := w.post(t, "/signup", bad)
		if res.StatusCode != 400 || !strings.Contains(body, `value="Ana María García"`) || !strings.Contains(body, `value="ana@example.org"`) ||
			!strings.Contains(body, "Use at least 15 characters") || !strings.Contains(body, `value="Escuela Martí"`) {
			t.Fatalf("weak password: %d\n%s", res.StatusCode, body)
		}

		res, _ = w.post(t, "/signup", signupForm("ana@example.org"))
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/signup/verify?email=") {
			t.Fatalf("sign-up: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		res, body = w.get(t, res.Header.Get("Location"))
		if !strings.Contains(body, "Check your email") || res.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("verify page: %s / Referrer-Policy %q", body, res.Header.Get("Referrer-Policy"))
		}
		c := code(t, w.lastMailTo(t, "ana@example.org", 1))
		res, _ = w.post(t, "/signup/verify", url.Values{"email": {"ana@example.org"}, "code": {c}, "password": {password}})
		cookie := setCookie(res, sessionCookie)
		if cookie == nil || !cookie.Secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" || cookie.Domain != "" {
			t.Fatalf("session cookie: %+v", cookie)
		}
		if len(cookie.Value) < 40 || strings.Contains(cookie.Value, "ana") {
			t.Errorf("cookie value %q is not an opaque token", cookie.Value)
		}
		_, body = w.get(t, "/account?welcome=1")
		for _, want := range []string{"Welcome to Kinlink", "Ana García", "ana@example.org", "Account created", "This device"} {
			if !strings.Contains(body, want) {
				t.Errorf("account page lacks %q", want)
			}
		}
	})
}

func TestEmailedLinkNeedsAClickNotJustAVisit(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	w.post(t, "/signup", signupForm("ana@example.org"))
	m := w.lastMailTo(t, "ana@example.org", 1)
	link := regexp.MustCompile(`https://kinlink.example.org(/signup/verify\?t=[A-Za-z0-9_-]+)`).FindStringSubmatch(m.Text)
	if link == nil {
		t.Fatalf("no link in %s", m.Text)
	}
	scanner := w.browser(t)
	res, body := scanner.get(t, link[1]) // a mail scanner opening the link
	if res.StatusCode != 200 || !strings.Contains(body, "Confirm my email") || setCookie(res, sessionCookie) != nil {
		t.Fatalf("GET of the link: %d, cookie %v", res.StatusCode, setCookie(res, sessionCookie))
	}
	token := strings.TrimPrefix(link[1], "/signup/verify?t=")
	res, _ = w.post(t, "/signup/verify", url.Values{"t": {token}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther || setCookie(res, sessionCookie) == nil {
		t.Fatalf("confirming the link: %d", res.StatusCode)
	}
}

func TestLoginLogoutAndPlantedSessions(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		planted := w.Cookie(sessionCookie)

		visitor := w.browser(t)
		_, page := visitor.get(t, "/login")
		pw := strings.Index(page, `name="password"`)
		forgot := strings.Index(page, `href="/password/forgot"`)
		if pw < 0 || forgot < pw || !strings.Contains(page, `href="/signup"`) {
			t.Errorf("login page: Forgot password? must come right after the password field and Create account be there")
		}

		res, body := visitor.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {"not my password at all"}})
		if res.StatusCode != 401 || !strings.Contains(body, "The email or password is not right.") || !strings.Contains(body, `value="ana@example.org"`) {
			t.Fatalf("wrong password: %d\n%s", res.StatusCode, body)
		}
		_, unknown := visitor.post(t, "/login", url.Values{"email": {"zoe@example.org"}, "password": {"not my password at all"}})
		if strings.ReplaceAll(unknown, "zoe@example.org", "X") != strings.ReplaceAll(body, "ana@example.org", "X") {
			t.Errorf("unknown email and wrong password pages differ")
		}

		// The attacker plants their own session id in the victim's browser; the
		// victim logs in; the planted id is dead and the victim got a new one.
		victim := w.browser(t)
		victim.SetCookie(sessionCookie, planted)
		res, _ = victim.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}, "next": {"https://evil.example/"}})
		// A sign-in lands on the family's people (issue 13, item 16), never elsewhere.
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/people" {
			t.Fatalf("login: %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
		fresh := setCookie(res, sessionCookie)
		if fresh == nil || fresh.Value == planted {
			t.Fatalf("no new session id at login")
		}
		if res, _ := w.get(t, "/account"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("the planted session still works: %d", res.StatusCode)
		}

		res, _ = victim.post(t, "/logout", nil)
		if c := setCookie(res, sessionCookie); res.StatusCode != http.StatusSeeOther || c == nil || c.MaxAge >= 0 {
			t.Fatalf("logout: %d, cookie %+v", res.StatusCode, c)
		}
		replay := w.browser(t)
		replay.SetCookie(sessionCookie, fresh.Value)
		if res, _ := replay.get(t, "/account"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
			t.Errorf("a logged-out session still opens the account: %d", res.StatusCode)
		}
	})
}

func TestForgotPasswordPagesInOrderAndNoSkipping(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		other := w.browser(t)
		other.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})

		reset := w.browser(t)
		// No step can be reached without a verified code.
		for _, path := range []string{"/password/question", "/password/new"} {
			if res, _ := reset.get(t, path); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/password/forgot") {
				t.Errorf("GET %s without a code: %d %s", path, res.StatusCode, res.Header.Get("Location"))
			}
		}
		if res, _ := reset.post(t, "/password/new", url.Values{"password": {"attacker picks this one"}}); res.StatusCode != http.StatusSeeOther {
			t.Errorf("POST /password/new without a code: %d", res.StatusCode)
		}
		if res, page := reset.post(t, "/password/forgot", url.Values{"email": {"ana at example"}}); res.StatusCode != 400 ||
			!strings.Contains(page, "does not look right") || !strings.Contains(page, `value="ana at example"`) {
			t.Errorf("forgot password for a mistyped address: %d", res.StatusCode)
		}

		_, page := reset.get(t, "/password/forgot")
		if !strings.Contains(page, "nobody can show you or send you your old password") {
			t.Errorf("the page does not say passwords cannot be recovered")
		}
		res, _ := reset.post(t, "/password/forgot", url.Values{"email": {"ana@example.org"}})
		res2, _ := reset.post(t, "/password/forgot", url.Values{"email": {"nobody@example.org"}})
		if res.StatusCode != http.StatusSeeOther || res2.StatusCode != res.StatusCode ||
			strings.ReplaceAll(res.Header.Get("Location"), "ana", "x") != strings.ReplaceAll(res2.Header.Get("Location"), "nobody", "x") {
			t.Fatalf("known %d %s, unknown %d %s", res.StatusCode, res.Header.Get("Location"), res2.StatusCode, res2.Header.Get("Location"))
		}
		c := code(t, w.lastMailTo(t, "ana@example.org", 2))
		res, _ = reset.post(t, "/password/verify", url.Values{"email": {"ana@example.org"}, "code": {c}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/password/question" {
			t.Fatalf("verify: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		// The password step is still closed before the question is answered.
		if res, _ := reset.post(t, "/password/new", url.Values{"password": {"attacker picks this one"}}); res.Header.Get("Location") != "/password/question" {
			t.Errorf("POST /password/new before the answer: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		res, page = reset.get(t, "/password/question")
		if !strings.Contains(page, "What was the name of your first school?") || res.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("question page: %s", page)
		}
		res, page = reset.post(t, "/password/question", url.Values{"answer": {"wrong school"}})
		if res.StatusCode != 400 || !strings.Contains(page, "That answer is not right.") {
			t.Fatalf("wrong answer: %d", res.StatusCode)
		}
		res, _ = reset.post(t, "/password/question", url.Values{"answer": {"escuela  MARTÍ"}})
		if res.Header.Get("Location") != "/password/new" {
			t.Fatalf("right answer: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		res, page = reset.post(t, "/password/new", url.Values{"password": {"ana@example.org"}})
		if res.StatusCode != 400 || !strings.Contains(page, "Do not build your password on your name, your email") {
			t.Fatalf("new password made of the email: %d", res.StatusCode)
		}
		res, _ = reset.post(t, "/password/new", url.Values{"password": {"the new family passphrase"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?notice=reset" || setCookie(res, sessionCookie) == nil {
			t.Fatalf("new password: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if res, _ := other.get(t, "/account"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("another device stayed signed in after the reset: %d", res.StatusCode)
		}
		if res, _ := w.get(t, "/account"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("the first device stayed signed in after the reset: %d", res.StatusCode)
		}
		res, _ = reset.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {"the new family passphrase"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("login with the new password: %d", res.StatusCode)
		}
		_, page = reset.get(t, "/account")
		for _, want := range []string{"Password reset requested", "Password reset", "Logged in"} {
			if !strings.Contains(page, want) {
				t.Errorf("security events lack %q", want)
			}
		}
		if m := w.lastMailTo(t, "ana@example.org", 3); !strings.Contains(m.Subject, "password was changed") {
			t.Errorf("no password-changed mail: %q", m.Subject)
		}
	})
}

func TestAccountChangesNeedThePassword(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		phone := w.browser(t)
		phone.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})

		res, page := w.post(t, "/account/password", url.Values{"current_password": {"wrong current one"}, "new_password": {"another long passphrase"}})
		if res.StatusCode != 401 || !strings.Contains(page, "That password is not right.") {
			t.Fatalf("wrong current password: %d", res.StatusCode)
		}
		res, _ = w.post(t, "/account/password", url.Values{"current_password": {password}, "new_password": {"another long passphrase"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("change password: %d", res.StatusCode)
		}
		if res, _ := w.get(t, "/account"); res.StatusCode != 200 {
			t.Errorf("the device that changed the password was signed out: %d", res.StatusCode)
		}
		if res, _ := phone.get(t, "/account"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("the other device stayed signed in: %d", res.StatusCode)
		}

		if res, page := w.post(t, "/account/question", url.Values{"security_question_id": {"bogus"}, "security_answer": {"Panadería"}, "password": {"another long passphrase"}}); res.StatusCode != 400 ||
			!strings.Contains(page, `<p class="error" id="security_question_id-error">`) || !strings.Contains(page, `value="Panadería"`) {
			t.Errorf("a question that is not on the list: %d", res.StatusCode)
		}
		res, _ = w.post(t, "/account/question", url.Values{"security_question_id": {"first_job"}, "security_answer": {"Panadería"}, "password": {"another long passphrase"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("change question: %d", res.StatusCode)
		}
		_, page = w.get(t, "/account")
		if !strings.Contains(page, "What was your first job?") || !strings.Contains(page, "Security question changed") {
			t.Errorf("account page after the question change lacks it")
		}

		// Sessions of one account cannot be signed out by another.
		mallory := w.browser(t)
		mallory.signUp(t, "mallory@example.org")
		ids := regexp.MustCompile(`/account/sessions/([0-9a-f]+)/revoke`).FindAllStringSubmatch(page, -1)
		if len(ids) == 0 {
			t.Fatal("no sessions listed")
		}
		if res, _ := mallory.post(t, "/account/sessions/"+ids[0][1]+"/revoke", nil); res.StatusCode != 404 {
			t.Errorf("another account revoked Ana's session: %d", res.StatusCode)
		}
		if res, _ := w.get(t, "/account"); res.StatusCode != 200 {
			t.Errorf("Ana was signed out by another account")
		}
	})
}

func TestTwoStepVerification(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		_, page := w.get(t, "/account/two-factor")
		secret := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(page)
		if secret == nil || !strings.Contains(page, `src="data:image/png;base64,`) {
			t.Fatalf("no secret or QR code:\n%s", page)
		}
		now := time.Now()
		current, _ := totp.GenerateCode(secret[1], now)
		res, wrong := w.post(t, "/account/two-factor", url.Values{"code": {current}, "password": {"wrong password here"}})
		if res.StatusCode != 401 || !strings.Contains(wrong, "That password is not right.") {
			t.Fatalf("enabling with a wrong password: %d", res.StatusCode)
		}
		res, page = w.post(t, "/account/two-factor", url.Values{"code": {current}, "password": {password}})
		codes := regexp.MustCompile(`<code>([a-z2-7]{5}-[a-z2-7]{5})</code>`).FindAllStringSubmatch(page, -1)
		if res.StatusCode != 200 || len(codes) != 10 {
			t.Fatalf("enable: %d, %d recovery codes", res.StatusCode, len(codes))
		}

		// The code used to turn it on cannot log in again (replay).
		api, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": password})
		if api.StatusCode != 401 || !strings.Contains(api.Raw, `"second_factor_required"`) {
			t.Fatalf("API login without a code: %d %s", api.StatusCode, api.Raw)
		}
		api, _ = w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": password, "totp_code": current})
		if api.StatusCode != 401 {
			t.Fatalf("a used code logged in again: %d", api.StatusCode)
		}

		// The web login asks for the code after the password.
		b := w.browser(t)
		res, _ = b.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login/code") || setCookie(res, sessionCookie) != nil {
			t.Fatalf("password step: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if res, _ := b.get(t, "/account"); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the account opened before the code was entered")
		}
		res, _ = b.post(t, "/login/code", url.Values{"code": {"000000"}})
		if res.StatusCode != 401 {
			t.Fatalf("wrong code: %d", res.StatusCode)
		}
		next, _ := totp.GenerateCode(secret[1], now.Add(30*time.Second)) // one step of clock skew
		res, _ = b.post(t, "/login/code", url.Values{"code": {next}})
		if res.StatusCode != http.StatusSeeOther || setCookie(res, sessionCookie) == nil {
			t.Fatalf("right code: %d", res.StatusCode)
		}

		// The same code in parallel, from several places: at most one succeeds.
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": password, "totp_code": next})
				if res.StatusCode == 200 {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if ok != 0 {
			t.Errorf("a code already used logged in %d more times", ok)
		}

		// A recovery code works once.
		c := w.browser(t)
		c.post(t, "/login", url.Values{"email": {"ana@example.org"}, "password": {password}})
		res, _ = c.post(t, "/login/code", url.Values{"code": {strings.ToUpper(codes[0][1])}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("recovery code: %d", res.StatusCode)
		}
		if api, _ := w.JSON(t, "POST", "/api/v1/login", map[string]any{"email": "ana@example.org", "password": password, "totp_code": codes[0][1]}); api.StatusCode != 401 {
			t.Errorf("a recovery code worked twice: %d", api.StatusCode)
		}
		_, page = c.get(t, "/account")
		for _, want := range []string{"Two-step verification turned on", "Recovery code used", "Failed login"} {
			if !strings.Contains(page, want) {
				t.Errorf("security events lack %q", want)
			}
		}
		if m := w.lastMailTo(t, "ana@example.org", 2); !strings.Contains(m.Subject, "Two-step verification is on") {
			t.Errorf("no mail about two-step verification: %q", m.Subject)
		}
	})
}

// A session id planted before sign-up dies when the new account signs in.
func TestPlantedSessionDiesAtSignup(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	attacker := w.browser(t)
	attacker.signUp(t, "mallory@example.org")
	planted := attacker.Cookie(sessionCookie)

	victim := w.browser(t)
	victim.SetCookie(sessionCookie, planted)
	res, _ := victim.post(t, "/signup", signupForm("ana@example.org"))
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-up: %d", res.StatusCode)
	}
	res, _ = victim.post(t, "/signup/verify", url.Values{"email": {"ana@example.org"}, "code": {code(t, w.lastMailTo(t, "ana@example.org", 1))}, "password": {password}})
	if fresh := setCookie(res, sessionCookie); fresh == nil || fresh.Value == planted {
		t.Fatal("no new session id at sign-up")
	}
	if res, _ := attacker.get(t, "/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the planted session still works after the victim's sign-up: %d", res.StatusCode)
	}
}

// A family sets the language of their email, and whether they are mailed when a
// VideoGram they sent is watched (off unless they ask), on the account page; the
// device they set the language on shows the pages in it too. A bad value saves
// nothing and keeps the rest of the form as it was posted.
func TestFamilyChoosesTheLanguageOfTheirEmail(t *testing.T) {
	const box = `id="email_when_videogram_watched" name="email_when_videogram_watched"`
	const ticked = box + ` aria-describedby="email_when_videogram_watched-hint" checked`
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		_, page := w.get(t, "/account")
		if !strings.Contains(page, `<option value="en" lang="en" selected>English</option>`) {
			t.Fatalf("the account page does not show the language of email:\n%s", page)
		}
		if offersVideoGrams() != strings.Contains(page, box) {
			t.Fatalf("the box for the mail when a VideoGram is watched is shown %v where VideoGrams are offered %v:\n%s",
				strings.Contains(page, box), offersVideoGrams(), page)
		}
		if strings.Contains(page, ticked) {
			t.Errorf("the mail when a VideoGram is watched is on before the family asked for it")
		}
		res, page := w.post(t, "/account/settings", url.Values{"locale": {"fr"}, "email_when_videogram_watched": {"on"}})
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, `<p class="error" id="locale-error">This does not look right.`) ||
			!strings.Contains(page, `aria-describedby="locale-hint locale-error" aria-invalid="true"`) {
			t.Errorf("a language we do not speak: %d\n%s", res.StatusCode, page)
		}
		if offersVideoGrams() && !strings.Contains(page, ticked) {
			t.Errorf("the refused form lost the ticked box:\n%s", page)
		}
		if _, page := w.get(t, "/account"); strings.Contains(page, ticked) || !strings.Contains(page, `<option value="en" lang="en" selected>`) {
			t.Errorf("a refused form saved something:\n%s", page)
		}
		res, _ = w.post(t, "/account/settings", url.Values{"locale": {"es"}, "email_when_videogram_watched": {"on"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("save the settings: %d", res.StatusCode)
		}
		_, page = w.get(t, res.Header.Get("Location"))
		if !strings.Contains(page, `<html lang="es">`) || !strings.Contains(page, "Su idioma y sus ajustes de correo quedaron guardados.") ||
			!strings.Contains(page, `<option value="es" lang="es" selected>Español</option>`) {
			t.Errorf("after choosing Spanish:\n%s", page)
		}
		if offersVideoGrams() && !strings.Contains(page, ticked+`> Enviarme un correo cuando vean un VideoGram que envié`) {
			t.Errorf("the mail when a VideoGram is watched is not shown on:\n%s", page)
		}
		// Unticked, it is off again; the language stays.
		w.post(t, "/account/settings", url.Values{"locale": {"es"}})
		if _, page := w.get(t, "/account"); strings.Contains(page, ticked) || !strings.Contains(page, `<option value="es" lang="es" selected>`) {
			t.Errorf("unticking the box:\n%s", page)
		}
		// Email is in it from now on.
		w.topUp(t, "5")
		if receipt := w.lastMailTo(t, "ana@example.org", 2); !strings.HasPrefix(receipt.Subject, "Recibo") {
			t.Errorf("the receipt after choosing Spanish: %q", receipt.Subject)
		}
	})
}

// The account page names each signed-in device in words: a program by its own
// name, a device it cannot name by the generic word in the reader's language.
func TestAccountNamesDevices(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		login := func(userAgent string) {
			body, _ := json.Marshal(map[string]string{"email": "ana@example.org", "password": password})
			res := w.Do(t, "POST", "/api/v1/login", bytes.NewReader(body), "Content-Type", "application/json", "User-Agent", userAgent)
			if apptest.Body(t, res); res.StatusCode != 200 {
				t.Fatalf("API login as %s: %d", userAgent, res.StatusCode)
			}
		}
		login("curl/8.5.0")
		login("Mozilla/5.0 (compatible)")
		login("") // no User-Agent at all
		_, page := w.get(t, "/account")
		if strings.Count(page, "<strong>App</strong>") != 2 || strings.Contains(page, "<strong>—</strong>") {
			t.Errorf("an app without a User-Agent is not called an app")
		}
		for _, want := range []string{"<strong>curl</strong>", "<td>curl</td>", "<strong>App</strong>"} {
			if !strings.Contains(page, want) {
				t.Errorf("the account page lacks %s", want)
			}
		}
		if strings.Contains(page, "<strong>Browser</strong>") {
			t.Errorf("curl is called a browser")
		}
		// Signed in, the page is in the account's language (issue 13, item 17) until
		// the switch changes it.
		w.get(t, "/lang?to=es&next=/account")
		res := w.Do(t, "GET", "/account", nil, "Accept-Language", "en")
		if page := apptest.Body(t, res); !strings.Contains(page, "<strong>Aplicación</strong>") || !strings.Contains(page, "<td>Navegador</td>") {
			t.Errorf("the Spanish page does not name unknown devices in Spanish")
		}
	})
}

// A form holding control characters or bytes that are not UTF-8 (pasted from another
// program, or forged) is refused before any handler, with a page that says so and
// how to recover; the API answers the same with its own code.
func TestControlCharactersAreRefusedPlainly(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	form := signupForm("ana@example.org")
	form.Set("full_name", "Ana\x01García")
	if res, page := w.post(t, "/signup", form); res.StatusCode != 400 || !strings.Contains(page, "We could not read that form") || !strings.Contains(page, "retype the part you pasted") {
		t.Errorf("a sign-up with a control character: %d", res.StatusCode)
	}
	res, body := w.JSON(t, "GET", "/api/v1/agencies?q=%FF%FE", nil)
	if res.StatusCode != 400 || !strings.Contains(res.Raw, `"invalid_characters"`) {
		t.Errorf("an API query that is not UTF-8: %d %v", res.StatusCode, body)
	}
}

// A name that would show other text than it holds is refused on the field, with its
// reason, on every form a person types a name in: a right-to-left override (U+202E)
// makes "Ana \u202eaicraG" read "Ana García" backwards on every page that shows it.
func TestNamesWithDirectionOverridesAreRefused(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	for _, name := range []string{"Ana \u202eaicraG", "Ana\u200bGarcía", "\u2067Ana García\u2069"} {
		form := signupForm("ana@example.org")
		form.Set("full_name", name)
		res, page := w.post(t, "/signup", form)
		if res.StatusCode != 400 || !strings.Contains(page, "invisible character that changes how text is shown") {
			t.Errorf("a sign-up named %q: %d", name, res.StatusCode)
		}
	}
	if res, page := w.post(t, "/signup", signupForm("ana@example.org")); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the same sign-up without the override: %d\n%s", res.StatusCode, page)
	}

	setupAgency(t, w)
	secret := w.enrolStaff(t, "admin@example.org", "staff pass 42!", "--role", "agency_admin")
	admin := w.browser(t)
	admin.portalLogin(t, "admin@example.org", "staff pass 42!", secret)
	res, page := admin.post(t, "/facility/staff", url.Values{"full_name": {"Rita \u202eweiveR"}, "email": {"rita@example.org"}, "role": {"agency_admin"}})
	if res.StatusCode != 400 || !strings.Contains(page, "invisible character that changes how text is shown") || !strings.Contains(page, `value="rita@example.org"`) {
		t.Errorf("a staff member named with an override: %d", res.StatusCode)
	}
	if _, page := admin.get(t, "/facility/staff"); strings.Contains(page, "rita@example.org") {
		t.Errorf("the staff member was added")
	}
}

// A form another site sent in the user's name is refused with a page that says so,
// not the permission page.
func TestCrossSiteFormIsRefusedAsSuch(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	res := w.Do(t, "POST", "/login", strings.NewReader("email=a%40example.org&password=x"),
		"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	if page := apptest.Body(t, res); res.StatusCode != http.StatusForbidden || !strings.Contains(page, "came from another site") {
		t.Errorf("a cross-site form: %d", res.StatusCode)
	}
}
