package deposits

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/ledger"
	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/problem"
)

// SettleJob brings a deposit to rest: it learns the outcome of a charge the
// request could not confirm, and sends back the money of a deposit that ended
// without posting.
const SettleJob = "deposits.settle"

type settlePayload struct {
	ID string `json:"id"`
}

// processorKey is the key the processor gets for a deposit's charge: the same on
// every try, so the processor charges once.
func processorKey(id string) string { return "deposit:" + id }

// charge asks the processor to charge a written deposit d and records the
// outcome. p is the agency's policy where the caller has just read it (nil: read
// it when needed).
func (s *Service) charge(ctx context.Context, d Deposit, token string, p *Policy) (Deposit, error) {
	cctx, cancel := context.WithTimeout(ctx, s.chargeTimeout)
	chargeID, err := s.processor.Charge(cctx, token, d.TotalCents(), processorKey(d.ID))
	cancel()
	switch {
	case err == nil:
		return s.charged(ctx, d, chargeID, p)
	case errors.Is(err, ledger.ErrDeclined), errors.Is(err, ledger.ErrProcessorFailed):
		reason := "payment_declined"
		if p, ok := problem.As(err); ok {
			reason = p.Code
		}
		if ferr := s.failed(ctx, d.ID, reason); ferr != nil {
			return d, ferr
		}
		d, _ = s.byID(ctx, d.ID)
		return d, err
	default:
		// Not known: the settle job asks again, with the same key. A charge the
		// processor named (one waiting for the card holder, say) is kept, so its
		// events find the deposit.
		s.log.Warn("deposits: charge not confirmed", "deposit", d.ID, "err", err)
		if chargeID != "" {
			if _, err := s.db.Write().ExecContext(ctx, "UPDATE deposits SET charge_id = $2 WHERE id = $1 AND charge_id = ''", d.ID, chargeID); err != nil {
				return d, fmt.Errorf("deposits: charge: %w", err)
			}
			if _, err := s.applyWaiting(ctx, chargeID); err != nil {
				return d, err
			}
		}
		return s.byID(ctx, d.ID)
	}
}

// failed ends a deposit whose card was not charged.
func (s *Service) failed(ctx context.Context, id, reason string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		d, err := s.lockedDeposit(ctx, tx, id)
		if err != nil || d.Charged {
			return err
		}
		if d.State != Pending && d.State != Held {
			// Cancelled or rejected before the outcome was known: nothing was
			// charged, so nothing is owed back.
			_, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET refund = '', payment_token = '' WHERE id = $1", id)
			return err
		}
		if err := s.setState(ctx, tx, d, Failed, reason, "", s.now().UTC()); err != nil {
			return err
		}
		_, err = s.db.TxExec(ctx, tx, "UPDATE deposits SET payment_token = '' WHERE id = $1", id)
		return err
	})
}

