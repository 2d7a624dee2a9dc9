package messaging

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/kinlink/kinlink/internal/facility"
)

// A resident's own money for replies: where the agency prices replies and the
// family prepaid none, the resident may pay the reply's stamps from their trust
// account (package deposits), when they say so at the kiosk. It is never taken
// without that choice: a reply the resident did not choose to pay for is
// ErrNoPrepaidReply, as where no trust money is offered.

// Trust is what messaging needs of residents' trust accounts: spending for a
// purchase inside its transaction (once per key), and giving back what a key
// spent when the purchase never happened (once).
type Trust interface {
	Spend(ctx context.Context, tx *sql.Tx, r facility.Resident, cents int64, key, what string) error
	GiveBack(ctx context.Context, tx *sql.Tx, r facility.Resident, key, what string) error
}

// UseTrust lets residents pay for their replies from their trust money: the app
// calls it with the deposits service. Without it, a priced reply needs a
// prepaid one.
func (s *Service) UseTrust(t Trust) { s.trust = t }

// ReplyPrice is what a resident's reply to a contact costs, and how it may be
// paid.
type ReplyPrice struct {
	Stamps int   // 0 where replies are free
	Cents  int64 // Stamps at the agency's stamp price
	// Prepaid is how many replies the family paid for that the resident has not
	// used; the next reply uses one, and costs the resident nothing.
	Prepaid int
	// FromTrust is whether the resident may pay Cents from their trust money
	// (FromTrust in ReplyDraft): replies are priced, none is prepaid, and this
	// server takes trust money for them.
	FromTrust bool
}

// ReplyPrice says what a reply from a resident to a contact costs and whether the
// resident may pay for it from trust, before they write it.
func (s *Service) ReplyPrice(ctx context.Context, residentID, contactID string) (ReplyPrice, error) {
	prepaid, err := s.PrepaidReplies(ctx, residentID, contactID)
	if err != nil {
		return ReplyPrice{}, err
	}
	res, err := s.fac.Resident(ctx, residentID)
	if err != nil {
		return ReplyPrice{}, err
	}
	p, err := s.policy(ctx, res.Agency.ID)
	if err != nil {
		return ReplyPrice{}, err
	}
	price := ReplyPrice{Stamps: p.replyStamps, Cents: replyCents(p), Prepaid: prepaid}
	price.FromTrust = p.replyStamps > 0 && prepaid == 0 && s.trust != nil
	return price, nil
}

func replyCents(p policy) int64 { return int64(p.replyStamps) * int64(p.stampCents) }

// trustKey names a reply's purchase in the resident's trust account: a reply is
// paid once, and given back once.
func trustKey(replyID string) string { return "reply:" + replyID }

// payReply pays for the resident's reply replyID where the agency prices replies
// (nothing where they are free): with the oldest unused prepaid reply of the
// conversation, else, where the resident chose to (fromTrust), from their trust
// money, inside tx. what names the reply for the trust account's statement.
func (s *Service) payReply(ctx context.Context, tx *sql.Tx, p policy, res facility.Resident, accountID, contactID, replyID, kind string, fromTrust bool) error {
	err := usePrepaidReply(ctx, tx, p, contactID, replyID)
	if !errors.Is(err, ErrNoPrepaidReply) || !fromTrust || s.trust == nil {
		return err
	}
	var family string
	if err := tx.QueryRowContext(ctx, "SELECT full_name FROM accounts WHERE id = $1", accountID).Scan(&family); err != nil {
		return fmt.Errorf("messaging: reply from trust: %w", err)
	}
	if family = strings.TrimSpace(family); family == "" {
		family = "family"
	}
	what := fmt.Sprintf("Reply stamps (%s to %s)", kind, family)
	return s.trust.Spend(ctx, tx, res, replyCents(p), trustKey(replyID), what)
}

// giveBackReply returns what paid for a resident's reply that was never delivered
// (a rejected or unusable VideoGram reply): the prepaid reply, for the resident to
// use again, or the trust money the resident paid.
func (s *Service) giveBackReply(ctx context.Context, tx *sql.Tx, residentID, replyID string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE messages SET reply_used = FALSE
		WHERE id = (SELECT reply_paid_by FROM messages WHERE id = $1 AND direction = 'from_resident')`, replyID); err != nil {
		return err
	}
	if s.trust == nil {
		return nil
	}
	res, err := s.fac.Resident(ctx, residentID)
	if err != nil {
		return fmt.Errorf("messaging: give back a reply: %w", err)
	}
	return s.trust.GiveBack(ctx, tx, res, trustKey(replyID), "Reply stamps back (reply not delivered)")
}
