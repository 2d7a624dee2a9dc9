// Package deposits owns deposits of money from families' cards to residents' trust
// accounts: each agency's rules (fees, limits, who may deposit, whether deposits
// wait for the finance office), the deposit's life from the charge to the posting
// or the refund, chargebacks, and the agency's trust-accounting feed and daily
// report. Its tables are deposit_policies, deposits, payment_events, deposit_feed,
// deposit_feed_keys and deposit_reports; money moves only through internal/ledger.
//
// A deposit is written before the card is charged, the charge carries the
// deposit's own idempotency key, and every later step is a ledger transaction with
// a key of its own: a server that stops at any point finds the deposit again (the
// settle job) and finishes it without charging, posting or refunding twice.
package deposits

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
)

// States of a deposit. Pending: written, the card being charged or the charge not
// yet confirmed. Held: paid, waiting for the facility's finance office. Posted: in
// the trust account. The rest are ends: rejected by the facility, cancelled by the
// family, refunded by the system (the resident left before it could be posted) —
// each refunded to the card —, failed (the card was not charged) and reversed (a
// chargeback).
const (
	Pending   = "pending"
	Held      = "held"
	Posted    = "posted"
	Rejected  = "rejected"
	Cancelled = "cancelled"
	Refunded  = "refunded"
	Failed    = "failed"
	Reversed  = "reversed"
)

// States lists every state, in the order the portal's filter offers them.
func States() []string {
	return []string{Pending, Held, Posted, Rejected, Cancelled, Refunded, Failed, Reversed}
}

// SystemReason reports whether a deposit's reason is one of the system's codes
// (which pages word in the reader's language) rather than a staff member's words.
func SystemReason(reason string) bool {
	switch reason {
	case "payment_declined", "card_authentication_required", "payment_processor_error", "cancelled_by_family",
		"resident_released", "resident_transferred", "disputed":
		return true
	}
	return false
}

// Refusals, each with its stable code.
var (
	ErrNotFound  = problem.Declare(problem.NotFound, "not_found", "deposits: not found")
	ErrBadPolicy = problem.Declare(problem.Invalid, "invalid_request", "deposits: the policy has fields out of range").
			Say("form.error.invalid")
	ErrBadAmount = problem.Declare(problem.Invalid, "deposit_amount", "deposits: the amount is not one the agency takes").
			On("amount_cents", "range").Say("deposits.refused.amount")
	ErrNoToken = problem.Declare(problem.Invalid, "payment_token_required", "deposits: a deposit needs a card").
			On("payment_token", "required").Say("wallet.choose_card")
	ErrSenderName = problem.Declare(problem.Invalid, "invalid_request", "deposits: the sender's name is 2 to 100 characters of text").
			On("sender_name", "invalid").Say("deposits.refused.sender_name")
	ErrSenderAddress = problem.Declare(problem.Invalid, "invalid_request", "deposits: the sender's address is 5 to 300 characters of text").
				On("sender_address", "invalid").Say("deposits.refused.sender_address")
	// ErrNotAllowed is a resident the family may not deposit to: not an approved
	// contact where the agency takes deposits only from those.
	ErrNotAllowed = problem.Declare(problem.Forbidden, "deposit_not_allowed", "deposits: the agency takes deposits for this person only from approved contacts").
			Say("deposits.refused.not_allowed")
	ErrResidentGone = problem.Declare(problem.Conflict, "resident_not_here", "deposits: the person is no longer at a facility").
			Say("deposits.refused.gone")
	// ErrLimit is a deposit over one of the agency's limits; its Left says how
	// much may still be deposited (With names the limit).
	ErrSenderDay = problem.Declare(problem.Conflict, "deposit_limit_sender_day", "deposits: over the sender's daily limit").
			Say("deposits.refused.sender_day")
	ErrSenderMonth = problem.Declare(problem.Conflict, "deposit_limit_sender_month", "deposits: over the sender's monthly limit").
			Say("deposits.refused.sender_month")
	ErrResidentMonth = problem.Declare(problem.Conflict, "deposit_limit_resident_month", "deposits: over the person's monthly limit").
				Say("deposits.refused.resident_month")
	ErrMaxBalance = problem.Declare(problem.Conflict, "deposit_limit_balance", "deposits: the trust account would pass the most it may hold").
			Say("deposits.refused.max_balance")
	ErrKeyReused = problem.Declare(problem.Conflict, "idempotency_key_reused", "deposits: the idempotency key was used for another deposit").
			Say("deposits.refused.key_reused")
	ErrBadKey = problem.Declare(problem.Invalid, "invalid_idempotency_key", "deposits: a deposit needs an idempotency key of up to 150 visible characters").
			On("Idempotency-Key", "invalid")
	// ErrFeeChanged is a deposit whose fee is not the one the family was shown
	// (the agency changed its fees meanwhile): nothing is charged.
	ErrFeeChanged = problem.Declare(problem.Conflict, "fee_changed", "deposits: the fee changed since it was shown").
			Say("deposits.refused.fee_changed")
	// ErrDecided is a deposit no longer in a state the action applies to.
	ErrDecided = problem.Declare(problem.Conflict, "deposit_settled", "deposits: the deposit can no longer be changed that way").
			Say("deposits.refused.settled")
	ErrNeedReason = problem.Declare(problem.Invalid, "invalid_request", "deposits: a rejection needs a reason of up to 500 characters").
			On("reason", "required").Say("deposits.refused.reason")
)

