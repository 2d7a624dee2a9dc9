package api

import (
	"net/http"
	"strconv"

	"github.com/kinlink/kinlink/internal/deposits"
)

// Deposits: a family is told what a deposit to a contact would cost and how much
// the agency's limits still allow (the fee is shown before paying), deposits with
// a card token, reads its deposits and cancels one not yet posted. Every rule is
// deposits.Service's; the handlers read the request and shape the answer.

// depositResidentJSON names the person a deposit is for, as they were at the deposit.
type depositResidentJSON struct {
	Name   string `json:"name"`
	Number string `json:"number"`
}

// depositJSON is a deposit as the app sees it.
type depositJSON struct {
	ID           string              `json:"id"`
	State        string              `json:"state"`
	AmountCents  int64               `json:"amount_cents"`
	FeeCents     int64               `json:"fee_cents"`
	TotalCents   int64               `json:"total_cents"`
	Confirmation string              `json:"confirmation"`
	Reason       string              `json:"reason"`
	Resident     depositResidentJSON `json:"resident"`
	FacilityCode string              `json:"facility_code"`
	CreatedAt    string              `json:"created_at"`
	PostedAt     *string             `json:"posted_at"`
	Refund       string              `json:"refund"`
}

func depositOf(d deposits.Deposit) depositJSON {
	j := depositJSON{ID: d.ID, State: d.State, AmountCents: d.AmountCents, FeeCents: d.FeeCents, TotalCents: d.TotalCents(),
		Confirmation: d.Confirmation, Reason: d.Reason, Resident: depositResidentJSON{Name: d.ResidentName, Number: d.ResidentNumber},
		FacilityCode: d.FacilityCode, CreatedAt: rfc3339(d.CreatedAt), Refund: d.Refund}
	if !d.PostedAt.IsZero() {
		at := rfc3339(d.PostedAt)
		j.PostedAt = &at
	}
	return j
}

// limitsLeftJSON is how much each of the agency's limits still allows; null for a
// limit the agency did not set.
type limitsLeftJSON struct {
	PerDepositCents    *int64 `json:"per_deposit_cents"`
	SenderDayCents     *int64 `json:"sender_day_cents"`
	SenderMonthCents   *int64 `json:"sender_month_cents"`
	ResidentMonthCents *int64 `json:"resident_month_cents"`
	BalanceCents       *int64 `json:"balance_cents"`
}

// leftOrNull is a Left's value as the API says it: null where there is no limit.
func leftOrNull(cents int64) *int64 {
	if cents == deposits.Unlimited {
		return nil
	}
	return &cents
}

// quoteDeposit is what a deposit of amount_cents to a contact would cost, with the
// limits left; amount_cents=0 asks for the limits alone.
func (a *API) quoteDeposit(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query().Get("amount_cents")
	if v == "" {
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"amount_cents": "required"}})
		return
	}
	amount, err := strconv.ParseInt(v, 10, 64)
	if err != nil || amount < 0 || amount > deposits.MaxDepositLimit {
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"amount_cents": "invalid"}})
		return
	}
	q, err := a.deposits.Quote(r.Context(), auth(r).account.ID, deposits.Recipient{ContactID: r.PathValue("id")}, amount)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"amount_cents": q.AmountCents, "fee_cents": q.FeeCents, "total_cents": q.TotalCents(),
		"resident": depositResidentJSON{Name: q.ResidentName, Number: q.ResidentNumber}, "facility": q.Facility,
		"limits_left": limitsLeftJSON{PerDepositCents: leftOrNull(q.Left.PerDepositCents), SenderDayCents: leftOrNull(q.Left.SenderDayCents),
			SenderMonthCents: leftOrNull(q.Left.SenderMonthCents), ResidentMonthCents: leftOrNull(q.Left.ResidentMonthCents),
			BalanceCents: leftOrNull(q.Left.BalanceCents)},
		"max_cents": q.Left.Most()})
}

// createDeposit charges the family's card and sends the money to a contact's trust
// account. A retry with the same Idempotency-Key and body answers the same deposit
// (201, as a visit's booking does) and charges nothing again. A declined card is
// the refusal (402), though the deposit stays on record as failed; a charge the
// processor did not confirm in time is a pending deposit the settle job finishes.
func (a *API) createDeposit(w http.ResponseWriter, r *http.Request) {
	key, ok := a.idempotencyKey(w, r)
	if !ok {
		return
	}
	var req struct {
		ContactID    string `json:"contact_id"`
		AmountCents  *int64 `json:"amount_cents"`
		FeeCents     *int64 `json:"fee_cents"`
		PaymentToken string `json:"payment_token"`
		Sender       struct {
			Name    string `json:"name"`
			Address string `json:"address"`
		} `json:"sender"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	fields := map[string]string{}
	if req.ContactID == "" {
		fields["contact_id"] = "required"
	}
	if req.AmountCents == nil {
		fields["amount_cents"] = "required"
	}
	if len(fields) > 0 {
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: fields})
		return
	}
	acct := auth(r).account
	d, err := a.deposits.Deposit(r.Context(), acct.ID, deposits.Request{Recipient: deposits.Recipient{ContactID: req.ContactID},
		AmountCents: *req.AmountCents, Token: req.PaymentToken, Sender: deposits.Sender{Name: req.Sender.Name, Address: req.Sender.Address},
		Key: key, Email: acct.Email, Locale: acct.Locale, QuotedFeeCents: req.FeeCents})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, depositOf(d))
}

// listDeposits is the family's deposits, newest first: ?limit=N (1 to 100, 50 when
// absent).
func (a *API) listDeposits(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: map[string]string{"limit": "range"}})
			return
		}
		limit = n
	}
	list, err := a.deposits.OfAccount(r.Context(), auth(r).account.ID, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]depositJSON, 0, len(list))
	for _, d := range list {
		out = append(out, depositOf(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"deposits": out})
}

// getDeposit is one of the family's deposits; another family's is not found.
func (a *API) getDeposit(w http.ResponseWriter, r *http.Request) {
	d, err := a.deposits.Of(r.Context(), auth(r).account.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, depositOf(d))
}

// cancelDeposit is the family stopping a deposit not yet posted: its money goes
// back to the card in full.
func (a *API) cancelDeposit(w http.ResponseWriter, r *http.Request) {
	d, err := a.deposits.Cancel(r.Context(), auth(r).account.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, depositOf(d))
}
