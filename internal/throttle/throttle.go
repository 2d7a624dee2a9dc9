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
type Rule struct {
	Max     int
	Window  time.Duration
	Lockout time.Duration
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
			failures            int
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
			err := tx.QueryRowContext(ctx, "SELECT failures, window_start, locked_until FROM throttles WHERE key = $1"+t.db.ForUpdate(), key).
				Scan(&st.failures, &st.windowStart, &locked)
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
			if now.Sub(st.windowStart) > rule.Window || (!st.locked.IsZero() && !st.locked.After(now)) {
				st.failures, st.windowStart = 0, now
			}
			st.failures++
			var locked any
			if st.failures >= rule.Max {
				locked = now.Add(rule.Lockout)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE throttles SET failures = $2, window_start = $3, locked_until = $4 WHERE key = $1",
				key, st.failures, st.windowStart, locked); err != nil {
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
// successful logins never count against its shared address.
func (t *Throttle) Release(ctx context.Context, key string, rule Rule) error {
	_, err := t.db.Write().ExecContext(ctx, `UPDATE throttles SET failures = failures - 1,
		locked_until = CASE WHEN failures - 1 >= $2 THEN locked_until ELSE NULL END
		WHERE key = $1 AND failures > 0`, key, rule.Max)
	if err != nil {
		return fmt.Errorf("throttle: release: %w", err)
	}
	return nil
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
