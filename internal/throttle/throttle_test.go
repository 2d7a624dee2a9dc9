package throttle_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/throttle"
)

var ctx = context.Background()

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var login = throttle.Rule{Max: 3, Window: 15 * time.Minute, Lockout: 10 * time.Minute}

func reserve(t *testing.T, th *throttle.Throttle, key string, rule throttle.Rule) error {
	t.Helper()
	err := th.Reserve(ctx, []string{key}, []throttle.Rule{rule})
	if _, limited := throttle.IsLimited(err); err != nil && !limited {
		t.Fatalf("reserve %s: %v", key, err)
	}
	return err
}

func failures(t *testing.T, th *throttle.Throttle, key string, rule throttle.Rule) int {
	t.Helper()
	n, err := th.Failures(ctx, key, rule)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// wantLimited checks that err is a *Limited that asks for a wait of about want
// (PostgreSQL keeps microseconds).
func wantLimited(t *testing.T, what string, err error, want time.Duration) {
	t.Helper()
	l, ok := throttle.IsLimited(err)
	if !ok {
		t.Fatalf("%s: %v, want a wait of %v", what, err, want)
	}
	if d := l.RetryAfter - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("%s: wait %v, want %v", what, l.RetryAfter, want)
	}
}

// The attempt that reaches the limit still runs; the next is refused with the wait,
// and so is every attempt until the lockout ends, without extending it. Then the key
// starts again from nothing.
func TestLimitLocksForTheLockout(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		th := throttle.New(db).WithClock(c.Now)
		for i := range login.Max {
			if err := reserve(t, th, "login:ana", login); err != nil {
				t.Fatalf("attempt %d of %d: %v", i+1, login.Max, err)
			}
		}
		wantLimited(t, "the attempt after the limit", reserve(t, th, "login:ana", login), login.Lockout)
		wantLimited(t, "Check while locked", th.Check(ctx, "login:ana"), login.Lockout)
		c.Add(4 * time.Minute)
		wantLimited(t, "4 minutes later", reserve(t, th, "login:ana", login), login.Lockout-4*time.Minute)
		if n := failures(t, th, "login:ana", login); n != login.Max {
			t.Errorf("refused attempts were counted: %d", n)
		}
		if err := reserve(t, th, "login:ben", login); err != nil {
			t.Errorf("another key is locked too: %v", err)
		}

		c.Add(6 * time.Minute) // the lockout has ended
		if err := th.Check(ctx, "login:ana"); err != nil {
			t.Errorf("Check after the lockout: %v", err)
		}
		if n := failures(t, th, "login:ana", login); n != 0 {
			t.Errorf("failures after the lockout: %d", n)
		}
		for i := range login.Max {
			if err := reserve(t, th, "login:ana", login); err != nil {
				t.Fatalf("attempt %d after the lockout: %v", i+1, err)
			}
		}
		wantLimited(t, "the limit again", reserve(t, th, "login:ana", login), login.Lockout)
	})
}

// Attempts count within the window only: spread out enough, they never lock.
func TestAttemptsCountWithinTheWindow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		th := throttle.New(db).WithClock(c.Now)
		for range login.Max - 1 {
			reserve(t, th, "login:ana", login)
		}
		c.Add(login.Window) // the window's last moment: still the same window
		if n := failures(t, th, "login:ana", login); n != login.Max-1 {
			t.Errorf("failures at the end of the window: %d", n)
		}
		c.Add(time.Second)
		if n := failures(t, th, "login:ana", login); n != 0 {
			t.Errorf("failures after the window: %d", n)
		}
		// The same edges for Reserve: an attempt at the window's last moment counts
		// with the earlier ones and reaches the limit.
		for range login.Max - 1 {
			reserve(t, th, "login:ben", login)
		}
		c.Add(login.Window)
		reserve(t, th, "login:ben", login)
		if _, ok := throttle.IsLimited(reserve(t, th, "login:ben", login)); !ok {
			t.Errorf("attempts spread over exactly the window did not lock")
		}
		c.Add(login.Lockout + time.Second)
		for i := range 10 * login.Max {
			if err := reserve(t, th, "login:ana", login); err != nil {
				t.Fatalf("attempt %d, one per window/%d: %v", i, login.Max-1, err)
			}
			if (i+1)%(login.Max-1) == 0 {
				c.Add(login.Window + time.Second)
			}
		}
	})
}

