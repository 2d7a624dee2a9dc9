package deposits

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"
)

// MinDepositCents is the smallest deposit: $1.
const MinDepositCents = 100

// Unlimited is a Left of a limit the agency did not set.
const Unlimited = -1

// counted are the states whose money counts against the limits: on its way to the
// resident, there, or taken back by a chargeback (not a deposit to try again).
const counted = `('pending', 'held', 'posted', 'reversed')`

// Recipient is whom a deposit is for: a family's contact, or a resident found by
// state and ID (where the agency takes deposits from anyone).
type Recipient struct {
	ContactID  string
	ResidentID string
}

// Sender is who deposits, as the trust system records them.
type Sender struct {
	Name    string
	Address string
}

// Request is a family's deposit.
type Request struct {
	Recipient
	AmountCents int64
	Token       string // the processor's token for the card
	Sender      Sender
	// Key makes a retry of the same request return the first deposit (an app's
	// Idempotency-Key, a form's token).
	Key string
	// Email and Locale are where and in which language receipts go.
	Email, Locale string
	// QuotedFeeCents, when set, is the fee the family was shown: a deposit whose
	// fee is another (the agency changed it meanwhile) is refused, not charged.
	QuotedFeeCents *int64
}

// Left is how much more may be deposited under each of the agency's limits, in
// cents; Unlimited where it set none.
type Left struct {
	PerDepositCents    int64
	SenderDayCents     int64
	SenderMonthCents   int64
	ResidentMonthCents int64
	BalanceCents       int64
}

// Most is the largest deposit the limits allow now.
func (l Left) Most() int64 {
	most := l.PerDepositCents
	for _, v := range []int64{l.SenderDayCents, l.SenderMonthCents, l.ResidentMonthCents, l.BalanceCents} {
		if v != Unlimited && v < most {
			most = v
		}
	}
	return max(most, 0)
}

// Quote is what a deposit would cost, shown before paying.
type Quote struct {
	AmountCents    int64
	FeeCents       int64
	ResidentName   string
	ResidentNumber string
	Facility       string
	Agency         string
	Left           Left
	Policy         Policy
}

// TotalCents is what the card would pay.
func (q Quote) TotalCents() int64 { return q.AmountCents + q.FeeCents }

// target is a resident a family may deposit to, with the agency's rules.
type target struct {
	resident  facility.Resident
	contactID string
	policy    Policy
}

// target checks that a family may deposit to a recipient: their approved contact,
// or anyone at an agency that takes deposits from anyone (but never a contact the
// facility denied), at a facility now.
func (s *Service) target(ctx context.Context, accountID string, to Recipient) (target, error) {
	var t target
	switch {
	case to.ContactID != "":
		if !ids.Valid(to.ContactID) {
			return t, ErrNotFound
		}
		c, err := s.contacts.Get(ctx, accountID, to.ContactID)
		if errors.Is(err, contacts.ErrNotFound) {
			return t, ErrNotFound
		}
		if err != nil {
			return t, err
		}
		t.resident, t.contactID = c.Resident, c.ID
		if t.policy, err = s.Policy(ctx, c.Resident.Agency.ID); err != nil {
			return t, err
		}
		if c.Status == contacts.Denied || c.Status != contacts.Approved && !t.policy.FromAnyone {
			return t, ErrNotAllowed
		}
	case to.ResidentID != "":
		if !ids.Valid(to.ResidentID) {
			return t, ErrNotFound
		}
		r, err := s.fac.Resident(ctx, to.ResidentID)
		if errors.Is(err, facility.ErrNotFound) {
			return t, ErrNotFound
		}
		if err != nil {
			return t, err
		}
		t.resident = r
		if t.policy, err = s.Policy(ctx, r.Agency.ID); err != nil {
			return t, err
		}
		list, err := s.contacts.OfAccount(ctx, accountID)
		if err != nil {
			return t, err
		}
		status := ""
		for _, c := range list {
			if c.Resident.ID == r.ID {
				t.contactID, status = c.ID, c.Status
			}
		}
		if status == contacts.Denied || status != contacts.Approved && !t.policy.FromAnyone {
			return t, ErrNotAllowed
		}
	default:
		return t, ErrNotFound
	}
	if t.resident.Status != "active" {
		return t, ErrResidentGone
	}
	return t, nil
}

