package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/identity"
)

// The family's door: sign-up, login, logout and the forgotten-password journey. Each
// handler calls the identity service, the same methods as the mobile API.

// noReferrer keeps codes and tokens in this page's URL out of Referer headers.
func noReferrer(w http.ResponseWriter) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
}

// Question is a security question in the page's language.
type Question struct{ ID, Text string }

func (s *Site) questions(lang string) []Question {
	out := make([]Question, len(identity.SecurityQuestions()))
	for i, id := range identity.SecurityQuestions() {
		out[i] = Question{id, s.cat.T(lang, "question."+id)}
	}
	return out
}

// SignupData is the sign-up page.
type SignupData struct {
	Form      *Form
	Questions []Question
	Languages []LanguageLink
	MinLength int
}

func (s *Site) signupData(r *http.Request, f *Form) any {
	lang := s.Lang(r)
	if f.Values["locale"] == "" {
		f.Values["locale"] = lang
	}
	var langs []LanguageLink
	for _, code := range i18n.Supported() {
		langs = append(langs, LanguageLink{Code: code, Name: i18n.Names[code], Current: code == f.Values["locale"]})
	}
	return SignupData{Form: f, Questions: s.questions(lang), Languages: langs, MinLength: identity.MinPasswordFamily}
}

func (s *Site) signupPage(w http.ResponseWriter, r *http.Request) {
	if currentAccount(r) != nil {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "signup", "signup.title", s.signupData(r, emptyForm()))
}

func (s *Site) signupSubmit(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "full_name", "email", "security_question_id", "security_answer", "locale")
	err := s.id.Signup(r.Context(), identity.SignupRequest{
		Email: f.Values["email"], Password: r.PostFormValue("password"), FullName: f.Values["full_name"],
		SecurityQuestion: f.Values["security_question_id"], SecurityAnswer: f.Values["security_answer"], Locale: f.Values["locale"],
	}, client(r))
	if err != nil {
		s.fail(w, r, f, err, "signup", "signup.title", func(f *Form) any { return s.signupData(r, f) })
		return
	}
	http.Redirect(w, r, "/signup/verify?email="+url.QueryEscape(identity.NormalizeEmail(f.Values["email"])), http.StatusSeeOther)
}

// CodeData is a page that asks for an emailed code, or confirms an emailed link.
type CodeData struct {
	Form *Form
	Link string // the token of an emailed link being confirmed
	Sent bool   // we just sent a code
}

func (s *Site) signupVerifyPage(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	f := &Form{Values: map[string]string{"email": r.URL.Query().Get("email")}, Errors: map[string]string{}}
	// An emailed link shows a button rather than acting on GET: mail scanners open
	// links, and must not spend the code.
	s.render(w, r, http.StatusOK, "signup_verify", "verify.title", CodeData{Form: f, Link: r.URL.Query().Get("t"), Sent: r.URL.Query().Get("t") == ""})
}

func (s *Site) signupVerifySubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	f := newForm(r, "email", "code")
	link := r.PostFormValue("t")
	var sess identity.Session
	var err error
	if link != "" {
		_, sess, err = s.id.VerifySignupLink(r.Context(), link, r.PostFormValue("password"), identity.WebSession, cookie(r, SessionCookie), client(r))
	} else {
		_, sess, err = s.id.VerifySignup(r.Context(), f.Values["email"], f.Values["code"], r.PostFormValue("password"), identity.WebSession, cookie(r, SessionCookie), client(r))
	}
	if err != nil {
		s.fail(w, r, f, err, "signup_verify", "verify.title", func(f *Form) any { return CodeData{Form: f, Link: link} })
		return
	}
	s.keepDevice(w, r, sess.Device)
	s.startSession(w, sess)
	s.speakTheAccountsLanguage(w, sess)
	http.Redirect(w, r, "/account?welcome=1", http.StatusSeeOther)
}

