package deposits

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
	"golang.org/x/time/rate"
)

// Kinds of feed rows: what changed a resident's trust money.
const (
	FeedPosted   = "posted"   // the deposit reached the trust account (AmountCents of it)
	FeedReversed = "reversed" // a chargeback took AmountCents (negative) back out
	// FeedReinstated gives back what a chargeback took (AmountCents, positive):
	// the card holder's dispute failed, and the deposit stands.
	FeedReinstated = "reinstated"
	FeedRefunded   = "refunded" // a deposit held for review went back to the card: no change
	FeedSpent      = "spent"    // the resident spent AmountCents (negative) here: stamps
	// FeedSpendRefunded gives back what a spend took (a reply never delivered).
	FeedSpendRefunded = "spend_refunded"
)

// FeedEntry is one row of an agency's trust-accounting feed, with everything its
// trust system records. Rows of spending have no deposit: DepositID,
// Confirmation and the sender are empty.
type FeedEntry struct {
	Seq            int64
	Kind           string
	DepositID      string
	Confirmation   string
	ResidentNumber string
	ResidentName   string
	FacilityCode   string
	// AmountCents is what the row changes in the trust account (negative for a
	// reversal); DepositCents the deposit's own amount.
	AmountCents   int64
	DepositCents  int64
	FeeCents      int64
	SenderName    string
	SenderAddress string
	Memo          string
	At            time.Time
}

// Feed errors.
var (
	ErrBadCursor = problem.Declare(problem.Invalid, "invalid_request", "deposits: the cursor is not one the feed gave").
			On("since", "invalid")
	ErrBadFeedKey = problem.Declare(problem.Unauthenticated, "unauthenticated", "deposits: no such feed key")
	ErrKeyName    = problem.Declare(problem.Invalid, "invalid_request", "deposits: a feed key's name is 1 to 100 characters of text").
			On("name", "invalid").Say("deposits.refused.key_name")
	// ErrFeedTooFast is a trust system reading faster than FeedPagesPerSecond.
	ErrFeedTooFast = problem.Declare(problem.RateLimited, "feed_rate_limited", "deposits: the feed is read faster than its pace")
)

// MaxFeedPage is the most rows one read of the feed returns.
const MaxFeedPage = 500

// FeedPagesPerSecond is the feed's default pace, per agency: a trust system polls
// every few minutes, and one far behind catches up at 2,500 rows a second, while a
// client stuck in a loop (or a key that leaked) cannot keep the database busy for
// everyone else. Kept in memory: each server counts its own reads.
const FeedPagesPerSecond = 5

// feedPace holds each agency's allowance of feed reads.
type feedPace struct {
	perSecond int
	mu        sync.Mutex
	agency    map[string]*rate.Limiter
}

func newFeedPace(perSecond int) *feedPace {
	return &feedPace{perSecond: perSecond, agency: map[string]*rate.Limiter{}}
}

// take spends one read of agencyID's allowance at now, or says how long until
// there is one.
func (p *feedPace) take(agencyID string, now time.Time) (wait time.Duration) {
	p.mu.Lock()
	l, ok := p.agency[agencyID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(p.perSecond), 10*p.perSecond)
		p.agency[agencyID] = l
	}
	p.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// feedRow is what a feed row records.
type feedRow struct {
	agencyID, kind, depositID                              string
	residentID, residentNumber, residentName, facilityCode string
	amount, fee                                            int64
	memo, ledgerKey                                        string
	// The deposit's own details, kept with the row (none for spending).
	confirmation, senderName, senderAddress string
	depositCents                            int64
}

// depositRow is the feed row of a change to a deposit.
func depositRow(d Deposit, kind string, amount, fee int64, memo string) feedRow {
	if memo == "" {
		memo = "Kinlink deposit " + d.Confirmation
	}
	key := ""
	switch kind {
	case FeedPosted:
		key = postKey(d.ID)
	case FeedReversed:
		key = chargebackKey(d.ID)
	case FeedReinstated:
		key = disputeWonKey(d.ID)
	}
	return feedRow{agencyID: d.AgencyID, kind: kind, depositID: d.ID, residentID: d.ResidentID, residentNumber: d.ResidentNumber,
		residentName: d.ResidentName, facilityCode: d.FacilityCode, amount: amount, fee: fee, memo: memo, ledgerKey: key,
		confirmation: d.Confirmation, depositCents: d.AmountCents, senderName: d.SenderName, senderAddress: d.SenderAddress}
}

// appendFeed adds a row of a deposit to its agency's feed inside tx.
func (s *Service) appendFeed(ctx context.Context, tx *sql.Tx, d Deposit, kind string, amount, fee int64, memo string, now time.Time) error {
	return s.append(ctx, tx, depositRow(d, kind, amount, fee, memo), now)
}

