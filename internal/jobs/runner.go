package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinlink/kinlink/internal/database"
)

// Handler does the work of one kind of job. It may run more than once for one job
// (after a crash), so it must be safe to repeat.
type Handler func(ctx context.Context, payload json.RawMessage) error

// GiveUp is told that a job of its kind failed for good (a permanent error, or its
// last attempt), with the job's payload and the error that ended it, so the work's
// owner can settle what the job was doing (refund, tell someone). It may be called
// more than once for one job (a server that died while giving up), so it must be
// safe to repeat; an error makes the runner try the give-up again later.
type GiveUp func(ctx context.Context, payload json.RawMessage, err error) error

// Runner claims and runs jobs with a fixed number of workers.
type Runner struct {
	db       *database.DB
	log      *slog.Logger
	handlers map[string]Handler
	limits   map[string]time.Duration // kinds that may run longer than a lease
	giveUps  map[string]GiveUp
	workers  int
	timeout  time.Duration
	poll     time.Duration
	poke     chan struct{}
	handed   chan claimed // jobs a transaction handed to the workers (Handoff)
	working  atomic.Bool  // Run is running: jobs may be handed

	// The claim statement for the handlers registered, made at the first claim
	// (and again if a kind is registered after it, as tests do).
	claimMu    sync.Mutex
	claimFor   int
	claimText  string
	dueText    string // whether claimText would find a job: $1 now, the kinds from $2
	claimKinds []any
}

// NewRunner makes a runner; register handlers before Run.
func NewRunner(db *database.DB, log *slog.Logger, workers int, timeout time.Duration) *Runner {
	return &Runner{
		db: db, log: log, workers: workers, timeout: timeout,
		handlers: map[string]Handler{},
		limits:   map[string]time.Duration{},
		giveUps:  map[string]GiveUp{},
		poll:     time.Second,
		poke:     make(chan struct{}, 1),
		handed:   make(chan claimed, handedCap),
	}
}

// Handle registers the handler of a job kind.
func (r *Runner) Handle(kind string, h Handler) { r.handlers[kind] = h }

// HandleLong registers a kind whose jobs may run up to limit, longer than the
// runner's lease (a video conversion). Such a job renews its lease while it runs,
// so a crashed server's job is still taken over within one lease rather than after
// the whole limit.
func (r *Runner) HandleLong(kind string, h Handler, limit time.Duration) {
	r.handlers[kind] = h
	r.limits[kind] = limit
}

// OnGiveUp registers what to do when a job of a kind fails for good. Without it a
// failed job only waits for an operator; with it, whatever the job was doing for
// someone is settled at once instead of staying half done.
func (r *Runner) OnGiveUp(kind string, g GiveUp) { r.giveUps[kind] = g }

// Poke wakes an idle worker now instead of at its next poll; call it after
// committing a transaction that enqueued jobs.
func (r *Runner) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Run works until ctx is cancelled, then waits for running jobs to finish (each is
// bounded by the job timeout) and records what they did.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.pruneEvery(ctx, time.Hour)
	}()
	done := make(chan claimed, 4*r.workers)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		r.recordDone(done)
	}()
	var workers sync.WaitGroup
	r.working.Store(true)
	for range r.workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r.work(ctx, done)
		}()
	}
	workers.Wait()
	r.working.Store(false)
	r.releaseHanded()
	close(done)
	<-recorded
	wg.Wait()
}

