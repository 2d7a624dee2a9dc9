package deposits

import (
	"context"
	"fmt"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ledger"
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
	if err != nil {
		return nil, err
	}
	var out []Balance
	for _, id := range residentIDs {
		p, ok := people[id]
		if !ok || p.Status == "active" || !by.Sees(p.Facility.ID) {
			continue
		}
		b, err := s.ledger.Balance(ctx, ledger.ResidentOf(id))
		if err != nil {
			return nil, err
		}
		if b > 0 {
			out = append(out, Balance{ResidentID: id, ResidentNumber: p.Number, ResidentName: p.FirstName + " " + p.LastName,
				FacilityCode: p.Facility.Code, Status: p.Status, BalanceCents: b})
		}
	}
	return out, nil
}
