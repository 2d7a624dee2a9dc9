package messaging

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
)

// At the kiosk: a resident's conversations, reading, and replies.

// UnreadCap is where a conversation's unread count stops.
const UnreadCap = 100

// Conversation is one of a resident's contacts with its unread count (at most
// UnreadCap).
type Conversation struct {
	ContactID  string
	FamilyName string
	Unread     int
	Last       time.Time
}

// Inbox lists a resident's conversations with approved contacts, the most recent
// first, with how many delivered messages are unread.
func (s *Service) Inbox(ctx context.Context, residentID string) ([]Conversation, error) {
	// Per conversation: the unread count and the newest delivery, each from an index
	// (messages_unread, messages_deliveries), so a long history costs nothing here.
	// The unread count stops at UnreadCap: a kiosk says "99+", and counting a long
	// unread history would cost as much as the history.
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id, full_name, unread, last FROM (SELECT c.id, a.full_name,
		(SELECT COUNT(*) FROM (SELECT 1 FROM messages u WHERE u.contact_id = c.id AND u.direction = 'to_resident' AND u.state = 'delivered' LIMIT `+
		strconv.Itoa(UnreadCap)+`) capped) AS unread,
		(SELECT l.delivered_at FROM messages l WHERE l.contact_id = c.id AND l.delivered_at IS NOT NULL ORDER BY l.delivered_at DESC LIMIT 1) AS last
		FROM contacts c JOIN accounts a ON a.id = c.account_id
		JOIN residents r ON r.id = c.resident_id JOIN agencies g ON g.id = r.agency_id
		WHERE c.resident_id = $1 AND `+messageable+`) inbox
		ORDER BY last DESC NULLS LAST, full_name`, residentID)
	if err != nil {
		return nil, fmt.Errorf("messaging: inbox: %w", err)
	}
	defer rows.Close()
	var out []Conversation
	for rows.Next() {
		var c Conversation
		var last database.AnyTime
		if err := rows.Scan(&c.ContactID, &c.FamilyName, &c.Unread, &last); err != nil {
			return nil, err
		}
		c.Last = last.Time
		out = append(out, c)
	}
	return out, rows.Err()
}

// messageable is the SQL condition (on contacts c and agencies g) for a contact that
// messages flow through: approved, or pending where the agency does not require
// approval for messages — the same rule as sending.
const messageable = "(c.status = 'approved' OR (c.status = 'pending' AND NOT g.approval_for_messages))"

// residentContact checks that messages flow between a resident and a contact.
func (s *Service) residentContact(ctx context.Context, residentID, contactID string) (accountID string, err error) {
	if !ids.Valid(contactID) {
		return "", ErrNotFound
	}
	err = s.db.Read().QueryRowContext(ctx, `SELECT c.account_id FROM contacts c JOIN residents r ON r.id = c.resident_id JOIN agencies g ON g.id = r.agency_id
		WHERE c.id = $1 AND c.resident_id = $2 AND `+messageable, contactID, residentID).Scan(&accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return accountID, err
}

// flows reports whether messages still flow between a resident and a contact (the
// contact was not denied since).
func (s *Service) flows(ctx context.Context, residentID, contactID string) bool {
	_, err := s.residentContact(ctx, residentID, contactID)
	return err == nil
}

// Thread returns a resident's messages with one contact (delivered or read ones, and
// the resident's replies), oldest first; with markRead (the resident opened it) the
// delivered texts become read. A VideoGram is read (watched) when it is played
// (Watched), not when the conversation is opened.
func (s *Service) Thread(ctx context.Context, residentID, contactID string, markRead bool) ([]Message, error) {
	if _, err := s.residentContact(ctx, residentID, contactID); err != nil {
		return nil, err
	}
	if markRead {
		if _, err := s.db.Write().ExecContext(ctx, `UPDATE messages SET state = 'read', read_at = $2
			WHERE contact_id = $1 AND direction = 'to_resident' AND state = 'delivered' AND kind = 'text'`, contactID, time.Now().UTC()); err != nil {
			return nil, fmt.Errorf("messaging: mark read: %w", err)
		}
	}
	rows, err := s.db.Read().QueryContext(ctx, "SELECT "+messageColumns+` FROM messages WHERE contact_id = $1
		AND (direction = 'from_resident' OR state IN ('delivered', 'read')) ORDER BY created_at DESC, id DESC LIMIT 100`, contactID)
	if err != nil {
		return nil, fmt.Errorf("messaging: thread: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Reverse(out)
	// A reply review turned back says why, in the agency's own words where it
	// chose its own reason.
	if slices.ContainsFunc(out, func(m Message) bool { return m.State == Rejected }) {
		res, err := s.fac.Resident(ctx, residentID)
		if err != nil {
			return nil, err
		}
		if err := s.attachReasons(ctx, res.Agency.ID, out); err != nil {
			return nil, err
		}
	}
	return out, s.attachPhotos(ctx, out)
}

// PrepaidReplies is how many replies the family of a conversation has paid for and
// the resident has not used yet (the reply price where the agency charges for them).
func (s *Service) PrepaidReplies(ctx context.Context, residentID, contactID string) (int, error) {
	if _, err := s.residentContact(ctx, residentID, contactID); err != nil {
		return 0, err
	}
	var n int
	err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE contact_id = $1 AND prepaid_reply AND NOT reply_used
		AND state IN ('delivered', 'read')`, contactID).Scan(&n)
	return n, err
}

