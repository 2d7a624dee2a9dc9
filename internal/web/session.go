package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/problem"
)

// Cookies hold nothing but opaque tokens (SECURITY.md 19). The __Host- prefix makes
// browsers refuse them unless Secure, host-only and for the whole site.
const (
	SessionCookie      = "__Host-kinlink_session"
	SecondFactorCookie = "__Host-kinlink_2fa"   // a checked password waiting for its code
	ResetCookie        = "__Host-kinlink_reset" // a verified reset's step token
)

func (s *Site) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func (s *Site) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func cookie(r *http.Request, name string) string {
	if c, err := r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

type accountKey struct{}

type signedIn struct {
	account identity.Account
	session identity.Session
}

// withAccount finds who is signed in, if anyone, for every page.
func (s *Site) withAccount(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token := cookie(r, SessionCookie); token != "" {
			acct, sess, err := s.id.Authenticate(r.Context(), token, identity.WebSession)
			switch {
			case err == nil:
				r = r.WithContext(context.WithValue(r.Context(), accountKey{}, signedIn{acct, sess}))
			case errors.Is(err, identity.ErrUnauthenticated):
				s.clearCookie(w, SessionCookie) // expired or revoked: forget it
			default:
				s.log.Error("web: authenticate", "err", err, "request_id", httpx.RequestID(r.Context()))
				s.Error(w, r, http.StatusInternalServerError)
				return
			}
		}
		next(w, r)
	})
}

func currentAccount(r *http.Request) *identity.Account {
	if si, ok := r.Context().Value(accountKey{}).(signedIn); ok {
		return &si.account
	}
	return nil
}

func currentSession(r *http.Request) identity.Session {
	si, _ := r.Context().Value(accountKey{}).(signedIn)
	return si.session
}

// requireLogin sends visitors who are not signed in to the login page, to come back.
func (s *Site) requireLogin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if currentAccount(r) == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next(w, r)
	}
}

func client(r *http.Request) identity.Client {
	return identity.Client{IP: httpx.ClientIP(r.Context()), UserAgent: r.UserAgent()}
}

// Form carries what the person typed and what is wrong with it, so that a page shown
// again with errors loses nothing.
type Form struct {
	Values  map[string]string
	Errors  map[string]string // field -> code
	Reasons []string          // why a password was refused
	Message string            // one message for the whole form, already translated
	// MinLength is the password minimum the form's messages quote; zero means the
	// families' minimum.
	MinLength int
}

func newForm(r *http.Request, fields ...string) *Form {
	f := &Form{Values: map[string]string{}, Errors: map[string]string{}}
	for _, name := range fields {
		f.Values[name] = r.PostFormValue(name)
	}
	return f
}

func (f *Form) errorText(cat *i18n.Catalog, lang, field string) string {
	code, ok := f.Errors[field]
	if !ok {
		return ""
	}
	if code == "weak_password" {
		text := ""
		for i, reason := range f.Reasons {
			if i > 0 {
				text += " "
			}
			if reason == identity.ReasonTooShort {
				min := identity.MinPasswordFamily
				if f.MinLength > 0 {
					min = f.MinLength
				}
				text += cat.T(lang, "password.reason."+reason, min)
			} else {
				text += cat.T(lang, "password.reason."+reason)
			}
		}
		return text
	}
	return cat.T(lang, "form.error."+code)
}

// HasErrors reports whether anything on the form needs fixing.
func (f *Form) HasErrors() bool { return len(f.Errors) > 0 || f.Message != "" }

// apply takes a refusal into the form: the fields at fault marked, and the refusal's
// message where it has one; Retry-After where waiting helps. It returns the status to answer, and
// false for an error that is not a refusal (a failure, answered with a 500).
func (s *Site) apply(w http.ResponseWriter, r *http.Request, f *Form, err error) (status int, ok bool) {
	p, ok := problem.As(err)
	if !ok {
		return 0, false
	}
	httpx.Refusing(w, p)
	f.Reasons = p.Reasons
	for field, code := range p.Fields {
		f.Errors[field] = code
	}
	// Fields explain themselves on the form; a refusal with words of its own, or
	// about no field, is said above it.
	if p.Message != "" || len(p.Fields) == 0 {
		f.Message = httpx.Say(s.cat, s.Lang(r), p)
	}
	return httpx.Status(p), true
}

// refuse answers an error of a form's use case. Something missing, or forbidden
// without words of its own, gets its page; another refusal shows the form again
// (again) with what was typed kept and the refusal on it; anything else is a
// failure, logged once and answered with a 500 page.
func (s *Site) refuse(w http.ResponseWriter, r *http.Request, f *Form, err error, again func(status int, f *Form)) {
	if p, ok := problem.As(err); ok && (p.Kind == problem.NotFound || p.Kind == problem.Forbidden && p.Message == "") {
		s.answer(w, r, err)
		return
	}
	status, ok := s.apply(w, r, f, err)
	if !ok {
		s.failed(w, r, err)
		return
	}
	again(status, f)
}

// answer answers an error where there is no form to show it on: a refusal gets the
// page of its status, anything else is a failure.
func (s *Site) answer(w http.ResponseWriter, r *http.Request, err error) {
	p, ok := problem.As(err)
	if !ok {
		s.failed(w, r, err)
		return
	}
	httpx.Refusing(w, p)
	status := httpx.Status(p)
	key, known := errorKeys[status]
	if known && p.Message == "" {
		s.Error(w, r, status)
		return
	}
	// A refusal with words of its own, or one the error pages do not word (a
	// conflict, a wait), says its own words.
	if !known {
		key = "badrequest"
	}
	s.errorPageSaying(w, r, status, key, httpx.Say(s.cat, s.Lang(r), p))
}

// failed answers an error that is not a refusal: logged once, a 500 page.
func (s *Site) failed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.log.Error("web: request failed", "path", r.URL.Path, "request_id", httpx.RequestID(r.Context()), "err", err)
	s.Error(w, r, http.StatusInternalServerError)
}

// fail renders a form's page again with its refusal (see refuse).
func (s *Site) fail(w http.ResponseWriter, r *http.Request, f *Form, err error, page, titleKey string, data func(*Form) any) {
	s.refuse(w, r, f, err, func(status int, f *Form) { s.render(w, r, status, page, titleKey, data(f)) })
}

// formatTime shows a time in UTC in the person's language.
func formatTime(lang string, t time.Time) string {
	t = t.UTC()
	if lang == "es" {
		return fmt.Sprintf("%d/%02d/%d %02d:%02d UTC", t.Day(), t.Month(), t.Year(), t.Hour(), t.Minute())
	}
	return t.Format("Jan 2, 2006 15:04 UTC")
}
