package web

import (
	"net/http"
	"strings"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/identity"
)

// AccountData is the account page: who you are, what we email you and in which
// language, how you sign in, where you are signed in, and what happened to your
// account lately.
type AccountData struct {
	Welcome   bool
	Notice    string // message key of a change just made
	Settings  *Form  // the language of email, and which mails to send
	Password  *Form
	Question  *Form
	Questions []Question
	Current   string // the security question now, in words
	Sessions  []SessionRow
	Events    []identity.Event
	MinLength int
	Languages []LanguageChoice // for the language of email
	// VideoGrams: the server takes them, so the mail when one is watched is offered.
	VideoGrams bool
}

// accountForms are the account page's forms, each holding what was posted to it
// when the page is shown again with a refusal.
type accountForms struct {
	settings, password, question *Form
}

func emptyForms() accountForms {
	return accountForms{settings: emptyForm(), password: emptyForm(), question: emptyForm()}
}

// watchedBox is the settings form's checkbox for the mail when a VideoGram is watched.
const watchedBox = "email_when_videogram_watched"

// LanguageChoice is one language on the account page.
type LanguageChoice struct {
	Code, Name string
	Current    bool
}

// SessionRow is one signed-in browser or app on the account page.
type SessionRow struct {
	identity.Session
	Current bool
	Device  string
}

func emptyForm() *Form { return &Form{Values: map[string]string{}, Errors: map[string]string{}} }

func (s *Site) accountData(r *http.Request, forms accountForms) (AccountData, error) {
	acct := currentAccount(r)
	lang := s.Lang(r)
	sessions, err := s.id.Sessions(r.Context(), acct.ID)
	if err != nil {
		return AccountData{}, err
	}
	events, err := s.id.Events(r.Context(), acct.ID, 20)
	if err != nil {
		return AccountData{}, err
	}
	d := AccountData{
		Welcome: r.URL.Query().Get("welcome") == "1", Settings: forms.settings, Password: forms.password, Question: forms.question,
		Questions: s.questions(lang), Current: s.cat.T(lang, "question."+acct.SecurityQuestion),
		Events: events, MinLength: identity.MinPasswordFamily, VideoGrams: s.offers.Has(facility.VideoGrams),
	}
	settings := forms.settings.Values
	if settings["form"] == "" { // not posted: what the account has
		settings["locale"] = acct.Locale
		if acct.EmailWhenWatched {
			settings[watchedBox] = "on"
		}
	}
	for _, code := range i18n.Supported() {
		d.Languages = append(d.Languages, LanguageChoice{Code: code, Name: i18n.Names[code], Current: code == settings["locale"]})
	}
	if n := r.URL.Query().Get("done"); n != "" {
		d.Notice = map[string]string{"password": "account.done.password", "question": "account.done.question",
			"revoked": "account.done.revoked", "2fa-off": "account.done.2fa_off", "settings": "account.done.settings"}[n]
	}
	current := currentSession(r).ID
	for _, sess := range sessions {
		d.Sessions = append(d.Sessions, SessionRow{Session: sess, Current: sess.ID == current, Device: describeDevice(func(k string) string { return s.cat.T(lang, k) }, sess.UserAgent, sess.Kind == identity.APISession)})
	}
	if forms.question.Values["security_question_id"] == "" {
		forms.question.Values["security_question_id"] = acct.SecurityQuestion
	}
	return d, nil
}