// replier is what a resident's reply needs: the family's account, the resident,
// and the agency's policy. Messages must flow both ways, and the resident be
// active and free to write.
func (s *Service) replier(ctx context.Context, residentID, contactID string) (accountID string, res facility.Resident, p policy, err error) {
	if accountID, err = s.residentContact(ctx, residentID, contactID); err != nil {
		return
	}
	if res, err = s.fac.Resident(ctx, residentID); err != nil {
		return
	}
	if res.Status != "active" || slices.Contains(res.Restrictions, "no_messages") {
		err = ErrNotAllowed
		return
	}
	p, err = s.policy(ctx, res.Agency.ID)
	return
}

// usePrepaidReply pays for the resident's reply replyID where the agency prices
// replies: it uses the oldest unused prepaid reply of the conversation and records
// which message bought it (nothing where replies are free). ErrNoPrepaidReply
// when none is left.
func usePrepaidReply(ctx context.Context, tx *sql.Tx, p policy, contactID, replyID string) error {
	if p.replyStamps == 0 {
		return nil
	}
	// "AND NOT reply_used" outside too: on PostgreSQL two replies racing for the
	// same row both pass the subquery, and only the re-checked outer condition
	// lets the second see the first's update and take nothing. The second then
	// asks again, in a statement that sees the first's choice, for the next one.
	for range 3 {
		var payer string
		err := tx.QueryRowContext(ctx, `UPDATE messages SET reply_used = TRUE WHERE id = (SELECT id FROM messages
			WHERE contact_id = $1 AND prepaid_reply AND NOT reply_used AND state IN ('delivered', 'read') ORDER BY created_at LIMIT 1)
			AND NOT reply_used RETURNING id`, contactID).Scan(&payer)
		if errors.Is(err, sql.ErrNoRows) {
			var left int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE contact_id = $1 AND prepaid_reply AND NOT reply_used
				AND state IN ('delivered', 'read')`, contactID).Scan(&left); err != nil {
				return err
			} else if left == 0 {
				return ErrNoPrepaidReply
			}
			continue
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE messages SET reply_paid_by = $2 WHERE id = $1", replyID, payer)
		return err
	}
	return ErrNoPrepaidReply
}

// replyKey is the idempotency key of a resident's reply.
func replyKey(residentID, key string) string { return "reply:" + residentID + ":" + key }

// ReplyDraft is a resident's text reply as written at the kiosk.
type ReplyDraft struct {
	Text string
	// Key makes a retried request a no-op that answers with the first reply.
	Key string
	// FromTrust is the resident's choice to pay for the reply from their trust
	// money where the agency prices replies and the family prepaid none (see
	// ReplyPrice). Without it such a reply is ErrNoPrepaidReply: a resident's
	// money is never spent unasked.
	FromTrust bool
}

// Reply sends a resident's text reply. It is free unless the agency prices replies,
// in which case it uses a prepaid reply the family bought or, where the resident
// chose to (d.FromTrust), their trust money, in the reply's own transaction.
func (s *Service) Reply(ctx context.Context, residentID, contactID string, d ReplyDraft) (Message, error) {
	text, key := d.Text, d.Key
	if key != "" {
		if was, err := s.replyByKey(ctx, residentID, key); err == nil || !errors.Is(err, ErrNotFound) {
			return was, err // sent already: a retry answers with it, whatever changed since
		}
	}
	accountID, res, p, err := s.replier(ctx, residentID, contactID)
	if err != nil {
		return Message{}, err
	}
	if text, err = normalizeText(text); err != nil {
		return Message{}, err
	}
	if utf8.RuneCountInString(text) > p.maxChars {
		return Message{}, ErrTooLong.With(strconv.Itoa(p.maxChars))
	}
	if key == "" {
		key = ids.New()
	}
	m := Message{ID: ids.Ordered(), ContactID: contactID, Direction: FromResident, Kind: Text, Text: text, State: Sent, CreatedAt: storedNow()}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Stored first: a retry racing this one waits on the key, then finds it.
		r, err := tx.ExecContext(ctx, `INSERT INTO messages (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, body, state,
			idempotency_key, created_at, delivered_at) VALUES ($1, $2, $3, $4, $5, $6, 'from_resident', $7, 'sent', $8, $9, $9)
			ON CONFLICT (idempotency_key) DO NOTHING`,
			m.ID, contactID, accountID, residentID, res.Agency.ID, res.Facility.ID, text, replyKey(residentID, key), m.CreatedAt)
		if err != nil {
			return fmt.Errorf("messaging: reply: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return errReplay
		}
		if err := s.payReply(ctx, tx, p, res, accountID, contactID, m.ID, "message", d.FromTrust); err != nil {
			return err
		}
		return s.tellFamilyOfReply(ctx, tx, accountID, contactID, res)
	})
	if errors.Is(err, errReplay) {
		return s.replyByKey(ctx, residentID, key)
	}
	if err == nil {
		s.wake()
	}
	return m, err
}

func (s *Service) replyByKey(ctx context.Context, residentID, key string) (Message, error) {
	return scanMessage(s.db.Read().QueryRowContext(ctx, "SELECT "+messageColumns+" FROM messages WHERE idempotency_key = $1",
		replyKey(residentID, key)))
}

// tellFamilyOfReply mails the family that the resident replied.
func (s *Service) tellFamilyOfReply(ctx context.Context, tx *sql.Tx, accountID, contactID string, res facility.Resident) error {
	var email, locale string
	if err := tx.QueryRowContext(ctx, "SELECT email, locale FROM accounts WHERE id = $1", accountID).Scan(&email, &locale); err != nil {
		return err
	}
	return s.notify(ctx, tx, email, locale, "message_reply", map[string]string{"From": res.FirstName + " " + res.LastName, "ContactID": contactID})
}

// Latest is a small fingerprint of a resident's inbox: the newest delivery to them
// (a message delivered at once, or approved in review), which an open kiosk page
// compares to learn of new messages. It is asked every second by every open kiosk,
// so it reads only the newest delivery of each of the resident's conversations
// (messages_deliveries).
func (s *Service) Latest(ctx context.Context, residentID string) (string, error) {
	var id string
	var at database.AnyTime
	err := s.db.QueryRow(ctx, `SELECT m.id, m.delivered_at FROM contacts c JOIN messages m ON m.id = (
			SELECT l.id FROM messages l WHERE l.contact_id = c.id AND l.delivered_at IS NOT NULL AND l.direction = 'to_resident'
			ORDER BY l.delivered_at DESC, l.id DESC LIMIT 1)
		WHERE c.resident_id = $1 ORDER BY m.delivered_at DESC, m.id DESC LIMIT 1`, residentID).Scan(&id, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return "none", nil
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d-%s", at.Time.UnixMicro(), id[:8]), nil
}
