// Package stripepay is the Stripe payment processor: a ledger.Processor that charges
// cards with PaymentIntents confirmed on the server, refunds them, and reads Stripe's
// signed webhooks as ledger.PaymentEvents. Card numbers never reach Kinlink: the
// family's browser turns the card into a PaymentMethod (pm_…) with Stripe.js, and
// only that id comes to the server.
//
// Each Processor has its own Stripe client and settings; nothing here is global, so
// two processors (a test's stand-in and another) never share a key or a URL.
package stripepay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/kinlink/kinlink/internal/ledger"
)

// Name is the processor's name, as KINLINK_PAYMENT_PROCESSOR says it.
const Name = "stripe"

// DefaultTimeout is how long one call to Stripe may take, retries included, when
// Settings.Timeout is not set.
const DefaultTimeout = 20 * time.Second

// KeyMetadata is the PaymentIntent and Refund metadata entry that carries Kinlink's
// idempotency key: in Stripe's dashboard and in its webhooks, each payment says
// which top-up it was, also when its outcome was not known at the time.
const KeyMetadata = "kinlink_key"

// Settings are what a Processor needs.
type Settings struct {
	SecretKey      string // sk_… or a restricted rk_… key: server side only
	PublishableKey string // pk_…: for Stripe.js in the family's browser
	WebhookSecret  string // whsec_…: the signing secret of the webhook endpoint
	// APIURL is where Stripe's API is reached; "" is Stripe's own
	// (https://api.stripe.com). Tests point it at a local stand-in.
	APIURL string
	// Timeout bounds each call, its retry included (default 20 s). Past it the
	// outcome of a charge is unknown (ledger.ErrChargeUnknown).
	Timeout time.Duration
}

// Processor charges and refunds through Stripe.
type Processor struct {
	client        *stripe.Client
	publishable   string
	webhookSecret string
	timeout       time.Duration
}

var _ ledger.Processor = (*Processor)(nil)

// New returns a Processor with a Stripe client of its own.
func New(s Settings) (*Processor, error) {
	if s.SecretKey == "" || s.WebhookSecret == "" {
		return nil, errors.New("stripepay: a secret key and a webhook signing secret are needed")
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cfg := &stripe.BackendConfig{
		HTTPClient: &http.Client{Timeout: timeout},
		// Errors come back to the caller, who logs them once; the library's own
		// logger would print to stderr past the server's log.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		// One quick retry (same idempotency key) smooths a dropped connection;
		// beyond it, retrying is the caller's: ledger.ErrChargeUnknown.
		MaxNetworkRetries: stripe.Int64(1),
	}
	if s.APIURL != "" {
		u, err := url.Parse(s.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("stripepay: the API URL %q is not an http(s) URL", s.APIURL)
		}
		cfg.URL = stripe.String(strings.TrimSuffix(s.APIURL, "/"))
	}
	client := stripe.NewClient(s.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg)))
	return &Processor{client: client, publishable: s.PublishableKey, webhookSecret: s.WebhookSecret, timeout: timeout}, nil
}

// Name is "stripe".
func (*Processor) Name() string { return Name }

// PublishableKey is the key Stripe.js needs in the family's browser.
func (p *Processor) PublishableKey() string { return p.publishable }

// Charge creates and confirms a PaymentIntent of amount cents in USD, cards only
// (automatic payment methods without redirects), under the idempotency key: the
// same key again gets Stripe's first answer back (for 24 hours), never a second
// charge. token is a PaymentMethod id (pm_…, made by Stripe.js in the browser), or
// a Stripe test token (tok_…), which Stripe turns into a PaymentMethod.
//
// It returns the PaymentIntent's id (pi_…) when it succeeded. Errors:
//   - ledger.ErrDeclined: the card was refused (a card_error); nothing was charged.
//     A card whose bank asks for 3-D Secure is refused too (error_on_requires_action),
//     as ledger.ErrNeedsAuthentication as well.
//   - ledger.ErrProcessorFailed: Stripe refused the request (another 4xx: a bad key,
//     a rate limit); nothing was charged.
//   - ledger.ErrKeyReused: the key was used before with other details (another
//     card); that earlier request's outcome stands, nothing was charged now.
//   - ledger.ErrChargeUnknown: no answer in time, a connection error or a 5xx;
//     whether the card was charged is not known. The same call again (same key,
//     token and amount, within 24 hours) gets Stripe's saved answer, except for a
//     5xx, which Stripe saves too: then the outcome comes by webhook.
//   - ledger.ErrChargeUnknown together with the PaymentIntent's id (both returned):
//     the intent is processing (or in a state this flow never asks for); its
//     outcome comes by webhook (payment_intent.succeeded or .payment_failed).
func (p *Processor) Charge(ctx context.Context, token string, amountCents int64, key string) (string, error) {
	params := &stripe.PaymentIntentCreateParams{
		Amount:   stripe.Int64(amountCents),
		Currency: stripe.String(string(stripe.CurrencyUSD)),
		Confirm:  stripe.Bool(true),
		AutomaticPaymentMethods: &stripe.PaymentIntentCreateAutomaticPaymentMethodsParams{
			Enabled:        stripe.Bool(true),
			AllowRedirects: stripe.String("never"),
		},
		Metadata: map[string]string{KeyMetadata: key},
		// A card whose bank asks for 3-D Secure fails at once with
		// authentication_required instead of waiting for a step in the family's
		// browser that Kinlink's forms do not take: the family is told to use
		// another card, rather than seeing a deposit pending for days.
		ErrorOnRequiresAction: stripe.Bool(true),
	}
	switch {
	case validToken(token, "pm_"):
		params.PaymentMethod = stripe.String(token)
	case validToken(token, "tok_"):
		// stripe-go's typed parameters have no card hash here (a server must not
		// send card numbers), but Stripe takes a card token in it.
		params.PaymentMethodData = &stripe.PaymentIntentCreatePaymentMethodDataParams{Type: stripe.String("card")}
		params.AddExtra("payment_method_data[card][token]", token)
	default:
		return "", fmt.Errorf("stripepay: charge: the token is not a Stripe PaymentMethod or test token: %w", ledger.ErrDeclined)
	}
	params.SetIdempotencyKey(key)
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	pi, err := p.client.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return "", classify("charge", err)
	}
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		return pi.ID, nil
	case stripe.PaymentIntentStatusRequiresPaymentMethod, stripe.PaymentIntentStatusCanceled:
		// Refused without an error answer: nothing was charged.
		return "", fmt.Errorf("stripepay: charge: payment intent %s is %s: %w", pi.ID, pi.Status, ledger.ErrDeclined)
	default:
		// requires_action (3-D Secure), processing, or a state this flow never
		// asks for: Stripe reports the end by webhook.
		return pi.ID, fmt.Errorf("stripepay: charge: payment intent %s is %s: %w", pi.ID, pi.Status, ledger.ErrChargeUnknown)
	}
}

