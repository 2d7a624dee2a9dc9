package api

import (
	"errors"
	"net/http"
	"strings"

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
	if strings.TrimSpace(req.PaymentToken) == "" {
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "payment_token_required", Fields: map[string]string{"payment_token": "required"}})
		return
	}
	acct := auth(r).account
	t, err := a.wallets.TopUp(r.Context(), acct.ID, acct.Email, acct.Locale, req.AmountCents, req.PaymentToken, key)
	switch {
	case errors.Is(err, ledger.ErrBadAmount):
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "top_up_amount", Fields: map[string]string{"amount_cents": "range"}})
	case errors.Is(err, ledger.ErrKeyReused):
		a.Error(w, r, http.StatusConflict, "idempotency_key_reused")
	case errors.Is(err, ledger.ErrDeclined):
		a.Error(w, r, http.StatusPaymentRequired, "payment_declined")
	case errors.Is(err, ledger.ErrProcessorFailed):
		w.Header().Set("Retry-After", "30")
		a.Error(w, r, http.StatusBadGateway, "payment_processor_error")
	case err != nil:
		a.fail(w, r, err)
	default:
		status := http.StatusCreated
		if t.Replay {
			status = http.StatusOK // the same request again: the same top-up
		}
		writeJSON(w, status, map[string]any{"id": t.ID, "amount_cents": t.AmountCents, "fee_cents": ledger.TopUpFeeCents,
			"balance_cents": t.BalanceCents, "status": "succeeded"})
	}
}
