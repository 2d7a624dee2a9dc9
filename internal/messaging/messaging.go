// Package messaging owns eMessages: families write to residents and pay in stamps;
// messages that match the agency's watch list (or every message, where the agency
// wants) wait for a reviewer, the others are delivered at once; a rejection refunds
// every stamp; residents read and reply at the kiosk.
package messaging

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/media"
	"github.com/kinlink/kinlink/internal/problem"
)

// States of a message. A family's message waits in review or is delivered to the
// resident, who reads it (or it is rejected); a resident's reply is sent, and read
// once the family opens it.
const (
	Sent      = "sent"
	InReview  = "in_review"
	Delivered = "delivered"
	Read      = "read"
	Rejected  = "rejected"
)

// Directions.
const (
	ToResident   = "to_resident"
	FromResident = "from_resident"
)

// Refusals, each with its stable code. Where a refusal quotes a limit, the error
// returned carries it (With).
var (
	ErrNotFound   = problem.Declare(problem.NotFound, "not_found", "messaging: not found")
	ErrNotAllowed = problem.Declare(problem.Forbidden, "contact_not_approved", "messaging: this contact cannot receive messages").
			Say("conversation.not_allowed")
	ErrEmpty = problem.Declare(problem.Invalid, "invalid_request", "messaging: the message is empty").
			On("text", "required").Say("conversation.empty")
	// ErrTooLong quotes the agency's limit.
	ErrTooLong = problem.Declare(problem.Invalid, "invalid_request", "messaging: the message is longer than the agency allows").
			On("text", "too_long").Say("conversation.too_long")
	ErrBadText = problem.Declare(problem.Invalid, "invalid_request", "messaging: the message has characters that are not text").
			On("text", "invalid").Say("conversation.bad_text")
	ErrNoFunds = problem.Declare(problem.Payment, "insufficient_balance", "messaging: not enough money in the wallet").
			Say("conversation.no_funds")
	// ErrNoPrepaidReply is a resident's reply where replies are priced, the family
	// prepaid none, and the resident did not choose to pay from their trust money
	// (ReplyDraft.FromTrust): it is no payment refusal, since nothing was asked of
	// anyone's money. A trust balance that does not cover the reply is
	// deposits.ErrTrustShort.
	ErrNoPrepaidReply = problem.Declare(problem.Invalid, "no_prepaid_reply", "messaging: no prepaid reply left").
				Say("kiosk.reply.no_prepaid")
	ErrNeedReason = problem.Declare(problem.Invalid, "invalid_request", "messaging: a rejection needs a reason").
			On("reason", "required").Say("review.need_reason")
	// ErrReasonGone is a reason chosen from a list that changed since it was shown.
	ErrReasonGone = problem.Declare(problem.Invalid, "invalid_request", "messaging: the reason is no longer on the agency's list").
			On("reason", "required").Say("review.reason_gone")
	ErrAlreadyDecided = problem.Declare(problem.Conflict, "already_decided", "messaging: this message was already decided").
				Say("review.already")
	ErrKeyReused = problem.Declare(problem.Conflict, "idempotency_key_reused", "messaging: the idempotency key was used for another message").
			Say("conversation.form_used")
	// ErrBadKey is an idempotency key no app or page of ours makes.
	ErrBadKey = problem.Declare(problem.Invalid, "invalid_idempotency_key", "messaging: the idempotency key is not one we make").
			On("Idempotency-Key", "invalid").Say("conversation.form_used")
	ErrUndeliverable = problem.Declare(problem.Conflict, "undeliverable", "messaging: the message can no longer be delivered").
				Say("review.undeliverable")
	ErrBadCursor = problem.Declare(problem.Invalid, "invalid_request", "messaging: the page cursor is not one we gave").
			On("cursor", "invalid")
	ErrTooManyPhotos = media.ErrTooManyPhotos
	ErrNoPhotos      = problem.Declare(problem.Forbidden, "photos_not_allowed", "messaging: the facility does not let this person receive photos").
				Say("conversation.no_photos")
	ErrBadNote = problem.Declare(problem.Invalid, "invalid_request", "messaging: the note is too long or not plain text").
			On("note", "invalid").Say("review.bad_note")
)

// MaxSendBytes is the most a send may carry: five photos of up to 10 MB each, and
// the text.
const MaxSendBytes = media.MaxPhotos*media.MaxPhotoBytes + 1<<20

