package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Disputes of wallet top-ups. A family that disputes a top-up with its card company
// gets the money back through the processor; the wallet gives back what is still
// in it, and what was already spent on stamps the platform bears (Losses). A
// dispute the family loses gives each back. The processor's events carry the
// charge (and, for Stripe, the key its payment was made under, on the payment's
// own events): Kinlink's top-up is found by that key.

func topUpChargebackKey(chargeID string) string { return "topup-chargeback:" + chargeID }
func topUpDisputeWonKey(chargeID string) string { return "topup-dispute-won:" + chargeID }

// TopUpOf finds the top-up made under key (a top-up's idempotency key,
// "topup:<account>:<key>"), inside tx: its charge, wallet owner and amount. ok is
// false when there is none.
func (w *Wallets) TopUpOf(ctx context.Context, tx *sql.Tx, key string) (chargeID, accountID string, amount int64, ok bool, err error) {
	err = w.ledger.db.TxQueryRow(ctx, tx, `SELECT t.reference, a.owner_id, e.amount FROM ledger_transactions t
		JOIN ledger_entries e ON e.transaction_id = t.id JOIN ledger_accounts a ON a.id = e.account_id
		WHERE t.idempotency_key = $1 AND t.kind = 'topup' AND a.kind = $2`, key, Wallet).Scan(&chargeID, &accountID, &amount)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", 0, false, nil
	}
	if err != nil {
		return "", "", 0, false, fmt.Errorf("ledger: top-up of %s: %w", key, err)
	}
	return chargeID, accountID, amount, true, nil
}

// TopUpDisputed takes back, inside tx, what a chargeback of the top-up made under
// key took from the processor's account: the wallet gives what it still holds, the
// platform bears the rest. Applied once per charge. It returns what the wallet gave.
func (w *Wallets) TopUpDisputed(ctx context.Context, tx *sql.Tx, key string, disputed int64) (int64, error) {
	chargeID, accountID, amount, ok, err := w.TopUpOf(ctx, tx, key)
	if err != nil || !ok {
		return 0, err
	}
	disputed = min(max(disputed, 0), amount)
	if disputed == 0 {
		return 0, nil
	}
	balance, err := w.ledger.BalanceTx(ctx, tx, WalletOf(accountID))
	if err != nil {
		return 0, err
	}
	take := min(balance, disputed)
	entries := []Entry{{Ref{Cards, ""}, disputed}}
	if take > 0 {
		entries = append(entries, Entry{WalletOf(accountID), -take})
	}
	if short := disputed - take; short > 0 {
		entries = append(entries, Entry{Losses, -short})
	}
	if _, replay, err := w.ledger.Post(ctx, tx, Transaction{Kind: "topup.chargeback", IdempotencyKey: topUpChargebackKey(chargeID),
		Description: "Top-up disputed by the card holder", Reference: chargeID, Entries: entries,
		Card: CardRef{Kind: CardChargeback, ChargeID: chargeID}}); err != nil || replay {
		return 0, err
	}
	return take, nil
}

// TopUpDisputeWon gives back, inside tx, what the chargeback of the top-up made
// under key took: the dispute failed and the processor returned the money. Each
// account gets what it gave, once.
func (w *Wallets) TopUpDisputeWon(ctx context.Context, tx *sql.Tx, key string) error {
	chargeID, _, _, ok, err := w.TopUpOf(ctx, tx, key)
	if err != nil || !ok {
		return err
	}
	moves, err := w.ledger.MovementsTx(ctx, tx, []string{topUpChargebackKey(chargeID)})
	if err != nil || len(moves) == 0 {
		return err // no chargeback on record: nothing to give back
	}
	var entries []Entry
	for _, m := range moves {
		entries = append(entries, Entry{Ref{m.AccountKind, m.AccountOwner}, -m.Amount})
	}
	_, _, err = w.ledger.Post(ctx, tx, Transaction{Kind: "topup.dispute_won", IdempotencyKey: topUpDisputeWonKey(chargeID),
		Description: "Top-up dispute lost by the card holder", Reference: chargeID, Entries: entries,
		Card: CardRef{Kind: CardChargebackReversed, ChargeID: chargeID}})
	return err
}

// Disputed is what chargebacks of a top-up's charge keep now (a won dispute gave
// it back), inside tx: a refund to the card must not send it again, and a won
// dispute has something to give back only while it is more than zero.
func (w *Wallets) Disputed(ctx context.Context, tx *sql.Tx, chargeID string) (int64, error) {
	moves, err := w.ledger.MovementsTx(ctx, tx, disputeKeys(chargeID))
	return keptByDisputes(moves), err
}

func disputeKeys(chargeID string) []string {
	return []string{topUpChargebackKey(chargeID), topUpDisputeWonKey(chargeID)}
}

// keptByDisputes is what a charge's chargebacks took back, less what won disputes
// returned: the processor account's side of their movements.
func keptByDisputes(moves []Movement) int64 {
	var kept int64
	for _, m := range moves {
		if m.AccountKind == Cards {
			kept += m.Amount
		}
	}
	return kept
}