// speakTheAccountsLanguage makes the account's language this device's at sign-in,
// on every device the family signs in on; the switch on every page changes it again.
func (s *Site) speakTheAccountsLanguage(w http.ResponseWriter, sess identity.Session) {
	if i18n.IsSupported(sess.Locale) {
		s.rememberLanguage(w, sess.Locale)
	}
}

func (s *Site) startSession(w http.ResponseWriter, sess identity.Session) {
	s.setCookie(w, SessionCookie, sess.Token, time.Until(sess.ExpiresAt))
}

// LoginData is the login page.
type LoginData struct {
	Form   *Form
	Next   string
	Notice string // a message key: after a reset, after logout
}

func (s *Site) loginPage(w http.ResponseWriter, r *http.Request) {
	next := LocalPath(r.URL.Query().Get("next"))
	if currentAccount(r) != nil {
		http.Redirect(w, r, defaultNext(next), http.StatusSeeOther)
		return
	}
	notice := ""
	if n := r.URL.Query().Get("notice"); slices.Contains([]string{"reset", "logout", "expired"}, n) {
		notice = "login.notice." + n
	}
	s.render(w, r, http.StatusOK, "login", "login.title", LoginData{Form: emptyForm(), Next: next, Notice: notice})
}

func (s *Site) loginSubmit(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "email")
	next := LocalPath(r.PostFormValue("next"))
	sess, err := s.id.Login(r.Context(), identity.LoginRequest{
		Email: f.Values["email"], Password: r.PostFormValue("password"), Kind: identity.WebSession,
		Replaces: cookie(r, SessionCookie), Devices: devices(r),
	}, client(r))
	if errors.Is(err, identity.ErrSecondFactorRequired) {
		s.setCookie(w, SecondFactorCookie, sess.Token, 5*time.Minute)
		http.Redirect(w, r, "/login/code?next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	if err != nil {
		s.fail(w, r, f, err, "login", "login.title", func(f *Form) any { return LoginData{Form: f, Next: next} })
		return
	}
	s.keepDevice(w, r, sess.Device)
	s.startSession(w, sess)
	s.speakTheAccountsLanguage(w, sess)
	http.Redirect(w, r, defaultNext(next), http.StatusSeeOther)
}

// defaultNext is where a sign-in goes when it was not asked to go elsewhere: the
// family's people, where their replies are.
func defaultNext(next string) string {
	if next == "/" {
		return "/people"
	}
	return next
}

func (s *Site) loginCodePage(w http.ResponseWriter, r *http.Request) {
	if cookie(r, SecondFactorCookie) == "" {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login_code", "login.code.title", LoginData{Form: emptyForm(), Next: LocalPath(r.URL.Query().Get("next"))})
}

func (s *Site) loginCodeSubmit(w http.ResponseWriter, r *http.Request) {
	f := newForm(r)
	next := LocalPath(r.PostFormValue("next"))
	sess, err := s.id.CompleteLogin(r.Context(), cookie(r, SecondFactorCookie), r.PostFormValue("code"), cookie(r, SessionCookie), devices(r), client(r))
	if errors.Is(err, identity.ErrInvalidToken) {
		s.clearCookie(w, SecondFactorCookie)
		http.Redirect(w, r, "/login?notice=expired", http.StatusSeeOther)
		return
	}
	if err != nil {
		s.fail(w, r, f, err, "login_code", "login.code.title", func(f *Form) any { return LoginData{Form: f, Next: next} })
		return
	}
	s.clearCookie(w, SecondFactorCookie)
	s.keepDevice(w, r, sess.Device)
	s.startSession(w, sess)
	s.speakTheAccountsLanguage(w, sess)
	http.Redirect(w, r, defaultNext(next), http.StatusSeeOther)
}

func (s *Site) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.id.Logout(r.Context(), cookie(r, SessionCookie), client(r)); err != nil {
		s.log.Error("web: logout", "err", err)
	}
	s.clearCookie(w, SessionCookie)
	http.Redirect(w, r, "/login?notice=logout", http.StatusSeeOther)
}

