// Package throttle owns attempt limits kept in the database, so that they hold across
// restarts and across several servers: failed logins per email and per client
// address, reset and sign-up requests, code guesses.
//
// An attempt is reserved before the costly or risky work, atomically in one write
// transaction: fifty parallel guesses get exactly as many tries as the limit. The
// caller then clears the reservation on success (Reset) or gives it back (Release)
// when success should not count against the key.
package throttle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/problem"
)

// Rule is a limit: at most Max attempts within Window; reaching Max locks the key
// for Lockout (the attempt that reaches it still runs).
//
// With MaxLockout above Lockout, the locks of a key that keeps being tried grow: a
// lock that follows the last one while attempts keep coming (the next window starts
// within Window of its end, and reaches Max) lasts twice as long as it did, up to
// MaxLockout. A window that passes without reaching Max, or a quiet Window after a
// lock, starts again from Lockout. So a short first lock can be kept short for a
// mistake, while steady guessing is still slowed to Max per MaxLockout.
type Rule struct {
	Max        int
	Window     time.Duration
	Lockout    time.Duration
	MaxLockout time.Duration
}

// lockout is the length of a key's lock that is the n-th in a row (from 1).
func (r Rule) lockout(n int) time.Duration {
	d := r.Lockout
	for i := 1; i < n && d < r.MaxLockout; i++ {
		d *= 2
	}
	return max(min(d, r.MaxLockout), r.Lockout)
}

// Limited is returned when a key is locked; RetryAfter says for how long.
type Limited struct{ RetryAfter time.Duration }

func (l *Limited) Error() string {
	return fmt.Sprintf("throttle: too many attempts; retry after %v", l.RetryAfter.Round(time.Second))
}

// ErrTooMany is the refusal a *Limited is, with its wait.
var ErrTooMany = problem.Declare(problem.RateLimited, "too_many_attempts", "throttle: too many attempts")

// Problem is the refusal, with the wait.
func (l *Limited) Problem() *problem.Error { return ErrTooMany.After(l.RetryAfter) }

// IsLimited reports whether err is a *Limited and returns it.
func IsLimited(err error) (*Limited, bool) {
	var l *Limited
	ok := errors.As(err, &l)
	return l, ok
}

// AddressKey is the part of a client address that limits count: the address itself,
// or for IPv6 its /64, the block one household or phone gets, so that rotating
// addresses within it does not dodge the per-address limits.
func AddressKey(ip string) string {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return ip
	}
	if parsed.To4() == nil {
		return parsed.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return parsed.String()
}

// Throttle keeps the counters.
type Throttle struct {
	db  *database.DB
	now func() time.Time
}

// New returns a throttle on db.
func New(db *database.DB) *Throttle { return &Throttle{db: db, now: time.Now} }

// WithClock returns a throttle on the same database that reads time from now, for
// tests that move time.
func (t *Throttle) WithClock(now func() time.Time) *Throttle { return &Throttle{db: t.db, now: now} }

// Reserve counts one attempt for each key under its rule, all or nothing: if any key
// is locked, nothing is counted and the returned *Limited names the longest wait.
// Any other error means the store failed; callers fail closed on it.
func (t *Throttle) Reserve(ctx context.Context, keys []string, rules []Rule) error {
	now := t.now().UTC()
	return t.db.InTx(ctx, func(tx *sql.Tx) error {
		type state struct {
			failures, lockouts  int
			windowStart, locked time.Time
		}
		states := make([]state, len(keys))
		var wait time.Duration
		for i, key := range keys {
			if _, err := tx.ExecContext(ctx, `INSERT INTO throttles (key, failures, window_start) VALUES ($1, 0, $2)
				ON CONFLICT (key) DO NOTHING`, key, now); err != nil {
				return fmt.Errorf("throttle: %w", err)
			}
			var locked sql.NullTime
			st := &states[i]
			err := tx.QueryRowContext(ctx, "SELECT failures, window_start, locked_until, lockouts FROM throttles WHERE key = $1"+t.db.ForUpdate(), key).
				Scan(&st.failures, &st.windowStart, &locked, &st.lockouts)
			if err != nil {
				return fmt.Errorf("throttle: %w", err)
			}
			if locked.Valid && locked.Time.After(now) {
				wait = max(wait, locked.Time.Sub(now))
			}
			st.locked = locked.Time
		}
		if wait > 0 {
			return &Limited{RetryAfter: wait}
		}
		for i, key := range keys {
			st, rule := states[i], rules[i]
			ended := !st.locked.IsZero() && !st.locked.After(now)
			if now.Sub(st.windowStart) > rule.Window || ended {
				// A new window. Locks stay "in a row" only for attempts that come
				// within a window of the last lock's end.
				if !ended || now.Sub(st.locked) > rule.Window {
					st.lockouts = 0
				}
				st.failures, st.windowStart = 0, now
			}
			st.failures++
			var locked any
			if st.failures >= rule.Max {
				st.lockouts++
				locked = now.Add(rule.lockout(st.lockouts))
			}
			if _, err := tx.ExecContext(ctx, "UPDATE throttles SET failures = $2, window_start = $3, locked_until = $4, lockouts = $5 WHERE key = $1",
				key, st.failures, st.windowStart, locked, st.lockouts); err != nil {
				return fmt.Errorf("throttle: %w", err)
			}
		}
		return nil
	})
}

