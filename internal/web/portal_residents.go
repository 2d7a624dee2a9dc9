package web

import (
	"net/http"
	"net/url"

	"github.com/kinlink/kinlink/internal/facility"
)

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
