package stripepay_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/ledger/stripepay"
	"github.com/kinlink/kinlink/internal/problem"
)

const created = 1767225600 // 2026-01-01 00:00:00 UTC

// event is a webhook body as Stripe sends it, around object.
func event(t *testing.T, id, typ string, object map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": created,
		"data": map[string]any{"object": object}, "livemode": false, "pending_webhooks": 1,
		"request": map[string]any{"id": "req_standin", "idempotency_key": "topup:acct:k1"}, "type": typ,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func intent(id string, amount, received int64, status string) map[string]any {
	return map[string]any{"id": id, "object": "payment_intent", "amount": amount, "amount_received": received,
		"currency": "usd", "status": status, "livemode": false, "created": created,
		"metadata": map[string]string{stripepay.KeyMetadata: "topup:acct:k1"}}
}

func dispute(id, pi string, amount int64) map[string]any {
	return map[string]any{"id": id, "object": "dispute", "amount": amount, "currency": "usd", "charge": "ch_1",
		"payment_intent": pi, "reason": "fraudulent", "status": "needs_response", "created": created, "livemode": false}
}

// signed is the Stripe-Signature header for payload, made now with secret.
func signed(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

func webhookProcessor(t *testing.T) *stripepay.Processor {
	t.Helper()
	p, err := stripepay.New(stripepay.Settings{SecretKey: secretKey, PublishableKey: publishableKey, WebhookSecret: webhookSecret})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWebhookEvents(t *testing.T) {
	p := webhookProcessor(t)
	at := time.Unix(created, 0).UTC()
	for _, tc := range []struct {
		name    string
		payload []byte
		want    ledger.PaymentEvent
	}{
		{"succeeded", event(t, "evt_1", "payment_intent.succeeded", intent("pi_1", 2500, 2500, "succeeded")),
			ledger.PaymentEvent{ID: "evt_1", Kind: ledger.EventChargeSucceeded, ChargeID: "pi_1", AmountCents: 2500, At: at, Key: "topup:acct:k1"}},
		{"failed", event(t, "evt_2", "payment_intent.payment_failed", intent("pi_2", 4000, 0, "requires_payment_method")),
			ledger.PaymentEvent{ID: "evt_2", Kind: ledger.EventChargeFailed, ChargeID: "pi_2", AmountCents: 4000, At: at, Key: "topup:acct:k1"}},
		{"disputed", event(t, "evt_3", "charge.dispute.funds_withdrawn", dispute("dp_1", "pi_3", 1500)),
			ledger.PaymentEvent{ID: "evt_3", Kind: ledger.EventDisputed, ChargeID: "pi_3", AmountCents: 1500, At: at}},
		{"won", event(t, "evt_4", "charge.dispute.funds_reinstated", dispute("dp_1", "pi_3", 1500)),
			ledger.PaymentEvent{ID: "evt_4", Kind: ledger.EventDisputeWon, ChargeID: "pi_3", AmountCents: 1500, At: at}},
	} {
		ev, ok, err := p.ParseWebhook(tc.payload, signed(tc.payload, webhookSecret, time.Now()))
		if err != nil || !ok || ev != tc.want {
			t.Errorf("%s: %+v %v %v, want %+v", tc.name, ev, ok, err, tc.want)
		}
	}
}

// A dispute's payment intent may come expanded, as an object.
func TestWebhookDisputeWithExpandedIntent(t *testing.T) {
	p := webhookProcessor(t)
	d := dispute("dp_2", "", 900)
	d["payment_intent"] = intent("pi_9", 900, 900, "succeeded")
	payload := event(t, "evt_9", "charge.dispute.funds_withdrawn", d)
	ev, ok, err := p.ParseWebhook(payload, signed(payload, webhookSecret, time.Now()))
	if err != nil || !ok || ev.ChargeID != "pi_9" || ev.AmountCents != 900 {
		t.Errorf("%+v %v %v", ev, ok, err)
	}
}

func TestWebhookRefusesBadSignatures(t *testing.T) {
	p := webhookProcessor(t)
	payload := event(t, "evt_1", "payment_intent.succeeded", intent("pi_1", 2500, 2500, "succeeded"))
	tampered := []byte(strings.Replace(string(payload), `"amount_received":2500`, `"amount_received":250000`, 1))
	if string(tampered) == string(payload) {
		t.Fatal("the tampering changed nothing")
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		header  string
	}{
		{"a tampered body", tampered, signed(payload, webhookSecret, time.Now())},
		{"another secret", payload, signed(payload, "whsec_someoneelse", time.Now())},
		{"a stale timestamp", payload, signed(payload, webhookSecret, time.Now().Add(-webhook.DefaultTolerance-time.Minute))},
		{"no header", payload, ""},
		{"a malformed header", payload, "t=now,v1"},
		{"a header without a v1 signature", payload, "t=" + strings.Split(strings.TrimPrefix(signed(payload, webhookSecret, time.Now()), "t="), ",")[0]},
	} {
		ev, ok, err := p.ParseWebhook(tc.payload, tc.header)
		if !errors.Is(err, stripepay.ErrBadSignature) || ok || ev.Kind != "" {
			t.Errorf("%s: %+v %v %v", tc.name, ev, ok, err)
			continue
		}
		if pe, found := problem.As(err); !found || pe.Code != "webhook_signature_invalid" || pe.Kind != problem.Invalid {
			t.Errorf("%s: the refusal is %+v", tc.name, pe)
		}
	}
	// Within the tolerance, an older signature still counts (Stripe retries with
	// a fresh one, but a slow delivery is not a replay).
	if _, ok, err := p.ParseWebhook(payload, signed(payload, webhookSecret, time.Now().Add(-2*time.Minute))); err != nil || !ok {
		t.Errorf("a two-minute-old signature: %v %v", ok, err)
	}
}

// Events Kinlink does not act on are answered (ok false), not refused.
func TestWebhookIgnores(t *testing.T) {
	p := webhookProcessor(t)
	foreign := intent("pi_4", 100, 100, "succeeded")
	delete(foreign, "metadata")
	noIntent := dispute("dp_3", "", 700)
	noIntent["payment_intent"] = nil
	for name, payload := range map[string][]byte{
		"another type":                 event(t, "evt_4", "customer.created", map[string]any{"id": "cus_1", "object": "customer"}),
		"another integration's intent": event(t, "evt_5", "payment_intent.succeeded", foreign),
		"a dispute without an intent":  event(t, "evt_6", "charge.dispute.funds_withdrawn", noIntent),
		"a payment intent created":     event(t, "evt_7", "payment_intent.created", intent("pi_5", 100, 0, "requires_payment_method")),
	} {
		ev, ok, err := p.ParseWebhook(payload, signed(payload, webhookSecret, time.Now()))
		if err != nil || ok || ev.Kind != "" {
			t.Errorf("%s: %+v %v %v", name, ev, ok, err)
		}
	}
}

// A signed event that cannot be read is an error, but not a bad signature: Stripe
// should send it again once the server can read it.
func TestWebhookUnreadable(t *testing.T) {
	p := webhookProcessor(t)
	for name, payload := range map[string][]byte{
		"not JSON":              []byte("{not json"),
		"no payment intent":     event(t, "evt_8", "payment_intent.succeeded", map[string]any{"id": "ch_1", "object": "charge"}),
		"a dispute of nothing":  event(t, "evt_9", "charge.dispute.funds_withdrawn", map[string]any{"id": "dp_4", "object": "dispute"}),
		"an event without time": []byte(`{"id":"evt_10","object":"event","api_version":"` + stripe.APIVersion + `","type":"payment_intent.succeeded","data":{"object":{}}}`),
	} {
		_, ok, err := p.ParseWebhook(payload, signed(payload, webhookSecret, time.Now()))
		if err == nil || ok || errors.Is(err, stripepay.ErrBadSignature) {
			t.Errorf("%s: %v %v", name, ok, err)
		}
	}
}

// An endpoint set to another API version still delivers: the fields read here are
// the same in every version.
func TestWebhookOtherAPIVersion(t *testing.T) {
	p := webhookProcessor(t)
	var e map[string]any
	json.Unmarshal(event(t, "evt_11", "payment_intent.succeeded", intent("pi_11", 600, 600, "succeeded")), &e)
	e["api_version"] = "2024-06-20"
	payload, _ := json.Marshal(e)
	ev, ok, err := p.ParseWebhook(payload, signed(payload, webhookSecret, time.Now()))
	if err != nil || !ok || ev.ChargeID != "pi_11" || ev.AmountCents != 600 {
		t.Errorf("%+v %v %v", ev, ok, err)
	}
}

func TestWebhookEventTypes(t *testing.T) {
	want := []string{"payment_intent.succeeded", "payment_intent.payment_failed", "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated"}
	if strings.Join(stripepay.Events, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v", stripepay.Events, want)
	}
}
