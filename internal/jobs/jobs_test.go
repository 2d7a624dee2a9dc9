package jobs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/jobs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type note struct{ N int }

func enqueue(t *testing.T, db *database.DB, kind string, n int, opts jobs.EnqueueOptions) int64 {
	t.Helper()
	var id int64
	err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		id, err = jobs.Enqueue(context.Background(), db, tx, kind, note{n}, opts)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func job(t *testing.T, db *database.DB, id int64) jobs.Job {
	t.Helper()
	all, err := jobs.List(context.Background(), db, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all {
		if j.ID == id {
			return j
		}
	}
	t.Fatalf("job %d not found", id)
	return jobs.Job{}
}

func TestJobExistsOnlyIfItsTransactionCommits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		boom := errors.New("the change failed")
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := jobs.Enqueue(ctx, db, tx, "mail", note{1}, jobs.EnqueueOptions{}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		counts, err := jobs.Counts(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if counts[jobs.Available] != 0 {
			t.Fatalf("a rolled-back transaction left %d jobs", counts[jobs.Available])
		}
	})
}

func TestJobRunsOnceAndIsMarkedDone(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		var got []int
		r.Handle("count", func(ctx context.Context, p json.RawMessage) error {
			var n note
			if err := json.Unmarshal(p, &n); err != nil {
				return err
			}
			got = append(got, n.N)
			return nil
		})
		id := enqueue(t, db, "count", 7, jobs.EnqueueOptions{})
		ran, err := r.RunOne(ctx)
		if err != nil || !ran {
			t.Fatalf("RunOne = %v, %v", ran, err)
		}
		if len(got) != 1 || got[0] != 7 {
			t.Fatalf("handler saw %v", got)
		}
		j := job(t, db, id)
		if j.State != jobs.Succeeded || j.FinishedAt == nil || j.Attempts != 1 {
			t.Fatalf("job after success: %+v", j)
		}
		if ran, _ := r.RunOne(ctx); ran {
			t.Fatal("a succeeded job ran again")
		}
	})
}

func TestFailingJobIsRetriedWithBackoffThenFails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		r.Handle("flaky", func(context.Context, json.RawMessage) error { return errors.New("smtp: connection refused") })
		id := enqueue(t, db, "flaky", 1, jobs.EnqueueOptions{MaxAttempts: 2})

		before := time.Now()
		if ran, err := r.RunOne(ctx); !ran || err != nil {
			t.Fatalf("RunOne = %v, %v", ran, err)
		}
		j := job(t, db, id)
		if j.State != jobs.Available || j.LastError != "smtp: connection refused" || !j.RunAfter.After(before) {
			t.Fatalf("after first failure: %+v", j)
		}
		if ran, _ := r.RunOne(ctx); ran {
			t.Fatal("the job was retried before its backoff passed")
		}
		// Pretend the backoff has passed.
		if _, err := db.Write().ExecContext(ctx, "UPDATE jobs SET run_after = $1 WHERE id = $2", time.Now().UTC().Add(-time.Second), id); err != nil {
			t.Fatal(err)
		}
		if ran, err := r.RunOne(ctx); !ran || err != nil {
			t.Fatalf("RunOne = %v, %v", ran, err)
		}
		j = job(t, db, id)
		if j.State != jobs.Failed || j.Attempts != 2 {
			t.Fatalf("after last attempt: %+v", j)
		}

		if err := jobs.Retry(ctx, db, id); err != nil {
			t.Fatal(err)
		}
		if j = job(t, db, id); j.State != jobs.Available || j.Attempts != 0 {
			t.Fatalf("after operator retry: %+v", j)
		}
		if err := jobs.Retry(ctx, db, id); !errors.Is(err, jobs.ErrNotFailed) {
			t.Fatalf("retrying an available job: %v", err)
		}
	})
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		r.Handle("bad", func(context.Context, json.RawMessage) error { return jobs.Permanent(errors.New("no such address")) })
		a := enqueue(t, db, "bad", 1, jobs.EnqueueOptions{})
		r.RunOne(ctx)
		if j := job(t, db, a); j.State != jobs.Failed || j.Attempts != 1 || j.LastError == "" {
			t.Errorf("job %d: %+v", a, j)
		}
	})
}

