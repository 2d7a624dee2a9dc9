package visits

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"
)

// Refusals of a decision or a cancellation.
var (
	ErrDecided = problem.Declare(problem.Conflict, "already_decided", "visits: the visit was already decided or cancelled").
			Say("visits.refused.decided")
	ErrNeedReason = problem.Declare(problem.Invalid, "invalid_request", "visits: a rejection or a cancellation by staff needs a reason").
			On("reason", "required").Say("visits.refused.need_reason")
	ErrBadReason = problem.Declare(problem.Invalid, "invalid_request", "visits: the reason is longer than 500 characters or not plain text").
			On("reason", "invalid").Say("visits.refused.bad_reason")
	// ErrTooLate is a family's cancellation within the facility's cutoff, or a
	// decision on a visit whose time has come.
	ErrTooLate = problem.Declare(problem.Conflict, "too_late", "visits: it is too close to the visit's start").
			Say("visits.refused.too_late")
)

// Reasons the system gives when it ends a visit itself.
const (
	ReasonReleased    = "resident_released"
	ReasonTransferred = "resident_transferred"
	ReasonRestricted  = "resident_restricted"
	ReasonNotDecided  = "not_decided"
	ReasonNoOneJoined = "no_one_joined"
)

// officer is a visit by's staff may decide on: a visitation officer or an
// administrator of its facility. Another agency's visit does not exist for them.
func (s *Service) officer(ctx context.Context, by facility.Access, visitID string) (Visit, error) {
	if !ids.Valid(visitID) {
		return Visit{}, ErrNotFound
	}
	v, err := visitByID(ctx, s.db.Read(), visitID)
	if err != nil {
		return v, err
	}
	p, err := s.place(ctx, v.FacilityID)
	if err != nil {
		return v, err
	}
	if p.AgencyID != by.AgencyID {
		return Visit{}, ErrNotFound
	}
	if !by.Has(facility.VisitationOfficer, p.ID) && !by.Has(facility.FacilityAdmin, p.ID) {
		return Visit{}, facility.ErrForbidden
	}
	return v, nil
}

// checkReason trims a staff member's reason and refuses what cannot be shown to a
// family.
func checkReason(reason string, required bool) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "" && required:
		return "", ErrNeedReason
	case utf8.RuneCountInString(reason) > 500 || !utf8.ValidString(reason) || textsafe.HasHidden(reason):
		return "", ErrBadReason
	}
	return reason, nil
}

// Decide approves a requested visit (it is scheduled) or rejects it with a reason
// the family reads (its hold is released); a visitation officer or an
// administrator of the facility may, until the visit starts. The family is
// mailed; the decision is audited.
func (s *Service) Decide(ctx context.Context, by facility.Access, visitID string, approve bool, reason string) error {
	reason, err := checkReason(reason, !approve)
	if err != nil {
		return err
	}
	v, err := s.officer(ctx, by, visitID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if v.State != Requested {
		return ErrDecided
	}
	if !now.Before(v.Start) {
		return ErrTooLate
	}
	to, action := Scheduled, "visit.approve"
	if !approve {
		to, action = Rejected, "visit.reject"
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := changeState(ctx, tx, v.ID, Requested, to, reason, "staff:"+by.AccountID, now); err != nil {
			return err
		}
		if !approve {
			if err := s.settle(ctx, tx, v, 0); err != nil {
				return err
			}
		}
		if err := audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + by.AccountID, Action: action, AgencyID: by.AgencyID,
			FacilityID: v.FacilityID, ResidentID: v.ResidentID, Subject: "visit:" + v.ID, Detail: reason}); err != nil {
			return err
		}
		v.State, v.Reason = to, reason
		return s.tellFamily(ctx, tx, v)
	})
	if err == nil {
		s.wake()
	}
	return err
}

// Cancel is a family's cancellation of a coming visit, up to the facility's
// cutoff before it starts (CancelHours): its hold is released in full.
func (s *Service) Cancel(ctx context.Context, accountID, visitID string) (Visit, error) {
	v, err := s.Visit(ctx, accountID, visitID)
	if err != nil {
		return v, err
	}
	if v.State != Requested && v.State != Scheduled {
		return v, ErrDecided
	}
	sch, err := loadSchedule(ctx, s.db.Read(), v.FacilityID, DateOf(v.Start))
	if err != nil {
		return v, err
	}
	now := s.now().UTC()
	if now.After(cancelUntil(v, sch)) {
		return v, ErrTooLate
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := changeState(ctx, tx, v.ID, v.State, Cancelled, "", "family", now); err != nil {
			return err
		}
		return s.settle(ctx, tx, v, 0)
	})
	if err != nil {
		return v, err
	}
	v.State = Cancelled
	return v, nil
}

