package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/jobs"
	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/problem"
)

// Money in a communications account stays the holder's and is refunded on request
// (47 CFR 64.6100-64.6130): a family can have its whole unused balance back on the
// cards it came from, in full and with no fee.
//
// A refund happens in two steps, each one database transaction:
//
//  1. Refund takes the whole balance out of the wallet into a hold of its own
//     (HoldFor("wallet_refund:<id>")), splits it across the family's top-up charges
//     (newest first, each at most what that charge has not yet given back), records
//     the parts, queues the job that asks the processor, and queues the receipt.
//  2. The job (HandleRefundJob), for each part not yet done, asks the processor to
//     refund it under the key "wallet_refund:<id>:<n>", then moves the part from the
//     hold to the processor's account under the same ledger key and marks it done.
//
// A crash anywhere leaves the money in the wallet (step 1 did not commit) or in the
// hold (the job runs again): never lost, never refunded twice, since the processor
// and the ledger both know each part by its key.

// WalletRefundJob is the job that asks the processor for a wallet refund's parts.
const WalletRefundJob = "ledger.wallet_refund"

// States of a wallet refund.
const (
	RefundPending  = "pending"  // out of the wallet; the processor has not confirmed every part yet
	RefundRefunded = "refunded" // every part is back on its card
)

// WalletRefundFeeCents is what a refund costs: nothing. The money is the family's.
const WalletRefundFeeCents = 0

// Refusals of a wallet refund.
var (
	// ErrNothingToRefund is a refund of an empty wallet.
	ErrNothingToRefund = problem.Declare(problem.Conflict, "nothing_to_refund", "ledger: the wallet holds no money to refund").
				Say("wallet.refund.nothing")
	// ErrRefundExceedsCharges is a wallet holding more than its card charges can
	// take back, which should never be: nothing is moved, and the family is asked to
	// write to us, rather than any of the money being dropped.
	ErrRefundExceedsCharges = problem.Declare(problem.Conflict, "refund_exceeds_charges", "ledger: the wallet holds more than its card charges can take back").
				Say("wallet.refund.exceeds")
	// ErrRefundBadKey is an idempotency key too long to keep.
	ErrRefundBadKey = problem.Declare(problem.Invalid, "invalid_idempotency_key", "ledger: the idempotency key is too long").
			On("Idempotency-Key", "too_long").Say("wallet.refund.form_stale")
	// ErrRefundNotFound is a refund that does not exist, or is another family's.
	ErrRefundNotFound = problem.Declare(problem.NotFound, "not_found", "ledger: no such wallet refund")
)

// WalletRefund is a refund of a family's wallet balance to its cards.
type WalletRefund struct {
	ID          string
	AmountCents int64
	State       string // RefundPending or RefundRefunded
	CreatedAt   time.Time
	Parts       []RefundPart
	Replay      bool // the same key was used before: nothing new happened
}

// RefundPart is what goes back to one card charge.
type RefundPart struct {
	Position          int // 1, 2, ...: the part's key is "wallet_refund:<id>:<position>"
	ChargeID          string
	AmountCents       int64
	ProcessorRefundID string // the processor's refund, once it confirmed
	Done              bool
}

// Cards is how many card charges the refund goes back to.
func (r WalletRefund) Cards() int { return len(r.Parts) }

// refundJob is the payload of WalletRefundJob.
type refundJob struct {
	RefundID string `json:"refund_id"`
}

func refundHold(id string) Ref { return HoldFor("wallet_refund:" + id) }
func partKey(id string, position int) string {
	return "wallet_refund:" + id + ":" + strconv.Itoa(position)
}

