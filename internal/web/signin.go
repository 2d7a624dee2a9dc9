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
	if r.URL.Query().Get("expired") == "1" {
		f.Message = s.cat.T(s.Lang(r), "forgot.expired")
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

// QuestionData is the security-question step.
type QuestionData struct {
	Form     *Form
	Question string
}

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
	s.render(w, r, http.StatusOK, "password_question", "forgot.question.title",
		QuestionData{Form: emptyForm(), Question: s.cat.T(s.Lang(r), "question."+state.Question)})
}

func (s *Site) resetQuestionSubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	state, ok := s.resetStep(w, r)
	if !ok {
		return
	}
	f := newForm(r)
	err := s.id.AnswerQuestion(r.Context(), cookie(r, ResetCookie), r.PostFormValue("answer"), client(r))
	if errors.Is(err, identity.ErrInvalidToken) || (errors.Is(err, identity.ErrInvalidAnswer) && !s.resetLive(r)) {
		s.clearCookie(w, ResetCookie)
		http.Redirect(w, r, "/password/forgot?expired=1", http.StatusSeeOther)
		return
	}
	if err != nil {
		q := s.cat.T(s.Lang(r), "question."+state.Question)
		s.fail(w, r, f, err, "password_question", "forgot.question.title", func(f *Form) any { return QuestionData{Form: f, Question: q} })
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
