package web

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
)

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
	f := newForm(r, "confirm_releases")
	confirm, _ := strconv.Atoi(strings.TrimSpace(f.Values["confirm_releases"]))
	up, err := s.fac.ApplyRoster(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access.AgencyID, r.PathValue("id"), confirm)
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) {
			d := RosterData{Form: f}
			if up.ID != "" && !up.Summary.Applied { // the dry run again, to read and confirm
				d.Upload = &up
			}
			s.renderRoster(w, r, status, d)
		})
		return
	}
	s.renderRoster(w, r, http.StatusOK, RosterData{Form: f, Upload: &up})
}