// Quote tells a family what a deposit of amount cents would cost and how much the
// limits still allow; amount 0 quotes only the limits.
func (s *Service) Quote(ctx context.Context, accountID string, to Recipient, amount int64) (Quote, error) {
	t, err := s.target(ctx, accountID, to)
	if err != nil {
		return Quote{}, err
	}
	q := Quote{AmountCents: amount, FeeCents: t.policy.Fee(amount), ResidentName: t.resident.FirstName + " " + t.resident.LastName,
		ResidentNumber: t.resident.Number, Facility: t.resident.Facility.Name, Agency: t.resident.Agency.Name, Policy: t.policy}
	if amount == 0 {
		q.FeeCents = 0
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error { // a read, in a transaction to see one moment
		q.Left, err = s.left(ctx, tx, accountID, t)
		return err
	})
	return q, err
}

// left computes how much each limit still allows, inside tx.
func (s *Service) left(ctx context.Context, tx *sql.Tx, accountID string, t target) (Left, error) {
	p, now := t.policy, s.now().UTC()
	l := Left{PerDepositCents: p.MaxDepositCents, SenderDayCents: Unlimited, SenderMonthCents: Unlimited, ResidentMonthCents: Unlimited, BalanceCents: Unlimited}
	sum := func(query string, args ...any) (int64, error) {
		var v int64
		err := s.db.TxQueryRow(ctx, tx, query, args...).Scan(&v)
		return v, err
	}
	if p.SenderDayCents > 0 || p.SenderMonthCents > 0 {
		var day, month int64
		err := s.db.TxQueryRow(ctx, tx, `SELECT COALESCE(SUM(CASE WHEN created_at > $3 THEN amount_cents ELSE 0 END), 0), COALESCE(SUM(amount_cents), 0)
			FROM deposits WHERE account_id = $1 AND agency_id = $2 AND created_at > $4 AND state IN `+counted,
			accountID, t.resident.Agency.ID, now.Add(-24*time.Hour), now.Add(-30*24*time.Hour)).Scan(&day, &month)
		if err != nil {
			return l, fmt.Errorf("deposits: limits: %w", err)
		}
		if p.SenderDayCents > 0 {
			l.SenderDayCents = max(p.SenderDayCents-day, 0)
		}
		if p.SenderMonthCents > 0 {
			l.SenderMonthCents = max(p.SenderMonthCents-month, 0)
		}
	}
	if p.ResidentMonthCents > 0 {
		month, err := sum(`SELECT COALESCE(SUM(amount_cents), 0) FROM deposits WHERE resident_id = $1 AND created_at > $2 AND state IN `+counted,
			t.resident.ID, now.Add(-30*24*time.Hour))
		if err != nil {
			return l, fmt.Errorf("deposits: limits: %w", err)
		}
		l.ResidentMonthCents = max(p.ResidentMonthCents-month, 0)
	}
	if p.MaxBalanceCents > 0 {
		coming, err := sum(`SELECT COALESCE(SUM(amount_cents), 0) FROM deposits WHERE resident_id = $1 AND state IN ('pending', 'held')`, t.resident.ID)
		if err != nil {
			return l, fmt.Errorf("deposits: limits: %w", err)
		}
		balance, err := s.ledger.BalanceTx(ctx, tx, ledger.ResidentOf(t.resident.ID))
		if err != nil {
			return l, err
		}
		l.BalanceCents = max(p.MaxBalanceCents-balance-coming, 0)
	}
	return l, nil
}