// Message is one message.
type Message struct {
	ID            string
	ContactID     string
	Direction     string
	Kind          string // Text or VideoGram
	Text          string
	State         string
	Reason        string  // the code of a rejection's reason
	ReasonWording Wording // the agency's words for it, when it is the agency's own reason
	Note          string
	CostStamps    int
	CostCents     int64
	PrepaidReply  bool
	CreatedAt     time.Time
	Photos        []PhotoRef
}

// PhotoRef is one photo of a message; its bytes are fetched by id, by someone the
// message concerns.
type PhotoRef struct {
	ID            string
	Width, Height int
}

// Service is the messaging use cases.
type Service struct {
	db       *database.DB
	fac      *facility.Service
	contacts *contacts.Service
	ledger   *ledger.Ledger
	blobs    media.Store
	photos   *media.Photos
	wake     func()
	news     news
	watch    watchLists
	uploads  uploads
	clips    Clips // VideoGram clips; nil where VideoGrams are not offered
	trust    Trust // residents' trust money; nil where replies cannot be paid from it
}

// NewService returns the service; photos processes the photos families send, which
// are kept in blobs; wake tells job workers that mail was queued.
func NewService(db *database.DB, fac *facility.Service, c *contacts.Service, l *ledger.Ledger, blobs media.Store, photos *media.Photos, wake func()) *Service {
	return &Service{db: db, fac: fac, contacts: c, ledger: l, blobs: blobs, photos: photos, wake: wake}
}

// Quote is what a message will cost.
type Quote struct {
	Stamps     int
	Cents      int64
	StampCents int
	MaxChars   int
	// ReplyStamps is what a resident's reply costs; when it is zero replies are free
	// and a family has no reason to prepay one.
	ReplyStamps int
	// PrepaidReply is whether the message buys a reply: asked for, and replies are
	// not free.
	PrepaidReply bool
	// MaxPhotos is how many photos a message may carry: none where the resident
	// may not receive photos.
	MaxPhotos int
}

// policy is what the agency decides for messages.
type policy struct {
	stampCents, maxChars, replyStamps int
	reviewAll, approvalNeeded         bool
	videogramStamps, videogramSeconds int
	reviewVideograms                  bool
	videogramReplies                  bool // residents may record VideoGram replies
}

func (s *Service) policy(ctx context.Context, agencyID string) (policy, error) {
	var p policy
	err := s.db.Read().QueryRowContext(ctx, `SELECT g.stamp_price_cents, g.message_max_chars, `+policyColumns+`, g.approval_for_messages
		FROM agencies g`+policyJoin+` WHERE g.id = $1`, agencyID).Scan(&p.stampCents, &p.maxChars, &p.replyStamps, &p.reviewAll,
		&p.videogramStamps, &p.videogramSeconds, &p.reviewVideograms, &p.videogramReplies, &p.approvalNeeded)
	return p, err
}

// policyJoin adds an agency's message policy (table message_policies, which this
// package owns) to a query of agencies g; an agency without a row has the defaults.
const policyJoin = " LEFT JOIN message_policies mp ON mp.agency_id = g.id"

// policyColumns are the policy's reply price, review-all and what it decides for
// VideoGrams (price, longest clip, review, residents' replies), defaults filled in.
const policyColumns = "COALESCE(mp.reply_price_stamps, 0), COALESCE(mp.review_all, FALSE), " +
	"COALESCE(mp.videogram_stamps, 3), g.videogram_seconds, COALESCE(mp.review_videograms, TRUE), COALESCE(mp.videogram_replies, FALSE)"

// target is what sending needs to know of a contact: where the resident is, and
// what the agency decides. One query reads it, since every send asks.
type target struct {
	residentID, agencyID, facilityID string
	noPhotos, noVideograms           bool
	policy                           policy
	watchVersion                     int64
}

