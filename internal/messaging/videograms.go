package messaging

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/problem"
)

// Kinds of message.
const (
	Text      = "text"
	VideoGram = "videogram"
)

// States of a VideoGram before it can be reviewed: its clip is being converted, or
// it could not be used (Reason holds the fault, and its stamps are refunded).
const (
	Processing = "processing"
	Failed     = "failed"
)

// Clips is what messaging needs of VideoGram clips (package videogram): one is
// begun from an upload in the transaction that stores and pays for its message.
type Clips interface {
	Begin(ctx context.Context, tx *sql.Tx, owner, messageID, uploadID string, limit time.Duration) error
}

// UseClips turns VideoGrams on: the app calls it when the server can convert clips.
func (s *Service) UseClips(c Clips) { s.clips = c }

// OffersVideoGrams reports whether this server takes VideoGrams.
func (s *Service) OffersVideoGrams() bool { return s.clips != nil }

// Refusals of VideoGrams.
var (
	ErrNoVideoGrams = problem.Declare(problem.Forbidden, "videograms_not_allowed", "messaging: this person cannot receive VideoGrams").
			Say("videogram.not_allowed")
	ErrNoVideoGramReplies = problem.Declare(problem.Forbidden, "videogram_replies_not_allowed", "messaging: residents here cannot record VideoGram replies").
				Say("videogram.no_replies")
	ErrNoUpload = problem.Declare(problem.Invalid, "invalid_request", "messaging: a VideoGram needs its upload").
			On("upload_id", "required").Say("videogram.no_upload")
)

// VideoGramQuote is what a VideoGram to a contact costs, and how long it may be.
type VideoGramQuote struct {
	Quote
	MaxSeconds int
}

// QuoteVideoGram prices a VideoGram to a contact, before it is recorded.
func (s *Service) QuoteVideoGram(ctx context.Context, accountID, contactID string, prepaidReply bool) (VideoGramQuote, error) {
	t, err := s.videogramTarget(ctx, accountID, contactID)
	if err != nil {
		return VideoGramQuote{}, err
	}
	return videogramQuote(t.policy, prepaidReply), nil
}

func videogramQuote(p policy, prepaidReply bool) VideoGramQuote {
	q := quote(p, prepaidReply, 0)
	q.Stamps += p.videogramStamps - 1 // a VideoGram's price instead of a message's stamp
	q.Cents = int64(q.Stamps * p.stampCents)
	q.MaxPhotos = 0
	return VideoGramQuote{Quote: q, MaxSeconds: p.videogramSeconds}
}

func (s *Service) videogramTarget(ctx context.Context, accountID, contactID string) (target, error) {
	if s.clips == nil {
		return target{}, ErrNoVideoGrams
	}
	t, err := s.sendable(ctx, accountID, contactID)
	if err != nil {
		return t, err
	}
	if t.noVideograms {
		return t, ErrNoVideoGrams
	}
	return t, nil
}

// VideoGramDraft is a VideoGram as a family sends it: a finished upload.
type VideoGramDraft struct {
	UploadID     string
	PrepaidReply bool
	Key          string // makes a retried request a no-op that answers with the first
}