// check refuses an amount over a limit, saying which and how much is left.
func (l Left) check(amount int64) error {
	for _, c := range []struct {
		left int64
		err  *problem.Error
	}{{l.SenderDayCents, ErrSenderDay}, {l.SenderMonthCents, ErrSenderMonth}, {l.ResidentMonthCents, ErrResidentMonth}, {l.BalanceCents, ErrMaxBalance}} {
		if c.left != Unlimited && amount > c.left {
			return c.err.With(ledger.Dollars(c.left))
		}
	}
	return nil
}

// checkAmount refuses an amount outside what the agency takes in one deposit.
func (p Policy) checkAmount(amount int64) error {
	if amount < MinDepositCents || amount > p.MaxDepositCents {
		return ErrBadAmount.With(ledger.Dollars(MinDepositCents), ledger.Dollars(p.MaxDepositCents))
	}
	return nil
}

// Check refuses what Deposit would refuse of a quoted deposit from sender before
// charging: the sender's name or address, an amount outside the agency's range, or
// one over a limit (saying how much is left). A page asks it before the family
// types a card; Deposit checks everything again.
func (q Quote) Check(sender Sender) error {
	if _, err := checkSender(sender); err != nil {
		return err
	}
	if err := q.Policy.checkAmount(q.AmountCents); err != nil {
		return err
	}
	return q.Left.check(q.AmountCents)
}

// checkSender cleans and checks who the family says they are.
func checkSender(in Sender) (Sender, error) {
	name, address := textsafe.Name(in.Name), strings.TrimSpace(in.Address)
	if n := utf8.RuneCountInString(name); n < 2 || n > 100 || textsafe.HasHidden(name) || strings.ContainsAny(name, "\r\n") {
		return in, ErrSenderName
	}
	if n := utf8.RuneCountInString(address); n < 5 || n > 300 || textsafe.HasHidden(strings.NewReplacer("\r", "", "\n", "").Replace(address)) {
		return in, ErrSenderAddress
	}
	return Sender{Name: name, Address: strings.Join(strings.Fields(address), " ")}, nil
}

