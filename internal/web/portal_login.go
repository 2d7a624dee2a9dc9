package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/kinlink/kinlink/internal/identity"
)

// PortalLoginData is the portal's login page.
type PortalLoginData struct {
	Form   *Form
	Notice string
}

func (s *Site) portalLogin(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "email")
	sess, err := s.id.Login(r.Context(), identity.LoginRequest{Email: f.Values["email"], Password: r.PostFormValue("password"),
		Kind: identity.StaffSession, Replaces: cookie(r, StaffCookie), Devices: devices(r)}, client(r))
	if errors.Is(err, identity.ErrSecondFactorRequired) {
		s.setCookie(w, SecondFactorCookie, sess.Token, 5*time.Minute)
		http.Redirect(w, r, "/facility/code", http.StatusSeeOther)
		return
	}
	if err == nil {
		err = errors.New("web: staff login without a second factor") // never happens: staff always have one
	}
	status, ok := s.apply(w, r, f, err)
	if !ok {
		s.log.Error("web: portal login", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	s.renderPortal(w, r, status, "portal_login", "portal.login.title", PortalLoginData{Form: f})
}

func (s *Site) portalCodePage(w http.ResponseWriter, r *http.Request) {
	if cookie(r, SecondFactorCookie) == "" {
		http.Redirect(w, r, "/facility", http.StatusSeeOther)
		return
	}
	s.renderPortal(w, r, http.StatusOK, "portal_code", "login.code.title", LoginData{Form: emptyForm()})
}

func (s *Site) portalCodeSubmit(w http.ResponseWriter, r *http.Request) {
	f := newForm(r)
	sess, err := s.id.CompleteLogin(r.Context(), cookie(r, SecondFactorCookie), r.PostFormValue("code"), cookie(r, StaffCookie), devices(r), client(r))
	if errors.Is(err, identity.ErrInvalidToken) {
		s.clearCookie(w, SecondFactorCookie)
		http.Redirect(w, r, "/facility?notice=expired", http.StatusSeeOther)
		return
	}
	if err == nil && sess.Kind != identity.StaffSession {
		err = identity.ErrInvalidCredentials
	}
	if err != nil {
		status, ok := s.apply(w, r, f, err)
		if !ok {
			s.log.Error("web: portal code", "err", err)
			s.Error(w, r, http.StatusInternalServerError)
			return
		}
		s.renderPortal(w, r, status, "portal_code", "login.code.title", LoginData{Form: f})
		return
	}
	s.clearCookie(w, SecondFactorCookie)
	s.keepDevice(w, r, sess.Device)
	s.setCookie(w, StaffCookie, sess.Token, time.Until(sess.ExpiresAt))
	http.Redirect(w, r, "/facility", http.StatusSeeOther)
}

func (s *Site) portalLogout(w http.ResponseWriter, r *http.Request) {
	if err := s.id.Logout(r.Context(), cookie(r, StaffCookie), client(r)); err != nil {
		s.log.Error("web: portal logout", "err", err)
	}
	s.clearCookie(w, StaffCookie)
	http.Redirect(w, r, "/facility?notice=logout", http.StatusSeeOther)
}

// EnrolData is the staff enrolment page.
type EnrolData struct {
	Form          *Form
	Token         string
	Account       identity.Account
	Setup         identity.TwoFactorSetup
	MinLength     int
	RecoveryCodes []string
}

func (s *Site) enrolData(r *http.Request, token string, f *Form) (EnrolData, error) {
	acct, setup, err := s.id.EnrolmentSetup(r.Context(), token)
	return EnrolData{Form: f, Token: token, Account: acct, Setup: setup, MinLength: identity.MinPasswordMFA}, err
}

func (s *Site) enrolPage(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	token := r.URL.Query().Get("t")
	d, err := s.enrolData(r, token, emptyForm())
	if errors.Is(err, identity.ErrInvalidToken) {
		s.renderPortal(w, r, http.StatusNotFound, "portal_enrol", "portal.enrol.title", EnrolData{Form: &Form{Message: s.cat.T(s.Lang(r), "portal.enrol.invalid")}})
		return
	}
	if err != nil {
		s.log.Error("web: enrol page", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	s.renderPortal(w, r, http.StatusOK, "portal_enrol", "portal.enrol.title", d)
}

func (s *Site) enrolSubmit(w http.ResponseWriter, r *http.Request) {
	noReferrer(w)
	token := r.PostFormValue("t")
	f := newForm(r)
	f.MinLength = identity.MinPasswordMFA
	codes, err := s.id.CompleteEnrolment(r.Context(), token, r.PostFormValue("password"), r.PostFormValue("code"), client(r))
	if err == nil {
		s.renderPortal(w, r, http.StatusOK, "portal_enrol", "portal.enrol.title", EnrolData{Form: f, RecoveryCodes: codes})
		return
	}
	if errors.Is(err, identity.ErrInvalidToken) {
		s.renderPortal(w, r, http.StatusNotFound, "portal_enrol", "portal.enrol.title", EnrolData{Form: &Form{Message: s.cat.T(s.Lang(r), "portal.enrol.invalid")}})
		return
	}
	status, ok := s.apply(w, r, f, err)
	d, derr := s.enrolData(r, token, f)
	if !ok || derr != nil {
		s.log.Error("web: enrol", "err", errors.Join(err, derr))
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	s.renderPortal(w, r, status, "portal_enrol", "portal.enrol.title", d)
}