// Reserve counts every key or none: a locked address refuses the attempt without
// counting it against the email, and the wait named is the longest.
func TestReserveIsAllOrNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		th := throttle.New(db).WithClock(c.Now)
		address := throttle.Rule{Max: 2, Window: time.Hour, Lockout: time.Hour}
		email := throttle.Rule{Max: 5, Window: time.Hour, Lockout: 5 * time.Minute}
		keys := []string{"login:email:ana", "login:ip:203.0.113.7"}
		rules := []throttle.Rule{email, address}
		for range address.Max {
			if err := th.Reserve(ctx, keys, rules); err != nil {
				t.Fatal(err)
			}
		}
		wantLimited(t, "the address's limit", th.Reserve(ctx, keys, rules), address.Lockout)
		if n := failures(t, th, "login:email:ana", email); n != address.Max {
			t.Errorf("the refused attempt was counted against the email: %d", n)
		}
		// Lock the email too, for less time: the wait named is the address's.
		for range email.Max {
			th.Reserve(ctx, []string{"login:email:ana"}, []throttle.Rule{email})
		}
		wantLimited(t, "both locked", th.Reserve(ctx, keys, rules), address.Lockout)
		wantLimited(t, "both locked, named the other way round", th.Reserve(ctx, []string{keys[1], keys[0]}, []throttle.Rule{address, email}), address.Lockout)
		if err := th.Reserve(ctx, []string{"login:email:ben"}, []throttle.Rule{email}); err != nil {
			t.Errorf("Ben from another address: %v", err)
		}
	})
}

// Fifty guesses at once get exactly as many tries as the limit, on either engine.
func TestParallelReservationsNeverExceedTheLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		th := throttle.New(db)
		rule := throttle.Rule{Max: 7, Window: time.Hour, Lockout: time.Hour}
		const n = 50
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range errs {
			wg.Go(func() { errs[i] = th.Reserve(ctx, []string{"code:ana", "code:ip"}, []throttle.Rule{rule, rule}) })
		}
		wg.Wait()
		allowed := 0
		for _, err := range errs {
			if err == nil {
				allowed++
			} else if _, ok := throttle.IsLimited(err); !ok {
				t.Errorf("a parallel reservation failed: %v", err)
			}
		}
		if allowed != rule.Max {
			t.Errorf("%d of %d parallel attempts went through; the limit is %d", allowed, n, rule.Max)
		}
		for _, key := range []string{"code:ana", "code:ip"} {
			if got := failures(t, th, key, rule); got != rule.Max {
				t.Errorf("%s counted %d", key, got)
			}
		}
	})
}

// The counts live in the database: a restarted server, or a second one on the same
// database, sees the same lock.
func TestLimitsHoldAcrossRestarts(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			first := dbtest.Open(t, e.Setting)
			th := throttle.New(first)
			for range login.Max - 1 {
				reserve(t, th, "login:ana", login)
			}
			second := throttle.New(dbtest.Open(t, e.Setting)) // another server
			reserve(t, second, "login:ana", login)            // reaches the limit
			if _, ok := throttle.IsLimited(reserve(t, th, "login:ana", login)); !ok {
				t.Error("the first server does not see the lock the second made")
			}
			first.Close()

			restarted := throttle.New(dbtest.Open(t, e.Setting))
			if _, ok := throttle.IsLimited(restarted.Check(ctx, "login:ana")); !ok {
				t.Error("the lock was forgotten across a restart")
			}
			if n := failures(t, restarted, "login:ana", login); n != login.Max {
				t.Errorf("after a restart: %d failures", n)
			}
		})
	}
}

// A successful login clears its email (Reset); a success that should not count gives
// its attempt back (Release), which lifts a lock only below the limit and never
// goes below zero.
func TestResetAndRelease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		th := throttle.New(db).WithClock(c.Now)
		for range login.Max {
			reserve(t, th, "login:ana", login)
		}
		if err := th.Reset(ctx, "login:ana"); err != nil {
			t.Fatal(err)
		}
		if err := reserve(t, th, "login:ana", login); err != nil || failures(t, th, "login:ana", login) != 1 {
			t.Errorf("after Reset: %v, %d failures", err, failures(t, th, "login:ana", login))
		}

		// A household's address: two attempts, then one is given back.
		reserve(t, th, "login:ip", login)
		if err := th.Release(ctx, "login:ip", login); err != nil {
			t.Fatal(err)
		}
		if n := failures(t, th, "login:ip", login); n != 0 {
			t.Errorf("after a release: %d", n)
		}
		if err := th.Release(ctx, "login:ip", login); err != nil {
			t.Fatal(err)
		}
		for i := range login.Max {
			if err := reserve(t, th, "login:ip", login); err != nil {
				t.Fatalf("attempt %d after releasing more than was reserved: %v", i+1, err)
			}
		}
		// The attempt that locked the key succeeded and is given back: the lock lifts.
		if err := th.Release(ctx, "login:ip", login); err != nil {
			t.Fatal(err)
		}
		if err := th.Check(ctx, "login:ip"); err != nil {
			t.Errorf("the released attempt left the lock: %v", err)
		}
		if err := reserve(t, th, "login:ip", login); err != nil {
			t.Errorf("an attempt after the release: %v", err)
		}
		wantLimited(t, "and the one after it", reserve(t, th, "login:ip", login), login.Lockout)
	})
}