// A runner leaves the kinds it has no handler for to one that has: a command that
// runs only its own jobs (kinlink mail-test), or an older server during an upgrade,
// must not fail the jobs of a newer one.
func TestUnknownKindIsLeftForARunnerThatKnowsIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		mailOnly := jobs.NewRunner(db, quiet, 1, time.Minute)
		mailOnly.Handle("mail", func(context.Context, json.RawMessage) error { return nil })
		other := enqueue(t, db, "photo-check", 1, jobs.EnqueueOptions{})
		mine := enqueue(t, db, "mail", 1, jobs.EnqueueOptions{})
		if ran, err := mailOnly.RunOne(ctx); !ran || err != nil {
			t.Fatalf("the mail job: %v %v", ran, err)
		}
		if ran, _ := mailOnly.RunOne(ctx); ran {
			t.Error("a runner ran a kind it has no handler for")
		}
		if j := job(t, db, mine); j.State != jobs.Succeeded {
			t.Errorf("its own job: %+v", j)
		}
		if j := job(t, db, other); j.State != jobs.Available || j.Attempts != 0 || j.LastError != "" {
			t.Errorf("the other kind was touched: %+v", j)
		}
		full := jobs.NewRunner(db, quiet, 1, time.Minute)
		full.Handle("mail", func(context.Context, json.RawMessage) error { return nil })
		full.Handle("photo-check", func(context.Context, json.RawMessage) error { return nil })
		full.RunOne(ctx)
		if j := job(t, db, other); j.State != jobs.Succeeded {
			t.Errorf("a runner that knows the kind: %+v", j)
		}
	})
}

func TestPanickingHandlerIsRecordedNotFatal(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		r.Handle("panics", func(context.Context, json.RawMessage) error { panic("nil map") })
		id := enqueue(t, db, "panics", 1, jobs.EnqueueOptions{})
		r.RunOne(context.Background())
		if j := job(t, db, id); j.State != jobs.Available || j.LastError != "panic: nil map" {
			t.Fatalf("%+v", j)
		}
	})
}

// A job whose server died mid-run is taken up again once its lease has passed.
func TestJobOfACrashedWorkerIsReclaimed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		id := enqueue(t, db, "mail", 1, jobs.EnqueueOptions{})
		// The crashed server had claimed it with a lease that has now run out.
		if _, err := db.Write().ExecContext(ctx, "UPDATE jobs SET state = 'running', attempts = 1, locked_until = $1 WHERE id = $2",
			time.Now().UTC().Add(-time.Second), id); err != nil {
			t.Fatal(err)
		}
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		done := 0
		r.Handle("mail", func(context.Context, json.RawMessage) error { done++; return nil })
		r.RunOne(ctx)
		if j := job(t, db, id); done != 1 || j.State != jobs.Succeeded || j.Attempts != 2 {
			t.Fatalf("ran %d times; %+v", done, j)
		}
	})
}

// Jobs run in the order they fall due, not the order they were queued; a job of a
// crashed server goes first; a job not yet due and one of a kind the runner does
// not know are left.
func TestJobsRunInTheOrderTheyFallDue(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		enqueue(t, db, "mail", 3, jobs.EnqueueOptions{RunAfter: now.Add(-time.Second)})
		enqueue(t, db, "mail", 1, jobs.EnqueueOptions{RunAfter: now.Add(-time.Minute)})
		enqueue(t, db, "mail", 9, jobs.EnqueueOptions{RunAfter: now.Add(time.Hour)})
		enqueue(t, db, "other", 8, jobs.EnqueueOptions{RunAfter: now.Add(-time.Hour)})
		enqueue(t, db, "mail", 2, jobs.EnqueueOptions{RunAfter: now.Add(-30 * time.Second)})
		crashed := enqueue(t, db, "mail", 0, jobs.EnqueueOptions{RunAfter: now})
		if _, err := db.Write().ExecContext(ctx, "UPDATE jobs SET state = 'running', attempts = 1, locked_until = $1 WHERE id = $2",
			now.Add(-time.Second), crashed); err != nil {
			t.Fatal(err)
		}
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		var ran []int
		r.Handle("mail", func(_ context.Context, p json.RawMessage) error {
			var n note
			json.Unmarshal(p, &n)
			ran = append(ran, n.N)
			return nil
		})
		for {
			did, err := r.RunOne(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !did {
				break
			}
		}
		if got := fmt.Sprint(ran); got != "[0 1 2 3]" {
			t.Errorf("ran %s, want the crashed server's job, then the due ones by time: [0 1 2 3]", got)
		}
	})
}

