package web

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
)

// Agency administration in the portal: staff, facilities and policies (agency
// admins; investigators may look at staff), and the audit log (agency admins and
// investigators).

func (s *Site) actor(r *http.Request) facility.Actor {
	return facility.Actor{AccountID: currentStaff(r).Account.ID}
}

// StaffData is the staff page.
type StaffData struct {
	Staff      []facility.StaffMember
	Facilities []facility.Facility
	Names      map[string]string
	Roles      []string
	CanManage  bool
	Form       *Form
	Done       string
}

func (s *Site) renderStaff(w http.ResponseWriter, r *http.Request, status int, f *Form) {
	u := currentStaff(r)
	list, err := s.fac.Staff(r.Context(), s.actor(r), u.Access.AgencyID)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	facilities, ferr := s.fac.Facilities(r.Context(), u.Access.AgencyID)
	if err != nil || ferr != nil {
		s.log.Error("web: staff page", "err", errors.Join(err, ferr))
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	d := StaffData{Staff: list, Facilities: facilities, Names: map[string]string{}, Roles: facility.Roles, Form: f,
		CanManage: u.Access.Has(facility.AgencyAdmin, "")}
	for _, fac := range facilities {
		d.Names[fac.ID] = fac.Name
	}
	switch r.URL.Query().Get("done") {
	case "added":
		d.Done = "portal.staff.added"
	case "reset":
		d.Done = "portal.staff.reset_done"
	case "roles":
		d.Done = "portal.staff.roles_done"
	case "disabled":
		d.Done = "portal.staff.disabled_done"
	}
	s.renderPortal(w, r, status, "portal_staff", "portal.staff.title", d)
}

func (s *Site) staffPage(w http.ResponseWriter, r *http.Request) {
	s.renderStaff(w, r, http.StatusOK, emptyForm())
}

func (s *Site) addStaff(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	f := newForm(r, "email", "full_name", "role", "facility")
	_, _, err := s.fac.CreateStaff(r.Context(), s.actor(r), u.Access.AgencyID, facility.StaffInput{
		Email: f.Values["email"], FullName: f.Values["full_name"], Role: f.Values["role"], FacilityID: f.Values["facility"], Locale: s.Lang(r)})
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderStaff(w, r, status, f) })
		return
	}
	http.Redirect(w, r, "/facility/staff?done=added", http.StatusSeeOther)
}

func (s *Site) resetStaff(w http.ResponseWriter, r *http.Request) {
	err := s.fac.ResetStaff(r.Context(), s.actor(r), currentStaff(r).Access.AgencyID, r.PathValue("id"))
	s.staffChangeDone(w, r, err, "reset")
}

// changeRole adds or removes one role of a staff member.
func (s *Site) changeRole(w http.ResponseWriter, r *http.Request) {
	agency := currentStaff(r).Access.AgencyID
	role, facilityID := r.PostFormValue("role"), r.PostFormValue("facility")
	var err error
	if r.PostFormValue("action") == "remove" {
		err = s.fac.RevokeRole(r.Context(), s.actor(r), agency, r.PathValue("id"), role, facilityID)
	} else {
		err = s.fac.GrantRole(r.Context(), s.actor(r), agency, r.PathValue("id"), role, facilityID)
	}
	s.staffChangeDone(w, r, err, "roles")
}

func (s *Site) disableStaff(w http.ResponseWriter, r *http.Request) {
	err := s.fac.DisableStaff(r.Context(), s.actor(r), currentStaff(r).Access.AgencyID, r.PathValue("id"))
	s.staffChangeDone(w, r, err, "disabled")
}

func (s *Site) staffChangeDone(w http.ResponseWriter, r *http.Request, err error, done string) {
	if err == nil {
		http.Redirect(w, r, "/facility/staff?done="+done, http.StatusSeeOther)
		return
	}
	s.refuse(w, r, emptyForm(), err, func(status int, f *Form) {
		// The staff list has no fields to mark: a refusal of a change to one member
		// (the last administrator, oneself) is said above the list.
		if len(f.Errors) > 0 {
			f.Message, f.Errors = s.cat.T(s.Lang(r), "portal.staff.refused"), map[string]string{}
		}
		s.renderStaff(w, r, status, f)
	})
}

// AgencyData is the agency page: policies and facilities.
type AgencyData struct {
	Agency     facility.Agency
	Facilities []facility.Facility
	Policies   *Form
	Facility   *Form
	Done       string
}

