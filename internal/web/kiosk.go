package web

import (
	"errors"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/messaging"
)

// The resident kiosk at /kiosk: only on an enrolled device; residents sign in with
// their agency ID and PIN; sessions end after the kiosk idle time (15 minutes unless
// set shorter) or at logout, and the pages are never cached, so nothing remains for
// the next person.

// Kiosk cookies: the device's long-lived credential, and the resident's session.
const (
	KioskCookie    = "__Host-kinlink_kiosk"
	ResidentCookie = "__Host-kinlink_resident"
)

// KioskData is every kiosk page.
type KioskData struct {
	Device   facility.KioskDevice
	Form     *Form
	Session  *facility.KioskSession
	Inbox    []messaging.Conversation
	Thread   *KioskThreadData
	Notice   string
	IdleSecs int
	// PausedSecs is how long the kiosk still refuses sign-ins after too many wrong
	// PINs; its sign-in page then says so instead of showing the form.
	PausedSecs int
	Photo      *KioskPhoto
	Video      *KioskVideo
	// Visits are the resident's coming video visits, shown at sign-in.
	Visits []KioskVisit
	// Room is a visit's room at its station.
	Room *RoomView
	// Money links the resident's trust money from the home page, where the
	// server takes deposits; Trust is that page.
	Money bool
	Trust *KioskTrust
}

func (s *Site) renderKiosk(w http.ResponseWriter, r *http.Request, status int, page string, d KioskData) {
	w.Header().Set("Cache-Control", "no-store")
	d.IdleSecs = int(s.fac.KioskIdle().Seconds())
	s.renderPage(w, r, status, page, "kiosk.title", d, pageKiosk)
}

// kioskPaused renders the sign-in page of a kiosk paused after too many wrong PINs:
// how long is left, in words, and that staff can end the pause.
func (s *Site) kioskPaused(w http.ResponseWriter, r *http.Request, d KioskData, busy *facility.ErrKioskBusy) {
	f := emptyForm()
	status, _ := s.apply(w, r, f, busy)
	d.Form, d.PausedSecs = f, int(math.Ceil(busy.RetryAfter.Seconds()))
	s.renderKiosk(w, r, status, "kiosk_login", d)
}

// notEnrolled answers a resident's form on a device that is not (or no longer) an
// enrolled kiosk: the enrolment page, saying why.
func (s *Site) notEnrolled(w http.ResponseWriter, r *http.Request) {
	s.clearCookie(w, KioskCookie)
	f := emptyForm()
	f.Message = s.cat.T(s.Lang(r), "kiosk.not_enrolled")
	s.renderKiosk(w, r, http.StatusForbidden, "kiosk_enrol", KioskData{Form: f})
}

// kioskDevice is the enrolled kiosk this browser is. ok is false for a browser that
// is not one (any more); err is any other failure, which the caller answers without
// forgetting the device's credential: it is shown once, at enrolment, and a kiosk
// that lost it must be enrolled anew.
func (s *Site) kioskDevice(r *http.Request) (device facility.KioskDevice, ok bool, err error) {
	k, err := s.fac.KioskByCredential(r.Context(), cookie(r, KioskCookie))
	switch {
	case err == nil:
		return k, true, nil
	case errors.Is(err, facility.ErrKioskUnknown):
		return k, false, nil
	}
	s.log.Error("web: kiosk device", "err", err)
	return k, false, err
}