// Workers of two servers sharing one database run every job exactly once.
func TestConcurrentWorkersRunEachJobOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		const n = 60
		for i := range n {
			enqueue(t, db, "count", i, jobs.EnqueueOptions{})
		}
		var mu sync.Mutex
		seen := map[int]int{}
		handler := func(ctx context.Context, p json.RawMessage) error {
			var v note
			json.Unmarshal(p, &v)
			mu.Lock()
			seen[v.N]++
			mu.Unlock()
			return nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 2 {
			r := jobs.NewRunner(db, quiet, 3, time.Minute)
			r.Handle("count", handler)
			wg.Add(1)
			go func() { defer wg.Done(); r.Run(ctx) }()
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			c, err := jobs.Counts(context.Background(), db)
			if err == nil && c[jobs.Succeeded] == n {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("%d of %d jobs ran", len(seen), n)
		}
		for k, v := range seen {
			if v != 1 {
				t.Errorf("job %d ran %d times", k, v)
			}
		}
	})
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	for a := 1; a < 40; a++ {
		d := jobs.Backoff(a)
		if d <= 0 || d > time.Hour {
			t.Fatalf("Backoff(%d) = %v", a, d)
		}
	}
	if jobs.Backoff(1) > 2*time.Second || jobs.Backoff(10) < 8*time.Minute {
		t.Fatalf("Backoff(1) = %v, Backoff(10) = %v", jobs.Backoff(1), jobs.Backoff(10))
	}
}

// A job withdrawn before a worker takes it never runs; once a worker has it, the
// withdrawal fails, so the job and the change that withdraws it never both act.
func TestWithdrawOnlyBeforeAWorkerTakesIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		withdraw := func(id int64) bool {
			var ok bool
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				var err error
				ok, err = jobs.Withdraw(ctx, tx, id)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return ok
		}
		ran := 0
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		r.Handle("check", func(context.Context, json.RawMessage) error { ran++; return nil })
		early := enqueue(t, db, "check", 1, jobs.EnqueueOptions{})
		if !withdraw(early) {
			t.Fatal("a waiting job could not be withdrawn")
		}
		if did, _ := r.RunOne(ctx); did || ran != 0 {
			t.Error("a withdrawn job ran")
		}
		late := enqueue(t, db, "check", 1, jobs.EnqueueOptions{})
		r.RunOne(ctx)
		if ran != 1 || withdraw(late) {
			t.Errorf("a job that ran (%d) was withdrawn afterwards", ran)
		}
	})
}

// A long job (a video conversion) renews its lease while it runs, so another
// server does not take it over as if its worker had died; it still may run until
// its own limit.
func TestLongJobKeepsItsLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		id := enqueue(t, db, "convert", 1, jobs.EnqueueOptions{})
		lease := 1500 * time.Millisecond
		var runs sync.Map
		started, release := make(chan time.Duration, 2), make(chan struct{})
		handler := func(name string) jobs.Handler {
			return func(ctx context.Context, _ json.RawMessage) error {
				runs.Store(name, true)
				if name == "first" {
					deadline, _ := ctx.Deadline()
					started <- time.Until(deadline)
					<-release
				}
				return nil
			}
		}
		first := jobs.NewRunner(db, quiet, 1, lease)
		first.HandleLong("convert", handler("first"), time.Hour)
		go first.RunOne(ctx)
		if left := <-started; left < 30*time.Minute {
			t.Errorf("the job may run %v, want its own limit", left)
		}
		// Another server looks for work for three leases' time.
		second := jobs.NewRunner(db, quiet, 1, lease)
		second.HandleLong("convert", handler("second"), time.Hour)
		for end := time.Now().Add(3 * lease); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if ran, _ := second.RunOne(ctx); ran {
				t.Fatal("a second server took over a job whose worker is alive")
			}
		}
		close(release)
		for deadline := time.Now().Add(time.Minute); job(t, db, id).State == jobs.Running; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the job never finished")
			}
		}
		if j := job(t, db, id); j.State != jobs.Succeeded || j.Attempts != 1 {
			t.Errorf("%+v", j)
		}
		if _, ok := runs.Load("second"); ok {
			t.Error("the second server ran it")
		}
	})
}

// giveUps records what a kind's GiveUp hook was told.
type giveUps struct {
	mu    sync.Mutex
	calls []string // "payload: error"
	fail  error    // returned while set
}

