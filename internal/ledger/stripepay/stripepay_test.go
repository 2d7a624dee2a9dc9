// These tests run offline: a local stand-in answers Stripe's API with bodies shaped
// like Stripe's documented responses, and webhooks are signed with stripe-go's own
// test helper. What they do NOT show, because nothing here reaches Stripe:
//
//   - live or test-mode API keys against Stripe itself: that Stripe accepts these
//     exact requests (a tok_… token in payment_method_data, automatic payment
//     methods without redirects), answers them as the stand-in does, and replays a
//     key's first answer as its documentation says;
//   - real 3-D Secure: a card that asks for it, what the family sees, and the
//     webhook that ends it;
//   - a real dispute's lifecycle (charge.dispute.funds_withdrawn, then won or lost, funds
//     withdrawn and reinstated) and real refunds settling;
//   - the Payment Element in a browser with Stripe.js (card.js, the CSP it needs);
//   - API version drift: events from an endpoint set to another API version than
//     stripe-go v82's (2025-08-27.basil) are read with the fields seen here only.
package stripepay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/ledger/stripepay"
	"github.com/kinlink/kinlink/internal/problem"
)

const (
	secretKey      = "sk_test_standin0123456789"
	publishableKey = "pk_test_standin0123456789"
	webhookSecret  = "whsec_standin0123456789"
)

// seen is one request the stand-in got.
type seen struct {
	Path, Key, Auth, Version string
	Form                     url.Values
}

// answer is what the stand-in said, kept by idempotency key as Stripe keeps it.
type answer struct {
	status int
	body   []byte
	form   string // the request's parameters, to refuse the key with others
}

// standIn is a local stand-in for Stripe's API: POST /v1/payment_intents and POST
// /v1/refunds. The payment method (or test token) picks the answer. Like Stripe, it
// saves the first answer to each idempotency key, a 500 included, and gives it back
// to a request repeating the key; the key with other parameters is an
// idempotency_error.
type standIn struct {
	srv     *httptest.Server
	release chan struct{}

	mu       sync.Mutex
	requests []seen
	saved    map[string]answer
	intents  int // payment intents made (replays make none)
	refunds  int
}

func newStandIn(t *testing.T) *standIn {
	s := &standIn{release: make(chan struct{}), saved: map[string]answer{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.release)
		s.srv.Close()
	})
	return s
}

func (s *standIn) processor(t *testing.T, timeout time.Duration) *stripepay.Processor {
	t.Helper()
	p, err := stripepay.New(stripepay.Settings{SecretKey: secretKey, PublishableKey: publishableKey, WebhookSecret: webhookSecret,
		APIURL: s.srv.URL, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *standIn) seen() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.requests...)
}

func (s *standIn) counts() (intents, refunds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.intents, s.refunds
}

func (s *standIn) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	req := seen{Path: r.URL.Path, Key: r.Header.Get("Idempotency-Key"), Auth: r.Header.Get("Authorization"),
		Version: r.Header.Get("Stripe-Version"), Form: form}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	if r.Method != http.MethodPost || (r.URL.Path != "/v1/payment_intents" && r.URL.Path != "/v1/refunds") {
		reply(w, 404, errorBody("invalid_request_error", "resource_missing", "", "Unrecognized request URL."))
		return
	}
	if req.Auth != "Bearer "+secretKey {
		reply(w, 401, errorBody("invalid_request_error", "", "", "Invalid API Key provided."))
		return
	}
	if form.Get("payment_method") == "pm_card_hang" {
		// Never answers: the client's timeout has to end the call.
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	}
	saveAs := r.URL.Path + " " + req.Key
	s.mu.Lock()
	if was, ok := s.saved[saveAs]; req.Key != "" && ok {
		s.mu.Unlock()
		if was.form != form.Encode() {
			reply(w, 400, errorBody("idempotency_error", "", "", "Keys for idempotent requests can only be used with the same parameters they were first used with."))
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		reply(w, was.status, was.body)
		return
	}
	var status int
	var out []byte
	if r.URL.Path == "/v1/refunds" {
		s.refunds++
		status, out = 200, refundBody(fmt.Sprintf("re_standin_%d", s.refunds), form)
	} else {
		status, out = s.paymentIntent(form)
	}
	s.saved[saveAs] = answer{status: status, body: out, form: form.Encode()}
	s.mu.Unlock()
	reply(w, status, out)
}