// SendVideoGram stores and charges a VideoGram, and begins its clip's conversion;
// the message is Processing until the clip is ready (then it goes to review, or is
// delivered where the agency does not review clips) or fails (then it is refunded).
func (s *Service) SendVideoGram(ctx context.Context, accountID, contactID string, d VideoGramDraft) (Message, error) {
	if !ids.ValidKey(d.Key) {
		return Message{}, ErrBadKey
	}
	if d.UploadID == "" {
		return Message{}, ErrNoUpload
	}
	t, err := s.videogramTarget(ctx, accountID, contactID)
	if err != nil {
		return Message{}, err
	}
	key := d.Key
	if key == "" {
		key = ids.New()
	}
	key = messageKey(accountID, key)
	fingerprint := requestHash(contactID, "videogram:"+d.UploadID, d.PrepaidReply, nil)
	q := videogramQuote(t.policy, d.PrepaidReply)
	m := Message{ID: ids.Ordered(), ContactID: contactID, Direction: ToResident, Kind: VideoGram, State: Processing,
		CostStamps: q.Stamps, CostCents: q.Cents, PrepaidReply: q.PrepaidReply, CreatedAt: storedNow()}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := s.db.TxExec(ctx, tx, `INSERT INTO messages (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, kind, body, state,
			cost_stamps, cost_cents, prepaid_reply, idempotency_key, created_at, request_hash)
			VALUES ($1, $2, $3, $4, $5, $6, 'to_resident', 'videogram', '', 'processing', $7, $8, $9, $10, $11, $12) ON CONFLICT (idempotency_key) DO NOTHING`,
			m.ID, contactID, accountID, t.residentID, t.agencyID, t.facilityID, q.Stamps, q.Cents, q.PrepaidReply, key, m.CreatedAt, fingerprint)
		if err != nil {
			return fmt.Errorf("messaging: send videogram: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errReplay
		}
		if err := s.clips.Begin(ctx, tx, accountID, m.ID, d.UploadID, time.Duration(t.policy.videogramSeconds)*time.Second); err != nil {
			return err
		}
		if q.Cents > 0 {
			_, _, err = s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "videogram", IdempotencyKey: key, Description: "VideoGram", Reference: m.ID,
				Entries: []ledger.Entry{{Account: ledger.WalletOf(accountID), Amount: -q.Cents}, {Account: ledger.Ref{Kind: ledger.Platform}, Amount: q.Cents}}})
			if errors.Is(err, ledger.ErrInsufficientFunds) {
				return ErrNoFunds
			}
			return err
		}
		return nil
	})
	if errors.Is(err, errReplay) {
		var was string
		if err := s.db.Read().QueryRowContext(ctx, "SELECT request_hash FROM messages WHERE idempotency_key = $1 AND account_id = $2", key, accountID).Scan(&was); err != nil {
			return Message{}, err
		}
		if was != fingerprint {
			return Message{}, ErrKeyReused
		}
		return s.byKey(ctx, accountID, key)
	}
	if err == nil {
		s.wake() // the conversion job
	}
	return m, err
}

// VideoGramReply says whether the resident may record a VideoGram reply to a
// contact, and how many seconds it may last (it is paid as a text reply is:
// ReplyPrice). It is ErrNoVideoGramReplies where the server does not convert
// clips, the agency has not turned replies on, or the resident may not have
// VideoGrams.
func (s *Service) VideoGramReply(ctx context.Context, residentID, contactID string) (maxSeconds int, err error) {
	_, _, p, err := s.videogramReplier(ctx, residentID, contactID)
	return p.videogramSeconds, err
}

// videogramReplier is replier for a VideoGram reply: also refused where such
// replies are not taken.
func (s *Service) videogramReplier(ctx context.Context, residentID, contactID string) (string, facility.Resident, policy, error) {
	accountID, res, p, err := s.replier(ctx, residentID, contactID)
	if err == nil && (s.clips == nil || !p.videogramReplies || slices.Contains(res.Restrictions, "no_videograms")) {
		err = ErrNoVideoGramReplies
	}
	return accountID, res, p, err
}

// VideoGramReplyDraft is a resident's VideoGram reply: a finished upload.
type VideoGramReplyDraft struct {
	UploadID string
	Key      string // makes a retried request a no-op that answers with the first
	// FromTrust is the resident's choice to pay from their trust money, as for
	// a text reply (ReplyDraft).
	FromTrust bool
}