func (g *giveUps) hook(_ context.Context, p json.RawMessage, err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, string(p)+": "+err.Error())
	return g.fail
}

func (g *giveUps) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// A job that fails for good tells its kind's hook once, with its payload and the
// error that ended it, whether it ran out of attempts or failed permanently; a
// job that is retried, or succeeds, does not.
func TestGiveUpHookIsToldOnceWhenAJobFailsForGood(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		var g giveUps
		r.Handle("flaky", func(context.Context, json.RawMessage) error { return errors.New("store unreachable") })
		r.Handle("bad", func(context.Context, json.RawMessage) error { return jobs.Permanent(errors.New("no such clip")) })
		r.Handle("fine", func(context.Context, json.RawMessage) error { return nil })
		for _, kind := range []string{"flaky", "bad", "fine"} {
			r.OnGiveUp(kind, g.hook)
		}
		flaky := enqueue(t, db, "flaky", 1, jobs.EnqueueOptions{MaxAttempts: 2})
		r.RunOne(ctx)
		if j := job(t, db, flaky); j.State != jobs.Available || g.count() != 0 {
			t.Fatalf("a job that will be retried was given up: %+v, %q", j, g.calls)
		}
		if _, err := db.Write().ExecContext(ctx, "UPDATE jobs SET run_after = $1 WHERE id = $2", time.Now().UTC().Add(-time.Second), flaky); err != nil {
			t.Fatal(err)
		}
		r.RunOne(ctx)
		if j := job(t, db, flaky); j.State != jobs.Failed || len(g.calls) != 1 || g.calls[0] != `{"N":1}: store unreachable` {
			t.Fatalf("out of attempts: %+v, hook told %q", j, g.calls)
		}

		bad := enqueue(t, db, "bad", 2, jobs.EnqueueOptions{})
		r.RunOne(ctx)
		if j := job(t, db, bad); j.State != jobs.Failed || j.Attempts != 1 || len(g.calls) != 2 || g.calls[1] != `{"N":2}: no such clip` {
			t.Fatalf("a permanent error: %+v, hook told %q", j, g.calls)
		}
		enqueue(t, db, "fine", 3, jobs.EnqueueOptions{})
		r.RunOne(ctx)
		if ran, _ := r.RunOne(ctx); ran || g.count() != 2 {
			t.Fatalf("after a success, or with nothing to do: ran %v, hook told %q", ran, g.calls)
		}
	})
}

// A hook that fails leaves the job to be given up again later, not failed with
// nobody told; the job's work is not run again for it.
func TestFailedGiveUpIsTriedAgain(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		g := giveUps{fail: errors.New("database unreachable")}
		runs := 0
		r.Handle("bad", func(context.Context, json.RawMessage) error {
			runs++
			return jobs.Permanent(errors.New("no such clip"))
		})
		r.OnGiveUp("bad", g.hook)
		id := enqueue(t, db, "bad", 1, jobs.EnqueueOptions{})
		r.RunOne(ctx)
		j := job(t, db, id)
		if j.State != jobs.Available || !strings.Contains(j.LastError, "database unreachable") || g.count() != 1 {
			t.Fatalf("after a failed give-up: %+v, hook told %q", j, g.calls)
		}
		if _, err := db.Write().ExecContext(ctx, "UPDATE jobs SET run_after = $1 WHERE id = $2", time.Now().UTC().Add(-time.Second), id); err != nil {
			t.Fatal(err)
		}
		g.fail = nil
		r.RunOne(ctx)
		if j := job(t, db, id); j.State != jobs.Failed || g.count() != 2 || runs != 1 {
			t.Fatalf("the give-up again: %+v, hook told %d times, the job ran %d times", j, g.count(), runs)
		}
	})
}

// A server that dies after telling the hook and before marking the job failed
// loses nothing: once its lease passes, the job, out of attempts, is given up
// again (the hook is told again, and must be safe to repeat) without running.
// The same holds for a server that died during a job's last attempt.
func TestGiveUpCutShortByACrashIsFinished(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		id := enqueue(t, db, "convert", 1, jobs.EnqueueOptions{MaxAttempts: 3})
		// The crashed server had claimed it for its last attempt.
		if _, err := db.Write().ExecContext(ctx, "UPDATE jobs SET state = 'running', attempts = 3, locked_until = $1 WHERE id = $2",
			time.Now().UTC().Add(-time.Second), id); err != nil {
			t.Fatal(err)
		}
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		var g giveUps
		runs := 0
		r.Handle("convert", func(context.Context, json.RawMessage) error { runs++; return nil })
		r.OnGiveUp("convert", g.hook)
		if ran, err := r.RunOne(ctx); !ran || err != nil {
			t.Fatalf("RunOne = %v, %v", ran, err)
		}
		if j := job(t, db, id); j.State != jobs.Failed || runs != 0 || g.count() != 1 {
			t.Fatalf("%+v; ran %d times, hook told %q", j, runs, g.calls)
		}
	})
}

