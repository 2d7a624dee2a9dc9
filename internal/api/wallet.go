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

// refundWallet gives the family's whole balance back to its cards, in full and with
// no fee. The same Idempotency-Key again answers 200 with the same refund.
func (a *API) refundWallet(w http.ResponseWriter, r *http.Request) {
	key, ok := a.idempotencyKey(w, r)
	if !ok {
		return
	}
	acct := auth(r).account
	rf, err := a.wallets.Refund(r.Context(), acct.ID, acct.Email, acct.Locale, key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusCreated
	if rf.Replay {
		status = http.StatusOK // the same request again: the same refund
	}
	writeJSON(w, status, walletRefundJSON(rf))
}

// walletRefund is one of the family's refunds: "pending" until the processor has
// confirmed every part, then "refunded".
func (a *API) walletRefund(w http.ResponseWriter, r *http.Request) {
	rf, err := a.wallets.RefundOf(r.Context(), auth(r).account.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, walletRefundJSON(rf))
}

func walletRefundJSON(rf ledger.WalletRefund) map[string]any {
	return map[string]any{"id": rf.ID, "amount_cents": rf.AmountCents, "fee_cents": ledger.WalletRefundFeeCents, "cards": rf.Cards(),
		"state": rf.State, "created_at": rf.CreatedAt}
}