// Refund gives amount cents of the PaymentIntent chargeID back to its card, under
// the idempotency key, and returns the refund's id (re_…). A refund Stripe accepted
// but has not finished (pending) counts as made. Errors are Charge's.
func (p *Processor) Refund(ctx context.Context, chargeID string, amountCents int64, key string) (string, error) {
	if !validToken(chargeID, "pi_") {
		return "", fmt.Errorf("stripepay: refund: %q is not a Stripe payment intent: %w", chargeID, ledger.ErrProcessorFailed)
	}
	params := &stripe.RefundCreateParams{
		PaymentIntent: stripe.String(chargeID),
		Amount:        stripe.Int64(amountCents),
		Metadata:      map[string]string{KeyMetadata: key},
	}
	params.SetIdempotencyKey(key)
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	re, err := p.client.V1Refunds.Create(ctx, params)
	if err != nil {
		return "", classify("refund", err)
	}
	switch re.Status {
	case stripe.RefundStatusFailed, stripe.RefundStatusCanceled:
		return "", fmt.Errorf("stripepay: refund %s is %s: %w", re.ID, re.Status, ledger.ErrProcessorFailed)
	}
	return re.ID, nil
}

// classify turns a failed call into the ledger's processor errors, keeping Stripe's
// words (type, code, request id) for the log.
func classify(what string, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		// A timeout, a dropped connection, an answer that is not Stripe's JSON:
		// the request may have been carried out.
		return fmt.Errorf("stripepay: %s: %v: %w", what, err, ledger.ErrChargeUnknown)
	}
	words := describe(se)
	switch {
	case se.Type == stripe.ErrorTypeCard && (se.Code == stripe.ErrorCodeAuthenticationRequired || se.DeclineCode == stripe.DeclineCodeAuthenticationRequired):
		return ledger.NeedsAuthentication("stripepay: " + what + ": " + words)
	case se.Type == stripe.ErrorTypeCard:
		return fmt.Errorf("stripepay: %s: %s: %w", what, words, ledger.ErrDeclined)
	case se.Type == stripe.ErrorTypeIdempotency:
		// The key went with other details before (another card after a
		// decline): Stripe keeps the first request's outcome for that key.
		return fmt.Errorf("stripepay: %s: %s: %w", what, words, ledger.ErrKeyReused)
	case se.HTTPStatusCode == http.StatusConflict, se.HTTPStatusCode == http.StatusTooManyRequests:
		// Another request with the same key is still running, or Stripe asks us
		// to slow down: nothing is known yet, and asking again later tells.
		return fmt.Errorf("stripepay: %s: %s: %w", what, words, ledger.ErrChargeUnknown)
	case se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500:
		return fmt.Errorf("stripepay: %s: %s: %w", what, words, ledger.ErrProcessorFailed)
	default:
		return fmt.Errorf("stripepay: %s: %s: %w", what, words, ledger.ErrChargeUnknown)
	}
}

// describe is a Stripe error in one line without the objects it carries.
func describe(se *stripe.Error) string {
	s := fmt.Sprintf("stripe %d %s", se.HTTPStatusCode, se.Type)
	if se.Code != "" {
		s += " " + string(se.Code)
	}
	if se.DeclineCode != "" {
		s += " (" + string(se.DeclineCode) + ")"
	}
	if se.PaymentIntent != nil && se.PaymentIntent.ID != "" {
		s += " payment intent " + se.PaymentIntent.ID
	}
	if se.RequestID != "" {
		s += " request " + se.RequestID
	}
	if se.Msg != "" {
		s += ": " + se.Msg
	}
	return s
}

// validToken is a Stripe id of the kind prefix says: letters, digits and
// underscores, as long as Stripe's ids get.
func validToken(s, prefix string) bool {
	if !strings.HasPrefix(s, prefix) || len(s) == len(prefix) || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