// handOne queues a job of kind handed through r's hand-off in its own
// transaction, and returns the hand-off (not yet handed) and the job's id.
func handOne(t *testing.T, db *database.DB, r *jobs.Runner, kind string) (*jobs.Handoff, int64) {
	t.Helper()
	h := r.Handoff()
	if h == nil {
		t.Fatal("a running runner gave no hand-off")
	}
	var id int64
	err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		id, err = jobs.Enqueue(context.Background(), db, tx, kind, note{1}, jobs.EnqueueOptions{Handoff: h})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, id
}

// counter counts the runs of a kind, and closes ran at the first.
type counter struct {
	mu  sync.Mutex
	n   int
	ran chan struct{}
}

func newCounter() *counter { return &counter{ran: make(chan struct{})} }

func (c *counter) handle(context.Context, json.RawMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.n == 1 {
		close(c.ran)
	}
	return nil
}

func (c *counter) runs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// running starts r and returns what stops it and waits for it to end.
func running(r *jobs.Runner) (stop func()) {
	cancel, ended := start(r)
	return func() { cancel(); <-ended }
}

// start starts r and returns what stops it, and what closes when it has ended.
func start(r *jobs.Runner) (context.CancelFunc, <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { defer close(ended); r.Run(ctx) }()
	for r.Handoff() == nil {
		time.Sleep(time.Millisecond)
	}
	return cancel, ended
}

// slow is a handler that holds its worker until free is closed.
func slow() (handler jobs.Handler, busy, free chan struct{}) {
	busy, free = make(chan struct{}), make(chan struct{})
	var once sync.Once
	return func(context.Context, json.RawMessage) error { once.Do(func() { close(busy) }); <-free; return nil }, busy, free
}

// A job handed to the server's workers is written already claimed: no other
// worker can claim it while its lease holds, and once handed it runs once.
func TestHandedJobRunsOnceWithoutAClaim(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		c := newCounter()
		r := jobs.NewRunner(db, quiet, 2, time.Minute)
		r.Handle("receipt", c.handle)
		stop := running(r)
		defer stop()
		h, id := handOne(t, db, r, "receipt")
		if j := job(t, db, id); j.State != jobs.Running || j.Attempts != 1 {
			t.Fatalf("a handed job before its hand-off: %+v", j)
		}
		other := jobs.NewRunner(db, quiet, 1, time.Minute)
		other.Handle("receipt", c.handle)
		if ran, err := other.RunOne(ctx); ran || err != nil {
			t.Fatalf("another worker claimed a handed job: %v %v", ran, err)
		}
		h.Hand()
		select {
		case <-c.ran:
		case <-time.After(10 * time.Second):
			t.Fatal("the handed job did not run")
		}
		stop()
		if j := job(t, db, id); c.runs() != 1 || j.State != jobs.Succeeded || j.Attempts != 1 {
			t.Fatalf("ran %d times; %+v", c.runs(), j)
		}
	})
}

// A server that stops between the commit and the hand-off leaves the job claimed:
// once the lease has run out, any worker runs it, once.
func TestHandedJobOfAStoppedServerRunsAfterItsLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		const lease = 300 * time.Millisecond
		r := jobs.NewRunner(db, quiet, 1, lease)
		c := newCounter()
		r.Handle("receipt", c.handle)
		stop := running(r)
		_, id := handOne(t, db, r, "receipt") // never handed: the server died
		stop()
		next := jobs.NewRunner(db, quiet, 1, time.Minute)
		next.Handle("receipt", c.handle)
		if ran, _ := next.RunOne(ctx); ran {
			t.Fatal("the job was claimed while its lease held")
		}
		time.Sleep(lease + 100*time.Millisecond)
		if ran, err := next.RunOne(ctx); !ran || err != nil {
			t.Fatalf("the job was not claimed after its lease: %v", err)
		}
		if j := job(t, db, id); c.runs() != 1 || j.State != jobs.Succeeded || j.Attempts != 2 {
			t.Fatalf("ran %d times; %+v", c.runs(), j)
		}
	})
}

