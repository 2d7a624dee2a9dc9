package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/identity"
)

// The staff portal ("facility login") at /facility: email, password and always a
// second factor; short sessions; every staff member sees only their agency.

// StaffCookie holds a staff portal session; it is not the family session cookie, so
// one browser cannot mix the two.
const StaffCookie = "__Host-kinlink_staff"

type staffKey struct{}

// StaffUser is who is signed in to the portal and what they may reach.
type StaffUser struct {
	Account identity.Account
	Session identity.Session
	Access  facility.Access
}

// staffAbsentKey holds, for a request that carried a staff session but has no staff
// member, why: "idle" (the session ended) or "noroles" (it is valid, but the account
// holds no role any more).
type staffAbsentKey struct{}

// withStaff finds the signed-in staff member, if any.
func (s *Site) withStaff(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if token := cookie(r, StaffCookie); token != "" {
			acct, sess, err := s.id.Authenticate(r.Context(), token, identity.StaffSession)
			switch {
			case err == nil:
				access, aerr := s.fac.AccessOf(r.Context(), acct.ID)
				if aerr == nil {
					r = r.WithContext(context.WithValue(r.Context(), staffKey{}, &StaffUser{acct, sess, access}))
				} else if errors.Is(aerr, facility.ErrForbidden) {
					r = r.WithContext(context.WithValue(r.Context(), staffAbsentKey{}, "noroles"))
				} else {
					s.log.Error("web: staff access", "err", aerr, "request_id", httpx.RequestID(r.Context()))
					s.Error(w, r, http.StatusInternalServerError)
					return
				}
			case errors.Is(err, identity.ErrUnauthenticated):
				s.clearCookie(w, StaffCookie)
				r = r.WithContext(context.WithValue(r.Context(), staffAbsentKey{}, "idle"))
			default:
				s.log.Error("web: staff authenticate", "err", err)
				s.Error(w, r, http.StatusInternalServerError)
				return
			}
		}
		next(w, r)
	}
}

func currentStaff(r *http.Request) *StaffUser {
	u, _ := r.Context().Value(staffKey{}).(*StaffUser)
	return u
}

// PortalLoginData is the portal's login page.
type PortalLoginData struct {
	Form   *Form
	Notice string
}

// PortalHomeData is the portal's first page.
type PortalHomeData struct {
	Staff      *StaffUser
	Agency     facility.Agency
	Facilities []facility.Facility
	Roles      []RoleRow
}

// RoleRow is a role in words, with its facility.
type RoleRow struct{ Role, Facility string }

