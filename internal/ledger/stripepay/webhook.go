package stripepay

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
)

// ErrBadSignature refuses a webhook whose Stripe-Signature header is missing or
// malformed, does not sign the body with the endpoint's secret, or was made longer
// ago than the tolerance (webhook.DefaultTolerance, five minutes): a replay.
var ErrBadSignature = problem.Declare(problem.Invalid, "webhook_signature_invalid",
	"stripepay: the webhook's signature is missing, wrong or too old")

// The Stripe events Kinlink reads; the webhook endpoint is subscribed to these.
const (
	EventPaymentSucceeded = "payment_intent.succeeded"
	EventPaymentFailed    = "payment_intent.payment_failed"
	// EventDisputeFundsWithdrawn is a chargeback: Stripe took the disputed amount
	// from the account. A dispute that takes nothing (an inquiry,
	// charge.dispute.created with a warning_ status) is not one.
	EventDisputeFundsWithdrawn = "charge.dispute.funds_withdrawn"
	// EventDisputeFundsReinstated is a dispute won: Stripe gave the disputed
	// amount back.
	EventDisputeFundsReinstated = "charge.dispute.funds_reinstated"
)

// Events are the event types to subscribe the webhook endpoint to.
var Events = []string{EventPaymentSucceeded, EventPaymentFailed, EventDisputeFundsWithdrawn, EventDisputeFundsReinstated}

// ParseWebhook checks a webhook's signature (the Stripe-Signature header) and reads
// it as a payment event: payment_intent.succeeded as ledger.EventChargeSucceeded
// (the amount received), payment_intent.payment_failed as ledger.EventChargeFailed,
// charge.dispute.funds_withdrawn as ledger.EventDisputed (the amount taken, ChargeID
// the disputed PaymentIntent), charge.dispute.funds_reinstated as
// ledger.EventDisputeWon (the amount given back). The event's ID is Stripe's event id, the same on every
// redelivery, so it is applied once; At is when Stripe made it.
//
// ok is false for an event Kinlink does not act on (another type, or a
// PaymentIntent Kinlink did not make): answer it 200 all the same, or Stripe sends
// it again. A bad, missing or stale signature is ErrBadSignature; a signed event
// that cannot be read is another error (answer 500: Stripe retries for days).
//
// Stripe reports every payment, not only those whose outcome was unknown: a
// payment_intent.succeeded follows each successful Charge, and a
// payment_intent.payment_failed each decline.
func (p *Processor) ParseWebhook(payload []byte, signatureHeader string) (ev ledger.PaymentEvent, ok bool, err error) {
	// The default tolerance stands; the API version check does not: the few
	// fields read here (ids, amounts, the dispute's payment intent) have kept
	// their shape across API versions, while an endpoint left at the account's
	// default version would have every event refused.
	event, err := webhook.ConstructEventWithOptions(payload, signatureHeader, p.webhookSecret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		if errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrInvalidHeader) ||
			errors.Is(err, webhook.ErrNoValidSignature) || errors.Is(err, webhook.ErrTooOld) {
			return ev, false, fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		return ev, false, fmt.Errorf("stripepay: webhook: %v", err)
	}
	if event.ID == "" || event.Data == nil || event.Created <= 0 {
		return ev, false, fmt.Errorf("stripepay: webhook: event %q lacks its id, time or object", event.ID)
	}
	ev = ledger.PaymentEvent{ID: event.ID, At: time.Unix(event.Created, 0).UTC()}
	switch string(event.Type) {
	case EventPaymentSucceeded, EventPaymentFailed:
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(event.Data.Raw, &pi); err != nil || pi.Object != "payment_intent" || !validToken(pi.ID, "pi_") {
			return ev, false, fmt.Errorf("stripepay: webhook: event %s (%s) does not carry a payment intent", event.ID, event.Type)
		}
		if pi.Metadata[KeyMetadata] == "" {
			return ev, false, nil // another integration's payment on the same account
		}
		ev.ChargeID, ev.Key = pi.ID, pi.Metadata[KeyMetadata]
		if event.Type == EventPaymentSucceeded {
			ev.Kind, ev.AmountCents = ledger.EventChargeSucceeded, pi.AmountReceived
		} else {
			ev.Kind, ev.AmountCents = ledger.EventChargeFailed, pi.Amount
		}
	case EventDisputeFundsWithdrawn, EventDisputeFundsReinstated:
		var d stripe.Dispute
		if err := json.Unmarshal(event.Data.Raw, &d); err != nil || d.Object != "dispute" || d.Amount <= 0 {
			return ev, false, fmt.Errorf("stripepay: webhook: event %s (%s) does not carry a dispute", event.ID, event.Type)
		}
		if d.PaymentIntent == nil || !validToken(d.PaymentIntent.ID, "pi_") {
			return ev, false, nil // a charge made without a PaymentIntent: not Kinlink's
		}
		ev.Kind, ev.ChargeID, ev.AmountCents = ledger.EventDisputed, d.PaymentIntent.ID, d.Amount
		if event.Type == EventDisputeFundsReinstated {
			ev.Kind = ledger.EventDisputeWon
		}
	default:
		return ev, false, nil
	}
	return ev, true, nil
}