// Prune forgets counters idle for long, never a lock still running.
func TestPruneKeepsRunningLocks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		th := throttle.New(db).WithClock(c.Now)
		long := throttle.Rule{Max: 1, Window: time.Hour, Lockout: 72 * time.Hour}
		reserve(t, th, "signup:ip", long) // locked for three days
		reserve(t, th, "signup:ana", login)
		c.Add(49 * time.Hour)
		if err := th.Prune(ctx, 48*time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, ok := throttle.IsLimited(th.Check(ctx, "signup:ip")); !ok {
			t.Error("Prune dropped a running lock")
		}
		var n int
		if err := db.Read().QueryRow("SELECT COUNT(*) FROM throttles WHERE key = 'signup:ana'").Scan(&n); err != nil || n != 0 {
			t.Errorf("an idle counter was kept: %d %v", n, err)
		}
	})
}

// When the store fails, Reserve says so and is not mistaken for a pass or a limit:
// callers fail closed.
func TestStoreFailureIsNeitherPassNorLimit(t *testing.T) {
	db := dbtest.Open(t, dbtest.Engines(t)[0].Setting)
	th := throttle.New(db)
	db.Close()
	err := th.Reserve(ctx, []string{"login:ana"}, []throttle.Rule{login})
	if _, limited := throttle.IsLimited(err); err == nil || limited || errors.Is(err, context.Canceled) {
		t.Errorf("Reserve on a closed database: %v", err)
	}
}

// A rule with a MaxLockout pauses a key that keeps being tried for longer each time
// (1, 2, 4, 8, then 15 minutes, never more); a quiet window after a pause starts
// again from the first length. Unlock ends a pause at once, and guessing that goes on
// after it is paused for longer still.
func TestLocksInARowGrowUpToTheirLimit(t *testing.T) {
	rule := throttle.Rule{Max: 3, Window: 15 * time.Minute, Lockout: time.Minute, MaxLockout: 15 * time.Minute}
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		c := newClock()
		th := throttle.New(db).WithClock(c.Now)
		pause := func(what string, want time.Duration) {
			t.Helper()
			for i := range rule.Max {
				if err := reserve(t, th, "kiosk:1", rule); err != nil {
					t.Fatalf("%s: attempt %d: %v", what, i+1, err)
				}
			}
			wantLimited(t, what, reserve(t, th, "kiosk:1", rule), want)
			c.Add(want) // the pause ends
		}
		for i, want := range []time.Duration{1, 2, 4, 8, 15, 15} {
			pause(fmt.Sprintf("pause %d in a row", i+1), want*time.Minute)
		}
		c.Add(rule.Window + time.Second) // quiet
		pause("after a quiet window", time.Minute)
		pause("the next in a row", 2*time.Minute)
		// A window that does not reach the limit starts again from the first.
		reserve(t, th, "kiosk:1", rule)
		c.Add(rule.Window + time.Second)
		pause("after a window below the limit", time.Minute)

		// Unlock ends a pause; it was paused, and is no longer.
		for range rule.Max {
			reserve(t, th, "kiosk:1", rule)
		}
		if ok, err := th.Unlock(ctx, nil, "kiosk:1"); err != nil || !ok {
			t.Fatalf("unlock a paused key: %v %v", ok, err)
		}
		if ok, err := th.Unlock(ctx, nil, "kiosk:1"); err != nil || ok {
			t.Errorf("unlock a key that is not paused: %v %v", ok, err)
		}
		if err := reserve(t, th, "kiosk:1", rule); err != nil {
			t.Fatalf("an attempt after unlock: %v", err)
		}
		// Guessing that goes on after it is paused for longer.
		reserve(t, th, "kiosk:1", rule)
		reserve(t, th, "kiosk:1", rule)
		wantLimited(t, "the pause after an unlock", reserve(t, th, "kiosk:1", rule), 4*time.Minute)
	})
}