// ReplyVideoGram sends a resident's VideoGram reply, recorded at the kiosk (an
// upload of media.ResidentOwner), where the agency allows them. It is paid as a
// text reply is (free, with a reply the family prepaid, or from the resident's
// trust money where they chose to), converted as a family's clip is, and always
// reviewed before the family sees it; a reply that is rejected or cannot be used
// gives back what paid for it.
func (s *Service) ReplyVideoGram(ctx context.Context, residentID, contactID string, d VideoGramReplyDraft) (Message, error) {
	uploadID, key := d.UploadID, d.Key
	if uploadID == "" {
		return Message{}, ErrNoUpload
	}
	if !ids.ValidKey(key) {
		return Message{}, ErrBadKey
	}
	if key != "" {
		// Sent already (a double tap, a retry): answered with the first, whatever
		// changed since, unless the key came back with another upload.
		if was, err := s.replyByKey(ctx, residentID, key); err == nil {
			return s.sameReply(ctx, was, uploadID)
		} else if !errors.Is(err, ErrNotFound) {
			return Message{}, err
		}
	}
	accountID, res, p, err := s.videogramReplier(ctx, residentID, contactID)
	if err != nil {
		return Message{}, err
	}
	if key == "" {
		key = ids.New()
	}
	m := Message{ID: ids.Ordered(), ContactID: contactID, Direction: FromResident, Kind: VideoGram, State: Processing, CreatedAt: storedNow()}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Stored first: a retry racing this one waits on the key, then finds it.
		r, err := s.db.TxExec(ctx, tx, `INSERT INTO messages (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, kind, body, state,
			idempotency_key, created_at, request_hash) VALUES ($1, $2, $3, $4, $5, $6, 'from_resident', 'videogram', '', 'processing', $7, $8, $9)
			ON CONFLICT (idempotency_key) DO NOTHING`,
			m.ID, contactID, accountID, residentID, res.Agency.ID, res.Facility.ID, replyKey(residentID, key), m.CreatedAt, "videogram:"+uploadID)
		if err != nil {
			return fmt.Errorf("messaging: videogram reply: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return errReplay
		}
		if err := s.payReply(ctx, tx, p, res, accountID, contactID, m.ID, "VideoGram", d.FromTrust); err != nil {
			return err
		}
		return s.clips.Begin(ctx, tx, media.ResidentOwner(residentID), m.ID, uploadID, time.Duration(p.videogramSeconds)*time.Second)
	})
	if errors.Is(err, errReplay) {
		was, err := s.replyByKey(ctx, residentID, key)
		if err != nil {
			return Message{}, err
		}
		return s.sameReply(ctx, was, uploadID)
	}
	if err == nil {
		s.wake() // the conversion job
	}
	return m, err
}

// sameReply answers a VideoGram reply's retry with the first, when it sent the
// same upload; the key with another upload is a mistake (ErrKeyReused).
func (s *Service) sameReply(ctx context.Context, was Message, uploadID string) (Message, error) {
	var hash string
	if err := s.db.Read().QueryRowContext(ctx, "SELECT request_hash FROM messages WHERE id = $1", was.ID).Scan(&hash); err != nil {
		return Message{}, err
	}
	if hash != "videogram:"+uploadID {
		return Message{}, ErrKeyReused
	}
	return was, nil
}

