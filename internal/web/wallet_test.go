package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
)

func TestWalletPage(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting)
	w.signUp(t, "ana@example.org")
	_, page := w.get(t, "/wallet")
	if !strings.Contains(page, "Test mode — no real money") || !strings.Contains(page, `id="balance">$0.00<`) {
		t.Fatalf("wallet page:\n%s", page)
	}
	// The sandbox's test cards, a choice that works without JavaScript; nothing of Stripe.
	for _, want := range []string{`<select id="card" name="card">`, `value="tok_visa"`, `value="tok_chargeDeclined"`,
		`value="tok_chargeDeclinedProcessingError"`, `<option value="tok_createDispute">Test card: paid, then disputed by the card holder</option>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the wallet page lacks %s", want)
		}
	}
	if strings.Contains(page, "payment-element") || strings.Contains(page, "stripe") || strings.Contains(page, "card.js") {
		t.Errorf("the sandbox's wallet page has Stripe's card field")
	}
	key := regexp.MustCompile(`name="key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	if res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"2"}, "card": {"tok_visa"}}); res.StatusCode != 400 || !strings.Contains(page, "from $5 to $500") {
		t.Errorf("$2: %d", res.StatusCode)
	}
	// An amount is dollars and cents as typed, never a rounding of something else.
	for _, typed := range []string{"10.005", "1e2", "5.0000001", "ten", "-20", "20.", ""} {
		if res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {typed}, "card": {"tok_visa"}}); res.StatusCode != 400 ||
			!strings.Contains(page, "dollars and cents") || !strings.Contains(page, `value="`+typed+`"`) {
			t.Errorf("amount %q: %d", typed, res.StatusCode)
		}
	}
	// A form whose key no page of ours makes is refused plainly, keeping the amount.
	if res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {strings.Repeat("k", 200)}, "amount": {"20"}, "card": {"tok_visa"}}); res.StatusCode != 400 ||
		!strings.Contains(page, "nothing was charged") || !strings.Contains(page, `value="20"`) {
		t.Errorf("a form with an overlong key: %d\n%s", res.StatusCode, page)
	}
	if res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"20"}, "card": {"tok_chargeDeclined"}}); res.StatusCode != 402 || !strings.Contains(page, "declined") || !strings.Contains(page, `value="20"`) {
		t.Errorf("declined: %d", res.StatusCode)
	}
	// A double submit of the same form adds the money once.
	for range 2 {
		if res, _ := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"20.50"}, "card": {"tok_visa"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("top-up: %d", res.StatusCode)
		}
	}
	_, page = w.get(t, "/wallet?done=topup")
	if !strings.Contains(page, `id="balance">$20.50<`) || !strings.Contains(page, "+$20.50") {
		t.Fatalf("after top-up:\n%s", page)
	}
	// A decimal comma is read as Spanish speakers write it.
	key = regexp.MustCompile(`name="key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	if res, _ := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"$ 5,5"}, "card": {"tok_visa"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("top-up of 5,5: %d", res.StatusCode)
	}
	if _, page = w.get(t, "/wallet"); !strings.Contains(page, `id="balance">$26.00<`) {
		t.Errorf("5,5 was not read as $5.50")
	}
	// Every page says test mode while the sandbox takes payments.
	for _, path := range []string{"/help", "/people", "/account"} {
		if _, page := w.get(t, path); !strings.Contains(page, `id="test-mode"`) {
			t.Errorf("%s does not say test mode", path)
		}
	}
}

var refundKey = regexp.MustCompile(`action="/wallet/refunds"[^>]*>\s*<input type="hidden" name="key" value="([0-9a-f]+)"`)

// A family has its unused balance back on its cards from the wallet page, with a
// plain form: in full, with no fee, once however often the form is sent, and the
// page and the mail say so.
func TestWalletRefundPage(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		w.signUp(t, "ana@example.org")
		_, page := w.get(t, "/wallet")
		if !strings.Contains(page, "Refund my balance") || !strings.Contains(page, "there is nothing to refund") || strings.Contains(page, `id="refund-submit"`) {
			t.Fatalf("an empty wallet's refund section:\n%s", page)
		}
		// Sent anyway (an old page): refused in words, in the refund section.
		res, page := w.post(t, "/wallet/refunds", url.Values{"key": {"0123abcd"}})
		if res.StatusCode != http.StatusConflict || !strings.Contains(page, "There is no money in your wallet to refund.") {
			t.Fatalf("refund of an empty wallet: %d\n%s", res.StatusCode, page)
		}
		if i, j := strings.Index(page, `id="form-message"`), strings.Index(page, `id="refund-title"`); i < j {
			t.Errorf("the refusal is not said in the refund section")
		}

		w.topUp(t, "20")
		w.topUp(t, "5.50")
		_, page = w.get(t, "/wallet")
		if !strings.Contains(page, "All of it, $25.50, goes back to the card or cards you paid with: in full, with no fee.") ||
			!strings.Contains(page, "Refund $25.50 to my card") || !strings.Contains(page, "money in your wallet is yours") {
			t.Fatalf("the refund section:\n%s", page)
		}
		key := refundKey.FindStringSubmatch(page)
		if key == nil {
			t.Fatalf("no refund form with a key:\n%s", page)
		}
		// A double submit refunds once.
		for range 2 {
			res, _ := w.post(t, "/wallet/refunds", url.Values{"key": {key[1]}})
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/wallet?done=refund" {
				t.Fatalf("refund: %d %s", res.StatusCode, res.Header.Get("Location"))
			}
		}
		_, page = w.get(t, "/wallet?done=refund")
		if !strings.Contains(page, "Your refund is on its way to your card, in full and with no fee.") || !strings.Contains(page, `id="balance">$0.00<`) ||
			strings.Count(page, "Refunded to your card") != 1 || strings.Count(page, "-$25.50") != 1 {
			t.Fatalf("after the refund:\n%s", page)
		}
		jobs := w.JobsSettled(t)
		if n := apptest.Succeeded(jobs, "ledger.wallet_refund"); n != 1 {
			t.Errorf("%d refund jobs succeeded", n)
		}
		if _, page = w.get(t, "/wallet"); !strings.Contains(page, "Refunded to your card · back on your card") || !strings.Contains(page, "there is nothing to refund") {
			t.Errorf("the refund once the processor confirmed:\n%s", page)
		}
		m := mailAbout(t, w, "ana@example.org", "Refund: $25.50")
		if !strings.Contains(m.Text, "in full and with no fee") || !strings.Contains(m.Text, "Card payments:  2") || !strings.Contains(m.Text, "TEST MODE") {
			t.Errorf("the receipt: %s\n%s", m.Subject, m.Text)
		}
		if out := w.operator(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger: %s", out)
		}
		// The help page says how.
		if _, page := w.get(t, "/help"); !strings.Contains(page, "How do I get the money in my wallet back?") {
			t.Errorf("the help page does not say how to get the money back")
		}
	})
}

// stripeStandIn answers the one Stripe call a top-up makes, as Stripe would:
// pm_card_visa succeeds, any other card is declined. It records the forms. The
// lists the server's daily reconciliation reads (GET) are answered empty, and are
// not what the tests count.
func stripeStandIn(t *testing.T) (*httptest.Server, func() []url.Values) {
	var mu sync.Mutex
	var forms []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"object":"list","url":%q,"has_more":false,"data":[]}`, r.URL.Path)
			return
		}
		r.ParseForm()
		mu.Lock()
		forms = append(forms, r.PostForm)
		n := len(forms)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/payment_intents" || r.PostForm.Get("payment_method") != "pm_card_visa" {
			w.WriteHeader(402)
			fmt.Fprint(w, `{"error":{"type":"card_error","code":"card_declined","decline_code":"generic_decline","message":"Your card was declined."}}`)
			return
		}
		fmt.Fprintf(w, `{"id":"pi_web_%d","object":"payment_intent","amount":%s,"amount_received":%s,"currency":"usd","status":"succeeded"}`,
			n, r.PostForm.Get("amount"), r.PostForm.Get("amount"))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []url.Values {
		mu.Lock()
		defer mu.Unlock()
		return append([]url.Values(nil), forms...)
	}
}