func (s *Site) portalHome(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	if u == nil {
		notice := ""
		if n := r.URL.Query().Get("notice"); n == "logout" || n == "expired" || n == "idle" || n == "noroles" {
			notice = "login.notice." + n
		}
		s.renderPortal(w, r, http.StatusOK, "portal_login", "portal.login.title", PortalLoginData{Form: emptyForm(), Notice: notice})
		return
	}
	agency, err := s.fac.Agency(r.Context(), u.Access.AgencyID)
	if err != nil {
		s.log.Error("web: portal home", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	all, err := s.fac.Facilities(r.Context(), agency.ID)
	if err != nil {
		s.log.Error("web: portal home", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	d := PortalHomeData{Staff: u, Agency: agency}
	names := map[string]string{}
	for _, f := range all {
		names[f.ID] = f.Name
		if u.Access.Sees(f.ID) {
			d.Facilities = append(d.Facilities, f)
		}
	}
	lang := s.Lang(r)
	for _, g := range u.Access.Grants {
		row := RoleRow{Role: s.cat.T(lang, "role."+g.Role), Facility: names[g.FacilityID]}
		if g.FacilityID == "" {
			row.Facility = s.cat.T(lang, "portal.all_facilities")
		}
		d.Roles = append(d.Roles, row)
	}
	s.renderPortal(w, r, http.StatusOK, "portal_home", "portal.title", d)
}

// renderPortal renders a portal page: the layout shows the portal's header.
func (s *Site) renderPortal(w http.ResponseWriter, r *http.Request, status int, page, titleKey string, data any) {
	w.Header().Set("Cache-Control", "no-store")
	s.renderPage(w, r, status, page, titleKey, data, pagePortal)
}

func (s *Site) portalLogin(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "email")
	sess, err := s.id.Login(r.Context(), identity.LoginRequest{Email: f.Values["email"], Password: r.PostFormValue("password"),
		Kind: identity.StaffSession, Replaces: cookie(r, StaffCookie)}, client(r))
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
	sess, err := s.id.CompleteLogin(r.Context(), cookie(r, SecondFactorCookie), r.PostFormValue("code"), cookie(r, StaffCookie), client(r))
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

// requireStaff sends visitors who are not signed in to the portal's login.
func (s *Site) requireStaff(next http.HandlerFunc) http.HandlerFunc {
	return s.withStaff(func(w http.ResponseWriter, r *http.Request) {
		if currentStaff(r) == nil {
			to := "/facility"
			if why, _ := r.Context().Value(staffAbsentKey{}).(string); why != "" {
				to += "?notice=" + why // say why the portal asks to log in
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		next(w, r)
	})
}

// ContactsQueueData is the list of contact requests waiting for a decision.
type ContactsQueueData struct {
	Pending []contacts.PendingRequest
	Form    *Form
	Done    string
}

func (s *Site) contactQueue(w http.ResponseWriter, r *http.Request) {
	s.renderContactQueue(w, r, http.StatusOK, emptyForm())
}

func (s *Site) renderContactQueue(w http.ResponseWriter, r *http.Request, status int, f *Form) {
	u := currentStaff(r)
	if !u.Access.Has(facility.FacilityAdmin, "") {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	list, err := s.contacts.Pending(r.Context(), u.Access)
	if err != nil {
		s.log.Error("web: contact queue", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	d := ContactsQueueData{Pending: list, Form: f}
	if done := r.URL.Query().Get("done"); done == "approved" || done == "denied" {
		d.Done = "portal.contacts.done." + done
	}
	s.renderPortal(w, r, status, "portal_contacts", "portal.contacts.title", d)
}

func (s *Site) decideContact(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	decision := r.PostFormValue("decision")
	if decision != "approve" && decision != "deny" {
		f := emptyForm()
		f.Message = s.cat.T(s.Lang(r), "portal.contacts.choose")
		s.renderContactQueue(w, r, http.StatusBadRequest, f)
		return
	}
	approve := decision == "approve"
	err := s.contacts.Decide(r.Context(), u.Access, r.PathValue("id"), approve, r.PostFormValue("reason"))
	switch {
	case err != nil:
		s.refuse(w, r, emptyForm(), err, func(status int, f *Form) { s.renderContactQueue(w, r, status, f) })
	case approve:
		http.Redirect(w, r, "/facility/contacts?done=approved", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/facility/contacts?done=denied", http.StatusSeeOther)
	}
}

// KiosksData is the portal's list of kiosks with the enrolment form.
type KiosksData struct {
	Kiosks     []facility.Kiosk
	Facilities []facility.Facility
	Names      map[string]string // facility names by id
	Form       *Form
	NewCode    string // the one-time code just made, shown once
	NewName    string
}

func (s *Site) kiosksData(r *http.Request, f *Form) (KiosksData, error) {
	u := currentStaff(r)
	all, err := s.fac.Facilities(r.Context(), u.Access.AgencyID)
	if err != nil {
		return KiosksData{}, err
	}
	d := KiosksData{Form: f, Names: map[string]string{}}
	for _, fac := range all {
		d.Names[fac.ID] = fac.Name
		if u.Access.Has(facility.FacilityAdmin, fac.ID) {
			d.Facilities = append(d.Facilities, fac)
		}
	}
	d.Kiosks, err = s.fac.Kiosks(r.Context(), u.Access)
	return d, err
}

func (s *Site) kiosksPage(w http.ResponseWriter, r *http.Request) {
	if !currentStaff(r).Access.Has(facility.FacilityAdmin, "") {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	d, err := s.kiosksData(r, emptyForm())
	if err != nil {
		s.log.Error("web: kiosks", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	s.renderPortal(w, r, http.StatusOK, "portal_kiosks", "portal.kiosks.title", d)
}

func (s *Site) createKiosk(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	f := newForm(r, "name", "facility")
	k, code, err := s.fac.CreateKiosk(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access.AgencyID, f.Values["facility"], f.Values["name"])
	show := func(status int, f *Form) {
		d, err := s.kiosksData(r, f)
		if err != nil {
			s.failed(w, r, err)
			return
		}
		if status == http.StatusOK {
			d.NewCode, d.NewName, d.Form = code, k.Name, emptyForm()
		}
		s.renderPortal(w, r, status, "portal_kiosks", "portal.kiosks.title", d)
	}
	if err != nil {
		s.refuse(w, r, f, err, show)
		return
	}
	show(http.StatusOK, f)
}

func (s *Site) revokeKiosk(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	err := s.fac.RevokeKiosk(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	http.Redirect(w, r, "/facility/kiosks", http.StatusSeeOther)
}

// ResidentsData is the portal's resident search with PIN actions.
type ResidentsData struct {
	Query     string
	Residents []facility.StaffResident
	CanSetPIN map[string]bool // by resident id: the viewer administers their facility
	Form      *Form
	Done      string
}

func (s *Site) residentsPage(w http.ResponseWriter, r *http.Request) {
	s.renderResidents(w, r, http.StatusOK, emptyForm())
}

func (s *Site) renderResidents(w http.ResponseWriter, r *http.Request, status int, f *Form) {
	u := currentStaff(r)
	q := r.URL.Query().Get("q")
	if q == "" {
		q = r.PostFormValue("q")
	}
	list, err := s.fac.StaffSearch(r.Context(), u.Access, q)
	if err != nil {
		s.log.Error("web: residents", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	d := ResidentsData{Query: q, Residents: list, Form: f, CanSetPIN: map[string]bool{}}
	for _, res := range list {
		d.CanSetPIN[res.ID] = u.Access.Has(facility.FacilityAdmin, res.Facility.ID)
	}
	if r.URL.Query().Get("done") == "pin" {
		d.Done = "portal.residents.pin_done"
	}
	s.renderPortal(w, r, status, "portal_residents", "portal.residents.title", d)
}

func (s *Site) setPIN(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	err := s.fac.SetFirstPIN(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access, r.PathValue("id"), r.PostFormValue("pin"))
	if err != nil {
		s.refuse(w, r, emptyForm(), err, func(status int, f *Form) { s.renderResidents(w, r, status, f) })
		return
	}
	http.Redirect(w, r, "/facility/residents?done=pin&q="+url.QueryEscape(r.PostFormValue("q")), http.StatusSeeOther)
}

// RosterData is the roster page: the upload form, a dry run or its result, and the
// tokens for automated syncs.
type RosterData struct {
	Form      *Form
	Upload    *facility.RosterUpload
	Tokens    []identity.Session
	NewToken  string
	TokenForm *Form
	BaseURL   string
}

// renderRoster fills in the staff member's tokens and renders the roster page.
func (s *Site) renderRoster(w http.ResponseWriter, r *http.Request, status int, d RosterData) {
	tokens, err := s.id.StaffTokens(r.Context(), currentStaff(r).Account.ID)
	if err != nil {
		s.log.Error("web: staff tokens", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	d.Tokens, d.BaseURL = tokens, s.id.Config().BaseURL
	if d.Form == nil {
		d.Form = emptyForm()
	}
	if d.TokenForm == nil {
		d.TokenForm = emptyForm()
	}
	s.renderPortal(w, r, status, "portal_roster", "portal.roster.title", d)
}

func (s *Site) createRosterToken(w http.ResponseWriter, r *http.Request) {
	if !s.rosterAllowed(r) {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	f := newForm(r, "label")
	sess, err := s.id.CreateStaffToken(r.Context(), currentStaff(r).Account.ID, r.PostFormValue("password"), f.Values["label"], client(r))
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderRoster(w, r, status, RosterData{TokenForm: f}) })
		return
	}
	s.renderRoster(w, r, http.StatusOK, RosterData{NewToken: sess.Token})
}

func (s *Site) revokeRosterToken(w http.ResponseWriter, r *http.Request) {
	if err := s.id.RevokeSession(r.Context(), currentStaff(r).Account.ID, r.PathValue("id"), client(r)); err != nil {
		s.answer(w, r, err)
		return
	}
	http.Redirect(w, r, "/facility/roster", http.StatusSeeOther)
}

func (s *Site) rosterAllowed(r *http.Request) bool {
	a := currentStaff(r).Access
	return a.Has(facility.FacilityAdmin, "")
}

func (s *Site) rosterPage(w http.ResponseWriter, r *http.Request) {
	if !s.rosterAllowed(r) {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	s.renderRoster(w, r, http.StatusOK, RosterData{})
}

func (s *Site) rosterUpload(w http.ResponseWriter, r *http.Request) {
	if !s.rosterAllowed(r) {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	u := currentStaff(r)
	f := emptyForm()
	file, header, err := r.FormFile("roster")
	if err != nil {
		f.Message = s.cat.T(s.Lang(r), "portal.roster.choose")
		s.renderRoster(w, r, http.StatusBadRequest, RosterData{Form: f})
		return
	}
	defer file.Close()
	content, err := io.ReadAll(file)
	if err != nil {
		s.Error(w, r, http.StatusRequestEntityTooLarge)
		return
	}
	up, err := s.fac.UploadRoster(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access.AgencyID, header.Filename, content)
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderRoster(w, r, status, RosterData{Form: f}) })
		return
	}
	s.renderRoster(w, r, http.StatusOK, RosterData{Form: f, Upload: &up})
}

func (s *Site) rosterApply(w http.ResponseWriter, r *http.Request) {
	if !s.rosterAllowed(r) {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	u := currentStaff(r)
	up, err := s.fac.ApplyRoster(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access.AgencyID, r.PathValue("id"))
	f := emptyForm()
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderRoster(w, r, status, RosterData{Form: f}) })
		return
	}
	s.renderRoster(w, r, http.StatusOK, RosterData{Form: f, Upload: &up})
}