func (s *Site) renderAgency(w http.ResponseWriter, r *http.Request, status int, policies, fac *Form) {
	u := currentStaff(r)
	if !u.Access.Has(facility.AgencyAdmin, "") {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	agency, err := s.fac.Agency(r.Context(), u.Access.AgencyID)
	facilities, ferr := s.fac.Facilities(r.Context(), u.Access.AgencyID)
	if err != nil || ferr != nil {
		s.log.Error("web: agency page", "err", errors.Join(err, ferr))
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	if len(policies.Values) == 0 {
		policies.Values = map[string]string{
			"stamp_price_cents": strconv.Itoa(agency.StampPriceCents), "message_max_chars": strconv.Itoa(agency.MessageMaxChars),
			"videogram_seconds": strconv.Itoa(agency.VideoGramSeconds), "message_retention_days": strconv.Itoa(agency.MessageRetentionDays),
			"recording_retention_days": strconv.Itoa(agency.RecordingRetentionDays),
			"approval_for_messages":    strconv.FormatBool(agency.ApprovalForMessages), "approval_for_visits": strconv.FormatBool(agency.ApprovalForVisits),
		}
	}
	d := AgencyData{Agency: agency, Facilities: facilities, Policies: policies, Facility: fac}
	if done := r.URL.Query().Get("done"); done == "policies" || done == "facility" {
		d.Done = "portal.agency.done." + done
	}
	s.renderPortal(w, r, status, "portal_agency", "portal.agency.title", d)
}

func (s *Site) agencyPage(w http.ResponseWriter, r *http.Request) {
	s.renderAgency(w, r, http.StatusOK, emptyForm(), emptyForm())
}

func (s *Site) savePolicies(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "stamp_price_cents", "message_max_chars", "videogram_seconds", "message_retention_days", "recording_retention_days")
	f.Values["approval_for_messages"] = strconv.FormatBool(r.PostFormValue("approval_for_messages") == "on")
	f.Values["approval_for_visits"] = strconv.FormatBool(r.PostFormValue("approval_for_visits") == "on")
	num := func(k string) int {
		n, err := strconv.Atoi(f.Values[k])
		if err != nil {
			f.Errors[k] = "range"
			return -1
		}
		return n
	}
	p := facility.Policies{StampPriceCents: num("stamp_price_cents"), MessageMaxChars: num("message_max_chars"), VideoGramSeconds: num("videogram_seconds"),
		MessageRetentionDays: num("message_retention_days"), RecordingRetentionDays: num("recording_retention_days"),
		ApprovalForMessages: f.Values["approval_for_messages"] == "true", ApprovalForVisits: f.Values["approval_for_visits"] == "true"}
	err := s.fac.UpdatePolicies(r.Context(), s.actor(r), currentStaff(r).Access.AgencyID, p)
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderAgency(w, r, status, f, emptyForm()) })
		return
	}
	http.Redirect(w, r, "/facility/agency?done=policies", http.StatusSeeOther)
}

func (s *Site) addFacility(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "code", "name", "type", "timezone", "address", "population")
	population, perr := strconv.Atoi(f.Values["population"])
	if perr != nil {
		population = -1
	}
	_, err := s.fac.CreateFacility(r.Context(), s.actor(r), currentStaff(r).Access.AgencyID, facility.FacilityInput{
		Code: f.Values["code"], Name: f.Values["name"], Kind: f.Values["type"], TimeZone: f.Values["timezone"],
		Address: f.Values["address"], Population: population})
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderAgency(w, r, status, emptyForm(), f) })
		return
	}
	http.Redirect(w, r, "/facility/agency?done=facility", http.StatusSeeOther)
}

// AuditData is the audit log search.
type AuditData struct {
	Form      *Form
	Rows      []audit.Row
	Names     map[string]string // actor ("staff:ID") -> the staff member's name
	Residents map[string]string // resident id -> the resident's name and number
}

func (s *Site) auditPage(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	f := emptyForm()
	for _, k := range []string{"actor", "resident", "action", "from", "to"} {
		f.Values[k] = r.URL.Query().Get(k)
	}
	q := facility.AuditQuery{Actor: f.Values["actor"], Resident: f.Values["resident"], Action: f.Values["action"]}
	for k, dst := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		if v := f.Values[k]; v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				f.Errors[k] = "invalid"
			}
			*dst = t
		}
	}
	show := func(status int, f *Form) {
		s.renderPortal(w, r, status, "portal_audit", "portal.audit.title", AuditData{Form: f})
	}
	if len(f.Errors) > 0 { // no rows for a search that is not the one asked for
		show(http.StatusBadRequest, f)
		return
	}
	found, err := s.fac.SearchAudit(r.Context(), u.Access, q)
	if err != nil {
		s.refuse(w, r, f, err, show)
		return
	}
	s.renderPortal(w, r, http.StatusOK, "portal_audit", "portal.audit.title", AuditData{Form: f, Rows: found.Rows, Names: found.Staff, Residents: found.Residents})
}
