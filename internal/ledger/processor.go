package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/kinlink/kinlink/internal/problem"
)

// A Processor charges and refunds cards through a payment processor. It receives
// the processor's token for a card, never a card number, and every call carries an
// idempotency key: the same key charges or refunds once, so a call repeated after a
// crash or a timeout learns what the first one did instead of doing it again.
type Processor interface {
	// Name is the processor's name, "sandbox" for the built-in test processor.
	Name() string
	// Charge takes amount cents from the card of token. It fails with ErrDeclined
	// or ErrProcessorFailed when nothing was charged, and with ErrChargeUnknown
	// when it cannot tell (a timeout): then the same call again finds out.
	Charge(ctx context.Context, token string, amountCents int64, idempotencyKey string) (chargeID string, err error)
	// Refund gives amount cents of a charge back to its card.
	Refund(ctx context.Context, chargeID string, amountCents int64, idempotencyKey string) (refundID string, err error)
}

// Processor errors.
var (
	ErrDeclined = problem.Declare(problem.Payment, "payment_declined", "ledger: the card was declined")
	// ErrNeedsAuthentication is a decline because the card's bank asks its holder
	// to confirm the payment (3-D Secure), which Kinlink's payment forms do not
	// do: the family is told at once to use another card, and nothing is charged.
	// It comes wrapped with ErrDeclined, so it is a decline wherever one is.
	ErrNeedsAuthentication = problem.Declare(problem.Payment, "card_authentication_required", "ledger: the card's bank asks for a confirmation Kinlink cannot take")
	ErrProcessorFailed     = problem.Declare(problem.Upstream, "payment_processor_error", "ledger: the payment processor failed").After(30 * time.Second)
	// ErrChargeUnknown: the processor did not answer in time, so whether the card
	// was charged is not known yet; asking again with the same key tells.
	ErrChargeUnknown = problem.Declare(problem.Upstream, "payment_unconfirmed", "ledger: the payment processor did not confirm the charge in time").After(time.Minute)
)

// Kinds of payment events: what a processor reports after the fact.
const (
	// EventChargeSucceeded: a charge whose outcome was not known succeeded.
	EventChargeSucceeded = "charge.succeeded"
	// EventChargeFailed: a charge whose outcome was not known failed.
	EventChargeFailed = "charge.failed"
	// EventDisputed: the card holder disputed the charge and the processor took
	// the money back (a chargeback).
	EventDisputed = "charge.disputed"
	// EventDisputeWon: the card holder's dispute failed, and the processor gave
	// back what the chargeback had taken.
	EventDisputeWon = "charge.dispute_won"
)

// PaymentEvent is one thing a processor reports: by webhook (Stripe) or by
// itself (the sandbox). Each is applied once, by its ID.
type PaymentEvent struct {
	ID          string
	Kind        string
	ChargeID    string
	AmountCents int64
	At          time.Time
	// Key is the idempotency key the charge was made under, where the processor
	// reports it (Stripe keeps it in the payment's metadata): it finds a charge
	// whose id never reached us (a timeout, an error answered under its key).
	Key string
}

// Sandbox is the built-in test processor: no real money moves. It accepts the test
// tokens of Stripe's test mode: tok_visa succeeds; tok_createDispute succeeds, and
// then the card holder disputes it (reported to Report after DisputeAfter);
// tok_chargeDeclined is declined, tok_threeDSecure2Required is declined because its
// bank asks for a confirmation (ErrNeedsAuthentication), tok_chargeDeclinedProcessingError
// fails in the processor; any other token is declined. Refunds always succeed.
type Sandbox struct {
	// Report receives the sandbox's disputes; nil drops them.
	Report func(context.Context, PaymentEvent)
	// DisputeAfter is how long after the charge a dispute comes (default 2 s).
	DisputeAfter time.Duration
}

// Sandbox test tokens.
const (
	SandboxCard      = "tok_visa"
	SandboxDisputed  = "tok_createDispute"
	SandboxDeclined  = "tok_chargeDeclined"
	SandboxFailing   = "tok_chargeDeclinedProcessingError"
	SandboxNeedsAuth = "tok_threeDSecure2Required"
	sandboxIDPrefix  = "ch_sandbox_"
	sandboxRefPrefix = "re_sandbox_"
)

// Name is "sandbox".
func (Sandbox) Name() string { return "sandbox" }

// Charge succeeds for tok_visa and tok_createDispute, with a charge id derived from
// the key, so a retry with the same key is the same charge.
func (s Sandbox) Charge(_ context.Context, token string, amountCents int64, key string) (string, error) {
	switch token {
	case SandboxCard:
		return sandboxID(sandboxIDPrefix, key), nil
	case SandboxDisputed:
		id := sandboxID(sandboxIDPrefix, key)
		if s.Report != nil {
			after := s.DisputeAfter
			if after <= 0 {
				after = 2 * time.Second
			}
			time.AfterFunc(after, func() {
				s.Report(context.Background(), PaymentEvent{ID: sandboxID("evt_sandbox_", key), Kind: EventDisputed,
					ChargeID: id, AmountCents: amountCents, At: time.Now().UTC(), Key: key})
			})
		}
		return id, nil
	case SandboxFailing:
		return "", ErrProcessorFailed
	case SandboxNeedsAuth:
		return "", NeedsAuthentication("sandbox")
	default:
		return "", ErrDeclined
	}
}

// Refund succeeds, with a refund id derived from the key.
func (Sandbox) Refund(_ context.Context, chargeID string, amountCents int64, key string) (string, error) {
	return sandboxID(sandboxRefPrefix, key), nil
}

func sandboxID(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(sum[:12])
}

// NeedsAuthentication is the decline of a card whose bank asks for a confirmation:
// ErrNeedsAuthentication, which is ErrDeclined too (errors.Is), with what says so.
func NeedsAuthentication(what string) error {
	return fmt.Errorf("%s: %w: %w", what, ErrNeedsAuthentication, ErrDeclined)
}
