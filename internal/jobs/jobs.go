// Package jobs owns Kinlink's durable background jobs: a table of work to do, enqueued
// in the same transaction as the change that causes it, run by workers inside
// `kinlink serve`, retried with exponential backoff and kept across restarts.
//
// A running job holds a lease as long as its timeout. A job whose server died while
// running it is picked up again once its lease has passed, so nothing is lost; the
// cost is that a job may run more than once, and handlers are written for that.
//
// One mechanism serves both engines: on PostgreSQL workers of several servers claim
// jobs with FOR UPDATE SKIP LOCKED; on SQLite the single writer serialises claims.
// A transaction on a busy path can hand its jobs to this server's own workers
// instead (Handoff): written already claimed, they need no claim, and a lease still
// covers them if the server stops.
package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kinlink/kinlink/internal/database"
)

// State is where a job is in its life.
type State string

const (
	Available State = "available" // waiting for its run_after time
	Running   State = "running"   // claimed by a worker
	Succeeded State = "succeeded" // done
	Failed    State = "failed"    // gave up: out of attempts, or a permanent error
)

// DefaultMaxAttempts with backoff capped at an hour keeps retrying for about a day,
// long enough to ride out a mail server's outage.
const DefaultMaxAttempts = 25

// Job is one row of the queue as an operator sees it.
type Job struct {
	ID          int64
	Kind        string
	State       State
	Attempts    int
	MaxAttempts int
	RunAfter    time.Time
	LastError   string
	CreatedAt   time.Time
	FinishedAt  *time.Time
}

// EnqueueOptions tunes one job.
type EnqueueOptions struct {
	RunAfter    time.Time // zero: now
	MaxAttempts int       // zero: DefaultMaxAttempts
	Sensitive   bool      // the payload holds a secret: cleared when the job ends, never retried by hand
	// Handoff, when set, gives the job to this server's own workers once the
	// transaction has committed (Handoff.Hand), instead of leaving it for a claim.
	Handoff *Handoff
}

// Enqueue adds a job inside tx, a transaction of db, so that it exists if and only
// if the surrounding change commits. payload is stored as JSON. The statement is
// prepared once (db), as it runs inside transactions that hold SQLite's one writer.
func Enqueue(ctx context.Context, db *database.DB, tx *sql.Tx, kind string, payload any, opts EnqueueOptions) (int64, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return 0, fmt.Errorf("jobs: enqueue %s: %w", kind, err)
	}
	now := time.Now().UTC()
	runAfter := opts.RunAfter
	if runAfter.IsZero() {
		runAfter = now
	}
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	// A job handed to a worker is written as claimed by it, with the lease a
	// claim would give: if the server stops before running it, the lease runs out
	// and any worker takes it then, as it would a job cut short.
	state, tries, lease := Available, 0, (*time.Time)(nil)
	if until, ok := opts.Handoff.takes(kind, runAfter, now, attempts); ok {
		state, tries, lease = Running, 1, &until
	}
	var id int64
	err = db.TxQueryRow(ctx, tx, `INSERT INTO jobs (kind, payload, state, max_attempts, run_after, created_at, sensitive, attempts, locked_until)
		VALUES ($1, $2, $7, $3, $4, $5, $6, $8, $9) RETURNING id`,
		kind, string(body), attempts, runAfter.UTC(), now, opts.Sensitive, state, tries, lease).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("jobs: enqueue %s: %w", kind, err)
	}
	if lease != nil {
		opts.Handoff.add(claimed{id: id, kind: kind, payload: string(body), attempts: tries, maxAttempts: attempts, until: *lease})
	}
	return id, nil
}

// Withdraw removes a job that has not started, inside tx, and reports whether it
// did: false means a worker has taken it (or it is done), so the caller and the job
// cannot both act. A job queued as a safety net for a change that may never commit
// is withdrawn by that change's own transaction.
func Withdraw(ctx context.Context, tx *sql.Tx, id int64) (bool, error) {
	res, err := tx.ExecContext(ctx, "DELETE FROM jobs WHERE id = $1 AND state = 'available'", id)
	if err != nil {
		return false, fmt.Errorf("jobs: withdraw: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ErrNotFound is returned for a job id that does not exist.
var ErrNotFound = errors.New("jobs: no such job")

// Get returns one job.
func Get(ctx context.Context, db *database.DB, id int64) (Job, error) {
	j, err := scanJob(db.Read().QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return j, ErrNotFound
	}
	if err != nil {
		return j, fmt.Errorf("jobs: get %d: %w", id, err)
	}
	return j, nil
}

const jobColumns = "id, kind, state, attempts, max_attempts, run_after, COALESCE(last_error, ''), created_at, finished_at"

func scanJob(row interface{ Scan(...any) error }) (Job, error) {
	var j Job
	var finished sql.NullTime
	err := row.Scan(&j.ID, &j.Kind, &j.State, &j.Attempts, &j.MaxAttempts, &j.RunAfter, &j.LastError, &j.CreatedAt, &finished)
	if finished.Valid {
		j.FinishedAt = &finished.Time
	}
	return j, err
}

// List returns the most recent jobs, newest first; state "" means every state.
func List(ctx context.Context, db *database.DB, state State, limit int) ([]Job, error) {
	rows, err := db.Read().QueryContext(ctx, "SELECT "+jobColumns+
		" FROM jobs WHERE ($1 = '' OR state = $1) ORDER BY id DESC LIMIT $2", string(state), limit)
	if err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("jobs: list: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Counts returns how many jobs are in each state.
func Counts(ctx context.Context, db *database.DB) (map[State]int, error) {
	rows, err := db.Read().QueryContext(ctx, "SELECT state, COUNT(*) FROM jobs GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("jobs: counts: %w", err)
	}
	defer rows.Close()
	out := map[State]int{Available: 0, Running: 0, Succeeded: 0, Failed: 0}
	for rows.Next() {
		var s State
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("jobs: counts: %w", err)
		}
		out[s] = n
	}
	return out, rows.Err()
}

// Errors of Retry.
var (
	ErrNotFailed = errors.New("jobs: only a failed job can be retried")
	ErrSensitive = errors.New("jobs: this job carried a one-time secret that was cleared; it cannot be retried")
)

// Retry puts a failed job back in the queue with a fresh set of attempts.
func Retry(ctx context.Context, db *database.DB, id int64) error {
	var sensitive bool
	err := db.Write().QueryRowContext(ctx, `UPDATE jobs SET state = 'available', attempts = 0, run_after = $2,
		finished_at = NULL WHERE id = $1 AND state = 'failed' AND NOT sensitive RETURNING sensitive`, id, time.Now().UTC()).Scan(&sensitive)
	if errors.Is(err, sql.ErrNoRows) {
		if j, gerr := Get(ctx, db, id); gerr == nil && j.State == Failed {
			return ErrSensitive
		}
		return ErrNotFailed
	}
	if err != nil {
		return fmt.Errorf("jobs: retry %d: %w", id, err)
	}
	return nil
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent wraps err so that the job fails at once instead of being retried.
func Permanent(err error) error { return permanentError{err} }