// charged records a confirmed charge: the money moves from the processor to the
// deposit's hold, and from there to the trust account where the agency posts at
// once, or waits for the finance office. A deposit ended meanwhile (cancelled,
// rejected) is owed back instead. Charged twice (the request and the job, or an
// event) it moves nothing the second time.
//
// before is the deposit as read before (its agency and resident are what is
// used: they never change), p its agency's policy where the caller has it.
func (s *Service) charged(ctx context.Context, before Deposit, chargeID string, p *Policy) (Deposit, error) {
	id := before.ID
	// Whether the resident is still there, and whether the agency posts at once,
	// are known before the transaction: a transaction that will hold the
	// resident's lock must not wait for another connection of the pool meanwhile
	// (on PostgreSQL, parallel postings to one resident would hold every
	// connection and wait for each other), and on SQLite every read inside it
	// holds the one writer. A policy changed in between applies from the next
	// deposit, as it would had this one come a moment earlier.
	gone, err := s.residentGone(ctx, before)
	if err != nil {
		return Deposit{}, err
	}
	if p == nil {
		read, err := s.Policy(ctx, before.AgencyID)
		if err != nil {
			return Deposit{}, err
		}
		p = &read
	}
	// Where a deposit still pending goes now. One whose resident has left stays
	// pending in the statement below, to be ended and refunded.
	next := Pending
	switch {
	case gone != "":
	case p.PostAtOnce:
		next = Posted
	default:
		next = Held
	}
	wake := false     // a job was queued in the table (a handed receipt wakes its worker itself)
	var after Deposit // as the transaction left it; empty if it changed nothing
	// The receipt goes straight to a worker once the posting commits.
	receipt := s.jobs.Handoff()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		after = Deposit{}
		now := s.now().UTC()
		// Recorded, moved on and read back in one statement, which locks the
		// row: a deposit charged already (the request and an event at once)
		// changes nothing. The CASEs read the row as it was.
		d, err := scanDeposit(s.db.TxQueryRow(ctx, tx, `UPDATE deposits SET charge_id = $2, charged = TRUE, payment_token = '',
			state = CASE WHEN state = 'pending' THEN $3 ELSE state END,
			reason = CASE WHEN state = 'pending' THEN '' ELSE reason END,
			posted_at = CASE WHEN state = 'pending' AND $3 = 'posted' THEN $4 ELSE posted_at END
			WHERE id = $1 AND NOT charged RETURNING `+depositColumns, id, chargeID, next, now))
		if errors.Is(err, ErrNotFound) {
			return nil // charged already: it was read just before
		}
		if err != nil {
			return fmt.Errorf("deposits: charged: %w", err)
		}
		after = d
		if _, _, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "deposit.charge", IdempotencyKey: chargeKey(id),
			Description: "Deposit " + d.Confirmation + " paid by card", Reference: d.ID,
			Card:    ledger.CardRef{Kind: ledger.CardCharge, ID: chargeID, ChargeID: chargeID},
			Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -d.TotalCents()}, {Account: holdOf(id), Amount: d.TotalCents()}}}); err != nil {
			return err
		}
		switch d.State {
		case Pending: // its resident has left
			wake = true // its refund's job
			return s.endAndRefund(ctx, tx, d, Refunded, gone, "system", now)
		case Posted: // it was pending, and the agency posts at once: the statement moved it
			if err := s.postMoney(ctx, tx, d, now); err != nil {
				return err
			}
			return s.mail(ctx, tx, receipt, d, "deposit_receipt", nil)
		case Held: // held by the statement, or by the finance office before the charge was known
			return s.mail(ctx, tx, receipt, d, "deposit_receipt", nil)
		default:
			// Ended while the charge was unconfirmed (cancelled, rejected, or
			// marked failed by an earlier event): the money goes back.
			wake = true
			if _, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET refund = 'due' WHERE id = $1 AND refund = ''", id); err != nil {
				return err
			}
			_, err := s.settleLater(ctx, tx, id, now)
			return err
		}
	})
	if err != nil {
		return Deposit{}, err
	}
	receipt.Hand()
	if wake || receipt == nil { // nil: the receipt, if any, was queued in the table
		s.wake()
	}
	applied, err := s.applyWaiting(ctx, chargeID)
	if err != nil {
		return Deposit{}, err
	}
	if applied || after.ID == "" || after.State != Posted && after.State != Held {
		// Changed by an event, or by someone else, or ended and refunded here:
		// read as it is now.
		return s.byID(ctx, id)
	}
	return after, nil
}

// residentGone says why a deposit can no longer reach its resident: released, or
// moved to another agency; "" while it can.
func (s *Service) residentGone(ctx context.Context, d Deposit) (string, error) {
	r, err := s.fac.Resident(ctx, d.ResidentID)
	if err != nil {
		return "", err
	}
	switch {
	case r.Agency.ID != d.AgencyID:
		return "resident_transferred", nil
	case r.Status != "active":
		return "resident_released", nil
	}
	return "", nil
}

