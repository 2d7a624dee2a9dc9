package stripepay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/kinlink/kinlink/internal/ledger"
)

var _ ledger.Statement = (*Processor)(nil)

// DisputeLookBack is how long before a period disputes are listed for the money
// they moved in it: Stripe lists disputes by when they were opened, and one is
// decided (its money reinstated) weeks to months later.
const DisputeLookBack = 180 * 24 * time.Hour

// pageSize is how many objects a list request asks for: Stripe's most.
const pageSize = 100

// CardMovements lists Stripe's movements of Kinlink's card money made at or after
// from and before to, reading every page of three lists: PaymentIntents created in
// the period that succeeded (charges, by the amount received), Refunds created in
// it (CardRefunds: pending ones count, as Refund counts them; failed or canceled
// ones are listed as undone), and Disputes with their balance transactions in it
// (the money withdrawn: a chargeback; the money reinstated: a dispute lost by the
// card holder). Payments without Kinlink's key (another integration on the same
// account) are left out, and so are their refunds and disputes: those are told
// apart by their payment's key, which a refund made outside Kinlink (the
// Dashboard) has though it has none itself. Each request takes at most the
// processor's timeout.
func (p *Processor) CardMovements(ctx context.Context, from, to time.Time) ([]ledger.CardMovement, error) {
	var out []ledger.CardMovement
	in := func(unix int64) bool {
		t := time.Unix(unix, 0)
		return !t.Before(from) && t.Before(to)
	}
	period := &stripe.RangeQueryParams{GreaterThanOrEqual: from.Unix(), LesserThan: ceilUnix(to)}

	intents := &stripe.PaymentIntentListParams{CreatedRange: period}
	intents.Limit = stripe.Int64(pageSize)
	for pi, err := range p.client.V1PaymentIntents.List(ctx, intents) {
		if err != nil {
			return nil, listFailed("payment intents", err)
		}
		key := pi.Metadata[KeyMetadata]
		if key == "" || pi.Status != stripe.PaymentIntentStatusSucceeded || !in(pi.Created) {
			continue
		}
		out = append(out, ledger.CardMovement{CardRef: ledger.CardRef{Kind: ledger.CardCharge, ID: pi.ID, ChargeID: pi.ID},
			AmountCents: pi.AmountReceived, At: time.Unix(pi.Created, 0).UTC(), Key: key})
	}

	refunds, err := p.CardRefunds(ctx, from, to)
	if err != nil {
		return nil, err
	}
	out = append(out, refunds...)

	// The disputed payment is expanded: its metadata says whether it is Kinlink's.
	disputes := &stripe.DisputeListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: from.Add(-DisputeLookBack).Unix(), LesserThan: ceilUnix(to)}}
	disputes.Limit = stripe.Int64(pageSize)
	disputes.AddExpand("data.payment_intent")
	for d, err := range p.client.V1Disputes.List(ctx, disputes) {
		if err != nil {
			return nil, listFailed("disputes", err)
		}
		if d.PaymentIntent == nil || d.PaymentIntent.Metadata[KeyMetadata] == "" {
			continue
		}
		for _, bt := range d.BalanceTransactions {
			if bt == nil || bt.Amount == 0 || !in(bt.Created) {
				continue
			}
			m := ledger.CardMovement{CardRef: ledger.CardRef{Kind: ledger.CardChargeback, ID: d.ID, ChargeID: d.PaymentIntent.ID},
				AmountCents: -bt.Amount, At: time.Unix(bt.Created, 0).UTC()}
			if bt.Amount > 0 {
				m.Kind, m.AmountCents = ledger.CardChargebackReversed, bt.Amount
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// CardRefunds lists the refunds of Kinlink's payments made at or after from and
// before to, every page. Whose a refund is, its payment says (expanded): one made
// in Stripe's Dashboard, or by Radar, on Kinlink's payment carries no key of its
// own and is Kinlink's money all the same. A refund that failed (its card closed:
// the money came back to the platform's balance) or was canceled is listed with
// Undone set, at the time of its failure's balance transaction (expanded), or of
// the refund itself where it has none.
func (p *Processor) CardRefunds(ctx context.Context, from, to time.Time) ([]ledger.CardMovement, error) {
	var out []ledger.CardMovement
	params := &stripe.RefundListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: from.Unix(), LesserThan: ceilUnix(to)}}
	params.Limit = stripe.Int64(pageSize)
	params.AddExpand("data.payment_intent")
	params.AddExpand("data.failure_balance_transaction")
	for re, err := range p.client.V1Refunds.List(ctx, params) {
		if err != nil {
			return nil, listFailed("refunds", err)
		}
		created := time.Unix(re.Created, 0).UTC()
		if re.PaymentIntent == nil || re.PaymentIntent.Metadata[KeyMetadata] == "" || created.Before(from) || !created.Before(to) {
			continue
		}
		m := ledger.CardMovement{CardRef: ledger.CardRef{Kind: ledger.CardRefund, ID: re.ID, ChargeID: re.PaymentIntent.ID},
			AmountCents: re.Amount, At: created, Key: re.Metadata[KeyMetadata]}
		if re.Status == stripe.RefundStatusFailed || re.Status == stripe.RefundStatusCanceled {
			m.Undone, m.UndoneAt = string(re.Status), created
			if bt := re.FailureBalanceTransaction; bt != nil && bt.Created != 0 {
				m.UndoneAt = time.Unix(bt.Created, 0).UTC()
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// ceilUnix is the first whole second at or after t: Stripe's times are seconds.
func ceilUnix(t time.Time) int64 {
	if t.Equal(t.Truncate(time.Second)) {
		return t.Unix()
	}
	return t.Unix() + 1
}

// listFailed says why a list could not be read, in Stripe's words where it gave
// them; no movement is returned then, rather than part of a statement.
func listFailed(what string, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		return fmt.Errorf("stripepay: list %s: %s", what, describe(se))
	}
	return fmt.Errorf("stripepay: list %s: %w", what, err)
}
