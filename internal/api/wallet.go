package api

import (
	"net/http"

	"github.com/kinlink/kinlink/internal/ledger"
)

func (a *API) wallet(w http.ResponseWriter, r *http.Request) {
	balance, err := a.wallets.Balance(r.Context(), auth(r).account.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"balance_cents": balance, "currency": ledger.Currency,
		"test_mode": a.wallets.TestMode()})
}

func (a *API) topUp(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AmountCents  int64  `json:"amount_cents"`
		PaymentToken string `json:"payment_token"`
	}
	key, ok := a.idempotencyKey(w, r)
	if !ok || !a.decode(w, r, &req) {
		return
	}
	acct := auth(r).account
	t, err := a.wallets.TopUp(r.Context(), acct.ID, acct.Email, acct.Locale, req.AmountCents, req.PaymentToken, key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusCreated
	if t.Replay {
		status = http.StatusOK // the same request again: the same top-up
	}
	writeJSON(w, status, map[string]any{"id": t.ID, "amount_cents": t.AmountCents, "fee_cents": ledger.TopUpFeeCents,
		"balance_cents": t.BalanceCents, "status": "succeeded"})
}