// Reset forgets a key: a successful login clears its email's failures and lock.
func (t *Throttle) Reset(ctx context.Context, key string) error {
	if _, err := t.db.Write().ExecContext(ctx, "DELETE FROM throttles WHERE key = $1", key); err != nil {
		return fmt.Errorf("throttle: reset: %w", err)
	}
	return nil
}

// Release gives back one reserved attempt that succeeded, so that a household's
// successful logins never count against its shared address. A lock that attempt
// set is lifted, and not counted among the locks in a row.
func (t *Throttle) Release(ctx context.Context, key string, rule Rule) error {
	_, err := t.db.Write().ExecContext(ctx, `UPDATE throttles SET failures = failures - 1,
		locked_until = CASE WHEN failures - 1 >= $2 THEN locked_until ELSE NULL END,
		lockouts = CASE WHEN locked_until IS NOT NULL AND failures - 1 < $2 AND lockouts > 0 THEN lockouts - 1 ELSE lockouts END
		WHERE key = $1 AND failures > 0`, key, rule.Max)
	if err != nil {
		return fmt.Errorf("throttle: release: %w", err)
	}
	return nil
}

// Unlock lifts a key's lock now and starts its count again, and reports whether it
// was locked: a person with the right to say so (staff at a kiosk) ends a pause.
// The locks in a row are kept, so that guessing that goes on is paused for longer.
// tx, if not nil, is the caller's transaction, so that the unlock and its record
// are one.
func (t *Throttle) Unlock(ctx context.Context, tx *sql.Tx, key string) (bool, error) {
	now := t.now().UTC()
	var q interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	} = t.db.Write()
	if tx != nil {
		q = tx
	}
	res, err := q.ExecContext(ctx, "UPDATE throttles SET failures = 0, window_start = $2, locked_until = NULL WHERE key = $1 AND locked_until > $2", key, now)
	if err != nil {
		return false, fmt.Errorf("throttle: unlock: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Failures returns the count of a key under its rule as Reserve would see it now:
// zero once the window has passed or the lock has ended.
func (t *Throttle) Failures(ctx context.Context, key string, rule Rule) (int, error) {
	var n int
	var start time.Time
	var locked sql.NullTime
	err := t.db.Read().QueryRowContext(ctx, "SELECT failures, window_start, locked_until FROM throttles WHERE key = $1", key).Scan(&n, &start, &locked)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	now := t.now().UTC()
	if locked.Valid && locked.Time.After(now) {
		return n, nil
	}
	if now.Sub(start) > rule.Window || locked.Valid {
		return 0, nil
	}
	return n, nil
}

// Check answers a *Limited while key is locked, without counting an attempt: for a
// request that would only lead to attempts refused anyway.
func (t *Throttle) Check(ctx context.Context, key string) error {
	var locked sql.NullTime
	err := t.db.Read().QueryRowContext(ctx, "SELECT locked_until FROM throttles WHERE key = $1", key).Scan(&locked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if now := t.now().UTC(); locked.Valid && locked.Time.After(now) {
		return &Limited{RetryAfter: locked.Time.Sub(now)}
	}
	return nil
}

// Prune deletes counters idle for longer than maxAge.
func (t *Throttle) Prune(ctx context.Context, maxAge time.Duration) error {
	cutoff := t.now().UTC().Add(-maxAge)
	_, err := t.db.Write().ExecContext(ctx, "DELETE FROM throttles WHERE window_start < $1 AND (locked_until IS NULL OR locked_until < $1)", cutoff)
	return err
}
