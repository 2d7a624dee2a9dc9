package web_test

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ledger"
)

var (
	depositPath = regexp.MustCompile(`^/deposits/([0-9a-f]{32})\?sent=1$`)
	payKey      = regexp.MustCompile(`name="key" value="([0-9a-f]{32})"`)
)

// ana is the sender every deposit test types.
var ana = url.Values{"sender_name": {"Ana García"}, "sender_address": {"12 Palm Street\nMiami, FL 33101"}}

// quote fills in the first step for a recipient ("contact" or "resident" with its
// id) and returns the answer: the confirmation, or the first step again.
func (w *world) quote(t *testing.T, to url.Values, amount string, sender url.Values) (*http.Response, string) {
	t.Helper()
	form := url.Values{"amount": {amount}}
	for k, v := range to {
		form[k] = v
	}
	for k, v := range sender {
		form[k] = v
	}
	return w.post(t, "/deposits/quote", form)
}

// pay posts a confirmation page's own form with a card.
func (w *world) pay(t *testing.T, confirmation, card string) (*http.Response, string) {
	t.Helper()
	form := url.Values{"card": {card}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`).FindAllStringSubmatch(confirmation, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if form.Get("key") == "" {
		t.Fatalf("no key on the confirmation:\n%s", confirmation)
	}
	return w.post(t, "/deposits", form)
}

// depositDesk is the agency's side of deposits: its administrator's access and the
// deposits service on the running server's database, to set policies as the
// portal will.
type depositDesk struct {
	deposits *deposits.Service
	admin    facility.Access
	agency   facility.Agency
}

func openDepositDesk(t *testing.T, w *world) *depositDesk {
	t.Helper()
	ctx := context.Background()
	dom := serverDomain(t, w)
	w.enrolStaff(t, "fl.admin@example.org", "staff pass 42!", "--role", "agency_admin")
	acct, err := dom.id.AccountByEmail(ctx, "fl.admin@example.org")
	if err != nil {
		t.Fatal(err)
	}
	d := &depositDesk{deposits: deposits.NewService(dom.db, dom.fac, contacts.NewService(dom.db, dom.fac), ledger.New(dom.db), &ledger.Sandbox{},
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil)}
	if d.admin, err = dom.fac.AccessOf(ctx, acct.ID); err != nil {
		t.Fatal(err)
	}
	if d.agency, err = dom.fac.AgencyByCode(ctx, "FLDOC"); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *depositDesk) policy(t *testing.T, change func(p *deposits.Policy)) {
	t.Helper()
	p := deposits.DefaultPolicy()
	change(&p)
	if err := d.deposits.SetPolicy(context.Background(), d.admin, d.agency.ID, p); err != nil {
		t.Fatal(err)
	}
}

func TestDepositFromAContactReachesTheKiosk(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, fsp := approvedContact(t, w, "ana@example.org")
		to := url.Values{"contact": {contact}}

		_, people := w.get(t, "/people")
		if !strings.Contains(people, `href="/deposits/new?contact=`+contact+`"`) || !strings.Contains(people, `id="money-link"`) {
			t.Fatalf("My people offers no Send money, or the menu no Money:\n%s", people)
		}
		res, page := w.get(t, "/deposits/new?contact="+contact)
		if res.StatusCode != 200 || !strings.Contains(page, "José García") || !strings.Contains(page, "From $1.00 to $300.00 in one deposit") ||
			!strings.Contains(page, "up to $300.00") || !strings.Contains(page, `name="sender_name" value="Ana García"`) ||
			!strings.Contains(page, "shown on the next page, before you pay") || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("the first step: %d\n%s", res.StatusCode, page)
		}
		w.get(t, "/lang?to=es&next=/people")
		if _, page := w.get(t, "/deposits/new?contact="+contact); !strings.Contains(page, "Monto en dólares") || !strings.Contains(page, "Quién envía") {
			t.Errorf("the first step in Spanish:\n%s", page)
		}
		w.get(t, "/lang?to=en&next=/people")

		// The confirmation names the fee (none by default) and the total before the card.
		res, confirm := w.quote(t, to, "25", ana)
		if res.StatusCode != 200 || !strings.Contains(confirm, `id="deposit-fee">$0.00<`) || !strings.Contains(confirm, `id="deposit-total">$25.00<`) ||
			!strings.Contains(confirm, "Pay $25.00") || !strings.Contains(confirm, `value="tok_createDispute"`) {
			t.Fatalf("the confirmation: %d\n%s", res.StatusCode, confirm)
		}
		// Changing it goes back with what was typed.
		if res, page := w.post(t, "/deposits/edit", url.Values{"contact": {contact}, "amount": {"25.00"}, "sender_name": ana["sender_name"],
			"sender_address": ana["sender_address"]}); res.StatusCode != 200 || !strings.Contains(page, `value="25.00"`) || !strings.Contains(page, "12 Palm Street") {
			t.Errorf("back to change: %d\n%s", res.StatusCode, page)
		}

		// The same form posted twice makes one deposit.
		res, _ = w.pay(t, confirm, "tok_visa")
		m := depositPath.FindStringSubmatch(res.Header.Get("Location"))
		if res.StatusCode != http.StatusSeeOther || m == nil {
			t.Fatalf("pay: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		id := m[1]
		if res, _ := w.pay(t, confirm, "tok_visa"); res.Header.Get("Location") != "/deposits/"+id+"?sent=1" {
			t.Errorf("the same form again: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		_, list := w.get(t, "/deposits")
		if n := strings.Count(list, `href="/deposits/`); n != 1 || !strings.Contains(list, "José García") || !strings.Contains(list, "Posted") {
			t.Fatalf("money sent lists %d deposits:\n%s", n, list)
		}

		res, page = w.get(t, "/deposits/"+id+"?sent=1")
		conf := regexp.MustCompile(`id="deposit-confirmation">(KL-[A-Z0-9]{4}-[A-Z0-9]{4})<`).FindStringSubmatch(page)
		if res.StatusCode != 200 || conf == nil || !strings.Contains(page, `id="deposit-state">Posted<`) ||
			!strings.Contains(page, "The money is in José García") || !strings.Contains(page, `id="deposit-total">$25.00<`) ||
			strings.Contains(page, `id="cancel"`) || !strings.Contains(page, `id="deposit-sent"`) {
			t.Fatalf("the deposit: %d\n%s", res.StatusCode, page)
		}
		if !strings.Contains(list, conf[1]) {
			t.Errorf("money sent does not show the confirmation number %s", conf[1])
		}
		receipt := mailAbout(t, w, "ana@example.org", "Receipt: $25.00 for José García")
		if !strings.Contains(receipt.Text, conf[1]) {
			t.Errorf("the receipt does not carry %s:\n%s", conf[1], receipt.Text)
		}

		// José sees it at the kiosk, with who sent it.
		kiosk := residentAtKiosk(t, w, fsp)
		if _, home := kiosk.get(t, "/kiosk"); !strings.Contains(home, `href="/kiosk/trust"`) {
			t.Fatalf("the kiosk home has no Money:\n%s", home)
		}
		res, trust := kiosk.get(t, "/kiosk/trust")
		if res.StatusCode != 200 || !strings.Contains(trust, `id="trust-balance">$25.00<`) || !strings.Contains(trust, "Ana García") ||
			!strings.Contains(trust, conf[1]) || !strings.Contains(trust, `<body class="kiosk">`) || strings.Contains(trust, "Palm Street") ||
			res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("the kiosk's money: %d\n%s", res.StatusCode, trust)
		}

		// Another family knows nothing of it.
		other := w.browser(t)
		other.signUp(t, "bo@example.org")
		for _, path := range []string{"/deposits/" + id, "/deposits/new?contact=" + contact} {
			if res, _ := other.get(t, path); res.StatusCode != http.StatusNotFound {
				t.Errorf("another family's %s: %d", path, res.StatusCode)
			}
		}
		if res, _ := other.post(t, "/deposits/"+id+"/cancel", nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("another family cancels: %d", res.StatusCode)
		}
		if _, list := other.get(t, "/deposits"); strings.Contains(list, conf[1]) || !strings.Contains(list, `id="no-deposits"`) {
			t.Errorf("another family's money sent shows the deposit")
		}
	})
}