// sendable returns a family's contact when messages may go to it: approved (or
// pending where the agency does not require approval for messages), the resident
// active and not restricted from messages.
func (s *Service) sendable(ctx context.Context, accountID, contactID string) (target, error) {
	var t target
	if !ids.Valid(contactID) {
		return t, ErrNotFound
	}
	var contactStatus, residentStatus, restrictions string
	p := &t.policy
	err := s.db.QueryRow(ctx, `SELECT c.status, r.id, r.status, r.restrictions, r.agency_id, r.facility_id,
		g.stamp_price_cents, g.message_max_chars, `+policyColumns+`, g.approval_for_messages, COALESCE(mp.watch_version, 0)
		FROM contacts c JOIN residents r ON r.id = c.resident_id JOIN agencies g ON g.id = r.agency_id`+policyJoin+`
		WHERE c.id = $1 AND c.account_id = $2`, contactID, accountID).
		Scan(&contactStatus, &t.residentID, &residentStatus, &restrictions, &t.agencyID, &t.facilityID,
			&p.stampCents, &p.maxChars, &p.replyStamps, &p.reviewAll, &p.videogramStamps, &p.videogramSeconds, &p.reviewVideograms,
			&p.videogramReplies, &p.approvalNeeded, &t.watchVersion)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("messaging: contact: %w", err)
	}
	restricted := strings.Split(restrictions, ";")
	t.noPhotos = slices.Contains(restricted, "no_photos")
	t.noVideograms = slices.Contains(restricted, "no_videograms")
	switch {
	case contactStatus == contacts.Denied, contactStatus == contacts.Pending && p.approvalNeeded:
		return t, ErrNotAllowed
	case residentStatus != "active", slices.Contains(restricted, "no_messages"):
		return t, ErrNotAllowed
	}
	return t, nil
}

// QuoteFor says what a message to a contact with this many photos costs, before
// sending.
func (s *Service) QuoteFor(ctx context.Context, accountID, contactID string, prepaidReply bool, photos int) (Quote, error) {
	t, err := s.sendable(ctx, accountID, contactID)
	if err != nil {
		return Quote{}, err
	}
	q := quote(t.policy, prepaidReply, photos)
	if t.noPhotos {
		q.MaxPhotos = 0
	}
	return q, nil
}

// CheckSend tells, before a send's body is read (photos 0) and again before the
// bytes of each of its photos (photos 1, 2, …), whether the message could go at
// all: the key is one we make, the contact may receive messages (and this many
// photos), and the wallet holds the price of a message with this many photos and
// the reply prepaid as far as the form said so far (so at least the text-only
// price). A photo takes a second and tens of megabytes to decode, and five take
// minutes to arrive from a phone: a send that cannot go is refused before them.
// Send checks all of it again in its own transaction. A retry under a key already
// used for this contact passes, so that it is answered as the first send was.
func (s *Service) CheckSend(ctx context.Context, accountID, contactID, key string, prepaidReply bool, photos int) error {
	if !ids.ValidKey(key) {
		return ErrBadKey
	}
	if photos > media.MaxPhotos { // no first send had them: not even a retry
		return ErrTooManyPhotos
	}
	if key != "" {
		var sent int
		// Only a retry to the same contact: a key of the account's used for another
		// contact opens no way around the checks of this one.
		err := s.db.QueryRow(ctx, "SELECT 1 FROM messages WHERE idempotency_key = $1 AND account_id = $2 AND contact_id = $3",
			messageKey(accountID, key), accountID, contactID).Scan(&sent)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("messaging: check send: %w", err)
		}
	}
	q, err := s.QuoteFor(ctx, accountID, contactID, prepaidReply, photos)
	switch {
	case err != nil:
		return err
	case photos > 0 && q.MaxPhotos == 0:
		return ErrNoPhotos
	case photos > q.MaxPhotos:
		return ErrTooManyPhotos
	case q.Cents == 0:
		return nil
	}
	balance, err := s.ledger.Balance(ctx, ledger.WalletOf(accountID))
	if err != nil {
		return fmt.Errorf("messaging: check send: %w", err)
	}
	if balance < q.Cents {
		return ErrNoFunds
	}
	return nil
}

// messageKey is the idempotency key of a family's send, scoped to the account so
// that two families choosing the same key never meet.
func messageKey(accountID, key string) string { return "message:" + accountID + ":" + key }

// quote prices a message: a stamp, a stamp per photo, and the reply price when a
// reply is prepaid. Where replies are free there is nothing to prepay, so none is
// bought (or charged).
func quote(p policy, prepaidReply bool, photos int) Quote {
	stamps := 1 + photos
	prepaidReply = prepaidReply && p.replyStamps > 0
	if prepaidReply {
		stamps += p.replyStamps
	}
	return Quote{Stamps: stamps, Cents: int64(stamps * p.stampCents), StampCents: p.stampCents, MaxChars: p.maxChars,
		ReplyStamps: p.replyStamps, PrepaidReply: prepaidReply, MaxPhotos: media.MaxPhotos}
}

