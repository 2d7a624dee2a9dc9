// Package audit owns the append-only audit log: every staff action, every staff read
// of private content and every login to the staff portal and the kiosks is recorded
// in the same transaction as the action. Each row carries the hash of the row before
// it, so that Verify detects a row that was changed, removed or inserted. The
// database refuses UPDATE and DELETE on the table as well.
package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/database"
)

// Entry is what happened, by whom, about what.
type Entry struct {
	Actor      string // "staff:<account>", "operator", "resident:<id>", "kiosk:<id>"
	Action     string // "portal.login", "agency.create", "roster.import", ...
	AgencyID   string
	FacilityID string
	ResidentID string
	Subject    string // what the action was about: an account, a message, a file
	Detail     string // a short description, never a secret
}

// Row is a recorded entry.
type Row struct {
	Entry
	ID   int64
	At   time.Time
	Hash string
}

// chainKey serialises audit writers on PostgreSQL.
const chainKey = 0x61756469746c6f67 // "auditlog"

// genesis is the previous hash of the first row.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Record appends an entry inside tx, the transaction of the action it records.
func Record(ctx context.Context, db *database.DB, tx *sql.Tx, e Entry) error {
	if e.Actor == "" || e.Action == "" {
		return errors.New("audit: an entry needs an actor and an action")
	}
	if err := db.LockChain(ctx, tx, chainKey); err != nil {
		return fmt.Errorf("audit: lock: %w", err)
	}
	prev := genesis
	err := tx.QueryRowContext(ctx, "SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("audit: last hash: %w", err)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	hash := chainHash(prev, at, e)
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_log (at, actor, action, agency_id, facility_id, resident_id, subject, detail, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		at, e.Actor, e.Action, e.AgencyID, e.FacilityID, e.ResidentID, e.Subject, e.Detail, prev, hash)
	if err != nil {
		return fmt.Errorf("audit: record %s: %w", e.Action, err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE audit_head SET row_count = row_count + 1, last_hash = $1 WHERE id = 1", hash); err != nil {
		return fmt.Errorf("audit: head: %w", err)
	}
	return nil
}

// ViewingWindow is how long one viewing lasts for the audit log: a staff member
// playing a clip (many range requests), or refreshing a queue of previews, within
// it is one entry, not one per request.
const ViewingWindow = 30 * time.Minute

// RecordViewing appends an entry of a staff member seeing something (RecordNow),
// unless the same actor was recorded seeing the same subject the same way within
// ViewingWindow: a small read, where an entry per request would be a write each.
func RecordViewing(ctx context.Context, db *database.DB, e Entry) error {
	seen, err := Viewed(ctx, db, e.Actor, e.Action, e.Detail, []string{e.Subject})
	if err != nil || seen[e.Subject] {
		return err
	}
	return RecordNow(ctx, db, e)
}

// Viewed says which of the subjects the actor was recorded seeing (this action,
// this detail) within ViewingWindow. It reads the actor's own recent entries (an
// index).
func Viewed(ctx context.Context, db *database.DB, actor, action, detail string, subjects []string) (map[string]bool, error) {
	seen := map[string]bool{}
	if len(subjects) == 0 {
		return seen, nil
	}
	args := []any{actor, time.Now().UTC().Add(-ViewingWindow), action, detail}
	for _, s := range subjects {
		args = append(args, s)
	}
	rows, err := db.Read().QueryContext(ctx, `SELECT DISTINCT subject FROM audit_log WHERE actor = $1 AND at > $2 AND action = $3 AND detail = $4
		AND subject IN (`+database.Placeholders(5, len(subjects))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: recent viewings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		seen[s] = true
	}
	return seen, rows.Err()
}

// RecordNow appends an entry in a transaction of its own, for reads that change
// nothing else (a staff member viewing private details).
func RecordNow(ctx context.Context, db *database.DB, e Entry) error {
	return db.InTx(ctx, func(tx *sql.Tx) error { return Record(ctx, db, tx, e) })
}

// chainHash is the hash of a row: its fields and the hash of the row before.
func chainHash(prev string, at time.Time, e Entry) string {
	h := sha256.New()
	for _, f := range []string{prev, at.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.AgencyID, e.FacilityID, e.ResidentID, e.Subject, e.Detail} {
		fmt.Fprintf(h, "%d:%s\n", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// BrokenChain says where the log stops being what was written.
type BrokenChain struct {
	ID     int64
	Reason string
}

func (b *BrokenChain) Error() string {
	return fmt.Sprintf("audit log broken at row %d: %s", b.ID, b.Reason)
}

// Verify walks the whole log in order and checks every link. It returns how many
// rows it checked, and a *BrokenChain at the first row that does not fit.
func Verify(ctx context.Context, db *database.DB) (int, error) {
	rows, err := db.Read().QueryContext(ctx, "SELECT "+columns+" FROM audit_log ORDER BY id")
	if err != nil {
		return 0, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	prev, n := genesis, 0
	for rows.Next() {
		r, stored, err := scan(rows)
		if err != nil {
			return n, err
		}
		switch {
		case stored != prev:
			return n, &BrokenChain{ID: r.ID, Reason: "it does not follow the row before it (a row was removed or inserted)"}
		case chainHash(stored, r.At, r.Entry) != r.Hash:
			return n, &BrokenChain{ID: r.ID, Reason: "its content does not match its hash (the row was changed)"}
		}
		prev = r.Hash
		n++
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	var headCount int
	var headHash string
	if err := db.Read().QueryRowContext(ctx, "SELECT row_count, last_hash FROM audit_head WHERE id = 1").Scan(&headCount, &headHash); err != nil {
		return n, fmt.Errorf("audit: head: %w", err)
	}
	if headCount != n || headHash != prev {
		return n, &BrokenChain{Reason: fmt.Sprintf("the log has %d rows but %d were written: its newest rows were removed", n, headCount)}
	}
	return n, nil
}

const columns = "id, at, actor, action, agency_id, facility_id, resident_id, subject, detail, prev_hash, hash"

func scan(rows *sql.Rows) (Row, string, error) {
	var r Row
	var prev string
	// A time of any form: a row written by hand, not by Kinlink, must reach Verify's
	// hash check (and fail it) whatever the driver makes of its time.
	var at database.AnyTime
	err := rows.Scan(&r.ID, &at, &r.Actor, &r.Action, &r.AgencyID, &r.FacilityID, &r.ResidentID, &r.Subject, &r.Detail, &prev, &r.Hash)
	if err != nil {
		return r, "", fmt.Errorf("audit: read: %w", err)
	}
	r.At = at.Time
	return r, prev, nil
}

// Filter narrows a search. AgencyID is required: staff see only their agency.
type Filter struct {
	AgencyID string
	Actor    string // exact
	// Actors, when not nil, are the actors to show (any of them); empty shows none.
	Actors     []string
	ResidentID string
	Subject    string
	Action     string // prefix, such as "portal."
	From, To   time.Time
	Limit      int
}

// Search returns the newest entries that match, newest first.
func Search(ctx context.Context, db *database.DB, f Filter) ([]Row, error) {
	if f.AgencyID == "" {
		return nil, errors.New("audit: search needs an agency")
	}
	where := []string{"agency_id = $1"}
	args := []any{f.AgencyID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.Actors != nil {
		if len(f.Actors) == 0 {
			return nil, nil
		}
		for _, a := range f.Actors {
			args = append(args, a)
		}
		where = append(where, "actor IN ("+database.Placeholders(len(args)-len(f.Actors)+1, len(f.Actors))+")")
	}
	if f.ResidentID != "" {
		add("resident_id = $%d", f.ResidentID)
	}
	if f.Subject != "" {
		add("subject = $%d", f.Subject)
	}
	if f.Action != "" {
		add(`action LIKE $%d ESCAPE '\'`, strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(f.Action)+"%")
	}
	if !f.From.IsZero() {
		add("at >= $%d", f.From.UTC())
	}
	if !f.To.IsZero() {
		add("at < $%d", f.To.UTC())
	}
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := db.Read().QueryContext(ctx, "SELECT "+columns+" FROM audit_log WHERE "+strings.Join(where, " AND ")+
		fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit), args...)
	if err != nil {
		return nil, fmt.Errorf("audit: search: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		r, _, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
