package messaging

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
)

// ReviewItem is a message waiting for a reviewer.
type ReviewItem struct {
	Message
	Resident     facility.Resident
	FamilyName   string
	WatchMatch   string
	Waiting      time.Duration
	FacilityName string
	PhotoCount   int
}

type reviewRow struct {
	id, agencyID, facilityID, residentID string
}

// reviewer reports whether a staff member reviews mail at a facility.
func reviewer(a facility.Access, facilityID string) bool {
	return a.Has(facility.MailReviewer, facilityID) || a.Has(facility.FacilityAdmin, facilityID)
}

// CanReview reports whether a staff member reviews messages in some facility of
// the agency: whether the review queue is theirs to open.
func CanReview(a facility.Access) bool { return reviewer(a, "") }

// Queue lists the messages waiting in the facilities a staff member reviews, oldest
// first, with how long each has waited.
func (s *Service) Queue(ctx context.Context, a facility.Access) ([]ReviewItem, error) {
	// A message is reviewed where the resident is now: a transfer moves what waits.
	rows, err := s.db.Read().QueryContext(ctx, `SELECT m.`+strings.ReplaceAll(messageColumns, ", ", ", m.")+`, m.resident_id, r.facility_id, m.watch_match, a.full_name,
		(SELECT COUNT(*) FROM message_photos p WHERE p.message_id = m.id)
		FROM messages m JOIN accounts a ON a.id = m.account_id JOIN residents r ON r.id = m.resident_id
		WHERE m.agency_id = $1 AND m.state = 'in_review' ORDER BY m.created_at, m.id LIMIT 500`, a.AgencyID)
	if err != nil {
		return nil, fmt.Errorf("messaging: queue: %w", err)
	}
	defer rows.Close()
	var out []ReviewItem
	now := time.Now()
	for rows.Next() {
		var it ReviewItem
		var residentID, facilityID string
		if err := rows.Scan(&it.ID, &it.ContactID, &it.Direction, &it.Text, &it.State, &it.Reason, &it.Note, &it.CostStamps, &it.CostCents,
			&it.PrepaidReply, &it.CreatedAt, &residentID, &facilityID, &it.WatchMatch, &it.FamilyName, &it.PhotoCount); err != nil {
			return nil, err
		}
		if !reviewer(a, facilityID) {
			continue
		}
		it.Text = "" // the text is shown when the reviewer opens the message (audited)
		it.Resident.ID = residentID
		it.Waiting = now.Sub(it.CreatedAt)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for i := range out {
		r, err := s.fac.Resident(ctx, out[i].Resident.ID)
		if err != nil {
			return nil, err
		}
		out[i].Resident, out[i].FacilityName = r, r.Facility.Name
	}
	return out, nil
}

func (s *Service) reviewable(ctx context.Context, a facility.Access, id string) (reviewRow, Message, error) {
	var r reviewRow
	if !ids.Valid(id) {
		return r, Message{}, ErrNotFound
	}
	err := s.db.Read().QueryRowContext(ctx, `SELECT m.id, m.agency_id, r.facility_id, m.resident_id FROM messages m
		JOIN residents r ON r.id = m.resident_id WHERE m.id = $1`, id).
		Scan(&r.id, &r.agencyID, &r.facilityID, &r.residentID)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (r.agencyID != a.AgencyID || !reviewer(a, r.facilityID))) {
		return r, Message{}, ErrNotFound
	}
	if err != nil {
		return r, Message{}, err
	}
	m, err := scanMessage(s.db.Read().QueryRowContext(ctx, "SELECT "+messageColumns+" FROM messages WHERE id = $1", id))
	return r, m, err
}

// Open shows a reviewer a message's text; the read is audited.
func (s *Service) Open(ctx context.Context, a facility.Access, id string) (ReviewItem, error) {
	r, m, err := s.reviewable(ctx, a, id)
	if err != nil {
		return ReviewItem{}, err
	}
	if err := s.recordRead(ctx, a, r); err != nil {
		return ReviewItem{}, err
	}
	res, err := s.fac.Resident(ctx, r.residentID)
	if err != nil {
		return ReviewItem{}, err
	}
	var match, family string
	if err := s.db.Read().QueryRowContext(ctx, "SELECT m.watch_match, a.full_name FROM messages m JOIN accounts a ON a.id = m.account_id WHERE m.id = $1", id).
		Scan(&match, &family); err != nil {
		return ReviewItem{}, err
	}
	if m, err = s.withPhotos(ctx, m); err != nil {
		return ReviewItem{}, err
	}
	return ReviewItem{Message: m, Resident: res, FamilyName: family, WatchMatch: match, Waiting: time.Since(m.CreatedAt), FacilityName: res.Facility.Name,
		PhotoCount: len(m.Photos)}, nil
}