// ResidentQuote is the policy a resident writes under.
func (s *Service) ResidentQuote(ctx context.Context, residentID string) (Quote, error) {
	r, err := s.fac.Resident(ctx, residentID)
	if err != nil {
		return Quote{}, err
	}
	p, err := s.policy(ctx, r.Agency.ID)
	return quote(p, false, 0), err
}

// normalizeText keeps any script and emoji, composes accents (NFC), drops
// bidirectional overrides and refuses control characters other than line breaks and
// tabs.
func normalizeText(text string) (string, error) {
	if !utf8.ValidString(text) {
		return "", ErrBadText
	}
	// Line breaks of any system become "\n". Bidirectional embeddings, overrides and
	// isolates go: they can show a reader other words than the ones stored (written
	// backwards under an override), which the watch list would not see; the text's
	// own direction (dir=auto) lays out any script without them.
	text = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(text)
	text = strings.Map(func(r rune) rune {
		if (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return -1
		}
		return r
	}, text)
	text = strings.TrimSpace(norm.NFC.String(text))
	for _, r := range text {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return "", ErrBadText
		}
	}
	if text == "" {
		return "", ErrEmpty
	}
	return text, nil
}

// Draft is a message as a family wrote it.
type Draft struct {
	Text string
	// PrepaidReply asks to pay for the resident's reply too.
	PrepaidReply bool
	// Key makes a retried request a no-op that answers with the first message.
	Key    string
	Photos []media.Upload
}

// Send is a family sending a message: what can be refused before the photos are
// decoded is refused first, then the photos are re-encoded and stored, and the
// message is stored and paid for in one transaction. A message with photos, one
// that matches the watch list, or any message where the agency reviews everything
// waits for review; the others are delivered at once. A message may be photos alone.
func (s *Service) Send(ctx context.Context, accountID, contactID string, d Draft) (Message, error) {
	if !ids.ValidKey(d.Key) {
		return Message{}, ErrBadKey
	}
	if len(d.Photos) > 0 { // a text alone is checked in the transaction that stores it
		if err := s.CheckSend(ctx, accountID, contactID, d.Key, d.PrepaidReply, len(d.Photos)); err != nil {
			return Message{}, err
		}
	}
	photos, err := s.photos.ProcessUploads(ctx, d.Photos)
	if err != nil {
		return Message{}, err
	}
	return s.send(ctx, accountID, contactID, d.Text, d.PrepaidReply, d.Key, photos)
}

