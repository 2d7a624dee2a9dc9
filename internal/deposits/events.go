package deposits

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
)

// ErrBadEvent is an event with no id, kind or charge.
var ErrBadEvent = errors.New("deposits: a payment event needs an id, a kind and a charge")

// HandleEvent applies what a payment processor reported: once per event id, so a
// webhook delivered twice changes nothing the second time. An event about a
// charge not yet known here (it came before the request that made the charge
// finished) is kept and applied when the charge is recorded.
func (s *Service) HandleEvent(ctx context.Context, ev ledger.PaymentEvent) error {
	if ev.ID == "" || ev.Kind == "" || ev.ChargeID == "" || len(ev.ID) > 255 || len(ev.ChargeID) > 255 {
		return ErrBadEvent
	}
	if _, err := s.db.Write().ExecContext(ctx, `INSERT INTO payment_events (id, kind, charge_id, charge_key, amount, received_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO NOTHING`, ev.ID, ev.Kind, ev.ChargeID, ev.Key, ev.AmountCents, s.now().UTC()); err != nil {
		return fmt.Errorf("deposits: event: %w", err)
	}
	// A charge whose id never reached us (its request timed out, or the processor
	// answered an error under its key) is named by the key it was made under: the
	// deposit learns its charge id, and the event finds it.
	if id, ok := strings.CutPrefix(ev.Key, "deposit:"); ok && ids.Valid(id) {
		if _, err := s.db.Write().ExecContext(ctx, "UPDATE deposits SET charge_id = $2 WHERE id = $1 AND charge_id = ''", id, ev.ChargeID); err != nil {
			return fmt.Errorf("deposits: event: %w", err)
		}
	}
	_, err := s.applyWaiting(ctx, ev.ChargeID)
	return err
}