// Decide approves a message (it is delivered) or rejects it with a reason from the
// list and a note: every stamp goes back to the wallet and the family is told why.
// The decision is audited.
func (s *Service) Decide(ctx context.Context, a facility.Access, id string, approve bool, reason, note string) error {
	r, m, err := s.reviewable(ctx, a, id)
	if err != nil {
		return err
	}
	var why RejectReason
	if !approve {
		var ok bool
		if why, ok, err = s.usableReason(ctx, r.agencyID, reason); err != nil {
			return err
		} else if !ok && strings.TrimSpace(reason) != "" {
			return ErrReasonGone
		} else if !ok {
			return ErrNeedReason
		}
	}
	if approve {
		// What changed while the message waited: a released or restricted resident,
		// or a contact since denied, is not delivered to. The reviewer rejects it
		// instead, which refunds the family.
		res, err := s.fac.Resident(ctx, r.residentID)
		if err != nil {
			return err
		}
		if res.Status != "active" || slices.Contains(res.Restrictions, "no_messages") || !s.flows(ctx, r.residentID, m.ContactID) {
			return ErrUndeliverable
		}
		if slices.Contains(res.Restrictions, "no_photos") {
			if m, err = s.withPhotos(ctx, m); err != nil {
				return err
			} else if len(m.Photos) > 0 {
				return ErrUndeliverable
			}
		}
	}
	note = strings.TrimSpace(note)
	if len([]rune(note)) > 500 || !cleanLine(note) {
		return ErrBadNote
	}
	now := time.Now().UTC()
	// An approval delivers now; a rejection keeps its reason and note.
	state, action, deliveredAt := Delivered, "message.approved", &now
	if !approve {
		state, action, deliveredAt = Rejected, "message.rejected", nil
	} else {
		reason, note = "", ""
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET state = $2, reason = $3, note = $4, decided_at = $5, decided_by = $6,
			delivered_at = $7 WHERE id = $1 AND state = 'in_review'`,
			id, state, reason, note, now, a.AccountID, deliveredAt)
		if err != nil {
			return fmt.Errorf("messaging: decide: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrAlreadyDecided
		}
		if err := audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + a.AccountID, Action: action,
			AgencyID: r.agencyID, FacilityID: r.facilityID, ResidentID: r.residentID, Subject: "message:" + id, Detail: strings.TrimSpace(reason + " " + note)}); err != nil {
			return err
		}
		if approve {
			return nil
		}
		var accountID, email, locale, contactID, to string
		if err := tx.QueryRowContext(ctx, `SELECT a.id, a.email, a.locale, m.contact_id, r.first_name || ' ' || r.last_name
			FROM messages m JOIN accounts a ON a.id = m.account_id JOIN residents r ON r.id = m.resident_id WHERE m.id = $1`, id).
			Scan(&accountID, &email, &locale, &contactID, &to); err != nil {
			return err
		}
		if m.CostCents > 0 {
			if _, _, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "refund", IdempotencyKey: "refund:" + id, Description: "Refund of a rejected message", Reference: id,
				Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Platform}, Amount: -m.CostCents}, {Account: ledger.WalletOf(accountID), Amount: m.CostCents}}}); err != nil {
				return err
			}
		}
		return notify(ctx, tx, email, locale, "message_rejected", map[string]string{"Reason": reason, "ReasonText": why.Wording.In(locale), "Note": note,
			"Refund": ledger.Dollars(m.CostCents), "Stamps": fmt.Sprint(m.CostStamps), "To": to, "ContactID": contactID})
	})
	if err == nil {
		s.wake()
		if approve {
			s.news.publish(r.residentID)
		}
	}
	return err
}