// post moves a paid deposit from its hold to the resident's trust account (see
// postMoney) and marks it posted, by whom.
func (s *Service) post(ctx context.Context, tx *sql.Tx, d Deposit, by string, now time.Time) error {
	res, err := s.db.TxExec(ctx, tx, `UPDATE deposits SET state = 'posted', reason = '', posted_at = $3,
		decided_by = CASE WHEN $2 = '' THEN decided_by ELSE $2 END WHERE id = $1 AND state = $4`, d.ID, by, now, d.State)
	if err != nil {
		return fmt.Errorf("deposits: post: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrDecided
	}
	return s.postMoney(ctx, tx, d, now)
}

// postMoney moves a paid deposit, marked posted, from its hold to the resident's
// trust account, and its fee to the platform, as one balanced transaction; a
// resident who owes a chargeback repays it first. The feed gets the row the trust
// system reads.
func (s *Service) postMoney(ctx context.Context, tx *sql.Tx, d Deposit, now time.Time) error {
	// What the resident owes is read and repaid under the resident's lock: two
	// deposits posted at once must not both repay the same debt.
	if err := s.db.LockChain(ctx, tx, lockKey("deposit-resident:"+d.ResidentID)); err != nil {
		return err
	}
	owed, err := s.ledger.BalanceTx(ctx, tx, ledger.OwedBy(d.ResidentID))
	if err != nil {
		return err
	}
	repay := min(max(-owed, 0), d.AmountCents)
	entries := []ledger.Entry{{Account: holdOf(d.ID), Amount: -d.TotalCents()}}
	if d.AmountCents-repay > 0 {
		entries = append(entries, ledger.Entry{Account: ledger.ResidentOf(d.ResidentID), Amount: d.AmountCents - repay})
	}
	if repay > 0 {
		entries = append(entries, ledger.Entry{Account: ledger.OwedBy(d.ResidentID), Amount: repay})
	}
	if d.FeeCents > 0 {
		entries = append(entries, ledger.Entry{Account: ledger.Ref{Kind: ledger.Platform}, Amount: d.FeeCents})
	}
	if _, _, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "deposit.post", IdempotencyKey: postKey(d.ID),
		Description: "Deposit " + d.Confirmation + " from " + d.SenderName, Reference: d.ID, Entries: entries}); err != nil {
		return err
	}
	memo := ""
	if repay > 0 {
		memo = "repaid " + ledger.Dollars(repay) + " of a reversed deposit"
	}
	return s.appendFeed(ctx, tx, d, FeedPosted, d.AmountCents-repay, d.FeeCents, memo, now)
}

// endAndRefund ends a deposit without posting it (to: Rejected, Cancelled,
// Refunded) and, if its card was charged, queues the refund.
func (s *Service) endAndRefund(ctx context.Context, tx *sql.Tx, d Deposit, to, reason, by string, now time.Time) error {
	if err := s.setState(ctx, tx, d, to, reason, by, now); err != nil {
		return err
	}
	if !d.Charged {
		// Nothing charged, or not known yet: nothing to send back now. A charge
		// that turns out to have happened (the processor's event) is sent back
		// then (see charged); the settle job never charges an ended deposit, so
		// the card's token is not kept.
		_, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET payment_token = '' WHERE id = $1", d.ID)
		return err
	}
	if _, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET refund = 'due' WHERE id = $1", d.ID); err != nil {
		return fmt.Errorf("deposits: refund: %w", err)
	}
	if d.State == Held {
		// The trust system may have shown it as coming: the feed says it will not.
		if err := s.appendFeed(ctx, tx, d, FeedRefunded, 0, 0, to+": "+reason, now); err != nil {
			return err
		}
	}
	_, err := s.settleLater(ctx, tx, d.ID, now)
	return err
}

// HandleSettle is the settle job.
func (s *Service) HandleSettle(ctx context.Context, payload json.RawMessage) error {
	var p settlePayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return jobs.Permanent(err)
	}
	return s.Settle(ctx, p.ID)
}

