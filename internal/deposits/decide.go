package deposits

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
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/textsafe"
)

// Of returns one of a family's deposits; another family's does not exist for them.
func (s *Service) Of(ctx context.Context, accountID, id string) (Deposit, error) {
	if !ids.Valid(id) {
		return Deposit{}, ErrNotFound
	}
	d, err := s.byID(ctx, id)
	if err != nil || d.AccountID != accountID {
		return Deposit{}, ErrNotFound
	}
	return d, nil
}

// OfAccount lists a family's deposits, newest first, at most limit.
func (s *Service) OfAccount(ctx context.Context, accountID string, limit int) ([]Deposit, error) {
	return s.list(ctx, "account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2", accountID, limit)
}

// Cancel stops a family's deposit that is not posted yet (pending or held) and
// sends its money back to the card, in full.
func (s *Service) Cancel(ctx context.Context, accountID, id string) (Deposit, error) {
	if _, err := s.Of(ctx, accountID, id); err != nil {
		return Deposit{}, err
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		d, err := s.lockedDeposit(ctx, tx, id)
		if err != nil {
			return err
		}
		if !d.Open() {
			return ErrDecided
		}
		return s.endAndRefund(ctx, tx, d, Cancelled, "cancelled_by_family", "family", s.now().UTC())
	})
	if err != nil {
		return Deposit{}, err
	}
	s.wake()
	return s.byID(ctx, id)
}

// Filter narrows the portal's list of deposits.
type Filter struct {
	State    string
	From, To time.Time // created in [From, To); zero: open
	Resident string    // the resident's number, or a part of their name
	Sender   string    // a part of the sender's name
	Limit    int
}

// List is the deposits of the facilities by reaches as finance staff, newest
// first, narrowed by f.
func (s *Service) List(ctx context.Context, by facility.Access, f Filter) ([]Deposit, error) {
	where, args, err := filterWhere(by, f)
	if err != nil {
		return nil, err
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 200
	}
	args = append(args, f.Limit)
	return s.list(ctx, where+fmt.Sprintf(" ORDER BY created_at DESC, id DESC LIMIT $%d", len(args)), args...)
}

// filterWhere is the condition of a Filter for one who may see the deposits of by's
// facilities.
func filterWhere(by facility.Access, f Filter) (string, []any, error) {
	if !canAny(by) {
		return "", nil, facility.ErrForbidden
	}
	where := []string{"agency_id = $1"}
	args := []any{by.AgencyID}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if fids := financeFacilities(by); fids != nil {
		marks := make([]string, len(fids))
		for i, id := range fids {
			marks[i] = arg(id)
		}
		where = append(where, "facility_id IN ("+strings.Join(marks, ", ")+")")
	}
	if f.State != "" {
		where = append(where, "state = "+arg(f.State))
	}
	if !f.From.IsZero() {
		where = append(where, "created_at >= "+arg(f.From.UTC()))
	}
	if !f.To.IsZero() {
		where = append(where, "created_at < "+arg(f.To.UTC()))
	}
	if r := strings.TrimSpace(f.Resident); r != "" {
		where = append(where, "(resident_number = "+arg(r)+" OR LOWER(resident_name) LIKE "+arg("%"+strings.ToLower(likeSafe(r))+"%")+")")
	}
	if sn := strings.TrimSpace(f.Sender); sn != "" {
		where = append(where, "LOWER(sender_name) LIKE "+arg("%"+strings.ToLower(likeSafe(sn))+"%"))
	}
	return strings.Join(where, " AND "), args, nil
}

func likeSafe(s string) string { return strings.NewReplacer("%", "", "_", "").Replace(s) }

// canAny reports whether by holds the finance role for some facility.
func canAny(by facility.Access) bool {
	for _, g := range by.Grants {
		if g.Role == facility.Finance || g.Role == facility.AgencyAdmin {
			return true
		}
	}
	return false
}

// financeFacilities are the facilities by handles money of; nil: all the agency's.
func financeFacilities(by facility.Access) []string {
	var out []string
	for _, g := range by.Grants {
		if g.Role == facility.AgencyAdmin || (g.Role == facility.Finance && g.FacilityID == "") {
			return nil
		}
		if g.Role == facility.Finance {
			out = append(out, g.FacilityID)
		}
	}
	return out
}

