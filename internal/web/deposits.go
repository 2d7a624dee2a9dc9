package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
)

// A family's deposits to their people's trust accounts: the amount and who sends
// it, then the confirmation that names the fee and the total before the card, the
// money sent, and one deposit with its state in words and its cancellation while
// the facility has not posted it. Every rule is the deposits service's.

// depositRoutes are the family's deposit pages, where the server takes deposits.
func (s *Site) depositRoutes() []httpx.Route {
	if s.deposits == nil {
		return nil
	}
	family := s.requireLogin
	return []httpx.Route{
		httpx.On("GET /deposits", family, s.depositsPage),
		httpx.On("GET /deposits/new", family, s.newDepositPage),
		httpx.On("POST /deposits/quote", family, s.quoteDeposit),
		httpx.On("POST /deposits/edit", family, s.editDeposit),
		httpx.On("POST /deposits", family, s.makeDeposit),
		httpx.On("GET /deposits/{id}", family, s.depositPage),
		httpx.On("POST /deposits/{id}/cancel", family, s.cancelDeposit),
	}
}

// depositFormFields are what the deposit forms send besides the recipient.
var depositFormFields = []string{"amount", "sender_name", "sender_address"}

// recipientOf is whom a deposit page is about: a family's contact, or a resident
// found by state and ID.
func recipientOf(contact, resident string) deposits.Recipient {
	if contact != "" {
		return deposits.Recipient{ContactID: contact}
	}
	return deposits.Recipient{ResidentID: resident}
}

// parseDepositAmount reads an amount as people type it: as the wallet reads one
// ("25", "$25.50", a decimal comma "25,50"), else with thousands separated
// ("$1,020.50", deposits.ParseDollars). The confirmation shows what was read
// before anything is charged.
func parseDepositAmount(typed string) (int64, bool) {
	if cents, ok := parseCents(typed); ok {
		return cents, true
	}
	cents, err := deposits.ParseDollars(typed)
	return cents, err == nil
}

// plainDollars writes cents as a form sends dollars back: "25.50".
func plainDollars(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

// depositInputs are the inputs of the deposit forms, by the domain's names of the
// fields they fill.
var depositInputs = map[string]string{"amount_cents": "amount", "sender_name": "sender_name", "sender_address": "sender_address",
	"payment_token": "card"}

// refuseDeposit answers a refusal of the deposits service on a deposit form
// (again): the fields at fault are the form's own, and a refusal about one of them
// says its words beside it rather than above the form.
func (s *Site) refuseDeposit(w http.ResponseWriter, r *http.Request, f *Form, err error, again func(status int, f *Form)) {
	s.refuse(w, r, f, err, func(status int, f *Form) {
		errs := map[string]string{}
		for field, code := range f.Errors {
			if input, ok := depositInputs[field]; ok {
				field = input
			}
			errs[field] = code
		}
		f.Errors = errs
		if p, ok := problem.As(err); ok && len(p.Fields) == 1 && f.Message != "" {
			for field := range p.Fields {
				if input, ok := depositInputs[field]; ok {
					f.Said = map[string]string{input: f.Message}
					f.Message = ""
				}
			}
		}
		again(status, f)
	})
}

// DepositFormData is the first step: how much, and who sends it.
type DepositFormData struct {
	To    deposits.Recipient
	Quote deposits.Quote
	Form  *Form
	// Refused is a person the family may not send money to now (Form.Message says
	// why): the page shows no form.
	Refused bool
	// Min and Max are what one deposit may be; Most is what the limits allow now.
	Min, Max, Most string
	NoneLeft       bool
}

func (s *Site) newDepositPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := emptyForm()
	if acct := currentAccount(r); acct != nil {
		f.Values["sender_name"] = acct.FullName
	}
	s.renderDepositForm(w, r, http.StatusOK, recipientOf(q.Get("contact"), q.Get("resident")), f)
}

// editDeposit is the confirmation's way back: the first step again with what was
// typed (posted, so that an address stays out of addresses and logs).
func (s *Site) editDeposit(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, depositFormFields...)
	s.renderDepositForm(w, r, http.StatusOK, recipientOf(r.PostFormValue("contact"), r.PostFormValue("resident")), f)
}

// renderDepositForm shows the first step for a recipient with f's values and
// errors, or why the family cannot send them money.
func (s *Site) renderDepositForm(w http.ResponseWriter, r *http.Request, status int, to deposits.Recipient, f *Form) {
	acct := currentAccount(r)
	d := DepositFormData{To: to, Form: f}
	quote, err := s.deposits.Quote(r.Context(), acct.ID, to, 0)
	if err != nil {
		if p, ok := problem.As(err); ok && p.Kind == problem.NotFound {
			s.answer(w, r, err)
			return
		}
		st, refused := s.apply(w, r, f, err)
		if !refused {
			s.failed(w, r, err)
			return
		}
		d.Refused, status = true, st
	} else {
		d.Quote = quote
		d.Min, d.Max = ledger.Dollars(deposits.MinDepositCents), ledger.Dollars(quote.Policy.MaxDepositCents)
		most := quote.Left.Most()
		d.Most, d.NoneLeft = ledger.Dollars(most), most < deposits.MinDepositCents
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "deposits_new", "deposits.new.title", d)
}

