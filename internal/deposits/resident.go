package deposits

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
)

// Trust is what a resident sees of their trust money at the kiosk.
type Trust struct {
	BalanceCents int64
	// OwedCents is what they owe after a chargeback of money they had spent,
	// where their agency has them repay it from later deposits.
	OwedCents int64
	// Received are the deposits posted to them, newest first; SenderName is
	// empty where the agency does not show senders.
	Received []Deposit
}

// TrustOf returns a resident's trust balance and the deposits they received.
func (s *Service) TrustOf(ctx context.Context, r facility.Resident, limit int) (Trust, error) {
	var t Trust
	var err error
	if t.BalanceCents, err = s.ledger.Balance(ctx, ledger.ResidentOf(r.ID)); err != nil {
		return t, err
	}
	owed, err := s.ledger.Balance(ctx, ledger.OwedBy(r.ID))
	if err != nil {
		return t, err
	}
	t.OwedCents = max(-owed, 0)
	p, err := s.Policy(ctx, r.Agency.ID)
	if err != nil {
		return t, err
	}
	if t.Received, err = s.list(ctx, "resident_id = $1 AND state IN ('posted', 'reversed') AND posted_at IS NOT NULL ORDER BY posted_at DESC, id DESC LIMIT $2", r.ID, limit); err != nil {
		return t, err
	}
	for i := range t.Received {
		t.Received[i].SenderAddress, t.Received[i].AccountID = "", ""
		if !p.ShowSender {
			t.Received[i].SenderName = ""
		}
	}
	return t, nil
}

// Balance is money a released resident still has in trust, for the agency's
// refund process.
type Balance struct {
	ResidentID     string
	ResidentNumber string
	ResidentName   string
	FacilityCode   string
	Status         string
	BalanceCents   int64
}

// ReleasedBalances lists the residents of by's agency who are no longer active
// (released, transferred out) and still have trust money: what the agency pays
// back through its own refund process (never a fee-laden card).
func (s *Service) ReleasedBalances(ctx context.Context, by facility.Access) ([]Balance, error) {
	if err := finance(by, by.AgencyID, ""); err != nil {
		return nil, err
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT DISTINCT resident_id FROM deposits WHERE agency_id = $1 AND posted_at IS NOT NULL`, by.AgencyID)
	if err != nil {
		return nil, fmt.Errorf("deposits: balances: %w", err)
	}
	var residentIDs []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		residentIDs = append(residentIDs, id)
	}
	rows.Close()
	people, err := s.fac.StaffResidents(ctx, by.AgencyID, residentIDs)
	fids := financeFacilities(by) // nil: the whole agency
	if err != nil {
		return nil, err
	}
	var released []string
	for _, id := range residentIDs {
		p, ok := people[id]
		if ok && p.Status != "active" && (fids == nil || slices.Contains(fids, p.Facility.ID)) {
			released = append(released, id)
		}
	}
	balances, err := s.ledger.Balances(ctx, ledger.Resident, released)
	if err != nil {
		return nil, err
	}
	var out []Balance
	for _, id := range released {
		p := people[id]
		if b := balances[id]; b > 0 {
			out = append(out, Balance{ResidentID: id, ResidentNumber: p.Number, ResidentName: p.FirstName + " " + p.LastName,
				FacilityCode: p.Facility.Code, Status: p.Status, BalanceCents: b})
		}
	}
	return out, nil
}

// ErrTrustShort is a purchase the resident's trust money does not cover.
var ErrTrustShort = problem.Declare(problem.Payment, "insufficient_trust", "deposits: not enough trust money").
	Say("kiosk.trust.short")

func spendKey(key string) string { return "trust-spend:" + key }

// Spend takes cents from a resident's trust account inside tx, the transaction of
// what they buy here (stamps for a reply), and tells the agency's trust system in
// the feed. key names the purchase: a key spent before takes nothing more.
// ErrTrustShort when the balance does not cover it; nothing is taken then.
func (s *Service) Spend(ctx context.Context, tx *sql.Tx, r facility.Resident, cents int64, key, what string) error {
	if cents <= 0 {
		return nil
	}
	_, replay, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "trust.spend", IdempotencyKey: spendKey(key), Description: what, Reference: key,
		Entries: []ledger.Entry{{Account: ledger.ResidentOf(r.ID), Amount: -cents}, {Account: ledger.Ref{Kind: ledger.Platform}, Amount: cents}}})
	if errors.Is(err, ledger.ErrInsufficientFunds) {
		return ErrTrustShort
	}
	if err != nil || replay {
		return err
	}
	return s.append(ctx, tx, spendRow(r, FeedSpent, -cents, what, spendKey(key)), s.now().UTC())
}

// GiveBack returns inside tx what Spend took under key, when what was bought did
// not happen (a reply rejected before delivery). Nothing was spent: nothing
// happens; given back before: nothing more.
func (s *Service) GiveBack(ctx context.Context, tx *sql.Tx, r facility.Resident, key, what string) error {
	moves, err := s.ledger.MovementsTx(ctx, tx, []string{spendKey(key)})
	if err != nil {
		return fmt.Errorf("deposits: give back: %w", err)
	}
	var cents int64
	for _, m := range moves {
		if m.AccountKind == ledger.Resident {
			cents += m.Amount
		}
	}
	if cents >= 0 {
		return nil
	}
	back := spendKey(key) + ":back"
	_, replay, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "trust.spend_refund", IdempotencyKey: back, Description: what, Reference: key,
		Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Platform}, Amount: cents}, {Account: ledger.ResidentOf(r.ID), Amount: -cents}}})
	if err != nil || replay {
		return err
	}
	return s.append(ctx, tx, spendRow(r, FeedSpendRefunded, -cents, what, back), s.now().UTC())
}

func spendRow(r facility.Resident, kind string, amount int64, what, key string) feedRow {
	return feedRow{agencyID: r.Agency.ID, kind: kind, residentID: r.ID, residentNumber: r.Number, residentName: r.FirstName + " " + r.LastName,
		facilityCode: r.Facility.Code, amount: amount, memo: what, ledgerKey: key}
}