// send stores a message whose photos are processed, and debits the wallet, in one
// transaction.
func (s *Service) send(ctx context.Context, accountID, contactID, text string, prepaidReply bool, key string, photos []media.Photo) (Message, error) {
	t, err := s.sendable(ctx, accountID, contactID)
	if err != nil {
		return Message{}, err
	}
	p := t.policy
	if len(photos) > media.MaxPhotos {
		return Message{}, ErrTooManyPhotos
	}
	if len(photos) > 0 && t.noPhotos {
		return Message{}, ErrNoPhotos
	}
	if text, err = normalizeText(text); err != nil && !(errors.Is(err, ErrEmpty) && len(photos) > 0) {
		return Message{}, err
	}
	if utf8.RuneCountInString(text) > p.maxChars {
		return Message{}, ErrTooLong.With(strconv.Itoa(p.maxChars))
	}
	if key == "" {
		key = ids.New()
	}
	key = messageKey(accountID, key)
	if len(key) > 200 { // cannot happen after validKey; kept for callers of send
		return Message{}, ErrBadKey
	}
	// The fingerprint is of the request as sent: a retry is the same request even if
	// the agency's reply price changed in between.
	fingerprint := requestHash(contactID, text, prepaidReply, photos)
	q := quote(p, prepaidReply, len(photos))
	prepaidReply = q.PrepaidReply
	match, err := s.watchMatch(ctx, t.agencyID, t.watchVersion, text)
	if err != nil {
		return Message{}, err
	}
	state := Delivered
	if match != "" || p.reviewAll || len(photos) > 0 {
		state = InReview
	}
	m := Message{ID: ids.Ordered(), ContactID: contactID, Direction: ToResident, Kind: Text, Text: text, State: state,
		CostStamps: q.Stamps, CostCents: q.Cents, PrepaidReply: prepaidReply, CreatedAt: storedNow()}
	// The photos are stored first: a message row never points at a missing blob. If
	// the message is not stored after all, they are removed again, at once or by the
	// check queued before them (PhotoClaimTime).
	keys := make([]string, len(photos))
	for i, ph := range photos {
		keys[i] = ids.New()
		m.Photos = append(m.Photos, PhotoRef{ID: keys[i], Width: ph.Width, Height: ph.Height})
	}
	var checkID int64
	if len(keys) > 0 {
		if checkID, err = s.queuePhotoCheck(ctx, keys); err != nil {
			return Message{}, fmt.Errorf("messaging: send: %w", err)
		}
	}
	for i, ph := range photos {
		if err := s.blobs.Put(ctx, keys[i], ph.Data); err != nil {
			s.dropBlobs(m.Photos)
			return Message{}, fmt.Errorf("messaging: store photo: %w", err)
		}
	}
	committing := false // fn succeeded: an error now is the commit's, which may have happened
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if checkID != 0 {
			if err := claimPhotos(ctx, tx, checkID); err != nil {
				return err
			}
		}
		var delivered any
		if state == Delivered {
			delivered = m.CreatedAt
		}
		res, err := s.db.TxExec(ctx, tx, `INSERT INTO messages (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, body, state,
			cost_stamps, cost_cents, prepaid_reply, watch_match, idempotency_key, created_at, delivered_at, request_hash)
			VALUES ($1, $2, $3, $4, $5, $6, 'to_resident', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT (idempotency_key) DO NOTHING`,
			m.ID, contactID, accountID, t.residentID, t.agencyID, t.facilityID, text, state,
			q.Stamps, q.Cents, prepaidReply, match, key, m.CreatedAt, delivered, fingerprint)
		if err != nil {
			return fmt.Errorf("messaging: send: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errReplay
		}
		for i, ph := range m.Photos {
			if _, err := s.db.TxExec(ctx, tx, "INSERT INTO message_photos (id, message_id, position, width, height, bytes) VALUES ($1, $2, $3, $4, $5, $6)",
				ph.ID, m.ID, i, ph.Width, ph.Height, len(photos[i].Data)); err != nil {
				return fmt.Errorf("messaging: photo row: %w", err)
			}
		}
		if q.Cents > 0 {
			_, _, err = s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "message", IdempotencyKey: key, Description: "Message", Reference: m.ID,
				Entries: []ledger.Entry{{Account: ledger.WalletOf(accountID), Amount: -q.Cents}, {Account: ledger.Ref{Kind: ledger.Platform}, Amount: q.Cents}}})
			if errors.Is(err, ledger.ErrInsufficientFunds) {
				return ErrNoFunds
			}
			if err != nil {
				return err
			}
		}
		committing = true
		return nil
	})
	// Photos of a message that surely was not stored go now; after a failed commit,
	// which may have stored it, the photo check decides.
	if err != nil && !committing {
		s.dropBlobs(m.Photos)
	}
	if err == nil && state == Delivered {
		s.news.publish(t.residentID)
	}
	if errors.Is(err, errReplay) {
		var was string
		if err := s.db.Read().QueryRowContext(ctx, "SELECT request_hash FROM messages WHERE idempotency_key = $1 AND account_id = $2", key, accountID).Scan(&was); err != nil {
			return Message{}, err
		}
		if was != "" && was != fingerprint { // rows from before 0009 have no hash
			return Message{}, ErrKeyReused
		}
		first, err := s.byKey(ctx, accountID, key)
		if err != nil {
			return first, err
		}
		return s.withPhotos(ctx, first)
	}
	return m, err
}