func (s *Site) renderAccount(w http.ResponseWriter, r *http.Request, status int, forms accountForms) {
	d, err := s.accountData(r, forms)
	if err != nil {
		s.log.Error("web: account page", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "account", "account.title", d)
}

func (s *Site) accountPage(w http.ResponseWriter, r *http.Request) {
	s.renderAccount(w, r, http.StatusOK, emptyForms())
}

// accountFail shows the account page again with the errors of the form f, one of forms.
func (s *Site) accountFail(w http.ResponseWriter, r *http.Request, forms accountForms, f *Form, err error) {
	s.refuse(w, r, f, err, func(status int, _ *Form) { s.renderAccount(w, r, status, forms) })
}

func (s *Site) changePassword(w http.ResponseWriter, r *http.Request) {
	forms := emptyForms()
	forms.password = newForm(r)
	err := s.id.ChangePassword(r.Context(), currentAccount(r).ID, currentSession(r).ID, r.PostFormValue("current_password"), r.PostFormValue("new_password"), client(r))
	if err != nil {
		s.accountFail(w, r, forms, forms.password, err)
		return
	}
	http.Redirect(w, r, "/account?done=password", http.StatusSeeOther)
}

func (s *Site) changeQuestion(w http.ResponseWriter, r *http.Request) {
	forms := emptyForms()
	f := newForm(r, "security_question_id", "security_answer")
	forms.question = f
	err := s.id.ChangeSecurityQuestion(r.Context(), currentAccount(r).ID, r.PostFormValue("password"), f.Values["security_question_id"], f.Values["security_answer"], client(r))
	if err != nil {
		s.accountFail(w, r, forms, f, err)
		return
	}
	http.Redirect(w, r, "/account?done=question", http.StatusSeeOther)
}

// changeSettings saves the language of the family's email (which these pages take
// on this device too) and whether they are mailed when a VideoGram they sent is
// watched. A refusal shows the form again as it was posted, and saves nothing.
func (s *Site) changeSettings(w http.ResponseWriter, r *http.Request) {
	forms := emptyForms()
	f := newForm(r, "locale", watchedBox)
	f.Values["form"] = "settings"
	forms.settings = f
	locale := f.Values["locale"]
	change := identity.Settings{Locale: &locale}
	if s.offers.Has(facility.VideoGrams) { // else the page has no such box, and it stays as it is
		watched := f.Values[watchedBox] == "on"
		change.EmailWhenWatched = &watched
	}
	if _, err := s.id.ChangeSettings(r.Context(), currentAccount(r).ID, change); err != nil {
		s.accountFail(w, r, forms, f, err)
		return
	}
	s.rememberLanguage(w, f.Values["locale"])
	http.Redirect(w, r, "/account?done=settings#settings-title", http.StatusSeeOther)
}

func (s *Site) revokeSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.id.RevokeSession(r.Context(), currentAccount(r).ID, id, client(r)); err != nil {
		s.answer(w, r, err)
		return
	}
	if id == currentSession(r).ID {
		s.clearCookie(w, SessionCookie)
		http.Redirect(w, r, "/login?notice=logout", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/account?done=revoked", http.StatusSeeOther)
}

// TwoFactorData is the page that turns two-step verification on or off.
type TwoFactorData struct {
	Form          *Form
	Enabled       bool
	Setup         identity.TwoFactorSetup
	RecoveryCodes []string // shown once, right after turning it on
}

func (s *Site) twoFactorData(r *http.Request, f *Form) (TwoFactorData, error) {
	acct := currentAccount(r)
	d := TwoFactorData{Form: f, Enabled: acct.TwoFactor}
	if acct.TwoFactor {
		return d, nil
	}
	setup, ok, err := s.id.PendingTwoFactor(r.Context(), acct.ID)
	if err != nil {
		return d, err
	}
	if !ok {
		if setup, err = s.id.BeginTwoFactor(r.Context(), acct.ID); err != nil {
			return d, err
		}
	}
	d.Setup = setup
	return d, nil
}

func (s *Site) twoFactorPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.twoFactorData(r, emptyForm())
	if err != nil {
		s.log.Error("web: two-factor page", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "two_factor", "twofactor.title", d)
}

func (s *Site) twoFactorEnable(w http.ResponseWriter, r *http.Request) {
	f := newForm(r)
	w.Header().Set("Cache-Control", "no-store")
	codes, err := s.id.EnableTwoFactor(r.Context(), currentAccount(r).ID, r.PostFormValue("password"), r.PostFormValue("code"), client(r))
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) {
			d, err := s.twoFactorData(r, f)
			if err != nil {
				s.failed(w, r, err)
				return
			}
			s.render(w, r, status, "two_factor", "twofactor.title", d)
		})
		return
	}
	s.render(w, r, http.StatusOK, "two_factor", "twofactor.title", TwoFactorData{Form: f, Enabled: true, RecoveryCodes: codes})
}

func (s *Site) twoFactorDisable(w http.ResponseWriter, r *http.Request) {
	f := newForm(r)
	err := s.id.DisableTwoFactor(r.Context(), currentAccount(r).ID, r.PostFormValue("password"), client(r))
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) {
			s.render(w, r, status, "two_factor", "twofactor.title", TwoFactorData{Form: f, Enabled: true})
		})
		return
	}
	http.Redirect(w, r, "/account?done=2fa-off", http.StatusSeeOther)
}

// describeDevice turns a user agent into words a person recognises: the browser and
// system ("Firefox · Android"), the program for clients that are not browsers
// ("curl"), and otherwise the generic word in the reader's language (t translates).
func describeDevice(t func(key string) string, ua string, app bool) string {
	ua = strings.TrimSpace(ua)
	browser := ""
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}, {"Kinlink", "Kinlink app"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	if browser == "" && ua != "" && !strings.HasPrefix(ua, "Mozilla/") {
		// A program names itself first: "curl/8.5.0", "okhttp/4.12".
		browser, _, _ = strings.Cut(ua, "/")
		browser, _, _ = strings.Cut(browser, " ")
		if !printableName(browser) {
			browser = ""
		}
	}
	if browser == "" {
		browser = t("account.device.browser")
		if app {
			browser = t("account.device.app")
		}
	}
	system := ""
	for _, o := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"}, {"Mac OS", "Mac"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			system = o.name
			break
		}
	}
	if system != "" {
		return browser + " · " + system
	}
	return browser
}

// printableName reports whether a program's name from a user agent can be shown as
// it is: short, letters, digits and a few marks.
func printableName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.", r)) {
			return false
		}
	}
	return true
}
