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
	// Passages is the text as written, cut where the watch list's phrases occur
	// (marked); in the queue only its start (Cut says so), for the messages the
	// queue previews (Preview), whose photos are in Photos.
	Passages []Passage
	Cut      bool
	Preview  bool
	// Watched are the watch list's phrases found in the text, as the list writes
	// them (and the phrase that sent it to review, if the list dropped it since).
	Watched []string
	// Earlier are the messages before this one between the same family and
	// resident, both ways, oldest first (on the opened message only).
	Earlier []Message
}

// previewDetail is what the audit log says of a message previewed in the queue.
const previewDetail = "preview in the queue"

// QueuePreviews is how many of the oldest waiting messages the queue shows the
// start of, with their photos. Each preview is a read of the message, audited as
// opening it is, so the queue does not show every message's text at once.
const QueuePreviews = 20

// EarlierShown is how many earlier messages of the conversation an opened message
// shows.
const EarlierShown = 5

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
	var previews []reviewRow
	now := time.Now()
	for rows.Next() {
		var it ReviewItem
		var residentID, facilityID string
		if err := rows.Scan(&it.ID, &it.ContactID, &it.Direction, &it.Kind, &it.Text, &it.State, &it.Reason, &it.Note, &it.CostStamps, &it.CostCents,
			&it.PrepaidReply, &it.CreatedAt, &residentID, &facilityID, &it.WatchMatch, &it.FamilyName, &it.PhotoCount); err != nil {
			return nil, err
		}
		if !reviewer(a, facilityID) {
			continue
		}
		if len(out) < QueuePreviews {
			it.Preview = true
			previews = append(previews, reviewRow{id: it.ID, agencyID: a.AgencyID, facilityID: facilityID, residentID: residentID})
		}
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
	if err := s.preview(ctx, a, out[:len(previews)], previews); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Text = "" // shown in full when the reviewer opens the message
	}
	return out, nil
}