// CancelByStaff cancels a coming visit for a reason the family reads (a lockdown,
// a count): a visitation officer or an administrator of the facility may. Its hold
// is released in full, the family is mailed, and it is audited.
func (s *Service) CancelByStaff(ctx context.Context, by facility.Access, visitID, reason string) error {
	reason, err := checkReason(reason, true)
	if err != nil {
		return err
	}
	v, err := s.officer(ctx, by, visitID)
	if err != nil {
		return err
	}
	if v.State != Requested && v.State != Scheduled {
		return ErrDecided
	}
	now := s.now().UTC()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := changeState(ctx, tx, v.ID, v.State, Cancelled, reason, "staff:"+by.AccountID, now); err != nil {
			return err
		}
		if err := s.settle(ctx, tx, v, 0); err != nil {
			return err
		}
		if err := audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + by.AccountID, Action: "visit.cancel", AgencyID: by.AgencyID,
			FacilityID: v.FacilityID, ResidentID: v.ResidentID, Subject: "visit:" + v.ID, Detail: reason}); err != nil {
			return err
		}
		v.State, v.Reason = Cancelled, reason
		return s.tellFamily(ctx, tx, v)
	})
	if err == nil {
		s.wake()
	}
	return err
}

// StaffVisit is a visit as facility staff see it: who, where, and who visits.
type StaffVisit struct {
	Visit
	Resident facility.StaffResident
	Visitor  string // the family member's name
	Station  Station
}

// StaffQuery picks the visits of a facility staff see: those of one state (""
// for any) that start on one local date (zero for any day from today on).
type StaffQuery struct {
	FacilityID string
	State      string
	Day        Date
}

// StaffVisits lists a facility's visits for a visitation officer or an
// administrator of it, by start: the requests to decide, or a day's visits for
// the printable list per housing unit. The list shows residents' housing and
// visitors' names: the read is audited.
func (s *Service) StaffVisits(ctx context.Context, by facility.Access, q StaffQuery) ([]StaffVisit, error) {
	p, err := s.place(ctx, q.FacilityID)
	if err != nil {
		return nil, err
	}
	if p.AgencyID != by.AgencyID {
		return nil, facility.ErrNotFound
	}
	if !by.Has(facility.VisitationOfficer, p.ID) && !by.Has(facility.FacilityAdmin, p.ID) {
		return nil, facility.ErrForbidden
	}
	from, to := midnight(p.today(s.now()), p.loc), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if !q.Day.IsZero() {
		from, to = midnight(q.Day, p.loc), midnight(q.Day.AddDays(1), p.loc)
	}
	list, err := facilityVisits(ctx, s.db.Read(), p.ID, q.State, from, to)
	if err != nil {
		return nil, err
	}
	var residentIDs, contactIDs []string
	for _, v := range list {
		residentIDs, contactIDs = append(residentIDs, v.ResidentID), append(contactIDs, v.ContactID)
	}
	residents, err := s.fac.StaffResidents(ctx, p.AgencyID, residentIDs)
	if err != nil {
		return nil, err
	}
	visitors, err := s.contacts.Visitors(ctx, p.AgencyID, contactIDs)
	if err != nil {
		return nil, err
	}
	stations, err := s.allStations(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	out := make([]StaffVisit, len(list))
	for i, v := range list {
		v.Start, v.End = v.Start.In(p.loc), v.End.In(p.loc)
		out[i] = StaffVisit{Visit: v, Resident: residents[v.ResidentID], Visitor: visitors[v.ContactID].Name, Station: stations[v.StationID]}
	}
	err = audit.RecordNow(ctx, s.db, audit.Entry{Actor: "staff:" + by.AccountID, Action: "visits.view", AgencyID: p.AgencyID,
		FacilityID: p.ID, Detail: fmt.Sprintf("%s %s: %d", orNone(q.State), orNone(dayString(q.Day)), len(out))})
	return out, err
}

func dayString(d Date) string {
	if d.IsZero() {
		return ""
	}
	return d.String()
}

// allStations names every station of a facility that visits may refer to,
// retired ones included.
func (s *Service) allStations(ctx context.Context, facilityID string) (map[string]Station, error) {
	rows, err := stationsEver(ctx, s.db.Read(), facilityID)
	if err != nil {
		return nil, err
	}
	out := map[string]Station{}
	for _, r := range rows {
		k, err := s.fac.Kiosk(ctx, r.kioskID)
		if err != nil {
			return nil, fmt.Errorf("visits: station %s: %w", r.kioskID, err)
		}
		out[k.ID] = Station{KioskID: k.ID, FacilityID: r.facilityID, Name: k.Name, Location: r.location}
	}
	return out, nil
}

// changeState moves a visit from one state to another, or fails with ErrDecided
// when it is no longer in from.
func changeState(ctx context.Context, tx *sql.Tx, id, from, to, reason, by string, now time.Time) error {
	decided := to == Scheduled || to == Rejected
	res, err := tx.ExecContext(ctx, `UPDATE visits SET state = $3, reason = $4,
		decided_by = CASE WHEN $5 THEN $6 ELSE decided_by END, decided_at = CASE WHEN $5 THEN $7 ELSE decided_at END,
		ended_by = CASE WHEN $5 THEN ended_by ELSE $6 END, ended_at = CASE WHEN $5 THEN ended_at ELSE $7 END
		WHERE id = $1 AND state = $2`, id, from, to, reason, decided, by, now)
	if err != nil {
		return fmtErr("change state", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrDecided
	}
	return nil
}
