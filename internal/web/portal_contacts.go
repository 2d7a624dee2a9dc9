package web

import (
	"net/http"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/facility"
)

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
