package web

import (
	"encoding/csv"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/textsafe"
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
			// A release not confirmed is the number typed, or not typed, beside the
			// field that asks for it.
			if _, ok := errors.AsType[*facility.ErrMassRelease](err); ok {
				f.Errors["confirm_releases"] = "confirm_releases"
			}
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

// rosterTemplate is an empty roster file with one example row, to start an export
// from the offender-management system with the right columns.
func (s *Site) rosterTemplate(w http.ResponseWriter, r *http.Request) {
	if !s.rosterAllowed(r) {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	writeRosterCSV(w, "roster-template.csv", [][]string{facility.RosterHeader(), {"A123456", "García", "José", "FSP", "B-12", "active", ""}})
}

// rosterExport is the current roster of the facilities the staff member imports
// for, as a roster file: what the next import should match.
func (s *Site) rosterExport(w http.ResponseWriter, r *http.Request) {
	if !s.rosterAllowed(r) {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	u := currentStaff(r)
	lines, err := s.fac.ExportRoster(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access.AgencyID)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	records := [][]string{facility.RosterHeader()}
	for _, l := range lines {
		records = append(records, []string{l.Number, l.LastName, l.FirstName, l.FacilityCode, l.HousingUnit, l.Status, l.Restrictions})
	}
	writeRosterCSV(w, "roster-"+time.Now().UTC().Format("2006-01-02")+".csv", records)
}

// writeRosterCSV answers a CSV file to download. Every cell is made safe for
// spreadsheets: one that begins as a formula would (=, +, -, @, or a tab or carriage
// return) is written after an apostrophe, which spreadsheets show as text.
func writeRosterCSV(w http.ResponseWriter, filename string, records [][]string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	cw := csv.NewWriter(w)
	for _, rec := range records {
		safe := make([]string, len(rec))
		for i, cell := range rec {
			safe[i] = textsafe.SpreadsheetCell(cell)
		}
		cw.Write(safe)
	}
	cw.Flush()
}