// append adds a row to an agency's feed inside tx. Rows of an agency are numbered
// under a lock, so they are numbered in the order they commit and a reader that
// resumes after the last number it saw misses none.
func (s *Service) append(ctx context.Context, tx *sql.Tx, r feedRow, now time.Time) error {
	if err := s.db.LockChain(ctx, tx, lockKey("deposit-feed:"+r.agencyID)); err != nil {
		return err
	}
	_, err := s.db.TxExec(ctx, tx, InsertFeedRow, r.agencyID, r.kind, r.depositID, r.residentID, r.residentNumber, r.residentName,
		r.facilityCode, r.amount, r.fee, r.memo, r.ledgerKey, now, r.confirmation, r.depositCents, r.senderName, r.senderAddress)
	if err != nil {
		return fmt.Errorf("deposits: feed: %w", err)
	}
	return nil
}

// InsertFeedRow is the statement that appends a row to an agency's feed, numbered
// after its last ($1 the agency; then kind, deposit, resident id, number and name,
// facility code, amount, fee, memo, ledger key, time, confirmation, the deposit's
// whole amount, sender name and address). Exported for bench/deposits, whose raw
// side writes the same row.
const InsertFeedRow = `INSERT INTO deposit_feed (agency_id, seq, kind, deposit_id, resident_id, resident_number, resident_name,
	facility_code, amount_cents, fee_cents, memo, ledger_key, at, confirmation, deposit_cents, sender_name, sender_address)
	SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16
	FROM deposit_feed WHERE agency_id = $1`

// feedColumns and feedFrom read feed rows: each carries its deposit's details, so
// a page reads the feed alone (migration 0038).
const feedColumns = `f.seq, f.kind, f.deposit_id, f.confirmation, f.resident_number, f.resident_name, f.facility_code,
	f.amount_cents, f.deposit_cents, f.fee_cents, f.sender_name, f.sender_address, f.memo, f.at`

const feedFrom = ` FROM deposit_feed f `

// scanFeed reads a row of feedColumns, and more columns into extra.
func scanFeed(rows *sql.Rows, extra ...any) (FeedEntry, error) {
	var e FeedEntry
	err := rows.Scan(append([]any{&e.Seq, &e.Kind, &e.DepositID, &e.Confirmation, &e.ResidentNumber, &e.ResidentName, &e.FacilityCode,
		&e.AmountCents, &e.DepositCents, &e.FeeCents, &e.SenderName, &e.SenderAddress, &e.Memo, &e.At}, extra...)...)
	e.At = e.At.UTC()
	return e, err
}

// ParseCursor reads a cursor the feed gave ("" is the start).
func ParseCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, ErrBadCursor
	}
	return n, nil
}

// Feed returns an agency's feed rows after the cursor since, oldest first, at
// most limit (MaxFeedPage at most), and the cursor to read on from.
func (s *Service) Feed(ctx context.Context, agencyID string, since int64, limit int) ([]FeedEntry, int64, error) {
	if limit <= 0 || limit > MaxFeedPage {
		limit = MaxFeedPage
	}
	rows, err := s.db.Query(ctx, "SELECT "+feedColumns+feedFrom+"WHERE f.agency_id = $1 AND f.seq > $2 ORDER BY f.seq LIMIT $3",
		agencyID, since, limit)
	if err != nil {
		return nil, since, fmt.Errorf("deposits: feed: %w", err)
	}
	defer rows.Close()
	var out []FeedEntry
	next := since
	for rows.Next() {
		e, err := scanFeed(rows)
		if err != nil {
			return nil, since, fmt.Errorf("deposits: feed: %w", err)
		}
		out = append(out, e)
		next = e.Seq
	}
	return out, next, rows.Err()
}

// FeedKey is a key an agency's trust system reads the feed with.
type FeedKey struct {
	ID        string
	Name      string
	CreatedBy string
	CreatedAt time.Time
	LastUsed  time.Time
	Revoked   bool
}

// feedKeyPrefix marks the keys, so a leaked one is recognised (secret scanners).
const feedKeyPrefix = "klfeed_"

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// finance checks that by may handle an agency's money: its finance office or
// administrators.
func finance(by facility.Access, agencyID, facilityID string) error {
	if by.AgencyID != agencyID {
		return facility.ErrNotFound
	}
	if !by.Has(facility.Finance, facilityID) {
		return facility.ErrForbidden
	}
	return nil
}

