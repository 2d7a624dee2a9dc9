package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
)

// The family's wallet: balance, top-up, refund of the balance and history.

// WalletData is the wallet page.
type WalletData struct {
	Balance  string
	History  []WalletLine
	Form     *Form
	Key      string // idempotency key of this page's top-up form: a double submit adds once
	TestMode bool
	// StripeKey is the publishable key when cards go through Stripe: the card is
	// Stripe's Payment Element, for the amount in AmountCents.
	StripeKey   string
	AmountCents int64
	Fee         string
	Done        string
	// RefundForm is the refund section's form: its refusal is said there, not on
	// the top-up form.
	RefundForm *Form
	RefundKey  string // idempotency key of the refund form: a double submit refunds once
	CanRefund  bool   // there is money to refund
	RefundFee  string
	// Back is the conversation a family came from to add money, where a top-up
	// returns them to their kept draft.
	Back string
	// Stamps are what a stamp costs at each agency the family writes to.
	Stamps []StampPrice
}

// StampPrice is an agency's price of a stamp.
type StampPrice struct{ Agency, Price string }

// WalletLine is one movement in words.
type WalletLine struct {
	When         time.Time
	What, Amount string
	For          string // whom a message (or its refund) was to
	Note         string // where a refund to the card is: on its way, or back on the card
	Credit       bool
}

// renderWallet shows the wallet page with the top-up form f and the refund form
// refund, each with what was typed and its refusal.
func (s *Site) renderWallet(w http.ResponseWriter, r *http.Request, status int, f, refund *Form) {
	acct := currentAccount(r)
	lang := s.Lang(r)
	balance, err := s.wallets.Balance(r.Context(), acct.ID)
	history, herr := s.wallets.History(r.Context(), acct.ID, 50)
	refunds, rerr := s.wallets.Refunds(r.Context(), acct.ID, 50)
	if err != nil || herr != nil || rerr != nil {
		s.log.Error("web: wallet", "err", errors.Join(err, herr, rerr))
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	d := WalletData{Balance: ledger.Dollars(balance), Form: f, Key: ids.New(), TestMode: s.testMode(), StripeKey: s.stripeKey(),
		Fee: ledger.Dollars(ledger.TopUpFeeCents), RefundForm: refund, RefundKey: ids.New(), CanRefund: balance > 0,
		RefundFee: ledger.Dollars(ledger.WalletRefundFeeCents)}
	if cents, ok := parseCents(f.Values["amount"]); ok && cents >= ledger.MinTopUp && cents <= ledger.MaxTopUp {
		d.AmountCents = cents
	} else {
		d.AmountCents = ledger.MinTopUp
	}
	refundState := make(map[string]string, len(refunds))
	for _, rf := range refunds {
		refundState[rf.ID] = rf.State
	}
	refs := make([]string, 0, len(history))
	for _, h := range history {
		refs = append(refs, h.Reference)
	}
	to, err := s.messages.Recipients(r.Context(), acct.ID, refs)
	if err != nil {
		s.log.Error("web: wallet", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	for _, h := range history {
		line := WalletLine{When: h.At, What: s.cat.T(lang, "wallet.kind."+h.Kind), For: to[h.Reference],
			Amount: ledger.Dollars(h.Amount), Credit: h.Amount > 0}
		if state, ok := refundState[h.Reference]; ok && h.Kind == "wallet_refund" {
			line.Note = s.cat.T(lang, "wallet.refund.state."+state)
		}
		d.History = append(d.History, line)
	}
	switch r.URL.Query().Get("done") {
	case "topup":
		d.Done = "wallet.done"
	case "refund":
		d.Done = "wallet.refund.done"
	}
	if back := LocalPath(f.Values["back"]); strings.HasPrefix(back, "/people/") {
		d.Back = back
	}
	agencies, err := s.contacts.Agencies(r.Context(), acct.ID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	for _, ag := range agencies {
		d.Stamps = append(d.Stamps, StampPrice{Agency: ag.Name, Price: ledger.Dollars(int64(ag.StampPriceCents))})
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "wallet", "wallet.title", d)
}

func (s *Site) walletPage(w http.ResponseWriter, r *http.Request) {
	f := emptyForm()
	f.Values["amount"] = "25"
	f.Values["back"] = r.URL.Query().Get("back")
	s.renderWallet(w, r, http.StatusOK, f, emptyForm())
}

func (s *Site) walletTopUp(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "amount", "card", "back")
	acct := currentAccount(r)
	cents, ok := parseCents(f.Values["amount"])
	if !ok {
		f.Errors["amount"] = "topup_format"
		s.renderWallet(w, r, http.StatusBadRequest, f, emptyForm())
		return
	}
	_, err := s.wallets.TopUp(r.Context(), acct.ID, acct.Email, acct.Locale, cents, f.Values["card"], r.PostFormValue("key"))
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderWallet(w, r, status, f, emptyForm()) })
		return
	}
	if back := LocalPath(f.Values["back"]); strings.HasPrefix(back, "/people/") {
		// Back to the message that needed the money: its draft waits there.
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/wallet?done=topup", http.StatusSeeOther)
}

// walletRefund gives the whole balance back to the family's cards. The form's key
// makes a double submit one refund; the page then says the refund is on its way.
func (s *Site) walletRefund(w http.ResponseWriter, r *http.Request) {
	acct := currentAccount(r)
	f := newForm(r)
	if _, err := s.wallets.Refund(r.Context(), acct.ID, acct.Email, acct.Locale, r.PostFormValue("key")); err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) {
			topUp := emptyForm()
			topUp.Values["amount"] = "25"
			s.renderWallet(w, r, status, topUp, f)
		})
		return
	}
	http.Redirect(w, r, "/wallet?done=refund", http.StatusSeeOther)
}

// parseCents reads an amount of dollars as people type it: "25", "$25.50", "25,50"
// (a decimal comma, as many Spanish speakers write it). Anything else, such as "1e2"
// or "10.005", is not an amount: a charge is never a rounding of what was typed.
func parseCents(typed string) (int64, bool) {
	s := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(typed), "$"))
	whole, cents, hasCents := strings.Cut(s, ".")
	if !hasCents {
		whole, cents, hasCents = strings.Cut(s, ",")
	}
	digits := func(d string) bool {
		return strings.IndexFunc(d, func(r rune) bool { return r < '0' || r > '9' }) < 0
	}
	if !digits(whole) || len(whole) > 9 || (whole == "" && !hasCents) ||
		(hasCents && (cents == "" || len(cents) > 2 || !digits(cents))) {
		return 0, false
	}
	dollars, _ := strconv.ParseInt("0"+whole, 10, 64)
	c, _ := strconv.ParseInt((cents + "00")[:2], 10, 64)
	return dollars*100 + c, true
}

// testMode reports whether payments are in test mode: every page says so.
func (s *Site) testMode() bool { return s.wallets != nil && s.wallets.TestMode() }

// stripeKey is the publishable key of the payment processor when it has one
// (Stripe), which the card field needs; "" otherwise.
func (s *Site) stripeKey() string {
	if s.wallets == nil {
		return ""
	}
	if p, ok := s.wallets.Processor().(interface{ PublishableKey() string }); ok {
		return p.PublishableKey()
	}
	return ""
}