func (s *Site) kioskHome(w http.ResponseWriter, r *http.Request) {
	device, ok, err := s.kioskDevice(r)
	if err != nil {
		s.Error(w, r, http.StatusServiceUnavailable)
		return
	}
	if !ok {
		s.clearCookie(w, KioskCookie)
		s.renderKiosk(w, r, http.StatusOK, "kiosk_enrol", KioskData{Form: emptyForm()})
		return
	}
	d := KioskData{Device: device, Form: emptyForm()}
	if n := r.URL.Query().Get("notice"); n == "logout" || n == "pin" {
		d.Notice = "kiosk.notice." + n
	}
	sess, err := s.fac.KioskResident(r.Context(), device, cookie(r, ResidentCookie))
	if err != nil {
		s.clearCookie(w, ResidentCookie)
		paused, err := s.fac.KioskPaused(r.Context(), device.ID)
		if err != nil {
			s.failed(w, r, err)
			return
		}
		if paused > 0 {
			s.kioskPaused(w, r, d, &facility.ErrKioskBusy{RetryAfter: paused})
			return
		}
		s.renderKiosk(w, r, http.StatusOK, "kiosk_login", d)
		return
	}
	d.Session = &sess
	if sess.MustChange || r.URL.Query().Get("change_pin") == "1" {
		s.renderKiosk(w, r, http.StatusOK, "kiosk_pin", d)
		return
	}
	if d.Inbox, err = s.messages.Inbox(r.Context(), sess.Resident.ID); err != nil {
		s.log.Error("web: kiosk contacts", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	if s.visits != nil {
		coming, err := s.visits.Coming(r.Context(), sess.Resident.ID)
		if err != nil {
			s.log.Error("web: kiosk visits", "err", err)
			s.Error(w, r, http.StatusInternalServerError)
			return
		}
		d.Visits = kioskVisits(coming, device.ID, time.Now())
	}
	d.Money = s.deposits != nil
	s.renderKiosk(w, r, http.StatusOK, "kiosk_home", d)
}

func (s *Site) kioskEnrol(w http.ResponseWriter, r *http.Request) {
	credential, err := s.fac.EnrolKiosk(r.Context(), r.PostFormValue("code"), httpx.ClientIP(r.Context()))
	if err != nil {
		s.refuse(w, r, emptyForm(), err, func(status int, f *Form) {
			s.renderKiosk(w, r, status, "kiosk_enrol", KioskData{Form: f})
		})
		return
	}
	s.setCookie(w, KioskCookie, credential, 5*365*24*time.Hour)
	http.Redirect(w, r, "/kiosk", http.StatusSeeOther)
}

func (s *Site) kioskLogin(w http.ResponseWriter, r *http.Request) {
	device, ok, err := s.kioskDevice(r)
	if err != nil {
		s.Error(w, r, http.StatusServiceUnavailable)
		return
	}
	if !ok {
		s.notEnrolled(w, r) // residents log in only on enrolled kiosks
		return
	}
	f := newForm(r, "resident_id")
	sess, err := s.fac.ResidentLogin(r.Context(), device, f.Values["resident_id"], r.PostFormValue("pin"), cookie(r, ResidentCookie))
	var busy *facility.ErrKioskBusy
	if errors.As(err, &busy) { // the kiosk is paused: its page says so, without the form
		s.kioskPaused(w, r, KioskData{Device: device}, busy)
		return
	}
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) {
			s.renderKiosk(w, r, status, "kiosk_login", KioskData{Device: device, Form: f})
		})
		return
	}
	// A browser session cookie: it is also dropped when the browser closes.
	http.SetCookie(w, &http.Cookie{Name: ResidentCookie, Value: sess.Token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/kiosk", http.StatusSeeOther)
}

func (s *Site) kioskPIN(w http.ResponseWriter, r *http.Request) {
	device, ok, err := s.kioskDevice(r)
	if err != nil {
		s.Error(w, r, http.StatusServiceUnavailable)
		return
	}
	if !ok {
		s.notEnrolled(w, r)
		return
	}
	sess, err := s.fac.KioskResident(r.Context(), device, cookie(r, ResidentCookie))
	if err != nil {
		http.Redirect(w, r, "/kiosk", http.StatusSeeOther)
		return
	}
	f := emptyForm()
	pin, again := r.PostFormValue("pin"), r.PostFormValue("pin_again")
	switch {
	case pin != again:
		f.Message = s.cat.T(s.Lang(r), "kiosk.pin.mismatch")
	default:
		err = s.fac.ChangePIN(r.Context(), device, sess, r.PostFormValue("current"), pin)
		if err == nil {
			http.Redirect(w, r, "/kiosk?notice=pin", http.StatusSeeOther)
			return
		}
		s.refuse(w, r, f, err, func(status int, f *Form) {
			if errors.Is(err, facility.ErrPINLocked) { // the lock ended the session: back to signing in
				s.renderKiosk(w, r, status, "kiosk_login", KioskData{Device: device, Form: f})
				return
			}
			s.renderKiosk(w, r, status, "kiosk_pin", KioskData{Device: device, Form: f, Session: &sess})
		})
		return
	}
	s.renderKiosk(w, r, http.StatusBadRequest, "kiosk_pin", KioskData{Device: device, Form: f, Session: &sess})
}

func (s *Site) kioskLogout(w http.ResponseWriter, r *http.Request) {
	if err := s.fac.KioskLogout(r.Context(), cookie(r, ResidentCookie)); err != nil {
		s.log.Error("web: kiosk logout", "err", err)
	}
	s.clearCookie(w, ResidentCookie)
	http.Redirect(w, r, "/kiosk?notice=logout", http.StatusSeeOther)
}

// kioskLanguage is the language switch of the kiosk's pages: it returns only to a
// kiosk page, so nothing a kiosk shows leads out of it.
func (s *Site) kioskLanguage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if next := LocalPath(q.Get("next")); next != "/kiosk" && !strings.HasPrefix(next, "/kiosk/") {
		q.Set("next", "/kiosk")
		r.URL.RawQuery = q.Encode()
	}
	s.switchLanguage(w, r)
}

// kioskAlive is the kiosk page telling the server that the resident is at the screen
// without loading a page (kinlink.js: the "I'm still here" button, and touches while
// reading or writing): it keeps the session alive, as a page load does. A session
// already ended stays ended (401), and the page then signs out.
func (s *Site) kioskAlive(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	device, ok, err := s.kioskDevice(r)
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if ok {
		if _, err = s.fac.KioskResident(r.Context(), device, cookie(r, ResidentCookie)); err == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	w.WriteHeader(http.StatusUnauthorized)
}