// Refund gives the family's whole wallet balance back to the cards it came from,
// with a receipt by email. The same key again answers with the refund it made and
// moves nothing; without a key from the client, each call is a new refund (which
// finds the wallet empty after the first). An empty wallet is refused with
// ErrNothingToRefund.
func (w *Wallets) Refund(ctx context.Context, accountID, email, locale string, key string) (WalletRefund, error) {
	if key = strings.TrimSpace(key); key == "" {
		key = ids.New()
	}
	key = "wallet_refund:" + accountID + ":" + key
	if len(key) > 200 {
		return WalletRefund{}, ErrRefundBadKey
	}
	db := w.ledger.db
	// A key seen before is answered before anything is locked.
	done, err := w.findRefund(ctx, db.Read(), "idempotency_key = $1 AND account_id = $2", key, accountID)
	if err == nil {
		done.Replay = true
		return done, nil
	}
	if !errors.Is(err, ErrRefundNotFound) {
		return WalletRefund{}, err
	}
	var r WalletRefund
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		// The wallet's row is locked until commit (on SQLite the write transaction
		// holds the database): no spend or other refund moves its balance meanwhile,
		// and a parallel request with the same key finds this refund below.
		var balance int64
		err := tx.QueryRowContext(ctx, "SELECT balance FROM ledger_accounts WHERE kind = $1 AND owner_id = $2 AND currency = $3"+db.ForUpdate(),
			Wallet, accountID, Currency).Scan(&balance)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("ledger: wallet refund: %w", err)
		}
		if done, err := w.findRefund(ctx, tx, "idempotency_key = $1 AND account_id = $2", key, accountID); err == nil {
			r, r.Replay = done, true
			return nil
		} else if !errors.Is(err, ErrRefundNotFound) {
			return err
		}
		if balance <= 0 {
			return ErrNothingToRefund
		}
		parts, err := w.place(ctx, tx, accountID, balance)
		if err != nil {
			return err
		}
		r = WalletRefund{ID: ids.New(), AmountCents: balance, State: RefundPending, CreatedAt: time.Now().UTC(), Parts: parts}
		if _, err := tx.ExecContext(ctx, `INSERT INTO wallet_refunds (id, account_id, idempotency_key, amount_cents, state, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, r.ID, accountID, key, r.AmountCents, r.State, r.CreatedAt); err != nil {
			return fmt.Errorf("ledger: wallet refund: %w", err)
		}
		for _, p := range parts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO wallet_refund_parts (refund_id, position, charge_id, amount_cents) VALUES ($1, $2, $3, $4)`,
				r.ID, p.Position, p.ChargeID, p.AmountCents); err != nil {
				return fmt.Errorf("ledger: wallet refund: %w", err)
			}
		}
		if _, _, err := w.ledger.Post(ctx, tx, Transaction{
			Kind: "wallet_refund", IdempotencyKey: "wallet_refund:" + r.ID, Description: "Refund of the wallet balance to card", Reference: r.ID,
			Entries: []Entry{{WalletOf(accountID), -balance}, {refundHold(r.ID), balance}},
		}); err != nil {
			return err
		}
		if _, err := jobs.Enqueue(ctx, w.ledger.db, tx, WalletRefundJob, refundJob{RefundID: r.ID}, jobs.EnqueueOptions{}); err != nil {
			return err
		}
		data := map[string]string{"Amount": Dollars(balance), "Fee": Dollars(WalletRefundFeeCents), "Cards": strconv.Itoa(len(parts)), "Reference": r.ID}
		if w.TestMode() {
			data["TestMode"] = "yes"
		}
		return kmail.Enqueue(ctx, w.ledger.db, tx, kmail.Message{To: email, Template: "wallet_refund", Locale: locale, Data: data})
	})
	if err != nil {
		return WalletRefund{}, err
	}
	if !r.Replay {
		w.wake()
	}
	return r, nil
}

// place splits total across the family's top-up charges, newest first, each part at
// most what its charge has not given back in earlier refunds or a chargeback. Money that came into
// the wallet from no card (stamps of a rejected message, the unused rest of a video
// visit) was paid with card money in the first place, so it goes back on the
// charges too while they have room; more than they can take is refused whole.
func (w *Wallets) place(ctx context.Context, tx *sql.Tx, accountID string, total int64) ([]RefundPart, error) {
	rows, err := tx.QueryContext(ctx, `SELECT t.reference, e.amount,
			COALESCE((SELECT SUM(p.amount_cents) FROM wallet_refund_parts p JOIN wallet_refunds r ON r.id = p.refund_id
				WHERE p.charge_id = t.reference AND r.account_id = $1), 0)
		FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id JOIN ledger_transactions t ON t.id = e.transaction_id
		WHERE a.kind = $2 AND a.owner_id = $1 AND a.currency = $3 AND t.kind = 'topup' AND e.amount > 0
		ORDER BY t.created_at DESC, t.id DESC`, accountID, Wallet, Currency)
	if err != nil {
		return nil, fmt.Errorf("ledger: wallet refund: charges: %w", err)
	}
	type charge struct {
		id               string
		amount, refunded int64
	}
	var charges []charge
	for rows.Next() {
		var c charge
		if err := rows.Scan(&c.id, &c.amount, &c.refunded); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ledger: wallet refund: charges: %w", err)
		}
		charges = append(charges, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: wallet refund: charges: %w", err)
	}
	var parts []RefundPart
	left := total
	for _, c := range charges {
		if left == 0 {
			break
		}
		if c.id == "" {
			continue
		}
		// What a chargeback took back went to the card already.
		disputed, err := w.Disputed(ctx, tx, c.id)
		if err != nil {
			return nil, err
		}
		room := c.amount - c.refunded - disputed
		if room <= 0 {
			continue
		}
		part := min(room, left)
		parts = append(parts, RefundPart{Position: len(parts) + 1, ChargeID: c.id, AmountCents: part})
		left -= part
	}
	if left > 0 {
		return nil, ErrRefundExceedsCharges
	}
	return parts, nil
}

