package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/kinlink/kinlink/internal/ids"
	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/problem"
)

// Top-up limits, in cents.
const (
	MinTopUp = 500
	MaxTopUp = 50000
)

// TopUpFeeCents is what a top-up costs on top of its amount: nothing (FCC 24-75 bans
// separate ancillary fees; the fee is shown anyway before paying).
const TopUpFeeCents = 0

// ErrBadAmount means a top-up amount outside the limits.
var ErrBadAmount = problem.Declare(problem.Invalid, "top_up_amount", fmt.Sprintf("ledger: a top-up is from $%d to $%d", MinTopUp/100, MaxTopUp/100)).
	On("amount_cents", "range").Say("form.error.topup_range")

// ErrNoToken is a top-up without a card: the processor's token for it.
var ErrNoToken = problem.Declare(problem.Invalid, "payment_token_required", "ledger: a top-up needs a card").
	On("payment_token", "required").Say("wallet.choose_card")

// TopUp is a completed top-up.
type TopUp struct {
	ID           string
	AmountCents  int64
	BalanceCents int64
	ChargeID     string
	Replay       bool // the same key was used before: nothing new happened
}

// ErrBadKey is an idempotency key too long to keep.
var ErrBadKey = problem.Declare(problem.Invalid, "invalid_idempotency_key", "ledger: the idempotency key is too long").
	On("Idempotency-Key", "too_long").Say("wallet.form_used")

// ErrKeyReused is an idempotency key sent again with another amount.
var ErrKeyReused = problem.Declare(problem.Conflict, "idempotency_key_reused", "ledger: the idempotency key was used for another top-up").
	Say("wallet.form_used")

// Wallets are families' prepaid money.
type Wallets struct {
	ledger    *Ledger
	processor Processor
	wake      func()
}

// NewWallets returns the wallets, charging through processor. wake tells the job
// workers that a receipt was queued.
func NewWallets(l *Ledger, processor Processor, wake func()) *Wallets {
	return &Wallets{ledger: l, processor: processor, wake: wake}
}

// Processor is the payment processor in use.
func (w *Wallets) Processor() Processor { return w.processor }

// TestMode reports whether payments go to the built-in sandbox: no real money.
func (w *Wallets) TestMode() bool { return w.processor.Name() == "sandbox" }

// TopUp charges the card of token and credits the family's wallet, with a receipt by
// email, all under one idempotency key: a retried request (same key) neither charges
// nor credits twice. Without a key from the client, each call is a new top-up.
func (w *Wallets) TopUp(ctx context.Context, accountID, email, locale string, amountCents int64, token, key string) (TopUp, error) {
	if token = strings.TrimSpace(token); token == "" {
		return TopUp{}, ErrNoToken
	}
	if amountCents < MinTopUp || amountCents > MaxTopUp {
		return TopUp{}, ErrBadAmount
	}
	if key == "" {
		key = ids.New()
	}
	key = "topup:" + accountID + ":" + strings.TrimSpace(key)
	if len(key) > 200 {
		return TopUp{}, ErrBadKey
	}
	// A key seen before is answered before the card is touched: with the top-up it
	// made when the amount is the same (whatever token the retry carries: the card was
	// charged once already), refused when it is not.
	var done TopUp
	var was int64
	err := w.ledger.db.Read().QueryRowContext(ctx, `SELECT t.id, t.reference, MAX(e.amount) FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
		WHERE t.idempotency_key = $1 GROUP BY t.id, t.reference`, key).Scan(&done.ID, &done.ChargeID, &was)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return TopUp{}, err
	case was != amountCents:
		return TopUp{}, ErrKeyReused
	default:
		done.AmountCents, done.Replay = amountCents, true
		done.BalanceCents, err = w.ledger.Balance(ctx, WalletOf(accountID))
		return done, err
	}
	chargeID, err := w.processor.Charge(ctx, token, amountCents, key)
	if err != nil {
		return TopUp{}, err
	}
	t := TopUp{AmountCents: amountCents, ChargeID: chargeID}
	err = w.ledger.db.InTx(ctx, func(tx *sql.Tx) error {
		id, replay, err := w.ledger.Post(ctx, tx, Transaction{
			Kind: "topup", IdempotencyKey: key, Description: "Top-up by card", Reference: chargeID,
			Entries: []Entry{{Ref{Cards, ""}, -amountCents}, {WalletOf(accountID), amountCents}},
			Card:    CardRef{Kind: CardCharge, ID: chargeID, ChargeID: chargeID},
		})
		if err != nil {
			return err
		}
		t.ID, t.Replay = id, replay
		if replay {
			// The same key again: the same top-up, or a mistake if the amount differs.
			var was int64
			if err := tx.QueryRowContext(ctx, "SELECT MAX(amount) FROM ledger_entries WHERE transaction_id = $1", id).Scan(&was); err != nil {
				return err
			}
			if was != amountCents {
				return ErrKeyReused
			}
			return nil
		}
		data := map[string]string{"Amount": Dollars(amountCents), "Fee": Dollars(TopUpFeeCents), "Charge": chargeID, "Reference": id}
		if w.TestMode() {
			data["TestMode"] = "yes" // the receipt says so, as every page does
		}
		return kmail.Enqueue(ctx, w.ledger.db, tx, kmail.Message{To: email, Template: "topup_receipt", Locale: locale, Data: data})
	})
	if err != nil {
		return TopUp{}, err
	}
	if !t.Replay {
		w.wake()
	}
	t.BalanceCents, err = w.ledger.Balance(ctx, WalletOf(accountID))
	return t, err
}

// Balance is a family's wallet balance in cents.
func (w *Wallets) Balance(ctx context.Context, accountID string) (int64, error) {
	return w.ledger.Balance(ctx, WalletOf(accountID))
}

// History is a family's wallet history, newest first.
func (w *Wallets) History(ctx context.Context, accountID string, limit int) ([]Line, error) {
	return w.ledger.History(ctx, WalletOf(accountID), limit)
}

// Dollars formats cents as "$12.34".
func Dollars(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s$%d.%02d", sign, cents/100, cents%100)
}