// agencyFinance reports whether by handles the money of the whole agency: its
// administrators and its agency-wide finance office. Another agency-wide role (an
// investigator) does not widen a facility's finance officer.
func agencyFinance(by facility.Access) bool { return canAny(by) && financeFacilities(by) == nil }

// CreateFeedKey makes a key for the agency's trust system and returns it, the only
// time it is shown; agency-wide finance staff and administrators may.
func (s *Service) CreateFeedKey(ctx context.Context, by facility.Access, name string) (FeedKey, string, error) {
	if err := finance(by, by.AgencyID, ""); err != nil {
		return FeedKey{}, "", err
	}
	if !agencyFinance(by) {
		return FeedKey{}, "", facility.ErrForbidden // the feed is the whole agency's
	}
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n < 1 || n > 100 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' }) {
		return FeedKey{}, "", ErrKeyName
	}
	b := make([]byte, 32)
	rand.Read(b)
	key := feedKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	k := FeedKey{ID: ids.New(), Name: name, CreatedBy: by.AccountID, CreatedAt: s.now().UTC()}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.TxExec(ctx, tx, `INSERT INTO deposit_feed_keys (id, agency_id, name, key_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			k.ID, by.AgencyID, k.Name, hashKey(key), by.AccountID, k.CreatedAt); err != nil {
			return fmt.Errorf("deposits: feed key: %w", err)
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + by.AccountID, Action: "deposits.feed_key", AgencyID: by.AgencyID,
			Subject: k.ID, Detail: "created " + k.Name})
	})
	return k, key, err
}

// FeedKeys lists the agency's feed keys, newest first, to its agency-wide finance
// staff.
func (s *Service) FeedKeys(ctx context.Context, by facility.Access) ([]FeedKey, error) {
	if err := finance(by, by.AgencyID, ""); err != nil {
		return nil, err
	}
	if !agencyFinance(by) {
		return nil, facility.ErrForbidden
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id, name, created_by, created_at, last_used, revoked_at IS NOT NULL
		FROM deposit_feed_keys WHERE agency_id = $1 ORDER BY created_at DESC`, by.AgencyID)
	if err != nil {
		return nil, fmt.Errorf("deposits: feed keys: %w", err)
	}
	defer rows.Close()
	var out []FeedKey
	for rows.Next() {
		var k FeedKey
		var used sql.NullTime
		if err := rows.Scan(&k.ID, &k.Name, &k.CreatedBy, &k.CreatedAt, &used, &k.Revoked); err != nil {
			return nil, err
		}
		if used.Valid {
			k.LastUsed = used.Time.UTC()
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeFeedKey stops a key at once.
func (s *Service) RevokeFeedKey(ctx context.Context, by facility.Access, id string) error {
	if err := finance(by, by.AgencyID, ""); err != nil {
		return err
	}
	if !agencyFinance(by) {
		return facility.ErrForbidden
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := s.db.TxExec(ctx, tx, "UPDATE deposit_feed_keys SET revoked_at = $3 WHERE id = $1 AND agency_id = $2 AND revoked_at IS NULL",
			id, by.AgencyID, s.now().UTC())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: "staff:" + by.AccountID, Action: "deposits.feed_key", AgencyID: by.AgencyID,
			Subject: id, Detail: "revoked"})
	})
}

// FeedAgency is the agency a feed key reads, for a key that is live.
func (s *Service) FeedAgency(ctx context.Context, key string) (string, error) {
	if !strings.HasPrefix(key, feedKeyPrefix) || len(key) > 200 {
		return "", ErrBadFeedKey
	}
	var agencyID, id string
	var used sql.NullTime
	err := s.db.QueryRow(ctx, "SELECT agency_id, id, last_used FROM deposit_feed_keys WHERE key_hash = $1 AND revoked_at IS NULL",
		hashKey(key)).Scan(&agencyID, &id, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrBadFeedKey
	}
	if err != nil {
		return "", err
	}
	// When it was last used, to the minute: enough to tell a live key from a
	// forgotten one without a write per poll. The write is skipped when the key
	// was used this minute already: on SQLite even an UPDATE that changes nothing
	// waits for the one writer, behind every deposit being made.
	if wait := s.pace.take(agencyID, s.now()); wait > 0 {
		return "", ErrFeedTooFast.After(wait)
	}
	now := s.now().UTC().Truncate(time.Minute)
	if used.Valid && !used.Time.Before(now) {
		return agencyID, nil
	}
	if _, err := s.db.Write().ExecContext(ctx, "UPDATE deposit_feed_keys SET last_used = $2 WHERE id = $1 AND (last_used IS NULL OR last_used < $2)", id, now); err != nil {
		return "", err
	}
	return agencyID, nil
}