// Recipients names the person each of a family's messages was to, by message id,
// for a page of the wallet's history; ids that are not the family's messages are
// left out.
func (s *Service) Recipients(ctx context.Context, accountID string, messageIDs []string) (map[string]string, error) {
	to := map[string]string{}
	args := []any{accountID}
	for _, id := range messageIDs {
		if ids.Valid(id) {
			args = append(args, id)
		}
	}
	if len(args) == 1 {
		return to, nil
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT m.id, r.first_name || ' ' || r.last_name FROM messages m JOIN residents r ON r.id = m.resident_id
		WHERE m.account_id = $1 AND m.id IN (`+database.Placeholders(2, len(args)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("messaging: recipients: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, err
		}
		to[id] = name
	}
	return to, rows.Err()
}

// NewReplies counts, per contact of a family, the resident's replies the family has
// not seen yet, for the list of their people.
func (s *Service) NewReplies(ctx context.Context, accountID string, contactIDs []string) (map[string]int, error) {
	n := map[string]int{}
	if len(contactIDs) == 0 {
		return n, nil
	}
	args := []any{accountID}
	for _, id := range contactIDs {
		args = append(args, id)
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT contact_id, COUNT(*) FROM messages WHERE contact_id IN (`+database.Placeholders(2, len(contactIDs))+`)
		AND direction = 'from_resident' AND state = 'sent' AND account_id = $1 GROUP BY contact_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("messaging: new replies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var count int
		if err := rows.Scan(&id, &count); err != nil {
			return nil, err
		}
		n[id] = count
	}
	return n, rows.Err()
}

// dropBlobs removes photos whose message was not stored. A failure only leaves an
// unreferenced blob behind, never a message without its photo.
func (s *Service) dropBlobs(refs []PhotoRef) {
	for _, r := range refs {
		s.blobs.Delete(context.WithoutCancel(context.Background()), r.ID)
	}
}

// attachPhotos fills in the photos of a set of messages with one query.
func (s *Service) attachPhotos(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	at := map[string]int{}
	args := make([]any, 0, len(msgs))
	for i, m := range msgs {
		at[m.ID] = i
		args = append(args, m.ID)
	}
	rows, err := s.db.Read().QueryContext(ctx, "SELECT message_id, id, width, height FROM message_photos WHERE message_id IN ("+
		database.Placeholders(1, len(args))+") ORDER BY message_id, position", args...)
	if err != nil {
		return fmt.Errorf("messaging: photos: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var mid string
		var p PhotoRef
		if err := rows.Scan(&mid, &p.ID, &p.Width, &p.Height); err != nil {
			return err
		}
		msgs[at[mid]].Photos = append(msgs[at[mid]].Photos, p)
	}
	return rows.Err()
}

func (s *Service) withPhotos(ctx context.Context, m Message) (Message, error) {
	one := []Message{m}
	err := s.attachPhotos(ctx, one)
	return one[0], err
}

// Photo returns a photo's bytes to someone the message concerns: the family that
// sent it (accountID), a reviewer of its facility (staff), or the resident it was
// delivered to (residentID). Anyone else gets ErrNotFound, as for a photo that does
// not exist.
func (s *Service) Photo(ctx context.Context, v Viewer, photoID string) ([]byte, error) {
	if !ids.Valid(photoID) {
		return nil, ErrNotFound
	}
	var r reviewRow
	var accountID, state, contactID string
	err := s.db.Read().QueryRowContext(ctx, `SELECT m.id, m.agency_id, r.facility_id, m.resident_id, m.account_id, m.state, m.contact_id
		FROM message_photos p JOIN messages m ON m.id = p.message_id JOIN residents r ON r.id = m.resident_id WHERE p.id = $1`, photoID).
		Scan(&r.id, &r.agencyID, &r.facilityID, &r.residentID, &accountID, &state, &contactID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	switch {
	case v.AccountID != "" && v.AccountID == accountID:
	case v.ResidentID != "" && v.ResidentID == r.residentID && (state == Delivered || state == Read) && s.flows(ctx, r.residentID, contactID):
	case v.Staff != nil && v.Staff.AgencyID == r.agencyID && reviewer(*v.Staff, r.facilityID):
		if err := audit.RecordViewing(ctx, s.db, readEntry(*v.Staff, r, "photo")); err != nil {
			return nil, err
		}
	default:
		return nil, ErrNotFound
	}
	data, err := s.blobs.Get(ctx, photoID)
	if errors.Is(err, media.ErrNoBlob) {
		return nil, ErrNotFound
	}
	return data, err
}

// Viewer is who asks for a photo: one of a family account, a resident at a kiosk,
// or a staff member.
type Viewer struct {
	AccountID  string
	ResidentID string
	Staff      *facility.Access
}

var errReplay = errors.New("messaging: replay")

// requestHash fingerprints what a send asks for, to tell a retry from a new request
// that reuses its key.
func requestHash(contactID, text string, prepaidReply bool, photos []media.Photo) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%t", contactID, text, prepaidReply)
	for _, p := range photos {
		sum := sha256.Sum256(p.Data)
		h.Write(sum[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

const messageColumns = "id, contact_id, direction, kind, body, state, reason, note, cost_stamps, cost_cents, prepaid_reply, created_at"

func scanMessage(row interface{ Scan(...any) error }) (Message, error) {
	var m Message
	err := row.Scan(&m.ID, &m.ContactID, &m.Direction, &m.Kind, &m.Text, &m.State, &m.Reason, &m.Note, &m.CostStamps, &m.CostCents, &m.PrepaidReply, &m.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return m, ErrNotFound
	}
	return m, err
}

func (s *Service) byKey(ctx context.Context, accountID, key string) (Message, error) {
	return scanMessage(s.db.Read().QueryRowContext(ctx, "SELECT "+messageColumns+" FROM messages WHERE idempotency_key = $1 AND account_id = $2", key, accountID))
}

// Conversation returns a family's messages with a contact, oldest first, in pages:
// before is the id of the oldest message already shown ("" for the newest page).
// next is the cursor of the page before this one, "" when there is none.
func (s *Service) Conversation(ctx context.Context, accountID, contactID, before string, limit int) (msgs []Message, next string, err error) {
	c, err := s.contacts.Get(ctx, accountID, contactID)
	if err != nil {
		return nil, "", ErrNotFound
	}
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	cond, args := "", []any{contactID, limit + 1}
	if before != "" {
		if !ids.Valid(before) {
			return nil, "", ErrBadCursor
		}
		cond = " AND (created_at, id) < (SELECT created_at, id FROM messages WHERE id = $3 AND contact_id = $1)"
		args = append(args, before)
	}
	// A resident's VideoGram reply reaches the family once review lets it (sent).
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+messageColumns+" FROM messages WHERE contact_id = $1"+cond+
		" AND (direction = 'to_resident' OR state IN ('sent', 'read')) ORDER BY created_at DESC, id DESC LIMIT $2", args...)
	if err != nil {
		return nil, "", fmt.Errorf("messaging: conversation: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, "", err
		}
		msgs = append(msgs, m)
	}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		next = msgs[limit-1].ID
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	slices.Reverse(msgs)
	if err := s.attachReasons(ctx, c.Resident.Agency.ID, msgs); err != nil {
		return nil, "", err
	}
	return msgs, next, s.attachPhotos(ctx, msgs)
}

// RepliesRead marks the resident's replies in a family's conversation read, once the
// family has seen them; the resident sees "Read" at the kiosk. upTo is the newest
// message the family was shown: a reply that arrived since stays new ("" marks all).
func (s *Service) RepliesRead(ctx context.Context, accountID, contactID, upTo string) error {
	if _, err := s.contacts.Get(ctx, accountID, contactID); err != nil {
		return ErrNotFound
	}
	cond, args := "", []any{contactID, accountID, time.Now().UTC()}
	if upTo != "" {
		cond = " AND (created_at, id) <= (SELECT created_at, id FROM messages WHERE id = $4 AND contact_id = $1)"
		args = append(args, upTo)
	}
	_, err := s.db.Write().ExecContext(ctx, `UPDATE messages SET state = 'read', read_at = $3
		WHERE contact_id = $1 AND account_id = $2 AND direction = 'from_resident' AND state = 'sent'`+cond, args...)
	if err != nil {
		return fmt.Errorf("messaging: replies read: %w", err)
	}
	return nil
}

// recordRead audits a staff member opening private content.
// detail says what of it was seen, when not the message itself.
func (s *Service) recordRead(ctx context.Context, a facility.Access, m reviewRow, detail string) error {
	return audit.RecordNow(ctx, s.db, readEntry(a, m, detail))
}

// readEntry is the audit entry of a staff member reading a message: opening it, its
// preview in the queue, or one of its photos.
func readEntry(a facility.Access, m reviewRow, detail string) audit.Entry {
	return audit.Entry{Actor: "staff:" + a.AccountID, Action: "message.read", AgencyID: m.agencyID,
		FacilityID: m.facilityID, ResidentID: m.residentID, Subject: "message:" + m.id, Detail: detail}
}

// notify queues a mail to the family about a message.
func (s *Service) notify(ctx context.Context, tx *sql.Tx, to, locale, template string, data map[string]string) error {
	return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: to, Template: template, Locale: locale, Data: data})
}

// storedNow is the time now as the database keeps it (microseconds), so that the
// answer to a send is the same as the answer to its retry and to a later read.
func storedNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