// applyWaiting applies the events of a charge not applied yet, oldest first, but
// a won dispute after the chargeback it undoes (the processor may send them in
// either order). It reports whether there were any.
func (s *Service) applyWaiting(ctx context.Context, chargeID string) (bool, error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM payment_events WHERE charge_id = $1 AND applied_at IS NULL
		ORDER BY CASE WHEN kind = $2 THEN 1 ELSE 0 END, received_at, id`, chargeID, ledger.EventDisputeWon)
	if err != nil {
		return false, fmt.Errorf("deposits: events: %w", err)
	}
	var list []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return false, err
		}
		list = append(list, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	for _, id := range list {
		if err := s.apply(ctx, id); err != nil {
			return true, err
		}
	}
	return len(list) > 0, nil
}

// apply applies one event, in one transaction with its marking as applied. An
// event whose deposit is not known stays waiting; one that needs the charge
// confirmed first (a dispute of an unconfirmed charge) confirms it.
func (s *Service) apply(ctx context.Context, eventID string) error {
	var kind, chargeID, key string
	var amount int64
	if err := s.db.Read().QueryRowContext(ctx, "SELECT kind, charge_id, charge_key, amount FROM payment_events WHERE id = $1", eventID).Scan(&kind, &chargeID, &key, &amount); err != nil {
		return fmt.Errorf("deposits: event: %w", err)
	}
	var depositID string
	var charged bool
	err := s.db.Read().QueryRowContext(ctx, "SELECT id, charged FROM deposits WHERE charge_id = $1", chargeID).Scan(&depositID, &charged)
	if errors.Is(err, sql.ErrNoRows) {
		return s.applyTopUp(ctx, eventID, kind, chargeID, key, amount)
	}
	if err != nil {
		return fmt.Errorf("deposits: event: %w", err)
	}
	switch kind {
	case ledger.EventChargeSucceeded, ledger.EventDisputed:
		if !charged {
			// A dispute means the charge happened, whatever the request saw.
			d, err := s.byID(ctx, depositID)
			if err != nil {
				return err
			}
			if _, err := s.charged(ctx, d, chargeID, nil); err != nil {
				return err
			}
		}
	case ledger.EventChargeFailed:
		if !charged {
			if err := s.failed(ctx, depositID, "payment_declined"); err != nil {
				return err
			}
		}
	}
	wake := false
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if kind == ledger.EventDisputeWon {
			// A dispute won before its chargeback came: it waits for it.
			if taken, err := s.ledger.MovementsTx(ctx, tx, []string{chargebackKey(depositID)}); err != nil || len(taken) == 0 {
				return err
			}
		}
		if first, err := s.markApplied(ctx, tx, eventID); err != nil || !first {
			return err // applied by a parallel delivery
		}
		switch kind {
		case ledger.EventDisputed:
			wake = true
			return s.chargeback(ctx, tx, depositID, eventID, amount)
		case ledger.EventDisputeWon:
			wake = true
			return s.disputeWon(ctx, tx, depositID, eventID, amount)
		}
		return nil
	})
	if err == nil && wake {
		s.wake()
	}
	return err
}

// chargeback reverses a deposit whose card holder disputed the charge: the
// processor has taken the disputed amount back (the whole total, or part of it).
// A posted deposit comes out of the trust account; money the resident already
// spent is borne as the agency's policy says (by default the platform, and the
// resident is never blocked). A deposit not posted gives the disputed amount out
// of its hold, and the rest goes back to the card as a refund. Every chargeback is
// audited.
func (s *Service) chargeback(ctx context.Context, tx *sql.Tx, id, eventID string, amount int64) error {
	d, err := s.lockedDeposit(ctx, tx, id)
	if err != nil {
		return err
	}
	// Under the resident's lock, as a posting: what they hold and owe is read
	// and changed by one transaction at a time.
	if err := s.db.LockChain(ctx, tx, lockKey("deposit-resident:"+d.ResidentID)); err != nil {
		return err
	}
	now := s.now().UTC()
	disputed := d.TotalCents()
	if amount > 0 && amount < disputed {
		disputed = amount
	}
	entries := []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: disputed}}
	var detail string
	var feed *feedRow
	switch {
	case d.State == Posted:
		p, err := s.policyIn(ctx, tx, d.AgencyID)
		if err != nil {
			return err
		}
		balance, err := s.ledger.BalanceTx(ctx, tx, ledger.ResidentOf(d.ResidentID))
		if err != nil {
			return err
		}
		// The deposit's part of what was disputed first, then its fee.
		part := min(disputed, d.AmountCents)
		fee := disputed - part
		take := min(balance, part)
		short := part - take
		if take > 0 {
			entries = append(entries, ledger.Entry{Account: ledger.ResidentOf(d.ResidentID), Amount: -take})
		}
		if fee > 0 {
			entries = append(entries, ledger.Entry{Account: ledger.Ref{Kind: ledger.Platform}, Amount: -fee})
		}
		detail = fmt.Sprintf("%s taken back from the trust account", ledger.Dollars(take))
		switch {
		case short > 0 && p.Chargebacks == ChargebackResident:
			entries = append(entries, ledger.Entry{Account: ledger.OwedBy(d.ResidentID), Amount: -short})
			detail += fmt.Sprintf("; %s already spent, owed by the resident", ledger.Dollars(short))
		case short > 0:
			entries = append(entries, ledger.Entry{Account: ledger.Losses, Amount: -short})
			detail += fmt.Sprintf("; %s already spent, borne by the platform", ledger.Dollars(short))
		}
		row := depositRow(d, FeedReversed, -take, fee, "chargeback")
		feed = &row
	case d.Refund == "done":
		// Refunded and disputed: the card holder got the money twice, and the
		// platform bears the second.
		entries = append(entries, ledger.Entry{Account: ledger.Losses, Amount: -disputed})
		detail = "disputed after its refund: " + ledger.Dollars(disputed) + " borne by the platform"
	case d.Charged:
		entries = append(entries, ledger.Entry{Account: holdOf(d.ID), Amount: -disputed})
		detail = "disputed before posting"
		if d.State == Held {
			row := depositRow(d, FeedRefunded, 0, 0, "chargeback")
			feed = &row
		}
	default:
		return nil // not charged: apply confirms the charge before a dispute
	}
	if _, replay, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "deposit.chargeback", IdempotencyKey: chargebackKey(d.ID),
		Description: "Deposit " + d.Confirmation + " disputed by the card holder", Reference: d.ID, Entries: entries,
		Card: ledger.CardRef{Kind: ledger.CardChargeback, ChargeID: d.ChargeID}}); err != nil || replay {
		return err
	}
	if feed != nil {
		if err := s.append(ctx, tx, *feed, now); err != nil {
			return err
		}
	}
	if _, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET disputed_cents = $2 WHERE id = $1", d.ID, disputed); err != nil {
		return err
	}
	d.DisputedCents = disputed
	if d.State == Pending || d.State == Held || d.State == Posted {
		if err := s.setState(ctx, tx, d, Reversed, "disputed", "", now); err != nil {
			return err
		}
		if d.State != Posted {
			// Not posted: what the dispute did not take goes back to the card.
			if _, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET refund = 'due' WHERE id = $1", d.ID); err != nil {
				return err
			}
			if _, err := s.settleLater(ctx, tx, d.ID, now); err != nil {
				return err
			}
		}
		d.State, d.Reason = Reversed, "disputed"
	}
	if err := audit.Record(ctx, s.db, tx, audit.Entry{Actor: "processor:" + d.Processor, Action: "deposits.chargeback", AgencyID: d.AgencyID,
		FacilityID: d.FacilityID, ResidentID: d.ResidentID, Subject: d.Confirmation,
		Detail: strings.TrimSpace(fmt.Sprintf("%s of %s disputed (event %s): %s", ledger.Dollars(disputed), ledger.Dollars(d.TotalCents()), eventID, detail))}); err != nil {
		return err
	}
	return s.mail(ctx, tx, nil, d, "deposit_reversed", nil)
}

// disputeWon undoes a chargeback whose dispute the card holder lost: the processor
// gave the disputed amount back. Each account the chargeback took from gets back
// what it gave: the trust account what was taken from it (the trust system gets a
// reinstated row), the platform the fee, the platform's losses what they bore. A
// debt the resident owed for it is forgiven, and what they repaid of it already
// goes back to their trust account. A posted deposit is posted again. The money of
// a deposit that never posted returns to its hold and goes back to the card: the
// family paid for nothing. It is audited.
func (s *Service) disputeWon(ctx context.Context, tx *sql.Tx, id, eventID string, amount int64) error {
	d, err := s.lockedDeposit(ctx, tx, id)
	if err != nil {
		return err
	}
	if err := s.db.LockChain(ctx, tx, lockKey("deposit-resident:"+d.ResidentID)); err != nil {
		return err
	}
	audited := func(detail string) error {
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "processor:" + d.Processor, Action: "deposits.dispute_won", AgencyID: d.AgencyID,
			FacilityID: d.FacilityID, ResidentID: d.ResidentID, Subject: d.Confirmation,
			Detail: fmt.Sprintf("%s given back by the processor (event %s): %s", ledger.Dollars(amount), eventID, detail)})
	}
	moves, err := s.ledger.MovementsTx(ctx, tx, []string{chargebackKey(id)})
	if err != nil {
		return err
	}
	if len(moves) == 0 || d.DisputedCents == 0 {
		// Stripe reinstates only after it withdrew; the withdrawal's event is
		// applied when it comes, and its money was never taken here.
		s.log.Warn("deposits: a dispute won without a chargeback on record", "deposit", d.ID, "event", eventID)
		return audited("no chargeback of it was on record: nothing was given back here")
	}
	var entries []ledger.Entry
	var trust, fee, held int64
	for _, m := range moves {
		back := -m.Amount
		ref := ledger.Ref{Kind: m.AccountKind, Owner: m.AccountOwner}
		switch {
		case ref == ledger.OwedBy(d.ResidentID):
			// The debt is forgiven; what the resident repaid of it since goes
			// back to their trust account.
			owed, err := s.ledger.BalanceTx(ctx, tx, ref)
			if err != nil {
				return err
			}
			debt := min(back, max(-owed, 0))
			if debt > 0 {
				entries = append(entries, ledger.Entry{Account: ref, Amount: debt})
			}
			if repaid := back - debt; repaid > 0 {
				entries = append(entries, ledger.Entry{Account: ledger.ResidentOf(d.ResidentID), Amount: repaid})
				trust += repaid
			}
			continue
		case ref == ledger.ResidentOf(d.ResidentID):
			trust += back
		case ref == ledger.Ref{Kind: ledger.Platform}:
			fee += back
		case ref == holdOf(d.ID):
			held += back
		}
		entries = append(entries, ledger.Entry{Account: ref, Amount: back})
	}
	if _, replay, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "deposit.dispute_won", IdempotencyKey: disputeWonKey(d.ID),
		Description: "Deposit " + d.Confirmation + ": the card holder's dispute failed", Reference: d.ID, Entries: entries,
		Card: ledger.CardRef{Kind: ledger.CardChargebackReversed, ChargeID: d.ChargeID}}); err != nil || replay {
		return err
	}
	if amount != d.DisputedCents {
		s.log.Warn("deposits: a dispute won gave back another amount than was taken", "deposit", d.ID, "taken", d.DisputedCents, "given", amount)
	}
	now := s.now().UTC()
	if _, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET disputed_cents = 0 WHERE id = $1", d.ID); err != nil {
		return err
	}
	detail := "the chargeback undone"
	switch {
	case d.State == Reversed && !d.PostedAt.IsZero():
		if _, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET state = 'posted', reason = '', ended_at = NULL WHERE id = $1 AND state = 'reversed'", d.ID); err != nil {
			return err
		}
		if err := s.append(ctx, tx, depositRow(d, FeedReinstated, trust, fee, "dispute won"), now); err != nil {
			return err
		}
		detail = fmt.Sprintf("posted again: %s back into the trust account", ledger.Dollars(trust))
	case held > 0:
		// Disputed before it posted: its money is in its hold again, and the
		// family's, since the deposit ended.
		if _, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET refund = 'due' WHERE id = $1", d.ID); err != nil {
			return err
		}
		if _, err := s.settleLater(ctx, tx, d.ID, now); err != nil {
			return err
		}
		detail = "never posted: the money goes back to the card"
	}
	return audited(detail)
}

// applyTopUp applies an event about a charge that is no deposit's: a wallet
// top-up's, found by the key its payment was made under (the event's own, or one
// an earlier event of the same charge named). A chargeback takes the money back
// from the wallet (what was spent, the platform bears); a dispute won gives it
// back. An event of a charge not known at all waits: a later event of it may name
// its key.
func (s *Service) applyTopUp(ctx context.Context, eventID, kind, chargeID, key string, amount int64) error {
	if s.wallets == nil {
		return nil
	}
	if !strings.HasPrefix(key, "topup:") {
		err := s.db.Read().QueryRowContext(ctx, `SELECT charge_key FROM payment_events WHERE charge_id = $1 AND charge_key LIKE 'topup:%'
			ORDER BY received_at LIMIT 1`, chargeID).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // not known yet
		}
		if err != nil {
			return fmt.Errorf("deposits: event: %w", err)
		}
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		chargeOf, _, _, ok, err := s.wallets.TopUpOf(ctx, tx, key)
		if err != nil || !ok {
			return err // the top-up is not recorded (yet): the event waits
		}
		if kind == ledger.EventDisputeWon {
			// A dispute won before its chargeback came: it waits for it.
			if disputed, err := s.wallets.Disputed(ctx, tx, chargeOf); err != nil || disputed == 0 {
				return err
			}
		}
		if first, err := s.markApplied(ctx, tx, eventID); err != nil || !first {
			return err // applied by a parallel delivery
		}
		switch kind {
		case ledger.EventDisputed:
			took, err := s.wallets.TopUpDisputed(ctx, tx, key, amount)
			if err == nil {
				s.log.Warn("deposits: a wallet top-up was disputed", "charge", chargeID, "disputed", amount, "from_wallet", took)
			}
			return err
		case ledger.EventDisputeWon:
			return s.wallets.TopUpDisputeWon(ctx, tx, key)
		}
		return nil // a payment's own success or failure: the top-up recorded it
	})
}

// markApplied marks an event applied inside tx; false when it was already (a
// parallel delivery applied it).
func (s *Service) markApplied(ctx context.Context, tx *sql.Tx, eventID string) (bool, error) {
	res, err := s.db.TxExec(ctx, tx, "UPDATE payment_events SET applied_at = $2 WHERE id = $1 AND applied_at IS NULL", eventID, s.now().UTC())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