// DepositConfirmData is the step before paying: the deposit, its fee and its
// total, and the card.
type DepositConfirmData struct {
	To       deposits.Recipient
	Quote    deposits.Quote
	Amount   string // the amount the form sends back, "25.50"
	Sender   deposits.Sender
	Form     *Form
	Key      string // idempotency key of this page's payment: a double submit pays once
	TestMode bool
	// StripeKey is the publishable key when Stripe takes the cards; AmountCents
	// is what its card field shows: the total with the fee.
	StripeKey   string
	AmountCents int64
	Total       string
	// Attempt is a deposit this form just failed to pay (the card declined): it
	// stays in the list as not paid.
	Attempt string
}

// depositForm reads a deposit's form with fields: whom it is for and its amount;
// an amount that is not one shows the first step again, and ok is false.
func (s *Site) depositForm(w http.ResponseWriter, r *http.Request, fields ...string) (f *Form, to deposits.Recipient, cents int64, ok bool) {
	f = newForm(r, fields...)
	to = recipientOf(r.PostFormValue("contact"), r.PostFormValue("resident"))
	if cents, ok = parseDepositAmount(f.Values["amount"]); !ok {
		f.Errors["amount"] = "topup_format"
		s.renderDepositForm(w, r, http.StatusBadRequest, to, f)
	}
	return f, to, cents, ok
}

func (s *Site) quoteDeposit(w http.ResponseWriter, r *http.Request) {
	f, to, cents, ok := s.depositForm(w, r, depositFormFields...)
	if !ok {
		return
	}
	s.renderDepositConfirm(w, r, http.StatusOK, to, cents, f, "")
}

// renderDepositConfirm shows the confirmation of a deposit of cents, if the
// service would take it; otherwise the first step again, saying why.
func (s *Site) renderDepositConfirm(w http.ResponseWriter, r *http.Request, status int, to deposits.Recipient, cents int64, f *Form, attempt string) {
	acct := currentAccount(r)
	sender := deposits.Sender{Name: f.Values["sender_name"], Address: f.Values["sender_address"]}
	quote, err := s.deposits.Quote(r.Context(), acct.ID, to, cents)
	if err == nil {
		err = quote.Check(sender)
	}
	if err != nil {
		s.refuseDeposit(w, r, f, err, func(status int, f *Form) { s.renderDepositForm(w, r, status, to, f) })
		return
	}
	d := DepositConfirmData{To: to, Quote: quote, Amount: plainDollars(cents), Sender: sender, Form: f, Key: ids.New(),
		TestMode: s.testMode(), StripeKey: s.stripeKey(), AmountCents: quote.TotalCents(), Total: ledger.Dollars(quote.TotalCents()), Attempt: attempt}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "deposits_confirm", "deposits.confirm.title", d)
}

func (s *Site) makeDeposit(w http.ResponseWriter, r *http.Request) {
	acct := currentAccount(r)
	f, to, cents, ok := s.depositForm(w, r, append(depositFormFields, "card")...)
	if !ok {
		return
	}
	locale := acct.Locale
	if locale == "" {
		locale = s.Lang(r)
	}
	req := deposits.Request{Recipient: to, AmountCents: cents, Token: f.Values["card"],
		Sender: deposits.Sender{Name: f.Values["sender_name"], Address: f.Values["sender_address"]}, Key: r.PostFormValue("key"),
		Email: acct.Email, Locale: locale}
	if shown, err := strconv.ParseInt(r.PostFormValue("fee"), 10, 64); err == nil {
		req.QuotedFeeCents = &shown // the fee the confirmation showed is the fee charged
	}
	d, err := s.deposits.Deposit(r.Context(), acct.ID, req)
	if err == nil {
		http.Redirect(w, r, "/deposits/"+d.ID+"?sent=1", http.StatusSeeOther)
		return
	}
	// A deposit written and then not paid (the card declined), or no card chosen:
	// the confirmation again, with what was typed. Anything else is about the
	// amount, the sender or the person: the first step again.
	if p, ok := problem.As(err); d.ID != "" || ok && p.Fields["payment_token"] != "" || errors.Is(err, deposits.ErrFeeChanged) {
		s.refuseDeposit(w, r, f, err, func(status int, f *Form) { s.renderDepositConfirm(w, r, status, to, cents, f, d.ID) })
		return
	}
	s.refuseDeposit(w, r, f, err, func(status int, f *Form) { s.renderDepositForm(w, r, status, to, f) })
}

// DepositView is a deposit as its family reads it.
type DepositView struct {
	deposits.Deposit
	Facility           string
	State              string // in a few words
	Explain            string // what the state means, in a sentence
	Why                string // why it ended as it did, in words
	Refund             string // where the money is on its way back, in words
	Amount, Fee, Total string
}