// With Stripe, the card is Stripe's Payment Element, which card.js turns into a
// PaymentMethod id sent as "card"; the server charges it through Stripe. Without
// JavaScript no card can be given, and the page says why.
func TestWalletWithStripe(t *testing.T) {
	stripe, forms := stripeStandIn(t)
	w := startWith(t, dbtest.Engines(t)[0].Setting, map[string]string{
		"KINLINK_PAYMENT_PROCESSOR": "stripe", "KINLINK_STRIPE_SECRET_KEY": "sk_test_0123456789abcdef",
		"KINLINK_STRIPE_PUBLISHABLE_KEY": "pk_test_0123456789abcdef", "KINLINK_STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
		"KINLINK_STRIPE_API_URL": stripe.URL,
	})
	w.signUp(t, "ana@example.org")
	_, page := w.get(t, "/wallet")
	for _, want := range []string{`<div id="payment-element" data-stripe-key="pk_test_0123456789abcdef" data-amount="2500" data-locale="en"`,
		`<input type="hidden" name="card" id="card-token" value="">`, `<script src="https://js.stripe.com/v3/" defer></script>`,
		`<script src="/static/card.js" defer></script>`, "needs JavaScript"} {
		if !strings.Contains(page, want) {
			t.Errorf("the wallet page lacks %s", want)
		}
	}
	for _, not := range []string{`<select id="card"`, "tok_visa", `id="test-mode"`, "sk_test_", "whsec_"} {
		if strings.Contains(page, not) {
			t.Errorf("the wallet page with Stripe has %s", not)
		}
	}
	if res, _ := w.get(t, "/static/card.js"); res.StatusCode != 200 {
		t.Errorf("card.js: %d", res.StatusCode)
	}
	key := regexp.MustCompile(`name="key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	// No JavaScript: no card.
	if res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"30"}, "card": {""}}); res.StatusCode != 400 || !strings.Contains(page, `value="30"`) {
		t.Errorf("no card: %d", res.StatusCode)
	}
	if len(forms()) != 0 {
		t.Errorf("Stripe was asked without a card: %v", forms())
	}
	res, page := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"30"}, "card": {"pm_card_declined"}})
	if res.StatusCode != 402 || !strings.Contains(page, "declined") {
		t.Errorf("declined: %d", res.StatusCode)
	}
	// The amount the page shows goes to the Payment Element, as it was typed.
	if !strings.Contains(page, `data-amount="3000"`) {
		t.Errorf("the page after a decline does not carry the typed amount to the card field")
	}
	key = regexp.MustCompile(`name="key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	if res, _ := w.post(t, "/wallet/top-ups", url.Values{"key": {key}, "amount": {"30"}, "card": {"pm_card_visa"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("top-up: %d", res.StatusCode)
	}
	if _, page = w.get(t, "/wallet"); !strings.Contains(page, `id="balance">$30.00<`) {
		t.Errorf("the balance after a Stripe top-up:\n%s", page)
	}
	sent := forms()
	if last := sent[len(sent)-1]; last.Get("amount") != "3000" || last.Get("currency") != "usd" || last.Get("payment_method") != "pm_card_visa" ||
		!strings.HasSuffix(last.Get("metadata[kinlink_key]"), ":"+key) {
		t.Errorf("what Stripe was asked: %v", last)
	}
}
