package messaging

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/database"
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
	Begin(ctx context.Context, tx *sql.Tx, accountID, messageID, uploadID string, limit time.Duration) error
}

// UseClips turns VideoGrams on: the app calls it when the server can convert clips.
func (s *Service) UseClips(c Clips) { s.clips = c }

// OffersVideoGrams reports whether this server takes VideoGrams.
func (s *Service) OffersVideoGrams() bool { return s.clips != nil }

// Refusals of VideoGrams.
var (
	ErrNoVideoGrams = problem.Declare(problem.Forbidden, "videograms_not_allowed", "messaging: this person cannot receive VideoGrams").
			Say("videogram.not_allowed")
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
	if !validKey(d.Key) {
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

// ClipReady is told by the videogram package that a VideoGram's clip is converted:
// the message goes to review, or is delivered where the agency does not review
// clips. Telling it twice changes nothing.
func (s *Service) ClipReady(ctx context.Context, messageID string) error {
	var agencyID, residentID string
	if err := s.db.QueryRow(ctx, "SELECT agency_id, resident_id FROM messages WHERE id = $1 AND kind = 'videogram'", messageID).
		Scan(&agencyID, &residentID); err != nil {
		return fmt.Errorf("messaging: clip ready: %w", err)
	}
	p, err := s.policy(ctx, agencyID)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	state, delivered := InReview, any(nil)
	if !p.reviewVideograms && !p.reviewAll {
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

// ClipFailed is told that a VideoGram's clip cannot be used: the message fails
// with the fault as its reason, every stamp goes back to the wallet, and the family
// is told by mail why. Telling it twice changes nothing.
func (s *Service) ClipFailed(ctx context.Context, messageID string, fault media.ClipFault) error {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET state = 'failed', reason = $2, decided_at = $3 WHERE id = $1 AND state = 'processing'`,
			messageID, string(fault), time.Now().UTC())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // told before
		}
		var accountID, email, locale, contactID, to, agencyID, facilityID, residentID string
		var cents int64
		var stamps int
		if err := tx.QueryRowContext(ctx, `SELECT a.id, a.email, a.locale, m.contact_id, r.first_name || ' ' || r.last_name,
			m.cost_cents, m.cost_stamps, m.agency_id, m.facility_id, m.resident_id
			FROM messages m JOIN accounts a ON a.id = m.account_id JOIN residents r ON r.id = m.resident_id WHERE m.id = $1`, messageID).
			Scan(&accountID, &email, &locale, &contactID, &to, &cents, &stamps, &agencyID, &facilityID, &residentID); err != nil {
			return err
		}
		if cents > 0 {
			if _, _, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "refund", IdempotencyKey: "refund:" + messageID, Description: "Refund of a VideoGram that could not be used", Reference: messageID,
				Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Platform}, Amount: -cents}, {Account: ledger.WalletOf(accountID), Amount: cents}}}); err != nil {
				return err
			}
		}
		if err := audit.Record(ctx, s.db, tx, audit.Entry{Actor: "system", Action: "videogram.failed", AgencyID: agencyID,
			FacilityID: facilityID, ResidentID: residentID, Subject: "message:" + messageID, Detail: string(fault)}); err != nil {
			return err
		}
		return notify(ctx, tx, email, locale, "videogram_failed", map[string]string{"Fault": string(fault),
			"Refund": ledger.Dollars(cents), "Stamps": fmt.Sprint(stamps), "To": to, "ContactID": contactID})
	})
	if err == nil {
		s.wake()
	}
	return err
}

// Watched records that the resident played a delivered VideoGram: the family sees
// it watched and, if the account asks for it (email_when_videogram_watched), gets a
// mail in its language saying who watched which one. The mail is queued in the
// transaction of the change from delivered, so it goes once however often, and
// from however many kiosks at once, the clip is played. Playing it again changes
// nothing.
func (s *Service) Watched(ctx context.Context, residentID, messageID string) error {
	mailed := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
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
		return notifyWatched(ctx, tx, email, locale, by, contactID, sentAt)
	})
	if err == nil && mailed {
		s.wake()
	}
	return err
}

// SeeVideoGram checks that v may see the VideoGram messageID, as for a photo: the
// family that sent it, a reviewer of its facility (whose view is audited), or the
// resident once it is delivered. Anyone else, and any message that is not a
// VideoGram, gets ErrNotFound.
func (s *Service) SeeVideoGram(ctx context.Context, v Viewer, messageID string) error {
	if !ids.Valid(messageID) {
		return ErrNotFound
	}
	var r reviewRow
	var accountID, state, contactID string
	err := s.db.Read().QueryRowContext(ctx, `SELECT m.id, m.agency_id, r.facility_id, m.resident_id, m.account_id, m.state, m.contact_id
		FROM messages m JOIN residents r ON r.id = m.resident_id WHERE m.id = $1 AND m.kind = 'videogram'`, messageID).
		Scan(&r.id, &r.agencyID, &r.facilityID, &r.residentID, &accountID, &state, &contactID)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	switch {
	case v.AccountID != "" && v.AccountID == accountID:
		return nil
	case v.ResidentID != "" && v.ResidentID == r.residentID && (state == Delivered || state == Read) && s.flows(ctx, r.residentID, contactID):
		return nil
	case v.Staff != nil && v.Staff.AgencyID == r.agencyID && reviewer(*v.Staff, r.facilityID):
		return s.recordRead(ctx, *v.Staff, r, "videogram")
	}
	return ErrNotFound
}

// Retention is how long the agency of a VideoGram keeps clips, and where it was.
type Retention struct {
	Days                             int
	AgencyID, FacilityID, ResidentID string
}

// RetentionOf says, for each of these VideoGrams, its agency's retention.
func (s *Service) RetentionOf(ctx context.Context, messageIDs []string) (map[string]Retention, error) {
	out := make(map[string]Retention, len(messageIDs))
	if len(messageIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(messageIDs))
	for i, id := range messageIDs {
		args[i] = id
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT m.id, m.agency_id, m.facility_id, m.resident_id, COALESCE(mp.videogram_retention_days, 90)
		FROM messages m LEFT JOIN message_policies mp ON mp.agency_id = m.agency_id
		WHERE m.kind = 'videogram' AND m.id IN (`+database.Placeholders(1, len(args))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("messaging: retention: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var r Retention
		if err := rows.Scan(&id, &r.AgencyID, &r.FacilityID, &r.ResidentID, &r.Days); err != nil {
			return nil, err
		}
		out[id] = r
	}
	return out, rows.Err()
}