// The forgotten-password journey: email -> code -> question -> new password.

func (s *Site) forgotPage(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	f := emptyForm()
	switch {
	case r.URL.Query().Get("expired") == "1":
		f.Message = s.cat.T(s.Lang(r), "forgot.expired")
	case r.URL.Query().Get("locked") == "1":
		f.Message = s.cat.T(s.Lang(r), "forgot.locked")
	}
	s.render(w, r, http.StatusOK, "password_forgot", "forgot.title", CodeData{Form: f})
}

func (s *Site) forgotSubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	f := newForm(r, "email")
	if err := s.id.ForgotPassword(r.Context(), f.Values["email"], client(r)); err != nil {
		s.fail(w, r, f, err, "password_forgot", "forgot.title", func(f *Form) any { return CodeData{Form: f} })
		return
	}
	http.Redirect(w, r, "/password/verify?email="+url.QueryEscape(identity.NormalizeEmail(f.Values["email"])), http.StatusSeeOther)
}

func (s *Site) resetVerifyPage(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	f := &Form{Values: map[string]string{"email": r.URL.Query().Get("email")}, Errors: map[string]string{}}
	s.render(w, r, http.StatusOK, "password_verify", "forgot.verify.title", CodeData{Form: f, Link: r.URL.Query().Get("t"), Sent: r.URL.Query().Get("t") == ""})
}

func (s *Site) resetVerifySubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	f := newForm(r, "email", "code")
	link := r.PostFormValue("t")
	var step identity.ResetStep
	var err error
	if link != "" {
		step, err = s.id.VerifyResetLink(r.Context(), link, client(r))
	} else {
		step, err = s.id.VerifyReset(r.Context(), f.Values["email"], f.Values["code"], client(r))
	}
	if err != nil {
		s.fail(w, r, f, err, "password_verify", "forgot.verify.title", func(f *Form) any { return CodeData{Form: f, Link: link} })
		return
	}
	s.setCookie(w, ResetCookie, step.Token, 30*time.Minute)
	http.Redirect(w, r, "/password/question", http.StatusSeeOther)
}

// QuestionData is the security-question step, with the way out for those who do
// not remember the answer: a reset without it, or the one already waiting.
type QuestionData struct {
	Form      *Form
	Question  string
	Wait      *identity.ResetWait // the account's reset without the answer, if live
	WaitLeft  string              // how long until it can be finished, in words
	WaitHours int                 // how long a new one waits
}

func (s *Site) questionData(r *http.Request, state identity.ResetState, f *Form) QuestionData {
	lang := s.Lang(r)
	d := QuestionData{Form: f, Question: s.cat.T(lang, "question."+state.Question), Wait: state.Wait, WaitHours: s.waitHours()}
	if state.Wait != nil && !state.Wait.Ready {
		d.WaitLeft = s.cat.Duration(lang, time.Until(state.Wait.ReadyAt))
	}
	return d
}

// waitHours is how long a reset without the answer waits, as the pages say it.
func (s *Site) waitHours() int { return int(s.id.Config().ResetWait.Hours()) }

// resetStep returns the reset's state, or sends the person back to the start: the
// question and password steps cannot be reached without a verified code.
func (s *Site) resetStep(w http.ResponseWriter, r *http.Request) (identity.ResetState, bool) {
	state, err := s.id.ResetState(r.Context(), cookie(r, ResetCookie))
	if err != nil {
		s.clearCookie(w, ResetCookie)
		http.Redirect(w, r, "/password/forgot?expired=1", http.StatusSeeOther)
		return state, false
	}
	return state, true
}

func (s *Site) resetQuestionPage(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	state, ok := s.resetStep(w, r)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, "password_question", "forgot.question.title", s.questionData(r, state, emptyForm()))
}

