package facility

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/problem"
)

// AuditQuery is a search of an agency's audit log as an investigator asks it.
type AuditQuery struct {
	// Actor is who did it: a staff member's name or part of it, or exactly an actor
	// as the log writes it ("staff:ID", "kiosk:ID", "resident:ID", "operator").
	Actor    string
	Resident string // the agency's resident number, or the log's own resident id
	Action   string // a prefix, such as "message."
	// From and To are whole days, both included; zero leaves that end open.
	From, To time.Time
}

// AuditFound is what a search found, with the names a person reading the log knows.
type AuditFound struct {
	Rows []audit.Row
	// Staff names the staff of the agency by actor ("staff:ID").
	Staff map[string]string
	// Residents names the residents of the rows by id, with their numbers.
	Residents map[string]string
}

// ErrAuditDates is a search whose last day comes before its first.
var ErrAuditDates = problem.Declare(problem.Invalid, "invalid_request", "facility: the audit search ends before it starts").On("to", "date_order")

// auditLimit is the most rows one search shows: enough to read, never the whole log.
const auditLimit = 200

// CanSearchAudit reports whether a staff member may search the audit log.
func CanSearchAudit(a Access) bool { return a.Has(Investigator, "") }

// SearchAudit searches the agency's audit log; investigators may. The search is
// itself written to the log, so that who looked at what stays accountable.
func (s *Service) SearchAudit(ctx context.Context, a Access, q AuditQuery) (AuditFound, error) {
	if !CanSearchAudit(a) {
		return AuditFound{}, ErrForbidden
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return AuditFound{}, ErrAuditDates
	}
	f := audit.Filter{AgencyID: a.AgencyID, Action: q.Action, From: q.From, Limit: auditLimit}
	staff, err := s.Staff(ctx, Actor{AccountID: a.AccountID}, a.AgencyID)
	if err != nil {
		return AuditFound{}, err
	}
	switch who := strings.TrimSpace(q.Actor); {
	case who == "":
	case who == "operator" || strings.Contains(who, ":"):
		f.Actor = who
	default:
		// People know their colleagues by name, not by id: every staff member whose
		// name holds what was typed, however it is accented or cased.
		f.Actors = []string{}
		for _, m := range staff {
			if strings.Contains(FoldName(m.FullName), FoldName(who)) {
				f.Actors = append(f.Actors, "staff:"+m.AccountID)
			}
		}
	}
	if !q.To.IsZero() {
		f.To = q.To.AddDate(0, 0, 1)
	}
	if q.Resident != "" {
		// Staff know residents by the agency's number; the log keeps the opaque id.
		f.ResidentID = q.Resident
		if found, err := s.StaffSearch(ctx, a, q.Resident); err == nil && len(found) > 0 && strings.EqualFold(found[0].Number, strings.TrimSpace(q.Resident)) {
			f.ResidentID = found[0].ID // the search finds by the start of a number: only an exact one is meant
		}
	}
	rows, err := audit.Search(ctx, s.db, f)
	if err != nil {
		return AuditFound{}, err
	}
	detail := fmt.Sprintf("actor=%q resident=%q action=%q from=%s to=%s", q.Actor, q.Resident, q.Action, day(q.From), day(q.To))
	if err := audit.RecordNow(ctx, s.db, audit.Entry{Actor: "staff:" + a.AccountID, Action: "audit.search", AgencyID: a.AgencyID, Detail: detail}); err != nil {
		return AuditFound{}, err
	}
	found := AuditFound{Rows: rows, Staff: map[string]string{}}
	for _, m := range staff {
		found.Staff["staff:"+m.AccountID] = m.FullName
	}
	var residentIDs []string
	for _, row := range rows {
		if row.ResidentID != "" {
			residentIDs = append(residentIDs, row.ResidentID)
		}
	}
	found.Residents, err = s.ResidentNames(ctx, a.AgencyID, residentIDs)
	return found, err
}

// day writes a search's day, "" for an open end.
func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02")
}