// recordDone marks the jobs the workers did as succeeded, those done within a
// few milliseconds of each other in one transaction: a busy server's workers
// would otherwise take the one writer once more per job (bench/deposits: a
// receipt mail per deposit; jobs finish one at a time, so recording only those
// already waiting made batches of one or two). A job done but not yet recorded
// when the server dies is run again once its lease passes, as one cut short is;
// the gap is the wait plus a commit.
func (r *Runner) recordDone(done <-chan claimed) {
	const most, wait = 64, 5 * time.Millisecond
	for j := range done {
		batch := []claimed{j}
		timer := time.NewTimer(wait)
	gather:
		for len(batch) < most {
			select {
			case j, ok := <-done:
				if !ok {
					break gather
				}
				batch = append(batch, j)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		now := time.Now().UTC()
		err := r.db.InTx(context.Background(), func(tx *sql.Tx) error {
			for _, j := range batch {
				if _, err := r.db.TxExec(context.Background(), tx, succeeded, j.id, j.attempts, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			// One bad statement must not leave the others to run again: each
			// is recorded on its own.
			r.log.Warn("jobs: record outcomes together", "err", err, "jobs", len(batch))
			for _, j := range batch {
				r.finish(context.Background(), r.log.With("job_id", j.id, "kind", j.kind), j, succeeded, now)
			}
		}
	}
}

// succeeded records a job done, if this worker still holds it: a worker that
// overran its lease must not overwrite the outcome of the one that took over.
const succeeded = `UPDATE jobs SET state = 'succeeded', locked_until = NULL, last_error = NULL,
	payload = '{}', finished_at = $3 WHERE id = $1 AND attempts = $2 AND state = 'running'`

// claimEvery is how many handed jobs in a row a worker runs before it looks in
// the table anyway: jobs there fall due by time too (retries, reminders), with
// no poke, and must not wait for the hand-offs to stop. Looking after every
// handed job cost a read per job (bench/deposits: as much CPU as reading the
// deposit).
const claimEvery = 16

func (r *Runner) work(ctx context.Context, done chan<- claimed) {
	turns := 0
	for ctx.Err() == nil {
		select {
		case j := <-r.handed:
			r.runHanded(ctx, j, done)
			select {
			case <-r.poke: // a job was queued in the table meanwhile
			default:
				if turns++; turns%claimEvery != 0 {
					continue
				}
			}
		default:
		}
		ran, err := r.runOne(ctx, done)
		if err != nil && ctx.Err() == nil {
			r.log.Error("jobs: claim failed", "err", err)
		}
		if ran {
			continue // there may be more waiting
		}
		select {
		case <-ctx.Done():
		case j := <-r.handed:
			r.runHanded(ctx, j, done)
		case <-r.poke:
		case <-time.After(r.poll):
		}
	}
}

type claimed struct {
	id          int64
	kind        string
	payload     string
	attempts    int
	maxAttempts int
	until       time.Time // the lease
}

// RunOne claims the next due job, if any, and runs it. It reports whether it ran one.
// Workers call it in a loop; tests call it to run the queue step by step.
// It claims only the kinds it has handlers for: a command that runs a few jobs of
// its own (kinlink mail-test) leaves the others to a server that knows them.
func (r *Runner) RunOne(ctx context.Context) (bool, error) {
	return r.runOne(ctx, nil)
}

// runOne is RunOne; a job done is recorded through done, or at once when done is
// nil.
func (r *Runner) runOne(ctx context.Context, done chan<- claimed) (bool, error) {
	query, kinds := r.claimQuery()
	if len(kinds) == 0 {
		return false, nil
	}
	now := time.Now().UTC()
	if r.db.Dialect == database.SQLite {
		// A claim takes SQLite's one writer even when it finds nothing, as it
		// does after most pokes of a busy server (bench/deposits: 1,375 claims
		// found nothing beside 3,404 that found a receipt, 127 us of the writer
		// each). A reader looks first.
		var due bool
		if err := r.db.QueryRow(ctx, r.dueText, append([]any{now}, kinds...)...).Scan(&due); err != nil {
			return false, fmt.Errorf("jobs: claim: %w", err)
		}
		if !due {
			return false, nil
		}
	}
	j := claimed{until: now.Add(r.timeout)}
	args := append([]any{now, j.until}, kinds...)
	err := r.db.WriteQueryRow(ctx, query, args...).
		Scan(&j.id, &j.kind, &j.payload, &j.attempts, &j.maxAttempts)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("jobs: claim: %w", err)
	}
	r.execute(ctx, j, done)
	return true, nil
}

func (r *Runner) execute(ctx context.Context, j claimed, done chan<- claimed) {
	log := r.log.With("job_id", j.id, "kind", j.kind, "attempt", j.attempts)
	// Recording the outcome must not be cut short by shutdown.
	rec := context.WithoutCancel(ctx)
	if j.attempts > j.maxAttempts {
		// Its attempts are used up: the server running its last one, or giving it up,
		// died. It is given up without running again, so a job that kills its server
		// cannot come back for ever, and a give-up cut short is finished.
		r.giveUp(rec, log, j, errors.New("out of attempts: the server stopped during the last one"))
		return
	}
	// The job finishes its work even while the server shuts down: its lease bounds it.
	var jobCtx context.Context
	var cancel context.CancelFunc
	if limit, long := r.limits[j.kind]; long {
		jobCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), limit)
		go r.renew(jobCtx, log, j)
	} else {
		jobCtx, cancel = context.WithDeadline(context.WithoutCancel(ctx), j.until)
	}
	start := time.Now()
	err := r.call(jobCtx, j)
	cancel()
	if err == nil {
		log.Info("job done", "duration_ms", time.Since(start).Milliseconds())
		if done != nil {
			done <- j
			return
		}
		r.finish(rec, log, j, succeeded, time.Now().UTC())
		return
	}
	var perm permanentError
	if errors.As(err, &perm) || j.attempts >= j.maxAttempts {
		r.giveUp(rec, log, j, err)
		return
	}
	next := time.Now().UTC().Add(Backoff(j.attempts))
	log.Warn("job failed, will retry", "err", err, "retry_at", next)
	r.finish(rec, log, j, `UPDATE jobs SET state = 'available', locked_until = NULL, last_error = $3,
		run_after = $4 WHERE id = $1 AND attempts = $2 AND state = 'running'`, err.Error(), next)
}

// giveUp marks a job failed for good, after telling its kind's GiveUp hook. The
// hook goes first: a server that dies between the two leaves the job running, so
// once its lease passes it is claimed past its attempts and given up again (the
// hook is safe to repeat); marking it first would lose the hook in that gap. A hook
// that fails puts the job back, with its attempts used up, to be given up again
// after a backoff.
func (r *Runner) giveUp(ctx context.Context, log *slog.Logger, j claimed, err error) {
	if g, ok := r.giveUps[j.kind]; ok {
		hookCtx, cancel := context.WithTimeout(ctx, r.timeout)
		herr := r.callGiveUp(hookCtx, g, j, err)
		cancel()
		if herr != nil {
			next := time.Now().UTC().Add(Backoff(j.attempts))
			log.Error("job failed for good, and giving it up failed: will try again", "err", err, "give_up_err", herr, "retry_at", next)
			r.finish(ctx, log, j, `UPDATE jobs SET state = 'available', locked_until = NULL, attempts = max_attempts, last_error = $3,
				run_after = $4 WHERE id = $1 AND attempts = $2 AND state = 'running'`, fmt.Sprintf("%v; giving up: %v", err, herr), next)
			return
		}
	}
	log.Error("job failed for good", "err", err)
	// A sensitive payload (a one-time code) must not outlive its use.
	r.finish(ctx, log, j, `UPDATE jobs SET state = 'failed', locked_until = NULL, last_error = $3,
		payload = CASE WHEN sensitive THEN '{}' ELSE payload END, finished_at = $4
		WHERE id = $1 AND attempts = $2 AND state = 'running'`, err.Error(), time.Now().UTC())
}

func (r *Runner) callGiveUp(ctx context.Context, g GiveUp, j claimed, cause error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return g(ctx, json.RawMessage(j.payload), cause)
}

// renew extends a long job's lease every third of a lease until ctx ends.
func (r *Runner) renew(ctx context.Context, log *slog.Logger, j claimed) {
	tick := time.NewTicker(r.timeout / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := r.db.Write().ExecContext(ctx, `UPDATE jobs SET locked_until = $3
			WHERE id = $1 AND attempts = $2 AND state = 'running'`, j.id, j.attempts, time.Now().UTC().Add(r.timeout)); err != nil && ctx.Err() == nil {
			log.Warn("jobs: renew lease", "err", err)
		}
	}
}

// finish records a job's outcome, but only if this worker still holds it: a worker
// that overran its lease must not overwrite the outcome of the one that took over.
func (r *Runner) finish(ctx context.Context, log *slog.Logger, j claimed, query string, args ...any) {
	args = append([]any{j.id, j.attempts}, args...)
	if _, err := r.db.Write().ExecContext(ctx, query, args...); err != nil {
		log.Error("jobs: record outcome", "err", err)
	}
}

func (r *Runner) call(ctx context.Context, j claimed) (err error) {
	h, ok := r.handlers[j.kind]
	if !ok {
		return Permanent(fmt.Errorf("no handler for job kind %q", j.kind))
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return h(ctx, json.RawMessage(j.payload))
}

// claimQuery is the claim statement for the kinds this runner handles, and those
// kinds as its arguments from $3 on. The text is the same on every call (the kinds
// sorted), so it is prepared once; a text that changed with the map's order was
// parsed anew on every claim, a fifth of a busy server's CPU (bench/deposits).
//
// A lease that ran out (its server died) is taken first: there are few running
// jobs, and each is a job someone waits for. Otherwise the next due job in
// (state, run_after) order: the index hands it over without sorting every due job,
// which one condition with an OR of the two cases made SQLite do on each claim, at
// a cost that grew as the workers fell behind.
func (r *Runner) claimQuery() (string, []any) {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	if r.claimFor != len(r.handlers) || r.claimText == "" {
		r.claimFor, r.claimKinds = len(r.handlers), nil
		names := make([]string, 0, len(r.handlers))
		for kind := range r.handlers {
			names = append(names, kind)
		}
		sort.Strings(names)
		marks := make([]string, len(names))
		for i, kind := range names {
			r.claimKinds = append(r.claimKinds, kind)
			marks[i] = fmt.Sprintf("$%d", i+3)
		}
		in := strings.Join(marks, ", ")
		dueIn := database.Placeholders(2, len(names))
		r.dueText = `SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'running' AND locked_until < $1 AND kind IN (` + dueIn + `))
			OR EXISTS (SELECT 1 FROM jobs WHERE state = 'available' AND run_after <= $1 AND kind IN (` + dueIn + `))`
		r.claimText = `UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = $2
		WHERE id = COALESCE(
			(SELECT id FROM jobs WHERE state = 'running' AND locked_until < $1 AND kind IN (` + in + `)
				LIMIT 1` + r.db.SkipLocked() + `),
			(SELECT id FROM jobs WHERE state = 'available' AND run_after <= $1 AND kind IN (` + in + `)
				ORDER BY run_after, id LIMIT 1` + r.db.SkipLocked() + `))
		RETURNING id, kind, payload, attempts, max_attempts`
	}
	return r.claimText, r.claimKinds
}

// Backoff is the wait before attempt n+1: exponential from 2 s, capped at an hour,
// with jitter so that a burst of failures does not retry in lockstep.
func Backoff(attempt int) time.Duration {
	d := time.Hour
	if attempt < 12 {
		d = min(time.Hour, time.Second<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// SucceededRetention is how long finished jobs stay visible to operators.
const SucceededRetention = 7 * 24 * time.Hour

// pruneEvery deletes succeeded jobs past their retention. Failed jobs stay until an
// operator retries them: they are the ones worth looking at.
func (r *Runner) pruneEvery(ctx context.Context, every time.Duration) {
	for {
		cutoff := time.Now().UTC().Add(-SucceededRetention)
		if _, err := r.db.Write().ExecContext(ctx, "DELETE FROM jobs WHERE state = 'succeeded' AND finished_at < $1", cutoff); err != nil && ctx.Err() == nil {
			r.log.Error("jobs: prune", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