// Settle finishes whatever a deposit still needs: a charge whose outcome is not
// known is asked again (same key: the processor charges once); money of a deposit
// that ended unposted goes back to the card. Safe to run any number of times.
func (s *Service) Settle(ctx context.Context, id string) error {
	d, err := s.byID(ctx, id)
	if err != nil {
		return err
	}
	// Asking again may make the charge (a request that never reached the
	// processor), so only for a deposit the family still wants.
	if !d.Charged && (d.State == Pending || d.State == Held) {
		var token string
		if err := s.db.Read().QueryRowContext(ctx, "SELECT payment_token FROM deposits WHERE id = $1", id).Scan(&token); err != nil {
			return err
		}
		if token == "" {
			return nil // failed or settled meanwhile
		}
		d, err = s.charge(ctx, d, token, nil)
		if errors.Is(err, ledger.ErrDeclined) || errors.Is(err, ledger.ErrProcessorFailed) {
			return nil // failed: nothing was charged
		}
		if err != nil {
			return err
		}
		if !d.Charged {
			return fmt.Errorf("deposits: the charge of %s is still not confirmed", id)
		}
	}
	if d.Charged && d.Refund == "due" {
		return s.refund(ctx, d)
	}
	return nil
}

// refund sends a deposit's money back to its card (less what a chargeback took
// back and earlier refunds sent), then moves it out of the hold. What it asks for
// is fixed, with its key, before the processor is asked: the processor call and the
// ledger transaction carry that key and that amount, so a refund repeated after a
// crash between them happens once, whatever changed meanwhile. Money owed back
// after it (a dispute won meanwhile) goes in a refund of its own, under the next key.
func (s *Service) refund(ctx context.Context, d Deposit) error {
	var key string
	var asked int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		d, err := s.lockedDeposit(ctx, tx, d.ID)
		if err != nil || d.Refund != "due" {
			return err
		}
		key, asked = refundKeyOf(d), d.refundAsked
		if asked == 0 {
			asked = d.RefundCents()
			_, err = s.db.TxExec(ctx, tx, "UPDATE deposits SET refund_asked_cents = $2 WHERE id = $1", d.ID, asked)
		}
		return err
	})
	if err != nil || key == "" {
		return err
	}
	refundID := ""
	if asked > 0 {
		cctx, cancel := context.WithTimeout(ctx, s.chargeTimeout)
		id, err := s.processor.Refund(cctx, d.ChargeID, asked, key)
		cancel()
		if err != nil {
			return fmt.Errorf("deposits: refund %s: %w", d.ID, err)
		}
		refundID = id
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		d, err := s.lockedDeposit(ctx, tx, d.ID)
		if err != nil || d.Refund != "due" || refundKeyOf(d) != key {
			return err // done already
		}
		if asked > 0 {
			// A chargeback taken while the processor refunded left the hold short:
			// the card got that part twice, and the platform bears it.
			hold, err := s.ledger.BalanceTx(ctx, tx, holdOf(d.ID))
			if err != nil {
				return err
			}
			entries := []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: asked}}
			if fromHold := min(max(hold, 0), asked); fromHold > 0 {
				entries = append(entries, ledger.Entry{Account: holdOf(d.ID), Amount: -fromHold})
			}
			if short := asked - min(max(hold, 0), asked); short > 0 {
				entries = append(entries, ledger.Entry{Account: ledger.Losses, Amount: -short})
			}
			if _, _, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "deposit.refund", IdempotencyKey: key,
				Description: "Deposit " + d.Confirmation + " refunded to the card", Reference: d.ID, Entries: entries,
				Card: ledger.CardRef{Kind: ledger.CardRefund, ID: refundID, ChargeID: d.ChargeID}}); err != nil {
				return err
			}
		}
		d.RefundedCents += asked
		d.Refund = "done"
		if d.RefundCents() > 0 {
			d.Refund = "due"
			if _, err := s.settleLater(ctx, tx, d.ID, s.now().UTC()); err != nil {
				return err
			}
		}
		if _, err := s.db.TxExec(ctx, tx, `UPDATE deposits SET refund = $4, refund_id = $2, refunded_cents = $3, refund_asked_cents = 0
			WHERE id = $1`, d.ID, refundID, d.RefundedCents, d.Refund); err != nil {
			return fmt.Errorf("deposits: refund: %w", err)
		}
		if err := audit.Record(ctx, s.db, tx, audit.Entry{Actor: "system", Action: "deposits.refund", AgencyID: d.AgencyID,
			FacilityID: d.FacilityID, ResidentID: d.ResidentID, Subject: d.Confirmation,
			Detail: fmt.Sprintf("%s refunded to the card (%s): %s", ledger.Dollars(asked), d.State, d.Reason)}); err != nil {
			return err
		}
		return s.mail(ctx, tx, nil, d, "deposit_refunded", map[string]string{"Refund": refundID, "Refunded": ledger.Dollars(asked)})
	})
	if err == nil {
		s.wake()
	}
	return err
}

