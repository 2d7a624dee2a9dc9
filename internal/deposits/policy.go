package deposits

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
)

// NoLimit is a limit an agency did not set.
const NoLimit = 0

// Policy is an agency's rules for deposits. Amounts are in cents; a limit of
// NoLimit is none.
type Policy struct {
	// FromAnyone lets anyone deposit to a resident found by state and ID; without
	// it only the resident's approved contacts may.
	FromAnyone bool
	// PostAtOnce posts deposits to the trust account as soon as they are paid;
	// without it each waits for the finance office to release it.
	PostAtOnce bool
	// ShowSender shows residents who sent each deposit.
	ShowSender bool

	MaxDepositCents    int64
	SenderDayCents     int64 // per sender, in the last 24 hours
	SenderMonthCents   int64 // per sender, in the last 30 days
	ResidentMonthCents int64 // per resident, in the last 30 days, from everyone
	MaxBalanceCents    int64 // the most a trust account may hold

	// The fee: tiers by amount, or a percentage (in basis points) with a cap.
	// Neither is no fee.
	FeeTiers       []FeeTier
	FeeBasisPoints int
	FeeCapCents    int64

	// Chargebacks says who bears a chargeback of money the resident already
	// spent: ChargebackPlatform (the default; the resident keeps what they spent)
	// or ChargebackResident (they owe it, repaid from later deposits).
	Chargebacks string
	// FinanceEmail receives the daily reconciliation report.
	FinanceEmail string
}

// Who bears a chargeback of money already spent.
const (
	ChargebackPlatform = "platform"
	ChargebackResident = "resident"
)

// FeeTier is the fee of deposits up to an amount.
type FeeTier struct {
	UpToCents int64
	FeeCents  int64
}

// DefaultPolicy is an agency's policy until it sets one: approved contacts only,
// posted at once, no fee, $300 a deposit, $1,000 a day and $3,000 a month per
// sender, $5,000 a month per resident, no balance cap; the platform bears
// chargebacks.
func DefaultPolicy() Policy {
	return Policy{PostAtOnce: true, ShowSender: true, MaxDepositCents: 30000, SenderDayCents: 100000, SenderMonthCents: 300000,
		ResidentMonthCents: 500000, Chargebacks: ChargebackPlatform}
}

// Fee is what a deposit of amount cents costs on top of it.
func (p Policy) Fee(amount int64) int64 {
	if len(p.FeeTiers) > 0 {
		for _, t := range p.FeeTiers {
			if amount <= t.UpToCents {
				return t.FeeCents
			}
		}
		return p.FeeTiers[len(p.FeeTiers)-1].FeeCents
	}
	if p.FeeBasisPoints == 0 {
		return 0
	}
	fee := (amount*int64(p.FeeBasisPoints) + 5000) / 10000 // to the nearest cent, halves up
	if p.FeeCapCents > 0 && fee > p.FeeCapCents {
		fee = p.FeeCapCents
	}
	return min(fee, MaxFeeCents) // no fee above $25, whatever the cap says
}

// Limits of the policy, for the form that sets them.
const (
	MaxDepositLimit = 1000000 // $10,000: no agency takes more in one deposit
	MaxFeeCents     = 2500    // no fee above $25 a deposit
	MaxBasisPoints  = 1000    // 10%
)

// FormatTiers writes tiers as the policy form shows them: "20.00:0, 100.00:1.95".
func FormatTiers(tiers []FeeTier) string {
	parts := make([]string, len(tiers))
	for i, t := range tiers {
		parts[i] = cents(t.UpToCents) + ":" + cents(t.FeeCents)
	}
	return strings.Join(parts, ", ")
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// ParseTiers reads tiers as FormatTiers writes them (dollars, "up to:fee" pairs
// separated by commas); "" is no tiers.
func ParseTiers(s string) ([]FeeTier, error) {
	var out []FeeTier
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		upTo, fee, ok := strings.Cut(part, ":")
		u, err1 := ParseDollars(upTo)
		f, err2 := ParseDollars(fee)
		if !ok || err1 != nil || err2 != nil {
			return nil, ErrBadPolicy.WithFields(map[string]string{"fee_tiers": "invalid"})
		}
		out = append(out, FeeTier{UpToCents: u, FeeCents: f})
	}
	return out, nil
}

// ParseDollars reads an amount a person typed, "20", "20.5", "$1,020.50", as cents.
func ParseDollars(s string) (int64, error) {
	s = strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(s), "$"), ",", "")
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(frac) > 2 || strings.HasPrefix(whole, "-") || strings.HasPrefix(whole, "+") {
		return 0, errors.New("deposits: not an amount")
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > 1e9 {
		return 0, errors.New("deposits: not an amount")
	}
	f := int64(0)
	if frac != "" {
		if frac = (frac + "0")[:2]; frac[0] < '0' || frac[0] > '9' || frac[1] < '0' || frac[1] > '9' {
			return 0, errors.New("deposits: not an amount")
		}
		f, _ = strconv.ParseInt(frac, 10, 64)
	}
	return w*100 + f, nil
}