// paymentIntent answers a PaymentIntent creation, by card. s.mu is held.
func (s *standIn) paymentIntent(form url.Values) (int, []byte) {
	card := form.Get("payment_method")
	if card == "" {
		card = form.Get("payment_method_data[card][token]")
	}
	amount := form.Get("amount")
	switch card {
	case "pm_card_visa", "tok_visa":
		s.intents++
		return 200, intentBody(fmt.Sprintf("pi_standin_%d", s.intents), "succeeded", amount, amount, form)
	case "pm_card_threeDSecure2Required", "tok_threeDSecure2Required":
		s.intents++
		if form.Get("error_on_requires_action") != "true" {
			return 200, intentBody(fmt.Sprintf("pi_standin_%d", s.intents), "requires_action", amount, "0", form)
		}
		// Stripe's answer when the intent would wait for the card holder but the
		// request said it cannot: a card error, the intent back to needing a card.
		return 402, cardError(intentBody(fmt.Sprintf("pi_standin_%d", s.intents), "requires_payment_method", amount, "0", form),
			"authentication_required", "authentication_required", "Your card was declined. This transaction requires authentication.")
	case "pm_card_chargeDeclined", "tok_chargeDeclined":
		s.intents++
		return 402, cardError(intentBody(fmt.Sprintf("pi_standin_%d", s.intents), "requires_payment_method", amount, "0", form),
			"card_declined", "generic_decline", "Your card was declined.")
	case "pm_card_fail500":
		return 500, errorBody("api_error", "", "", "Something went wrong on Stripe's end.")
	default:
		return 400, errorBody("invalid_request_error", "resource_missing", "", "No such PaymentMethod: '"+card+"'")
	}
}

// cardError is Stripe's 402 for a card refused, with the payment intent it left.
func cardError(pi []byte, code, decline, message string) []byte {
	var e map[string]any
	json.Unmarshal(errorBody("card_error", code, decline, message), &e)
	e["error"].(map[string]any)["payment_intent"] = json.RawMessage(pi)
	b, _ := json.Marshal(e)
	return b
}

func reply(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_standin")
	w.WriteHeader(status)
	w.Write(body)
}

// errorBody is Stripe's error shape.
func errorBody(typ, code, decline, message string) []byte {
	e := map[string]any{"type": typ, "message": message}
	if code != "" {
		e["code"] = code
		e["doc_url"] = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-")
	}
	if decline != "" {
		e["decline_code"] = decline
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return b
}

// intentBody is a PaymentIntent as Stripe returns it (the fields that matter, and
// some that do not).
func intentBody(id, status, amount, received string, form url.Values) []byte {
	pi := map[string]any{
		"id": id, "object": "payment_intent", "amount": json.Number(amount), "amount_received": json.Number(received),
		"amount_capturable": 0, "capture_method": "automatic", "confirmation_method": "automatic",
		"client_secret": id + "_secret_standin", "created": time.Now().Unix(), "currency": form.Get("currency"),
		"livemode": false, "status": status, "payment_method": "pm_standin",
		"payment_method_types":      []string{"card"},
		"automatic_payment_methods": map[string]any{"enabled": true, "allow_redirects": "never"},
		"metadata":                  map[string]string{stripepay.KeyMetadata: form.Get("metadata[" + stripepay.KeyMetadata + "]")},
		"latest_charge":             nil,
		"next_action":               nil,
	}
	switch status {
	case "succeeded":
		pi["latest_charge"] = "ch_" + strings.TrimPrefix(id, "pi_")
	case "requires_action":
		pi["next_action"] = map[string]any{"type": "use_stripe_sdk", "use_stripe_sdk": map[string]any{"type": "three_d_secure_redirect"}}
	}
	b, _ := json.Marshal(pi)
	return b
}

func refundBody(id string, form url.Values) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "refund", "amount": json.Number(form.Get("amount")), "currency": "usd",
		"payment_intent": form.Get("payment_intent"), "charge": "ch_standin", "status": "succeeded",
		"created": time.Now().Unix(), "metadata": map[string]string{stripepay.KeyMetadata: form.Get("metadata[" + stripepay.KeyMetadata + "]")},
	})
	return b
}

func TestChargeSucceeds(t *testing.T) {
	s := newStandIn(t)
	p := s.processor(t, 0)
	if p.Name() != "stripe" || p.PublishableKey() != publishableKey {
		t.Errorf("name %q, publishable key %q", p.Name(), p.PublishableKey())
	}
	id, err := p.Charge(context.Background(), "pm_card_visa", 2550, "topup:acct:k1")
	if err != nil || id != "pi_standin_1" {
		t.Fatalf("charge: %q %v", id, err)
	}
	reqs := s.seen()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/v1/payment_intents" || r.Key != "topup:acct:k1" || r.Auth != "Bearer "+secretKey || r.Version != stripe.APIVersion {
		t.Errorf("request: path %s, key %q, auth %q, version %q", r.Path, r.Key, r.Auth, r.Version)
	}
	for field, want := range map[string]string{
		"amount": "2550", "currency": "usd", "confirm": "true", "payment_method": "pm_card_visa",
		"automatic_payment_methods[enabled]": "true", "automatic_payment_methods[allow_redirects]": "never",
		"metadata[kinlink_key]": "topup:acct:k1", "error_on_requires_action": "true",
	} {
		if got := r.Form.Get(field); got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
	if r.Form.Has("payment_method_data[type]") {
		t.Errorf("a PaymentMethod also sent as payment method data: %v", r.Form)
	}
}

