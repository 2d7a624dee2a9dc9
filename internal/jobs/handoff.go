package jobs

import (
	"context"
	"time"
)

// Handoff gives the jobs one transaction queues to this server's own workers as
// soon as the transaction has committed, without a worker claiming them from the
// table. A claim is a write: on SQLite it takes the one writer, as long as a
// small transaction does (bench/deposits: 168 us of every deposit's 1 ms, for its
// receipt mail). A handed job is written already claimed, with the lease a claim
// gives, so nothing is lost: if the server stops before a worker runs it, the
// lease runs out and any worker takes it, as it takes a job cut short.
//
// Use one per transaction: Runner.Handoff before it, EnqueueOptions.Handoff for
// each job, Hand after the commit. A nil Handoff queues jobs as usual.
type Handoff struct {
	r      *Runner
	jobs   []claimed
	queued bool // a job went to the table instead: the workers are told at Hand
}

// handedCap bounds the jobs handed and not yet running. Past half of it the
// workers are behind, and a job is queued for a claim instead: handing more
// would only hold leases that run out while they wait.
const handedCap = 1024

// Handoff starts a hand-off for one transaction. It is nil, so jobs are queued as
// usual, when r is nil or not running (a command that runs no workers, a test
// stepping the queue with RunOne).
func (r *Runner) Handoff() *Handoff {
	if r == nil || !r.working.Load() {
		return nil
	}
	return &Handoff{r: r}
}

// takes says whether a job of kind, due at runAfter, goes to the workers, and
// until when its lease holds if so. Only jobs due now, of a kind this runner
// handles within its lease, with more than one attempt, while the workers keep up.
func (h *Handoff) takes(kind string, runAfter, now time.Time, maxAttempts int) (time.Time, bool) {
	if h == nil {
		return time.Time{}, false
	}
	_, handled := h.r.handlers[kind]
	_, long := h.r.limits[kind]
	// A job with one attempt is not handed: written as claimed, it would use that
	// attempt up if its server stopped before running it.
	if runAfter.After(now) || maxAttempts < 2 || !h.r.working.Load() || !handled || long ||
		len(h.r.handed)+len(h.jobs) >= handedCap/2 {
		h.queued = true
		return time.Time{}, false
	}
	return now.Add(h.r.timeout), true
}

func (h *Handoff) add(j claimed) { h.jobs = append(h.jobs, j) }

// Hand gives the transaction's jobs to the workers, and wakes one for those it
// queued in the table. Call it only once the transaction has committed: a
// rolled-back job does not exist.
func (h *Handoff) Hand() {
	if h == nil {
		return
	}
	if h.queued {
		h.r.Poke()
	}
	for _, j := range h.jobs {
		select {
		case h.r.handed <- j:
		default:
			// The workers fell behind since the job was written: it goes back to
			// the queue for a claim, rather than waiting out its lease.
			h.r.release(context.Background(), j)
		}
	}
	h.jobs = nil
}

// runHanded runs a handed job. Its lease was set when it was written; one that
// waited for a busy worker (a slow mail server) until less than half of it is left
// gets a fresh lease first, so that its handler has as long as a claimed job's.
// The renewal is refused if a claim has taken the job meanwhile (its lease ran
// out, and another worker's claim counted an attempt): then that worker runs it,
// and this one must not.
func (r *Runner) runHanded(ctx context.Context, j claimed, done chan<- claimed) {
	now := time.Now()
	if j.until.Sub(now) < r.timeout/2 {
		until := now.UTC().Add(r.timeout)
		res, err := r.db.Write().ExecContext(context.WithoutCancel(ctx), `UPDATE jobs SET locked_until = $3
			WHERE id = $1 AND attempts = $2 AND state = 'running'`, j.id, j.attempts, until)
		if err != nil {
			r.log.Warn("jobs: renew a handed job's lease; left to a claim", "job_id", j.id, "kind", j.kind, "err", err)
			return
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return // claimed by another worker after its lease ran out
		}
		j.until = until
	}
	r.execute(ctx, j, done)
}

// release puts a handed job that no worker ran back in the queue, as if it had
// never been claimed.
func (r *Runner) release(ctx context.Context, j claimed) {
	r.finish(ctx, r.log.With("job_id", j.id, "kind", j.kind), j,
		`UPDATE jobs SET state = 'available', attempts = attempts - 1, locked_until = NULL
		WHERE id = $1 AND attempts = $2 AND state = 'running'`)
}

// releaseHanded releases the handed jobs no worker took before the runner stopped,
// so that the next server runs them at once rather than after their leases.
func (r *Runner) releaseHanded() {
	for {
		select {
		case j := <-r.handed:
			r.release(context.Background(), j)
		default:
			return
		}
	}
}
