package deposits

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const depositColumns = `id, confirmation, agency_id, facility_id, facility_code, facility_name, resident_id, resident_number, resident_name, account_id,
	contact_id, amount_cents, fee_cents, state, reason, sender_name, sender_address, processor, charge_id, charged, refund, refund_id, disputed_cents, refunded_cents,
	created_at, posted_at, ended_at, decided_by, email, locale, refund_asked_cents`

func scanDeposit(row interface{ Scan(...any) error }) (Deposit, error) {
	var d Deposit
	var posted, ended sql.NullTime
	err := row.Scan(&d.ID, &d.Confirmation, &d.AgencyID, &d.FacilityID, &d.FacilityCode, &d.FacilityName, &d.ResidentID, &d.ResidentNumber,
		&d.ResidentName, &d.AccountID, &d.ContactID, &d.AmountCents, &d.FeeCents, &d.State, &d.Reason, &d.SenderName,
		&d.SenderAddress, &d.Processor, &d.ChargeID, &d.Charged, &d.Refund, &d.RefundID, &d.DisputedCents, &d.RefundedCents, &d.CreatedAt, &posted, &ended, &d.DecidedBy, &d.email, &d.locale, &d.refundAsked)
	if errors.Is(err, sql.ErrNoRows) {
		return d, ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("deposits: %w", err)
	}
	d.CreatedAt = d.CreatedAt.UTC()
	if posted.Valid {
		d.PostedAt = posted.Time.UTC()
	}
	if ended.Valid {
		d.EndedAt = ended.Time.UTC()
	}
	return d, nil
}

func (s *Service) byID(ctx context.Context, id string) (Deposit, error) {
	return scanDeposit(s.db.QueryRow(ctx, "SELECT "+depositColumns+" FROM deposits WHERE id = $1", id))
}

// lockedDeposit reads a deposit inside tx, locked until tx ends on PostgreSQL
// (SQLite's write transaction holds the only write lock already).
func (s *Service) lockedDeposit(ctx context.Context, tx *sql.Tx, id string) (Deposit, error) {
	return scanDeposit(s.db.TxQueryRow(ctx, tx, "SELECT "+depositColumns+" FROM deposits WHERE id = $1"+s.db.ForUpdate(), id))
}

func (s *Service) list(ctx context.Context, where string, args ...any) ([]Deposit, error) {
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+depositColumns+" FROM deposits WHERE "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("deposits: list: %w", err)
	}
	defer rows.Close()
	var out []Deposit
	for rows.Next() {
		d, err := scanDeposit(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// setState moves a deposit from one of the states it was read in to another,
// inside tx; false means someone else moved it first.
func (s *Service) setState(ctx context.Context, tx *sql.Tx, d Deposit, to, reason, by string, now time.Time) error {
	ends := to != Pending && to != Held && to != Posted
	res, err := s.db.TxExec(ctx, tx, `UPDATE deposits SET state = $2, reason = $3, decided_by = CASE WHEN $4 = '' THEN decided_by ELSE $4 END,
		ended_at = CASE WHEN $5 THEN $6 ELSE ended_at END WHERE id = $1 AND state = $7`, d.ID, to, reason, by, ends, now, d.State)
	if err != nil {
		return fmt.Errorf("deposits: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrDecided
	}
	return nil
}
