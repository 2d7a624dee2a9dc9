package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/identity"
)

// Cookies hold nothing but opaque tokens (SECURITY.md 19). The __Host- prefix makes
// browsers refuse them unless Secure, host-only and for the whole site.
const (
	SessionCookie      = "__Host-kinlink_session"
	SecondFactorCookie = "__Host-kinlink_2fa"   // a checked password waiting for its code
	ResetCookie        = "__Host-kinlink_reset" // a verified reset's step token
	// DeviceCookie holds the device tokens of the accounts that signed in on this
	// browser (OWASP device cookies): logins from it are not counted against the
	// email, so nobody else's failures lock its owners out.
	DeviceCookie = "__Host-kinlink_device"
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

// devices returns the device tokens the browser holds.
func devices(r *http.Request) []string {
	v := cookie(r, DeviceCookie)
	if v == "" {
		return nil
	}
	return strings.SplitN(v, ".", identity.MaxDeviceTokens+1)
}

// keepDevice stores the device token of a complete login first in the browser's
// device cookie, beside those of the other accounts signed in on it (newest first,
// at most identity.MaxDeviceTokens).
func (s *Site) keepDevice(w http.ResponseWriter, r *http.Request, token string) {
	if token == "" {
		return
	}
	kept := []string{token}
	for _, t := range devices(r) {
		if t != token && t != "" && len(kept) < identity.MaxDeviceTokens {
			kept = append(kept, t)
		}
	}
	s.setCookie(w, DeviceCookie, strings.Join(kept, "."), identity.DeviceTTL)
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
				// What a signed-in person is shown is theirs: no page of it is kept by
				// a shared computer's browser or a proxy, unless the page says otherwise.
				w.Header().Set("Cache-Control", "no-store")
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

// formatTime shows a time in UTC in the person's language, as mail does.
func formatTime(lang string, t time.Time) string { return i18n.Time(lang, t) }