// ClipReady is told by the videogram package that a VideoGram's clip is converted:
// the message goes to review, or is delivered where the agency does not review
// clips. A resident's reply always goes to review. A clip for a resident who can
// no longer receive it (released, restricted, the contact ended while it was
// converted) is not delivered: it fails, and is refunded, as review would have
// made it. Telling it twice changes nothing.
func (s *Service) ClipReady(ctx context.Context, messageID string) error {
	var agencyID, residentID, contactID, direction string
	if err := s.db.QueryRow(ctx, "SELECT agency_id, resident_id, contact_id, direction FROM messages WHERE id = $1 AND kind = 'videogram'", messageID).
		Scan(&agencyID, &residentID, &contactID, &direction); err != nil {
		return fmt.Errorf("messaging: clip ready: %w", err)
	}
	p, err := s.policy(ctx, agencyID)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	state, delivered := InReview, any(nil)
	if direction == ToResident && !p.reviewVideograms && !p.reviewAll {
		if ok, err := s.deliverable(ctx, residentID, contactID, Message{ID: messageID, Kind: VideoGram}); err != nil {
			return err
		} else if !ok {
			return s.fail(ctx, messageID, Undeliverable)
		}
		state, delivered = Delivered, now
	}
	res, err := s.db.Write().ExecContext(ctx, `UPDATE messages SET state = $2, delivered_at = $3 WHERE id = $1 AND state = 'processing'`,
		messageID, state, delivered)
	if err != nil {
		return fmt.Errorf("messaging: clip ready: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 && state == Delivered {
		s.news.publish(residentID)
	}
	return nil
}

// Undeliverable is the reason of a VideoGram that was converted when its resident
// could no longer receive it.
const Undeliverable = "undeliverable"

// ClipFailed is told that a VideoGram's clip cannot be used: the message fails
// with the fault as its reason, every stamp goes back to the wallet, and the family
// is told by mail why (a resident's reply gives back what paid for it, and the
// resident sees why at the kiosk). Telling it twice changes nothing.
func (s *Service) ClipFailed(ctx context.Context, messageID string, fault media.ClipFault) error {
	return s.fail(ctx, messageID, string(fault))
}

// fail ends a VideoGram that is not delivered before review: it fails with the
// reason, is refunded, audited and, for a family's clip, told to the family.
func (s *Service) fail(ctx context.Context, messageID, reason string) error {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET state = 'failed', reason = $2, decided_at = $3 WHERE id = $1 AND state = 'processing'`,
			messageID, reason, time.Now().UTC())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // told before
		}
		var accountID, email, locale, contactID, to, agencyID, facilityID, residentID, direction string
		var cents int64
		var stamps int
		if err := tx.QueryRowContext(ctx, `SELECT a.id, a.email, a.locale, m.contact_id, r.first_name || ' ' || r.last_name,
			m.cost_cents, m.cost_stamps, m.agency_id, m.facility_id, m.resident_id, m.direction
			FROM messages m JOIN accounts a ON a.id = m.account_id JOIN residents r ON r.id = m.resident_id WHERE m.id = $1`, messageID).
			Scan(&accountID, &email, &locale, &contactID, &to, &cents, &stamps, &agencyID, &facilityID, &residentID, &direction); err != nil {
			return err
		}
		if err := audit.Record(ctx, s.db, tx, audit.Entry{Actor: "system", Action: "videogram.failed", AgencyID: agencyID,
			FacilityID: facilityID, ResidentID: residentID, Subject: "message:" + messageID, Detail: reason}); err != nil {
			return err
		}
		if direction == FromResident {
			return s.giveBackReply(ctx, tx, residentID, messageID)
		}
		if err := s.refund(ctx, tx, accountID, messageID, cents, "Refund of a VideoGram that could not be used"); err != nil {
			return err
		}
		return s.notify(ctx, tx, email, locale, "videogram_failed", map[string]string{"Fault": reason,
			"Refund": ledger.Dollars(cents), "Stamps": fmt.Sprint(stamps), "To": to, "ContactID": contactID})
	})
	if err == nil {
		s.wake()
	}
	return err
}

// refund gives a message's price back to the family's wallet, once.
func (s *Service) refund(ctx context.Context, tx *sql.Tx, accountID, messageID string, cents int64, why string) error {
	if cents <= 0 {
		return nil
	}
	_, _, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "refund", IdempotencyKey: "refund:" + messageID, Description: why, Reference: messageID,
		Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Platform}, Amount: -cents}, {Account: ledger.WalletOf(accountID), Amount: cents}}})
	return err
}

// Watched records that the resident played a delivered VideoGram: the family sees
// it watched and, if the account asks for it (email_when_videogram_watched), gets a
// mail in its language saying who watched which one. The mail is queued in the
// transaction of the change from delivered, so it goes once however often, and
// from however many kiosks at once, the clip is played. Playing it again changes
// nothing, and costs only a read: a clip plays in many range requests.
func (s *Service) Watched(ctx context.Context, residentID, messageID string) error {
	var state string
	err := s.db.Read().QueryRowContext(ctx, `SELECT state FROM messages WHERE id = $1 AND resident_id = $2 AND kind = 'videogram' AND direction = 'to_resident'`,
		messageID, residentID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && state != Delivered) {
		return nil
	}
	if err != nil {
		return err
	}
	mailed := false
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := s.db.TxExec(ctx, tx, `UPDATE messages SET state = 'read', read_at = $3
			WHERE id = $1 AND resident_id = $2 AND kind = 'videogram' AND direction = 'to_resident' AND state = 'delivered'`,
			messageID, residentID, time.Now().UTC())
		if err != nil {
			return fmt.Errorf("messaging: watched: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // watched before, or not this resident's to watch
		}
		var email, locale, contactID, by string
		var sentAt time.Time
		err = tx.QueryRowContext(ctx, `SELECT a.email, a.locale, m.contact_id, r.first_name || ' ' || r.last_name, m.created_at
			FROM messages m JOIN accounts a ON a.id = m.account_id JOIN residents r ON r.id = m.resident_id
			WHERE m.id = $1 AND a.email_when_videogram_watched`, messageID).Scan(&email, &locale, &contactID, &by, &sentAt)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // the family did not ask to be told
		}
		if err != nil {
			return fmt.Errorf("messaging: watched: %w", err)
		}
		mailed = true
		return s.notifyWatched(ctx, tx, email, locale, by, contactID, sentAt)
	})
	if err == nil && mailed {
		s.wake()
	}
	return err
}

// SeeVideoGram checks that v may see the VideoGram messageID, as for a photo: the
// family that sent it, a reviewer of its facility (whose view is audited), or the
// resident once it is delivered; for a resident's reply, the resident who recorded
// it, and the family once it is delivered. Anyone else, and any message that is not a
// VideoGram, gets ErrNotFound.
func (s *Service) SeeVideoGram(ctx context.Context, v Viewer, messageID string) error {
	if !ids.Valid(messageID) {
		return ErrNotFound
	}
	var r reviewRow
	var accountID, state, contactID, direction string
	err := s.db.Read().QueryRowContext(ctx, `SELECT m.id, m.agency_id, r.facility_id, m.resident_id, m.account_id, m.state, m.contact_id, m.direction
		FROM messages m JOIN residents r ON r.id = m.resident_id WHERE m.id = $1 AND m.kind = 'videogram'`, messageID).
		Scan(&r.id, &r.agencyID, &r.facilityID, &r.residentID, &accountID, &state, &contactID, &direction)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	delivered := state == Delivered || state == Read // to the resident
	replied := state == Sent || state == Read        // a reply, to the family
	switch {
	case v.AccountID != "" && v.AccountID == accountID && (direction == ToResident || replied):
		return nil
	case v.ResidentID != "" && v.ResidentID == r.residentID && (direction == FromResident || delivered) && s.flows(ctx, r.residentID, contactID):
		return nil
	case v.Staff != nil && v.Staff.AgencyID == r.agencyID && reviewer(*v.Staff, r.facilityID):
		// A clip plays in many range requests, and its poster shows on every
		// refresh of the queue: one viewing is one entry.
		return audit.RecordViewing(ctx, s.db, readEntry(*v.Staff, r, "videogram"))
	}
	return ErrNotFound
}

// Retention is how many days an agency keeps the clips of its VideoGrams.
type Retention struct {
	AgencyID string
	Days     int
}

// VideoGramRetentions says how long each agency keeps VideoGram clips: its policy,
// or the default of 90 days. Agencies are few; each has its own cutoff, so the
// clips of one that keeps them long never stand in the way of another's.
func (s *Service) VideoGramRetentions(ctx context.Context) ([]Retention, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT g.id, COALESCE(mp.videogram_retention_days, 90) FROM agencies g`+policyJoin+` ORDER BY g.id`)
	if err != nil {
		return nil, fmt.Errorf("messaging: retention: %w", err)
	}
	defer rows.Close()
	var out []Retention
	for rows.Next() {
		var r Retention
		if err := rows.Scan(&r.AgencyID, &r.Days); err != nil {
			return nil, fmt.Errorf("messaging: retention: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
