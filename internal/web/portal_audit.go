package web

import (
	"net/http"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
)

// AuditData is the audit log search.
type AuditData struct {
	Form      *Form
	Rows      []audit.Row
	Names     map[string]string // actor ("staff:ID") -> the staff member's name
	Residents map[string]string // resident id -> the resident's name and number
}

func (s *Site) auditPage(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	if !facility.CanSearchAudit(u.Access) { // before anything of the search is read
		s.Error(w, r, http.StatusForbidden)
		return
	}
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