// facilityNames finds facilities' names once each, for a page of deposits.
type facilityNames struct {
	s     *Site
	names map[string]string
}

func (n *facilityNames) of(ctx context.Context, d deposits.Deposit) string {
	if name, ok := n.names[d.FacilityID]; ok {
		return name
	}
	name := d.FacilityCode
	if f, err := n.s.fac.Facility(ctx, d.FacilityID); err == nil {
		name = f.Name
	}
	n.names[d.FacilityID] = name
	return name
}

// depositView words a deposit for its family.
func (s *Site) depositView(lang string, d deposits.Deposit, facilityName string) DepositView {
	v := DepositView{Deposit: d, Facility: facilityName, State: s.cat.T(lang, "deposits.state."+d.State),
		Amount: ledger.Dollars(d.AmountCents), Fee: ledger.Dollars(d.FeeCents), Total: ledger.Dollars(d.TotalCents())}
	if d.State == deposits.Posted {
		v.Explain = s.cat.T(lang, "deposits.explain.posted", d.ResidentName)
	} else {
		v.Explain = s.cat.T(lang, "deposits.explain."+d.State)
	}
	switch {
	case d.Reason == "" || d.State == deposits.Cancelled && d.Reason == "cancelled_by_family":
	case deposits.SystemReason(d.Reason):
		v.Why = s.cat.T(lang, "deposits.reason."+d.Reason)
	default:
		v.Why = s.cat.T(lang, "deposits.reason.staff", d.Reason)
	}
	switch d.Refund {
	case "due":
		v.Refund = s.cat.T(lang, "deposits.refund.due", v.Total)
	case "done":
		v.Refund = s.cat.T(lang, "deposits.refund.done", v.Total)
	}
	return v
}

// DepositsData is the money a family sent, newest first.
type DepositsData struct {
	Deposits []DepositView
}

func (s *Site) depositsPage(w http.ResponseWriter, r *http.Request) {
	acct, lang := currentAccount(r), s.Lang(r)
	list, err := s.deposits.OfAccount(r.Context(), acct.ID, 200)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	names := &facilityNames{s: s, names: map[string]string{}}
	var d DepositsData
	for _, dep := range list {
		d.Deposits = append(d.Deposits, s.depositView(lang, dep, names.of(r.Context(), dep)))
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "deposits", "deposits.title", d)
}

// DepositData is one deposit's page.
type DepositData struct {
	Deposit DepositView
	Form    *Form
	Sent    bool // just paid
	Done    bool // just cancelled
}

func (s *Site) depositPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.renderDeposit(w, r, http.StatusOK, emptyForm(), q.Get("sent") == "1", q.Get("cancelled") == "1")
}

func (s *Site) renderDeposit(w http.ResponseWriter, r *http.Request, status int, f *Form, sent, cancelled bool) {
	acct, lang := currentAccount(r), s.Lang(r)
	dep, err := s.deposits.Of(r.Context(), acct.ID, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	names := &facilityNames{s: s, names: map[string]string{}}
	d := DepositData{Deposit: s.depositView(lang, dep, names.of(r.Context(), dep)), Form: f, Sent: sent, Done: cancelled}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "deposit", "deposits.deposit.title", d)
}

func (s *Site) cancelDeposit(w http.ResponseWriter, r *http.Request) {
	d, err := s.deposits.Cancel(r.Context(), currentAccount(r).ID, r.PathValue("id"))
	if err != nil {
		s.refuse(w, r, emptyForm(), err, func(status int, f *Form) { s.renderDeposit(w, r, status, f, false, false) })
		return
	}
	http.Redirect(w, r, "/deposits/"+d.ID+"?cancelled=1", http.StatusSeeOther)
}

// moneyRules reads agencies' deposit policies once each, for a page that offers to
// send money to several people.
type moneyRules struct {
	s        *Site
	anyoneAt map[string]bool // agency id -> its policy takes deposits from anyone
}

func (m *moneyRules) fromAnyone(ctx context.Context, agencyID string) (bool, error) {
	if v, ok := m.anyoneAt[agencyID]; ok {
		return v, nil
	}
	p, err := m.s.deposits.Policy(ctx, agencyID)
	if err != nil {
		return false, err
	}
	m.anyoneAt[agencyID] = p.FromAnyone
	return p.FromAnyone, nil
}

// toContact reports whether a family may send money to their contact: a person at
// a facility, whom it approved, or did not deny where the agency takes deposits
// from anyone (the deposits service decides again when it quotes).
func (m *moneyRules) toContact(ctx context.Context, c contacts.Contact) (bool, error) {
	if c.Resident.Status != "active" || c.Status == contacts.Denied {
		return false, nil
	}
	if c.Status == contacts.Approved {
		return true, nil
	}
	return m.fromAnyone(ctx, c.Resident.Agency.ID)
}