func (s *Site) resetQuestionSubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	state, ok := s.resetStep(w, r)
	if !ok {
		return
	}
	f := newForm(r)
	err := s.id.AnswerQuestion(r.Context(), cookie(r, ResetCookie), r.PostFormValue("answer"), client(r))
	if errors.Is(err, identity.ErrInvalidToken) {
		s.clearCookie(w, ResetCookie)
		http.Redirect(w, r, "/password/forgot?expired=1", http.StatusSeeOther)
		return
	}
	// The last wrong answer stops the reset: the new start says why, and how to go on
	// without the answer.
	if errors.Is(err, identity.ErrInvalidAnswer) && !s.resetLive(r) {
		s.clearCookie(w, ResetCookie)
		http.Redirect(w, r, "/password/forgot?locked=1", http.StatusSeeOther)
		return
	}
	if err != nil {
		s.fail(w, r, f, err, "password_question", "forgot.question.title", func(f *Form) any { return s.questionData(r, state, f) })
		return
	}
	http.Redirect(w, r, "/password/new", http.StatusSeeOther)
}

// resetLive reports whether the reset in the cookie can still go on.
func (s *Site) resetLive(r *http.Request) bool {
	_, err := s.id.ResetState(r.Context(), cookie(r, ResetCookie))
	return err == nil
}

// NewPasswordData is the last step.
type NewPasswordData struct {
	Form      *Form
	MinLength int
}

func (s *Site) resetNewPage(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	state, ok := s.resetStep(w, r)
	if !ok {
		return
	}
	if !state.Answered {
		http.Redirect(w, r, "/password/question", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "password_new", "forgot.new.title", NewPasswordData{Form: emptyForm(), MinLength: identity.MinPasswordFamily})
}

func (s *Site) resetNewSubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	state, ok := s.resetStep(w, r)
	if !ok {
		return
	}
	if !state.Answered {
		http.Redirect(w, r, "/password/question", http.StatusSeeOther)
		return
	}
	f := newForm(r)
	if err := s.id.SetNewPassword(r.Context(), cookie(r, ResetCookie), r.PostFormValue("password"), client(r)); err != nil {
		s.fail(w, r, f, err, "password_new", "forgot.new.title", func(f *Form) any { return NewPasswordData{Form: f, MinLength: identity.MinPasswordFamily} })
		return
	}
	s.clearCookie(w, ResetCookie)
	s.clearCookie(w, SessionCookie)
	http.Redirect(w, r, "/login?notice=reset", http.StatusSeeOther)
}

// A reset without the security answer: asked for on the question step, stopped by
// the link of its first mail, finished after its wait with a new password and a new
// question (identity.ForgotAnswer).

func (s *Site) forgotAnswerSubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	state, ok := s.resetStep(w, r)
	if !ok {
		return
	}
	wait, started, err := s.id.ForgotAnswer(r.Context(), cookie(r, ResetCookie), client(r))
	if errors.Is(err, identity.ErrInvalidToken) {
		s.clearCookie(w, ResetCookie)
		http.Redirect(w, r, "/password/forgot?expired=1", http.StatusSeeOther)
		return
	}
	if err != nil {
		s.fail(w, r, emptyForm(), err, "password_question", "forgot.question.title", func(f *Form) any { return s.questionData(r, state, f) })
		return
	}
	if started {
		// The code is spent: the next step is a new proof of the mailbox, after the wait.
		s.clearCookie(w, ResetCookie)
		http.Redirect(w, r, "/password/waiting", http.StatusSeeOther)
		return
	}
	if wait.Ready {
		http.Redirect(w, r, "/password/renew", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/password/question", http.StatusSeeOther)
}

// WaitingData is the page after a reset without the answer was asked for.
type WaitingData struct{ WaitHours int }

func (s *Site) waitingPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "password_waiting", "forgot.waiting.title", WaitingData{WaitHours: s.waitHours()})
}