// Deposit charges the family's card and sends the money to the resident's trust
// account: posted at once where the agency allows, otherwise held for its finance
// office. Receipts go by mail. A request with a key seen before returns the
// deposit it made, charging nothing again.
//
// A card the processor declines ends the deposit failed and is returned with the
// error. When the processor does not answer in time, the deposit stays pending and
// is returned without an error: the settle job learns the outcome (the same charge,
// under the same key) and finishes it.
func (s *Service) Deposit(ctx context.Context, accountID string, req Request) (Deposit, error) {
	// A key is required: a request repeated without one could charge twice.
	if req.Key == "" || !ids.ValidKey(req.Key) {
		return Deposit{}, ErrBadKey
	}
	key := "deposit:" + accountID + ":" + req.Key
	if d, err := s.byKey(ctx, key); err == nil {
		return sameDeposit(d, req)
	} else if !errors.Is(err, ErrNotFound) {
		return Deposit{}, err
	}
	token := strings.TrimSpace(req.Token)
	if token == "" {
		return Deposit{}, ErrNoToken
	}
	sender, err := checkSender(req.Sender)
	if err != nil {
		return Deposit{}, err
	}
	t, err := s.target(ctx, accountID, req.Recipient)
	if err != nil {
		return Deposit{}, err
	}
	if err := t.policy.checkAmount(req.AmountCents); err != nil {
		return Deposit{}, err
	}
	if fee := t.policy.Fee(req.AmountCents); req.QuotedFeeCents != nil && *req.QuotedFeeCents != fee {
		return Deposit{}, ErrFeeChanged.With(ledger.Dollars(fee))
	}
	now := s.now().UTC()
	d := Deposit{ID: ids.Ordered(), Confirmation: confirmation(), AgencyID: t.resident.Agency.ID, FacilityID: t.resident.Facility.ID,
		FacilityCode: t.resident.Facility.Code, FacilityName: t.resident.Facility.Name, ResidentID: t.resident.ID, ResidentNumber: t.resident.Number,
		ResidentName: t.resident.FirstName + " " + t.resident.LastName, AccountID: accountID, ContactID: t.contactID,
		AmountCents: req.AmountCents, FeeCents: t.policy.Fee(req.AmountCents), State: Pending, SenderName: sender.Name,
		SenderAddress: sender.Address, Processor: s.processor.Name(), CreatedAt: now}
	replay := false
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Deposits of one sender, and to one resident, are counted one at a time,
		// so parallel requests cannot pass a limit together (SQLite has one writer;
		// on PostgreSQL a lock per sender, then per resident, always in that order).
		if err := s.db.LockChain(ctx, tx, lockKey("deposit-sender:"+accountID)); err != nil {
			return err
		}
		if err := s.db.LockChain(ctx, tx, lockKey("deposit-resident:"+d.ResidentID)); err != nil {
			return err
		}
		left, err := s.left(ctx, tx, accountID, t)
		if err != nil {
			return err
		}
		if err := left.check(d.AmountCents); err != nil {
			return err
		}
		res, err := s.db.TxExec(ctx, tx, `INSERT INTO deposits (id, confirmation, agency_id, facility_id, facility_code, resident_id,
			resident_number, resident_name, account_id, contact_id, amount_cents, fee_cents, state, sender_name, sender_address, email,
			locale, processor, payment_token, idempotency_key, created_at, facility_name)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
			ON CONFLICT (idempotency_key) DO NOTHING`,
			d.ID, d.Confirmation, d.AgencyID, d.FacilityID, d.FacilityCode, d.ResidentID, d.ResidentNumber, d.ResidentName, d.AccountID,
			d.ContactID, d.AmountCents, d.FeeCents, d.State, d.SenderName, d.SenderAddress, req.Email, req.Locale, d.Processor, token, key, now, d.FacilityName)
		if err != nil {
			return fmt.Errorf("deposits: create: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			replay = true // the same key, committed by a parallel request meanwhile
		}
		// If this request never finishes (the server stops, the processor hangs),
		// SweepUnsettled finds the deposit, still holding its card's token, and
		// queues its settle job.
		return nil
	})
	if err != nil {
		return Deposit{}, err
	}
	if replay {
		d, err := s.byKey(ctx, key)
		if err != nil {
			return Deposit{}, err
		}
		return sameDeposit(d, req)
	}
	return s.charge(ctx, d, token, &t.policy)
}

func (s *Service) byKey(ctx context.Context, key string) (Deposit, error) {
	return scanDeposit(s.db.QueryRow(ctx, "SELECT "+depositColumns+" FROM deposits WHERE idempotency_key = $1", key))
}

// sameDeposit answers a request repeated with its key: the deposit it made, or
// ErrKeyReused when the request is not the same.
func sameDeposit(d Deposit, req Request) (Deposit, error) {
	if d.AmountCents != req.AmountCents || (req.ContactID != "" && req.ContactID != d.ContactID) ||
		(req.ResidentID != "" && req.ResidentID != d.ResidentID) {
		return Deposit{}, ErrKeyReused
	}
	return d, nil
}

// confirmation is a number a person can read out: KL- and eight letters and digits
// that cannot be taken for one another (no 0/O, 1/I/L).
func confirmation() string {
	const alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ" // 31 signs
	b := make([]byte, 8)
	rand.Read(b)
	out := []byte("KL-")
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}

func lockKey(s string) int64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return int64(h.Sum64() >> 1)
}

// settleLater queues the settle job of a deposit inside tx, and returns its id.
func (s *Service) settleLater(ctx context.Context, tx *sql.Tx, id string, at time.Time) (int64, error) {
	return jobs.Enqueue(ctx, s.db, tx, SettleJob, settlePayload{ID: id}, jobs.EnqueueOptions{RunAfter: at, MaxAttempts: 40})
}