// validate lists what is wrong with a policy, by field.
func (p Policy) validate() error {
	bad := map[string]string{}
	if p.MaxDepositCents < 100 || p.MaxDepositCents > MaxDepositLimit {
		bad["max_deposit"] = "range"
	}
	for field, v := range map[string]int64{"sender_day": p.SenderDayCents, "sender_month": p.SenderMonthCents,
		"resident_month": p.ResidentMonthCents, "max_balance": p.MaxBalanceCents} {
		if v < 0 || v > 100*MaxDepositLimit {
			bad[field] = "range"
		}
	}
	prev := int64(0)
	for _, t := range p.FeeTiers {
		if t.UpToCents <= prev || t.FeeCents < 0 || t.FeeCents > MaxFeeCents || t.FeeCents >= t.UpToCents {
			bad["fee_tiers"] = "invalid"
		}
		prev = t.UpToCents
	}
	if len(p.FeeTiers) > 10 {
		bad["fee_tiers"] = "invalid"
	}
	if p.FeeBasisPoints < 0 || p.FeeBasisPoints > MaxBasisPoints {
		bad["fee_percent"] = "range"
	}
	if p.FeeCapCents < 0 || p.FeeCapCents > MaxFeeCents {
		bad["fee_cap"] = "range"
	}
	if len(p.FeeTiers) > 0 && p.FeeBasisPoints > 0 {
		bad["fee_percent"] = "both"
	}
	if p.Chargebacks != ChargebackPlatform && p.Chargebacks != ChargebackResident {
		bad["chargebacks"] = "invalid"
	}
	if p.FinanceEmail != "" {
		if a, err := mail.ParseAddress(p.FinanceEmail); err != nil || a.Address != p.FinanceEmail || len(p.FinanceEmail) > 254 {
			bad["finance_email"] = "invalid"
		}
	}
	if len(bad) > 0 {
		return ErrBadPolicy.WithFields(bad)
	}
	return nil
}

// Policy returns an agency's deposit policy (the defaults until it sets one).
func (s *Service) Policy(ctx context.Context, agencyID string) (Policy, error) {
	return scanPolicy(s.db.QueryRow(ctx, policyQuery, agencyID), agencyID)
}

// policyIn reads an agency's policy inside tx.
func (s *Service) policyIn(ctx context.Context, tx *sql.Tx, agencyID string) (Policy, error) {
	return scanPolicy(s.db.TxQueryRow(ctx, tx, policyQuery, agencyID), agencyID)
}

const policyQuery = `SELECT from_anyone, post_at_once, show_sender, max_deposit_cents, sender_day_cents, sender_month_cents,
	resident_month_cents, max_balance_cents, fee_tiers, fee_basis_points, fee_cap_cents, chargebacks, finance_email
	FROM deposit_policies WHERE agency_id = $1`

func scanPolicy(row *sql.Row, agencyID string) (Policy, error) {
	p := DefaultPolicy()
	var tiers string
	err := row.Scan(&p.FromAnyone, &p.PostAtOnce, &p.ShowSender, &p.MaxDepositCents,
		&p.SenderDayCents, &p.SenderMonthCents, &p.ResidentMonthCents, &p.MaxBalanceCents, &tiers, &p.FeeBasisPoints, &p.FeeCapCents,
		&p.Chargebacks, &p.FinanceEmail)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("deposits: policy: %w", err)
	}
	if p.FeeTiers, err = ParseTiers(tiers); err != nil {
		return p, fmt.Errorf("deposits: policy of %s: fee tiers %q", agencyID, tiers)
	}
	return p, nil
}

// SetPolicy replaces an agency's deposit policy; its administrators may. The
// change is audited.
func (s *Service) SetPolicy(ctx context.Context, by facility.Access, agencyID string, p Policy) error {
	if by.AgencyID != agencyID {
		return facility.ErrNotFound
	}
	if !by.Has(facility.AgencyAdmin, "") {
		return facility.ErrForbidden
	}
	p.FeeTiers = slices.Clone(p.FeeTiers)
	p.FinanceEmail = strings.TrimSpace(p.FinanceEmail)
	if err := p.validate(); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := s.db.TxExec(ctx, tx, `INSERT INTO deposit_policies (agency_id, from_anyone, post_at_once, show_sender, max_deposit_cents,
			sender_day_cents, sender_month_cents, resident_month_cents, max_balance_cents, fee_tiers, fee_basis_points, fee_cap_cents,
			chargebacks, finance_email, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (agency_id) DO UPDATE SET from_anyone = $2, post_at_once = $3, show_sender = $4, max_deposit_cents = $5,
			sender_day_cents = $6, sender_month_cents = $7, resident_month_cents = $8, max_balance_cents = $9, fee_tiers = $10,
			fee_basis_points = $11, fee_cap_cents = $12, chargebacks = $13, finance_email = $14, updated_at = $15`,
			agencyID, p.FromAnyone, p.PostAtOnce, p.ShowSender, p.MaxDepositCents, p.SenderDayCents, p.SenderMonthCents,
			p.ResidentMonthCents, p.MaxBalanceCents, FormatTiers(p.FeeTiers), p.FeeBasisPoints, p.FeeCapCents, p.Chargebacks,
			p.FinanceEmail, time.Now().UTC())
		if err != nil {
			return fmt.Errorf("deposits: policy: %w", err)
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + by.AccountID, Action: "deposits.policy", AgencyID: agencyID,
			Detail: fmt.Sprintf("from anyone %t, post at once %t, show sender %t, max %s, sender day %s month %s, resident month %s, balance %s, fee tiers [%s] %d bp cap %s, chargebacks %s",
				p.FromAnyone, p.PostAtOnce, p.ShowSender, cents(p.MaxDepositCents), cents(p.SenderDayCents), cents(p.SenderMonthCents),
				cents(p.ResidentMonthCents), cents(p.MaxBalanceCents), FormatTiers(p.FeeTiers), p.FeeBasisPoints, cents(p.FeeCapCents), p.Chargebacks)})
	})
}