// mail queues a mail about a deposit, as read from the database (its family's
// address and language come with it), inside tx, handed to a worker through h
// where h is not nil.
func (s *Service) mail(ctx context.Context, tx *sql.Tx, h *jobs.Handoff, d Deposit, template string, extra map[string]string) error {
	to, locale := d.email, d.locale
	if to == "" {
		return nil
	}
	data := map[string]string{"Amount": ledger.Dollars(d.AmountCents), "Fee": ledger.Dollars(d.FeeCents), "Total": ledger.Dollars(d.TotalCents()),
		"Resident": d.ResidentName, "Number": d.ResidentNumber, "Confirmation": d.Confirmation, "State": d.State, "Reason": d.Reason,
		"Sender": d.SenderName, "ID": d.ID}
	// The name kept with the deposit: a mail is written inside a transaction that
	// may hold the resident's lock, and must not wait for another connection.
	data["Facility"] = d.FacilityName
	for k, v := range extra {
		data[k] = v
	}
	if d.Processor == "sandbox" {
		data["TestMode"] = "yes"
	}
	return kmail.EnqueueHanded(ctx, s.db, tx, kmail.Message{To: to, Template: template, Locale: locale, Data: data}, h)
}

// SweepUnsettled queues the settle job of each deposit whose request did not learn
// its charge's outcome within the settle delay (KINLINK_DEPOSIT_SETTLE_AFTER): a
// server stopped between the charge and its record, a processor that never
// answered. Such a deposit still holds its card's token; each is queued once (the
// job retries by itself). It returns how many it queued; the server calls it every
// SweepEvery.
func (s *Service) SweepUnsettled(ctx context.Context) (int, error) {
	cutoff := s.now().UTC().Add(-s.settleAfter)
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id FROM deposits WHERE payment_token <> '' AND NOT settle_queued AND created_at < $1
		ORDER BY created_at LIMIT 500`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("deposits: sweep: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("deposits: sweep: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("deposits: sweep: %w", err)
	}
	queued := 0
	for _, id := range ids {
		err := s.db.InTx(ctx, func(tx *sql.Tx) error {
			// Queued by another server meanwhile, or settled: nothing to do.
			res, err := s.db.TxExec(ctx, tx, "UPDATE deposits SET settle_queued = TRUE WHERE id = $1 AND NOT settle_queued AND payment_token <> ''", id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil
			}
			queued++
			_, err = s.settleLater(ctx, tx, id, s.now().UTC())
			return err
		})
		if err != nil {
			return queued, fmt.Errorf("deposits: sweep: %w", err)
		}
	}
	if queued > 0 {
		s.wake()
	}
	return queued, nil
}

// SweepEvery is how often the server sweeps for unsettled deposits: half the
// settle delay, from a second to a minute.
func (s *Service) SweepEvery() time.Duration {
	return min(max(s.settleAfter/2, time.Second), time.Minute)
}