// preview gives the queue's first messages the start of their text, with the
// watch list's phrases marked, and their photos; the reads are audited first, in
// one transaction, as opening each message would be (once a viewing: a refresh of
// the queue within audit.ViewingWindow records only what it shows anew).
func (s *Service) preview(ctx context.Context, a facility.Access, items []ReviewItem, rows []reviewRow) error {
	if len(items) == 0 {
		return nil
	}
	subjects := make([]string, len(rows))
	for i, r := range rows {
		subjects[i] = readEntry(a, r, "").Subject
	}
	seen, err := audit.Viewed(ctx, s.db, "staff:"+a.AccountID, "message.read", previewDetail, subjects)
	if err != nil {
		return err
	}
	if err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		for i, r := range rows {
			if seen[subjects[i]] {
				continue
			}
			if err := audit.Record(ctx, s.db, tx, readEntry(a, r, previewDetail)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	list, err := s.currentWatchList(ctx, a.AgencyID)
	if err != nil {
		return err
	}
	msgs := make([]Message, len(items))
	for i := range items {
		ps, found := watchPassages(items[i].Text, withMatch(list.phrases, items[i].WatchMatch))
		items[i].Passages, items[i].Cut = cutPassages(ps, previewRunes, previewLines)
		items[i].Watched = found
		msgs[i] = Message{ID: items[i].ID}
	}
	if err := s.attachPhotos(ctx, msgs); err != nil {
		return err
	}
	for i := range items {
		items[i].Photos = msgs[i].Photos
	}
	return nil
}

// currentWatchList is the agency's watch list as it is now.
func (s *Service) currentWatchList(ctx context.Context, agencyID string) (watchList, error) {
	var version int64
	if err := s.db.QueryRow(ctx, "SELECT COALESCE(mp.watch_version, 0) FROM agencies g"+policyJoin+" WHERE g.id = $1", agencyID).Scan(&version); err != nil {
		return watchList{}, fmt.Errorf("messaging: watch list: %w", err)
	}
	return s.watchListAt(ctx, agencyID, version)
}

// withMatch adds to the list the phrase that sent a message to review, which the
// agency may have taken off the list since.
func withMatch(phrases []watchPhrase, match string) []watchPhrase {
	if match == "" {
		return phrases
	}
	folded := foldForWatch(match)
	for _, p := range phrases {
		if p.folded == folded {
			return phrases
		}
	}
	return append(slices.Clip(phrases), watchPhrase{phrase: match, folded: folded})
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

// Open shows a reviewer a message's text, with the watch list's phrases marked,
// and the messages before it in the conversation; the read is audited.
func (s *Service) Open(ctx context.Context, a facility.Access, id string) (ReviewItem, error) {
	r, m, err := s.reviewable(ctx, a, id)
	if err != nil {
		return ReviewItem{}, err
	}
	earlier, err := s.earlier(ctx, r.agencyID, m)
	if err != nil {
		return ReviewItem{}, err
	}
	detail := ""
	if len(earlier) > 0 {
		detail = fmt.Sprintf("with %d earlier messages of the conversation", len(earlier))
	}
	if err := s.recordRead(ctx, a, r, detail); err != nil {
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
	list, err := s.currentWatchList(ctx, r.agencyID)
	if err != nil {
		return ReviewItem{}, err
	}
	it := ReviewItem{Message: m, Resident: res, FamilyName: family, WatchMatch: match, Waiting: time.Since(m.CreatedAt), FacilityName: res.Facility.Name,
		PhotoCount: len(m.Photos), Earlier: earlier}
	it.Passages, it.Watched = watchPassages(m.Text, withMatch(list.phrases, match))
	return it, nil
}

// earlier returns the EarlierShown messages before m in its conversation (one
// family member and one resident), both ways and in any state, oldest first.
func (s *Service) earlier(ctx context.Context, agencyID string, m Message) ([]Message, error) {
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+messageColumns+` FROM messages WHERE contact_id = $1
		AND (created_at, id) < (SELECT created_at, id FROM messages WHERE id = $2) ORDER BY created_at DESC, id DESC LIMIT $3`,
		m.ContactID, m.ID, EarlierShown)
	if err != nil {
		return nil, fmt.Errorf("messaging: earlier messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		e, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	slices.Reverse(out)
	if err := s.attachReasons(ctx, agencyID, out); err != nil {
		return nil, err
	}
	return out, s.attachPhotos(ctx, out)
}

// NextInQueue is the message a reviewer who decided after goes on to: the next one
// in the queue's order (oldest first) among those they review, or, past the end of
// the queue, the oldest one still waiting (one they left behind); "" when none is.
func (s *Service) NextInQueue(ctx context.Context, a facility.Access, after string) (string, error) {
	for _, later := range []bool{true, false} {
		cond, args := "", []any{a.AgencyID}
		if later {
			cond, args = " AND (m.created_at, m.id) > (SELECT created_at, id FROM messages WHERE id = $2)", append(args, after)
		}
		id, err := s.firstReviewable(ctx, a, after, `SELECT m.id, r.facility_id FROM messages m JOIN residents r ON r.id = m.resident_id
			WHERE m.agency_id = $1 AND m.state = 'in_review'`+cond+` ORDER BY m.created_at, m.id`, args...)
		if id != "" || err != nil {
			return id, err
		}
	}
	return "", nil
}

// firstReviewable returns the first message id the query finds, other than skip,
// in a facility the staff member reviews.
func (s *Service) firstReviewable(ctx context.Context, a facility.Access, skip, query string, args ...any) (string, error) {
	rows, err := s.db.Read().QueryContext(ctx, query, args...)
	if err != nil {
		return "", fmt.Errorf("messaging: next in queue: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, facilityID string
		if err := rows.Scan(&id, &facilityID); err != nil {
			return "", err
		}
		if id != skip && reviewer(a, facilityID) {
			return id, nil
		}
	}
	return "", rows.Err()
}

// Decide approves a message (it is delivered) or rejects it with a reason from the
// list and a note: every stamp goes back to the wallet and the family is told why.
// A resident's VideoGram reply approved reaches the family (who are told by mail);
// rejected, it gives back what paid for it (a prepaid reply, or the resident's
// trust money). The decision is audited.
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
		if ok, err := s.deliverable(ctx, r.residentID, m.ContactID, m); err != nil {
			return err
		} else if !ok {
			return ErrUndeliverable
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
		if m.Direction == FromResident {
			state = Sent // a reply the family has not seen yet, as a text reply is
		}
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
		if m.Direction == FromResident {
			// A resident's VideoGram reply: the family learns of it only once it is
			// approved; a rejected one gives back what paid for it (the reply the
			// family prepaid, or the resident's trust money).
			if !approve {
				return s.giveBackReply(ctx, tx, r.residentID, id)
			}
			res, err := s.fac.Resident(ctx, r.residentID)
			if err != nil {
				return err
			}
			var accountID string
			if err := tx.QueryRowContext(ctx, "SELECT account_id FROM messages WHERE id = $1", id).Scan(&accountID); err != nil {
				return err
			}
			return s.tellFamilyOfReply(ctx, tx, accountID, m.ContactID, res)
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
		if err := s.refund(ctx, tx, accountID, id, m.CostCents, "Refund of a rejected message"); err != nil {
			return err
		}
		return s.notify(ctx, tx, email, locale, "message_rejected", map[string]string{"Reason": reason, "ReasonText": why.Wording.In(locale), "Note": note,
			"Refund": ledger.Dollars(m.CostCents), "Stamps": fmt.Sprint(m.CostStamps), "To": to, "ContactID": contactID})
	})
	if err == nil {
		s.wake()
		if approve && m.Direction == ToResident {
			s.news.publish(r.residentID)
		}
	}
	return err
}

// deliverable reports whether message m may still be delivered between a resident
// and a contact: the resident active and not restricted from it (its photos are
// read only for a resident restricted from photos), and the contact still one
// messages flow through. Review asks before it approves, and a clip delivered
// without review before it is delivered.
func (s *Service) deliverable(ctx context.Context, residentID, contactID string, m Message) (bool, error) {
	res, err := s.fac.Resident(ctx, residentID)
	if err != nil {
		return false, err
	}
	switch {
	case res.Status != "active", slices.Contains(res.Restrictions, "no_messages"), !s.flows(ctx, residentID, contactID):
		return false, nil
	case m.Kind == VideoGram && slices.Contains(res.Restrictions, "no_videograms"):
		return false, nil
	case m.Kind == Text && slices.Contains(res.Restrictions, "no_photos"):
		m, err := s.withPhotos(ctx, m)
		return len(m.Photos) == 0, err
	}
	return true, nil
}