// ForStaff returns one deposit to finance staff of its facility.
func (s *Service) ForStaff(ctx context.Context, by facility.Access, id string) (Deposit, error) {
	if !ids.Valid(id) {
		return Deposit{}, ErrNotFound
	}
	d, err := s.byID(ctx, id)
	if err != nil || d.AgencyID != by.AgencyID || !by.Sees(d.FacilityID) {
		return Deposit{}, ErrNotFound
	}
	if !by.Has(facility.Finance, d.FacilityID) {
		return Deposit{}, facility.ErrForbidden
	}
	return d, nil
}

// Decisions of the finance office.
const (
	Hold    = "hold"
	Release = "release"
	Reject  = "reject"
)

// Decide holds a pending deposit for review, releases a held one to the trust
// account, or rejects one not yet posted (its money goes back to the card, with
// the reason told to the family). The decision is audited.
func (s *Service) Decide(ctx context.Context, by facility.Access, id, decision, reason string) (Deposit, error) {
	d, err := s.ForStaff(ctx, by, id)
	if err != nil {
		return d, err
	}
	reason = strings.TrimSpace(reason)
	if decision == Reject && (reason == "" || utf8.RuneCountInString(reason) > 500 || textsafe.HasHidden(reason)) {
		return d, ErrNeedReason
	}
	if utf8.RuneCountInString(reason) > 500 || textsafe.HasHidden(reason) {
		return d, ErrNeedReason
	}
	staff := "staff:" + by.AccountID
	// Read outside the transaction, which will hold the resident's lock (see
	// charged).
	gone, err := s.residentGone(ctx, d)
	if err != nil {
		return d, err
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		d, err := s.lockedDeposit(ctx, tx, id)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		switch {
		case decision == Hold && d.State == Pending:
			err = s.setState(ctx, tx, d, Held, reason, staff, now)
		case decision == Release && d.State == Held && d.Charged:
			if gone != "" {
				err = s.endAndRefund(ctx, tx, d, Refunded, gone, staff, now)
				break
			}
			if err = s.post(ctx, tx, d, staff, now); err == nil {
				d.State = Posted
				err = s.mail(ctx, tx, nil, d, "deposit_posted", nil)
			}
		case decision == Reject && (d.State == Pending || d.State == Held):
			if err = s.endAndRefund(ctx, tx, d, Rejected, reason, staff, now); err == nil {
				d.State, d.Reason = Rejected, reason
			}
		default:
			return ErrDecided
		}
		if err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: staff, Action: "deposits." + decision, AgencyID: d.AgencyID,
			FacilityID: d.FacilityID, ResidentID: d.ResidentID, Subject: d.Confirmation,
			Detail: strings.TrimSpace(ledger.Dollars(d.AmountCents) + " from " + d.SenderName + " " + reason)})
	})
	if err != nil {
		return Deposit{}, err
	}
	s.wake()
	return s.byID(ctx, id)
}

// Totals are the figures of a set of deposits.
type Totals struct {
	Count       int
	AmountCents int64
	FeeCents    int64
	// ByState counts the deposits in each state, with their amounts.
	ByState      map[string]int
	CentsByState map[string]int64
}

// Totals sums the deposits by reaches that f selects (its Limit aside): the
// portal's daily totals.
func (s *Service) Totals(ctx context.Context, by facility.Access, f Filter) (Totals, error) {
	t := Totals{ByState: map[string]int{}, CentsByState: map[string]int64{}}
	where, args, err := filterWhere(by, f)
	if err != nil {
		return t, err
	}
	rows, err := s.db.Read().QueryContext(ctx, "SELECT state, COUNT(*), COALESCE(SUM(amount_cents), 0), COALESCE(SUM(fee_cents), 0) FROM deposits WHERE "+
		where+" GROUP BY state", args...)
	if err != nil {
		return t, fmt.Errorf("deposits: totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int
		var amount, fee int64
		if err := rows.Scan(&state, &n, &amount, &fee); err != nil {
			return t, err
		}
		t.ByState[state], t.CentsByState[state] = n, amount
		t.Count += n
		t.AmountCents += amount
		t.FeeCents += fee
	}
	return t, rows.Err()
}
