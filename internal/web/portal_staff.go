package web

import (
	"errors"
	"net/http"

	"github.com/kinlink/kinlink/internal/facility"
)

// The agency's staff in the portal: agency admins add staff, give and take roles,
// reset and disable them; investigators may look.

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
	d := StaffData{Staff: list, Facilities: facilities, Names: map[string]string{}, Roles: facility.Roles(), Form: f,
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