// Jobs handed but not yet run when the server stops go back to the queue, for the
// next server to run at once; a runner that is not running hands nothing.
func TestStoppingRunnerReleasesHandedJobs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		handler, busy, free := slow()
		r.Handle("slow", handler)
		c := newCounter()
		r.Handle("receipt", c.handle)
		cancel, ended := start(r)
		h, _ := handOne(t, db, r, "slow")
		h.Hand()
		<-busy // the one worker is taken
		h, id := handOne(t, db, r, "receipt")
		h.Hand()
		cancel()
		close(free)
		<-ended
		if j := job(t, db, id); c.runs() != 0 || j.State != jobs.Available || j.Attempts != 0 {
			t.Fatalf("a handed job the stopped server did not run: ran %d; %+v", c.runs(), j)
		}
		if r.Handoff() != nil {
			t.Fatal("a stopped runner still takes hand-offs")
		}
		next := jobs.NewRunner(db, quiet, 1, time.Minute)
		next.Handle("receipt", c.handle)
		if ran, err := next.RunOne(ctx); !ran || err != nil || c.runs() != 1 {
			t.Fatalf("the released job: ran %v, %d runs, %v", ran, c.runs(), err)
		}
	})
}

// A handed job that waited past its lease (its worker busy) and that no claim
// took meanwhile gets a fresh lease and runs, once, as its first attempt.
func TestHandedJobPastItsLeaseRunsOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		const lease = 300 * time.Millisecond
		r := jobs.NewRunner(db, quiet, 1, lease)
		handler, busy, free := slow()
		r.Handle("slow", handler)
		c := newCounter()
		r.Handle("receipt", c.handle)
		stop := running(r)
		defer stop()
		h, _ := handOne(t, db, r, "slow")
		h.Hand()
		<-busy
		h, id := handOne(t, db, r, "receipt")
		h.Hand()
		time.Sleep(lease + 100*time.Millisecond)
		close(free)
		select {
		case <-c.ran:
		case <-time.After(10 * time.Second):
			t.Fatal("the job did not run")
		}
		stop()
		if j := job(t, db, id); c.runs() != 1 || j.State != jobs.Succeeded || j.Attempts != 1 {
			t.Fatalf("ran %d times; %+v", c.runs(), j)
		}
	})
}

// A handed job that waited for a busy worker runs with a lease as long as a
// claimed job's, not with what was left of the one it was written with.
func TestHandedJobThatWaitedGetsAWholeLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		const lease = 2 * time.Second
		r := jobs.NewRunner(db, quiet, 1, lease)
		handler, busy, free := slow()
		r.Handle("slow", handler)
		got := make(chan time.Duration, 1)
		r.Handle("receipt", func(ctx context.Context, _ json.RawMessage) error {
			d, _ := ctx.Deadline()
			got <- time.Until(d)
			return nil
		})
		stop := running(r)
		defer stop()
		h, _ := handOne(t, db, r, "slow")
		h.Hand()
		<-busy
		h, _ = handOne(t, db, r, "receipt")
		h.Hand()
		time.Sleep(1500 * time.Millisecond) // the worker is on a slow job (a mail server taking its time)
		close(free)
		select {
		case left := <-got:
			if left < lease/2 {
				t.Fatalf("the handed job ran with %v of a %v lease", left, lease)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the handed job did not run")
		}
	})
}

// A job with a single attempt is queued for a claim, not handed: a server that
// stopped before running a handed job would have used its one attempt up.
func TestJobWithOneAttemptIsNotHanded(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := jobs.NewRunner(db, quiet, 1, time.Minute)
		handler, busy, free := slow()
		r.Handle("slow", handler)
		r.Handle("once", newCounter().handle)
		stop := running(r)
		defer stop()
		defer close(free)
		h, _ := handOne(t, db, r, "slow")
		h.Hand()
		<-busy // the one worker cannot claim meanwhile
		h = r.Handoff()
		var id int64
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			id, err = jobs.Enqueue(ctx, db, tx, "once", note{1}, jobs.EnqueueOptions{Handoff: h, MaxAttempts: 1})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		h.Hand()
		if j := job(t, db, id); j.State != jobs.Available || j.Attempts != 0 {
			t.Fatalf("a one-attempt job was written claimed: %+v", j)
		}
	})
}