// HandleRefundJob is the jobs.Handler of WalletRefundJob: it asks the processor for
// each part not yet done and, once the processor confirmed a part, moves it from the
// refund's hold to the processor's account. It is safe to run again: a part the
// processor refunded before is refunded once (same key), and a part the ledger moved
// before is not moved again (same key). A part the processor keeps refusing leaves
// its money in the hold and the job failed, for an operator to look at and retry.
func (w *Wallets) HandleRefundJob(ctx context.Context, payload json.RawMessage) error {
	var job refundJob
	if err := json.Unmarshal(payload, &job); err != nil || job.RefundID == "" {
		return jobs.Permanent(fmt.Errorf("ledger: wallet refund job: bad payload %s", payload))
	}
	db := w.ledger.db
	r, err := w.findRefund(ctx, db.Read(), "id = $1", job.RefundID)
	if errors.Is(err, ErrRefundNotFound) {
		return jobs.Permanent(err)
	}
	if err != nil {
		return err
	}
	for _, p := range r.Parts {
		if p.Done {
			continue
		}
		key := partKey(r.ID, p.Position)
		// A charge disputed since the refund was placed got its money back
		// through the card company: sending the part too would pay the card
		// twice (Stripe refuses it anyway). The part waits in the refund's hold
		// for an operator, as one the processor keeps refusing does.
		moves, err := w.ledger.Movements(ctx, disputeKeys(p.ChargeID))
		if err != nil {
			return err
		}
		if disputed := keptByDisputes(moves); disputed > 0 {
			return jobs.Permanent(fmt.Errorf("ledger: wallet refund %s, part %d: charge %s was disputed (%s taken back by the card company); the part stays in the refund's hold",
				r.ID, p.Position, p.ChargeID, Dollars(disputed)))
		}
		refundID, err := w.processor.Refund(ctx, p.ChargeID, p.AmountCents, key)
		if err != nil {
			return fmt.Errorf("ledger: wallet refund %s, part %d: %w", r.ID, p.Position, err)
		}
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			if _, _, err := w.ledger.Post(ctx, tx, Transaction{
				Kind: "card_refund", IdempotencyKey: key, Description: "Refund to card", Reference: refundID,
				Entries: []Entry{{refundHold(r.ID), -p.AmountCents}, {Ref{Kind: Cards}, p.AmountCents}},
				Card:    CardRef{Kind: CardRefund, ID: refundID, ChargeID: p.ChargeID},
			}); err != nil {
				return err
			}
			now := time.Now().UTC()
			if _, err := tx.ExecContext(ctx, `UPDATE wallet_refund_parts SET processor_refund_id = $3, refunded_at = $4
				WHERE refund_id = $1 AND position = $2 AND refunded_at IS NULL`, r.ID, p.Position, refundID, now); err != nil {
				return fmt.Errorf("ledger: wallet refund: %w", err)
			}
			_, err := tx.ExecContext(ctx, `UPDATE wallet_refunds SET state = $2, finished_at = $3
				WHERE id = $1 AND state = $4 AND NOT EXISTS (SELECT 1 FROM wallet_refund_parts WHERE refund_id = $1 AND refunded_at IS NULL)`,
				r.ID, RefundRefunded, now, RefundPending)
			if err != nil {
				return fmt.Errorf("ledger: wallet refund: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// RefundOf is one of the family's wallet refunds; another family's is not found.
func (w *Wallets) RefundOf(ctx context.Context, accountID, id string) (WalletRefund, error) {
	if !ids.Valid(id) {
		return WalletRefund{}, ErrRefundNotFound
	}
	return w.findRefund(ctx, w.ledger.db.Read(), "id = $1 AND account_id = $2", id, accountID)
}

// Refunds are the family's latest wallet refunds, newest first.
func (w *Wallets) Refunds(ctx context.Context, accountID string, limit int) ([]WalletRefund, error) {
	rows, err := w.ledger.db.Read().QueryContext(ctx, "SELECT id FROM wallet_refunds WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2", accountID, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: wallet refunds: %w", err)
	}
	var list []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ledger: wallet refunds: %w", err)
		}
		list = append(list, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: wallet refunds: %w", err)
	}
	out := make([]WalletRefund, 0, len(list))
	for _, id := range list {
		r, err := w.findRefund(ctx, w.ledger.db.Read(), "id = $1", id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// querier is a database pool or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// findRefund reads the one refund where says, with its parts.
func (w *Wallets) findRefund(ctx context.Context, q querier, where string, args ...any) (WalletRefund, error) {
	var r WalletRefund
	err := q.QueryRowContext(ctx, "SELECT id, amount_cents, state, created_at FROM wallet_refunds WHERE "+where, args...).
		Scan(&r.ID, &r.AmountCents, &r.State, &r.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrRefundNotFound
	}
	if err != nil {
		return r, fmt.Errorf("ledger: wallet refund: %w", err)
	}
	rows, err := q.QueryContext(ctx, `SELECT position, charge_id, amount_cents, processor_refund_id, refunded_at IS NOT NULL
		FROM wallet_refund_parts WHERE refund_id = $1 ORDER BY position`, r.ID)
	if err != nil {
		return r, fmt.Errorf("ledger: wallet refund: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p RefundPart
		if err := rows.Scan(&p.Position, &p.ChargeID, &p.AmountCents, &p.ProcessorRefundID, &p.Done); err != nil {
			return r, fmt.Errorf("ledger: wallet refund: %w", err)
		}
		r.Parts = append(r.Parts, p)
	}
	return r, rows.Err()
}