// A Stripe test token goes as card payment method data.
func TestChargeWithTestToken(t *testing.T) {
	s := newStandIn(t)
	id, err := s.processor(t, 0).Charge(context.Background(), "tok_visa", 1000, "k-token")
	if err != nil || !strings.HasPrefix(id, "pi_") {
		t.Fatalf("charge: %q %v", id, err)
	}
	f := s.seen()[0].Form
	if f.Get("payment_method_data[type]") != "card" || f.Get("payment_method_data[card][token]") != "tok_visa" || f.Has("payment_method") {
		t.Errorf("form: %v", f)
	}
}

// The same key again is the same payment intent: Stripe answers from its saved
// response and makes no second one.
func TestChargeRepeatedWithItsKeyChargesOnce(t *testing.T) {
	s := newStandIn(t)
	p := s.processor(t, 0)
	first, err := p.Charge(context.Background(), "pm_card_visa", 2000, "k-repeat")
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Charge(context.Background(), "pm_card_visa", 2000, "k-repeat")
	if err != nil || again != first {
		t.Fatalf("repeat: %q %v, first %q", again, err, first)
	}
	if intents, _ := s.counts(); intents != 1 {
		t.Errorf("%d payment intents made, want 1", intents)
	}
	reqs := s.seen()
	if len(reqs) != 2 || reqs[0].Key != reqs[1].Key {
		t.Errorf("requests: %+v", reqs)
	}
	// Another key is another payment.
	if other, err := p.Charge(context.Background(), "pm_card_visa", 2000, "k-other"); err != nil || other == first {
		t.Errorf("another key: %q %v", other, err)
	}
	// The key with another card is refused: Stripe keeps the first request's outcome.
	_, err = p.Charge(context.Background(), "tok_visa", 2000, "k-repeat")
	if !errors.Is(err, ledger.ErrKeyReused) {
		t.Errorf("the key with another card: %v", err)
	}
}