// Deposit is one deposit, as its family and the facility's staff see it.
type Deposit struct {
	ID           string
	Confirmation string // what a person reads out on the phone: "KL-7H3K-92QX"
	AgencyID     string
	FacilityID   string
	FacilityCode string
	FacilityName string
	ResidentID   string
	// ResidentNumber and ResidentName are as they were at the deposit.
	ResidentNumber string
	ResidentName   string
	AccountID      string
	ContactID      string
	AmountCents    int64
	FeeCents       int64
	State          string
	// Reason is why a deposit ended without posting or was reversed: a staff
	// member's words, or a code of the system's ("payment_declined", "disputed",
	// "resident_released").
	Reason        string
	SenderName    string
	SenderAddress string
	Processor     string
	ChargeID      string
	Charged       bool
	// Refund is "due" while money is on its way back to the card, "done" after.
	Refund   string
	RefundID string
	// DisputedCents is what a chargeback took back through the card company; a
	// refund still due sends the rest.
	DisputedCents int64
	// RefundedCents is what has gone back to the card so far.
	RefundedCents int64
	CreatedAt     time.Time
	PostedAt      time.Time // zero until posted
	EndedAt       time.Time // zero until it ended
	DecidedBy     string
	// refundAsked is what the refund under way asked the processor for.
	refundAsked int64
	// email and locale are where the family's mails about it go, and in which
	// language: read with the deposit, so a mail written inside a transaction
	// needs no read of its own.
	email, locale string
}

// TotalCents is what the card pays: the deposit and its fee.
func (d Deposit) TotalCents() int64 { return d.AmountCents + d.FeeCents }

// RefundCents is what a refund sends back to the card: the total, less what a
// chargeback took back and what was refunded already.
func (d Deposit) RefundCents() int64 {
	return max(d.TotalCents()-d.DisputedCents-d.RefundedCents, 0)
}

// Open reports whether the family may still cancel it.
func (d Deposit) Open() bool { return d.State == Pending || d.State == Held }

// Service is the deposits use cases.
type Service struct {
	db        *database.DB
	fac       *facility.Service
	contacts  *contacts.Service
	ledger    *ledger.Ledger
	processor ledger.Processor
	log       *slog.Logger
	wake      func() // tells job workers that work was queued
	jobs      *jobs.Runner
	now       func() time.Time
	// chargeTimeout bounds one call to the processor; past it the charge's outcome
	// is unknown and the settle job finds it out.
	chargeTimeout time.Duration
	// settleAfter is how long the settle job waits for a request to finish its
	// own deposit before it looks.
	settleAfter time.Duration
	pace        *feedPace // reads of the trust feed, per agency
	// wallets take the processor's events about top-ups, which come to the same
	// webhook; nil drops them.
	wallets *ledger.Wallets
}

// NewService returns the service, charging through processor. runner is the
// server's job runner, told when mail or a settle job was queued, and handed a
// deposit's receipt; nil leaves jobs in the table for whoever runs them (tests).
func NewService(db *database.DB, fac *facility.Service, c *contacts.Service, l *ledger.Ledger, processor ledger.Processor, log *slog.Logger, runner *jobs.Runner) *Service {
	wake := func() {}
	if runner != nil {
		wake = runner.Poke
	}
	return &Service{db: db, fac: fac, contacts: c, ledger: l, processor: processor, log: log, wake: wake, jobs: runner, now: time.Now,
		chargeTimeout: 30 * time.Second, settleAfter: 2 * time.Minute, pace: newFeedPace(FeedPagesPerSecond)}
}

// SetClock makes the service read the time from now: tests live on a day of their
// choosing.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// SetChargeTimeout bounds each call to the processor (30 s by default).
func (s *Service) SetChargeTimeout(d time.Duration) { s.chargeTimeout = d }

// SetSettleAfter sets how long after a deposit its settle job looks at it (2
// minutes by default; KINLINK_DEPOSIT_SETTLE_AFTER).
func (s *Service) SetSettleAfter(d time.Duration) { s.settleAfter = d }

// SetFeedPace sets how many pages of the trust feed one agency may read a second
// (FeedPagesPerSecond by default; KINLINK_DEPOSIT_FEED_PACE), with ten times as
// many at once.
func (s *Service) SetFeedPace(pagesPerSecond int) { s.pace = newFeedPace(pagesPerSecond) }

// SetWallets gives the service the family wallets, whose top-ups' disputes come
// in with the processor's events.
func (s *Service) SetWallets(w *ledger.Wallets) { s.wallets = w }

// Processor is the payment processor deposits are charged through.
func (s *Service) Processor() ledger.Processor { return s.processor }

// holdOf is the ledger account a deposit's money waits in between the charge and
// the posting or the refund.
func holdOf(depositID string) ledger.Ref { return ledger.HoldFor("deposit:" + depositID) }

// Ledger keys of a deposit's movements: one each, so a step repeated after a crash
// moves nothing twice.
func chargeKey(id string) string     { return "deposit:" + id + ":charge" }
func postKey(id string) string       { return "deposit:" + id + ":post" }
func refundKey(id string) string     { return "deposit:" + id + ":refund" }
func chargebackKey(id string) string { return "deposit:" + id + ":chargeback" }
func disputeWonKey(id string) string { return "deposit:" + id + ":dispute-won" }

// refundKeyOf is the key of a deposit's next refund, for the processor and the
// ledger: the first is refundKey; a second (a won dispute's money, after the rest
// was refunded) is told apart by what went back before it.
func refundKeyOf(d Deposit) string {
	if d.RefundedCents == 0 {
		return refundKey(d.ID)
	}
	return refundKey(d.ID) + ":" + strconv.FormatInt(d.RefundedCents, 10)
}