func TestDepositFeesLimitsDeclinesAndCancellation(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		to := url.Values{"contact": {contact}}
		desk := openDepositDesk(t, w)
		desk.policy(t, func(p *deposits.Policy) {
			p.PostAtOnce, p.MaxDepositCents, p.SenderDayCents = false, 5000, 6000
			p.FeeTiers = []deposits.FeeTier{{UpToCents: 2000, FeeCents: 195}, {UpToCents: 5000, FeeCents: 395}}
		})

		// The agency's fee is shown before paying.
		res, confirm := w.quote(t, to, "20", ana)
		if res.StatusCode != 200 || !strings.Contains(confirm, `id="deposit-fee">$1.95<`) || !strings.Contains(confirm, `id="deposit-total">$21.95<`) ||
			!strings.Contains(confirm, "Pay $21.95") || !strings.Contains(confirm, "reviews deposits before posting") {
			t.Fatalf("the confirmation with a fee: %d\n%s", res.StatusCode, confirm)
		}
		// Over the most one deposit may be, refused with the amounts, keeping what was typed.
		res, page := w.quote(t, to, "60", ana)
		if res.StatusCode != 400 || !strings.Contains(page, `id="amount-error">Enter an amount from $1.00 to $50.00`) ||
			!strings.Contains(page, `value="60"`) || !strings.Contains(page, "12 Palm Street") || !strings.Contains(page, `aria-invalid="true"`) {
			t.Errorf("over the limit: %d\n%s", res.StatusCode, page)
		}
		for _, typed := range []string{"ten", "-5", "1e2", ""} {
			if res, page := w.quote(t, to, typed, ana); res.StatusCode != 400 || !strings.Contains(page, "dollars and cents") {
				t.Errorf("amount %q: %d", typed, res.StatusCode)
			}
		}
		if res, page := w.quote(t, to, "20", url.Values{"sender_name": {"A"}, "sender_address": ana["sender_address"]}); res.StatusCode != 400 ||
			!strings.Contains(page, `id="sender_name-error">Write your full name`) || !strings.Contains(page, `value="20"`) {
			t.Errorf("no sender name: %d\n%s", res.StatusCode, page)
		}

		// A declined card: the confirmation again, as typed, and the attempt kept as not paid.
		res, page = w.pay(t, confirm, "tok_chargeDeclined")
		if res.StatusCode != http.StatusPaymentRequired || !strings.Contains(page, "declined") || !strings.Contains(page, `name="amount" value="20.00"`) ||
			!strings.Contains(page, `name="sender_name" value="Ana García"`) || !strings.Contains(page, `id="deposit-attempt"`) ||
			!strings.Contains(page, `<option value="tok_chargeDeclined" selected>`) {
			t.Fatalf("declined: %d\n%s", res.StatusCode, page)
		}
		if payKey.FindStringSubmatch(page)[1] == payKey.FindStringSubmatch(confirm)[1] {
			t.Errorf("the confirmation after a decline pays with the declined attempt's key")
		}
		if _, list := w.get(t, "/deposits"); !strings.Contains(list, "Not paid") {
			t.Errorf("the declined attempt is not listed as not paid:\n%s", list)
		}
		// A card whose bank asks for 3-D Secure: told so, to try another card.
		res, page = w.pay(t, page, "tok_threeDSecure2Required")
		if res.StatusCode != http.StatusPaymentRequired || !strings.Contains(page, "confirm this payment (3-D Secure)") || !strings.Contains(page, `name="amount" value="20.00"`) {
			t.Fatalf("a card that needs its bank's confirmation: %d\n%s", res.StatusCode, page)
		}

		// Paid with another card, it waits for the facility, and counts against the day's limit.
		res, _ = w.pay(t, page, "tok_visa")
		m := depositPath.FindStringSubmatch(res.Header.Get("Location"))
		if m == nil {
			t.Fatalf("pay: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		path := "/deposits/" + m[1]
		if _, page := w.get(t, path); !strings.Contains(page, `id="deposit-state">Waiting for the facility<`) || !strings.Contains(page, "you can cancel until then") ||
			!strings.Contains(page, `action="`+path+`/cancel"`) {
			t.Fatalf("a held deposit:\n%s", page)
		}
		if res, page := w.quote(t, to, "45", ana); res.StatusCode != http.StatusConflict || !strings.Contains(page, "You can send up to $40.00 now") {
			t.Errorf("over the day's limit: %d\n%s", res.StatusCode, page)
		}

		// Cancelled, it goes back to the card in full.
		if res, _ := w.post(t, path+"/cancel", nil); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != path+"?cancelled=1" {
			t.Fatalf("cancel: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if _, page := w.get(t, path+"?cancelled=1"); !strings.Contains(page, `id="deposit-state">Cancelled<`) || strings.Contains(page, `id="cancel"`) ||
			!regexp.MustCompile(`id="deposit-refund">\$21\.95 (is on its way back to|was refunded to) your card`).MatchString(page) {
			t.Fatalf("the cancelled deposit:\n%s", page)
		}
		mailAbout(t, w, "ana@example.org", "Refunded: your deposit of $20.00")
		if _, page := w.get(t, path); !strings.Contains(page, `id="deposit-refund">$21.95 was refunded to your card`) {
			t.Errorf("the refund is not done:\n%s", page)
		}
		if res, _ := w.post(t, path+"/cancel", nil); res.StatusCode != http.StatusConflict {
			t.Errorf("cancelled twice: %d", res.StatusCode)
		}
	})
}

func TestDepositToAPersonFoundWhereAnyoneMaySend(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		setupAgency(t, w)
		w.importRoster(t, roster)
		desk := openDepositDesk(t, w)
		w.signUp(t, "bo@example.org")
		search := "/people?agency=FLDOC&resident_id=A100"
		_, page := w.get(t, search)
		resident := regexp.MustCompile(`name="resident" value="([0-9a-f]{32})"`).FindStringSubmatch(page)
		if resident == nil || strings.Contains(page, "/deposits/new?resident=") {
			t.Fatalf("the search offers money where only contacts may send it:\n%s", page)
		}
		if res, page := w.get(t, "/deposits/new?resident="+resident[1]); res.StatusCode != http.StatusForbidden || !strings.Contains(page, "only from contacts it has approved") {
			t.Errorf("a stranger's deposit where only contacts may send: %d\n%s", res.StatusCode, page)
		}

		desk.policy(t, func(p *deposits.Policy) { p.FromAnyone = true })
		if _, page := w.get(t, search); !strings.Contains(page, `href="/deposits/new?resident=`+resident[1]+`"`) || !strings.Contains(page, `value="`+resident[1]+`"`) {
			t.Fatalf("the search offers no Send money (or no longer Add):\n%s", page)
		}
		to := url.Values{"resident": {resident[1]}}
		res, confirm := w.quote(t, to, "15.50", ana)
		if res.StatusCode != 200 || !strings.Contains(confirm, `id="deposit-total">$15.50<`) || !strings.Contains(confirm, `name="resident"`) {
			t.Fatalf("the confirmation to a person found: %d\n%s", res.StatusCode, confirm)
		}
		if res, _ := w.pay(t, confirm, "tok_visa"); depositPath.FindStringSubmatch(res.Header.Get("Location")) == nil {
			t.Fatalf("pay: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if _, list := w.get(t, "/deposits"); !strings.Contains(list, "José García") || !strings.Contains(list, "$15.50") {
			t.Errorf("money sent:\n%s", list)
		}
	})
}

func TestKioskTrustShowsSendersOnlyWhereTheAgencySaysSo(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, fsp := approvedContact(t, w, "ana@example.org")
		desk := openDepositDesk(t, w)
		desk.policy(t, func(p *deposits.Policy) { p.ShowSender = false })
		kiosk := residentAtKiosk(t, w, fsp)
		if _, page := kiosk.get(t, "/kiosk/trust"); !strings.Contains(page, `id="trust-balance">$0.00<`) || !strings.Contains(page, `id="trust-none"`) {
			t.Fatalf("the kiosk's money before any deposit:\n%s", page)
		}
		_, confirm := w.quote(t, url.Values{"contact": {contact}}, "40", ana)
		if res, _ := w.pay(t, confirm, "tok_visa"); depositPath.FindStringSubmatch(res.Header.Get("Location")) == nil {
			t.Fatalf("pay: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		_, page := kiosk.get(t, "/kiosk/trust")
		if !strings.Contains(page, `id="trust-balance">$40.00<`) || !regexp.MustCompile(`<strong>\$40\.00</strong>`).MatchString(page) ||
			!regexp.MustCompile(`KL-[A-Z0-9]{4}-[A-Z0-9]{4}`).MatchString(page) || strings.Contains(page, "Ana") {
			t.Fatalf("the kiosk's money where senders are not shown:\n%s", page)
		}
		// Signed out, or on a browser that is no kiosk, the page shows nothing of it.
		kiosk.post(t, "/kiosk/logout", nil)
		for _, b := range []*world{kiosk, w} {
			if res, page := b.get(t, "/kiosk/trust"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/kiosk" || strings.Contains(page, "$40.00") {
				t.Errorf("the kiosk's money signed out: %d %s", res.StatusCode, res.Header.Get("Location"))
			}
		}
	})
}

// With Stripe, the deposit's card is Stripe's card field for the total with its
// fee (the sandbox's test cards are gone), and the PaymentMethod it makes pays the
// deposit through Stripe under the deposit's own key.
func TestDepositWithStripe(t *testing.T) {
	stripe, forms := stripeStandIn(t)
	w := startWith(t, dbtest.Engines(t)[0].Setting, map[string]string{
		"KINLINK_PAYMENT_PROCESSOR": "stripe", "KINLINK_STRIPE_SECRET_KEY": "sk_test_0123456789abcdef",
		"KINLINK_STRIPE_PUBLISHABLE_KEY": "pk_test_0123456789abcdef", "KINLINK_STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
		"KINLINK_STRIPE_API_URL": stripe.URL,
	})
	contact, _ := approvedContact(t, w, "ana@example.org")
	res, confirm := w.quote(t, url.Values{"contact": {contact}}, "30", ana)
	if res.StatusCode != 200 || !strings.Contains(confirm, `<div id="payment-element" data-stripe-key="pk_test_0123456789abcdef" data-amount="3000"`) ||
		strings.Contains(confirm, "tok_visa") || !strings.Contains(confirm, `<script src="/static/card.js" defer></script>`) {
		t.Fatalf("the confirmation with Stripe: %d\n%s", res.StatusCode, confirm)
	}
	res, _ = w.pay(t, confirm, "pm_card_visa")
	m := depositPath.FindStringSubmatch(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || m == nil {
		t.Fatalf("pay: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if _, page := w.get(t, "/deposits/"+m[1]); !strings.Contains(page, "Posted") {
		t.Errorf("the deposit:\n%s", page)
	}
	sent := forms()
	last := sent[len(sent)-1]
	if last.Get("amount") != "3000" || last.Get("payment_method") != "pm_card_visa" || last.Get("metadata[kinlink_key]") != "deposit:"+m[1] {
		t.Errorf("what Stripe was asked: %v", last)
	}
}

// The fee on the confirmation is the fee charged: when the agency changes its fee
// between the two, paying shows the confirmation again with the new fee and the
// new total, and charges nothing.
func TestDepositFeeChangedBeforePaying(t *testing.T) {
	eachEngine(t, func(t *testing.T, w *world) {
		contact, _ := approvedContact(t, w, "ana@example.org")
		desk := openDepositDesk(t, w)
		_, confirm := w.quote(t, url.Values{"contact": {contact}}, "50", ana)
		desk.policy(t, func(p *deposits.Policy) { p.FeeTiers = []deposits.FeeTier{{UpToCents: 100000, FeeCents: 195}} })
		res, page := w.pay(t, confirm, "tok_visa")
		if res.StatusCode != http.StatusConflict || !strings.Contains(page, "it is now $1.95. Nothing was charged.") ||
			!strings.Contains(page, `id="deposit-total">$51.95<`) || !strings.Contains(page, "Pay $51.95") {
			t.Fatalf("a fee changed before paying: %d\n%s", res.StatusCode, page)
		}
		if _, list := w.get(t, "/deposits"); strings.Contains(list, `href="/deposits/`) {
			t.Errorf("a deposit was made at a fee not shown:\n%s", list)
		}
		if res, _ := w.pay(t, page, "tok_visa"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("paying the new total: %d", res.StatusCode)
		}
	})
}