func TestChargeErrors(t *testing.T) {
	s := newStandIn(t)
	p := s.processor(t, 0)
	ctx := context.Background()

	id, err := p.Charge(ctx, "pm_card_chargeDeclined", 2000, "k-declined")
	if !errors.Is(err, ledger.ErrDeclined) || id != "" {
		t.Errorf("a declined card: %q %v", id, err)
	}
	if err != nil && !strings.Contains(err.Error(), "generic_decline") {
		t.Errorf("the decline code is not in the error: %v", err)
	}
	if errors.Is(err, ledger.ErrChargeUnknown) || errors.Is(err, ledger.ErrProcessorFailed) {
		t.Errorf("a decline is also another error: %v", err)
	}

	id, err = p.Charge(ctx, "pm_card_fail500", 2000, "k-500")
	if !errors.Is(err, ledger.ErrChargeUnknown) || id != "" {
		t.Errorf("a 500: %q %v", id, err)
	}
	// Stripe saves a 500 under its key like any answer: the same call again
	// gets it back, and the outcome is still unknown (the webhook tells).
	if _, err := p.Charge(ctx, "pm_card_fail500", 2000, "k-500"); !errors.Is(err, ledger.ErrChargeUnknown) {
		t.Errorf("a 500 again: %v", err)
	}
	var tries int
	for _, r := range s.seen() {
		if r.Key == "k-500" {
			tries++
		}
	}
	if tries != 2 {
		t.Errorf("the 500's key was sent %d times, want 2 (stripe-go retries connection errors only)", tries)
	}

	// A card whose bank asks for 3-D Secure is refused at once, said so, and not
	// left waiting for a step the family's browser never takes.
	id, err = p.Charge(ctx, "pm_card_threeDSecure2Required", 2000, "k-3ds")
	if !errors.Is(err, ledger.ErrNeedsAuthentication) || !errors.Is(err, ledger.ErrDeclined) || errors.Is(err, ledger.ErrChargeUnknown) || id != "" {
		t.Errorf("3-D Secure: %q %v, want a decline that says the bank asks for a confirmation", id, err)
	}
	if pr, ok := problem.As(err); !ok || pr.Code != "card_authentication_required" {
		t.Errorf("3-D Secure answers %+v", pr)
	}

	if _, err := p.Charge(ctx, "pm_no_such_card", 2000, "k-missing"); !errors.Is(err, ledger.ErrProcessorFailed) {
		t.Errorf("a 400: %v", err)
	}
	for _, token := range []string{"", "4242424242424242", "pm_", "pm_x&amount=1", "ch_123"} {
		if _, err := p.Charge(ctx, token, 2000, "k-bad-"+token); !errors.Is(err, ledger.ErrDeclined) {
			t.Errorf("token %q: %v", token, err)
		}
	}
	for _, r := range s.seen() {
		if strings.HasPrefix(r.Key, "k-bad-") {
			t.Errorf("a token that is no Stripe id reached Stripe: %+v", r)
		}
	}

	wrongKey, err := stripepay.New(stripepay.Settings{SecretKey: "sk_test_wrong", WebhookSecret: webhookSecret, APIURL: s.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrongKey.Charge(ctx, "pm_card_visa", 2000, "k-auth"); !errors.Is(err, ledger.ErrProcessorFailed) {
		t.Errorf("a wrong API key: %v", err)
	}
	if strings.Contains(fmt.Sprint(err), "sk_test_wrong") {
		t.Errorf("the error shows the key: %v", err)
	}
}

// A Stripe that does not answer leaves the outcome unknown once the timeout is up,
// not when the connection gives up.
func TestChargeTimesOut(t *testing.T) {
	s := newStandIn(t)
	p := s.processor(t, 300*time.Millisecond)
	start := time.Now()
	id, err := p.Charge(context.Background(), "pm_card_hang", 2000, "k-hang")
	if !errors.Is(err, ledger.ErrChargeUnknown) || id != "" {
		t.Errorf("a hang: %q %v", id, err)
	}
	// The stand-in holds the request until the test ends: an answer well before
	// that came from the timeout.
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("the call took %v with a 300ms timeout", elapsed)
	}
	// So does a caller's deadline shorter than the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.processor(t, time.Minute).Charge(ctx, "pm_card_hang", 2000, "k-hang-2"); !errors.Is(err, ledger.ErrChargeUnknown) {
		t.Errorf("a caller's deadline: %v", err)
	}
}

// Nothing listening is a connection error: unknown, as the request may have left.
func TestChargeWithoutStripe(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	p, err := stripepay.New(stripepay.Settings{SecretKey: secretKey, WebhookSecret: webhookSecret, APIURL: addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Charge(context.Background(), "pm_card_visa", 2000, "k-down"); !errors.Is(err, ledger.ErrChargeUnknown) {
		t.Errorf("no server: %v", err)
	}
}

func TestRefund(t *testing.T) {
	s := newStandIn(t)
	p := s.processor(t, 0)
	ctx := context.Background()
	charge, err := p.Charge(ctx, "pm_card_visa", 3000, "k-charge")
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Refund(ctx, charge, 1250, "refund:k1")
	if err != nil || id != "re_standin_1" {
		t.Fatalf("refund: %q %v", id, err)
	}
	reqs := s.seen()
	r := reqs[len(reqs)-1]
	if r.Path != "/v1/refunds" || r.Key != "refund:k1" || r.Form.Get("payment_intent") != charge || r.Form.Get("amount") != "1250" ||
		r.Form.Get("metadata[kinlink_key]") != "refund:k1" || r.Auth != "Bearer "+secretKey {
		t.Errorf("refund request: %+v", r)
	}
	again, err := p.Refund(ctx, charge, 1250, "refund:k1")
	if err != nil || again != id {
		t.Errorf("the refund again: %q %v", again, err)
	}
	if _, refunds := s.counts(); refunds != 1 {
		t.Errorf("%d refunds made, want 1", refunds)
	}
	if _, err := p.Refund(ctx, "ch_sandbox_abc", 100, "refund:k2"); !errors.Is(err, ledger.ErrProcessorFailed) {
		t.Errorf("a charge that is no payment intent: %v", err)
	}
}

func TestNewRefusesIncompleteSettings(t *testing.T) {
	for _, s := range []stripepay.Settings{
		{WebhookSecret: webhookSecret},
		{SecretKey: secretKey},
		{SecretKey: secretKey, WebhookSecret: webhookSecret, APIURL: "api.stripe.com"},
	} {
		if _, err := stripepay.New(s); err == nil {
			t.Errorf("%+v was accepted", s)
		}
	}
}