// RenewData is the last step of a reset without the answer: a new password and a
// new question.
type RenewData struct {
	Form      *Form
	Questions []Question
	MinLength int
}

func (s *Site) renewData(r *http.Request, f *Form) any {
	return RenewData{Form: f, Questions: s.questions(s.Lang(r)), MinLength: identity.MinPasswordFamily}
}

// renewStep is the verified reset of a wait that is over, or sends the person to
// the question step, which says how long is left.
func (s *Site) renewStep(w http.ResponseWriter, r *http.Request) bool {
	state, ok := s.resetStep(w, r)
	if !ok {
		return false
	}
	if state.Wait == nil || !state.Wait.Ready {
		http.Redirect(w, r, "/password/question", http.StatusSeeOther)
		return false
	}
	return true
}

func (s *Site) renewPage(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	if !s.renewStep(w, r) {
		return
	}
	s.render(w, r, http.StatusOK, "password_renew", "forgot.renew.title", s.renewData(r, emptyForm()))
}

func (s *Site) renewSubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	if _, ok := s.resetStep(w, r); !ok {
		return
	}
	f := newForm(r, "security_question_id", "security_answer")
	err := s.id.RenewPassword(r.Context(), cookie(r, ResetCookie), r.PostFormValue("password"),
		f.Values["security_question_id"], f.Values["security_answer"], client(r))
	if errors.Is(err, identity.ErrInvalidToken) {
		s.clearCookie(w, ResetCookie)
		http.Redirect(w, r, "/password/forgot?expired=1", http.StatusSeeOther)
		return
	}
	if err != nil {
		s.fail(w, r, f, err, "password_renew", "forgot.renew.title", func(f *Form) any { return s.renewData(r, f) })
		return
	}
	s.clearCookie(w, ResetCookie)
	s.clearCookie(w, SessionCookie)
	http.Redirect(w, r, "/login?notice=reset", http.StatusSeeOther)
}

// The link of the "ready" mail shows a button rather than acting on GET, like every
// emailed link: mail scanners open links.
func (s *Site) readyPage(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	f := emptyForm()
	link := r.URL.Query().Get("t")
	if link == "" {
		f.Message = s.cat.T(s.Lang(r), "forgot.ready.invalid")
	}
	s.render(w, r, http.StatusOK, "password_ready", "forgot.ready.title", CodeData{Form: f, Link: link})
}

func (s *Site) readySubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	step, err := s.id.VerifyWaitLink(r.Context(), r.PostFormValue("t"), client(r))
	if err != nil {
		s.fail(w, r, emptyForm(), err, "password_ready", "forgot.ready.title", func(f *Form) any { return CodeData{Form: f} })
		return
	}
	s.setCookie(w, ResetCookie, step.Token, 30*time.Minute)
	http.Redirect(w, r, "/password/renew", http.StatusSeeOther)
}

// StopData is the page of a stop link: its button, then what stopping found.
type StopData struct {
	Form *Form
	Link string
	Done identity.WaitStop
}

// The stop link shows one button: a GET that stopped the reset would let a mail
// scanner that opens links stop the owner's own reset.
func (s *Site) stopPage(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	f := emptyForm()
	link := r.URL.Query().Get("t")
	if link == "" {
		f.Message = s.cat.T(s.Lang(r), "forgot.stop.invalid")
	}
	s.render(w, r, http.StatusOK, "password_stop", "forgot.stop.title", StopData{Form: f, Link: link})
}

func (s *Site) stopSubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	done, err := s.id.StopWait(r.Context(), r.PostFormValue("t"), client(r))
	if err != nil {
		s.fail(w, r, emptyForm(), err, "password_stop", "forgot.stop.title", func(f *Form) any { return StopData{Form: f} })
		return
	}
	s.render(w, r, http.StatusOK, "password_stop", "forgot.stop.title", StopData{Form: emptyForm(), Done: done})
}
