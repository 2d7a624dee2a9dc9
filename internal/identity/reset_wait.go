package identity

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/jobs"
	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/throttle"
)

// A reset without the security answer (issue 13). A family that proved its mailbox
// with the emailed code but forgot the answer asks for one on the question step.
// Nothing changes for a day (Config.ResetWait): the address is mailed at once, with
// a link that stops it, and a login with the password, a completed reset or a
// password change ends it too. When the wait is over a job mails a link to finish.
// Finishing needs the mailbox proved again (that link, or a fresh code) and sets a
// new password and a new question and answer, with every consequence of a reset.
// Someone who looked into the mailbox once must thus wait a day while the owner is
// told, and look again; someone who never did can neither start nor finish one.

// ResetWaitJob mails the address when its wait is over.
const ResetWaitJob = "identity.reset_wait_ready"

// Refusals of resets without the answer.
var (
	// ErrWaitNotOver is a reset without the answer asked for, or finished, before
	// its wait is over; it quotes the time left, which its Wait also holds.
	ErrWaitNotOver = problem.Declare(problem.Conflict, "reset_wait_not_over", "identity: the wait of a reset without the answer is not over").
			Say("forgot.wait.not_over")
	// ErrNoWait is a finish when no reset without the answer is waiting.
	ErrNoWait = problem.Declare(problem.Conflict, "no_reset_wait", "identity: no reset without the answer is waiting")
	// ErrStopLink is a stop link that names no reset.
	ErrStopLink = problem.Declare(problem.Invalid, "invalid_token", "identity: unknown stop link").Say("forgot.stop.invalid")
	// ErrWaitLink is a "ready" link that is spent, stopped, too old or unknown.
	ErrWaitLink = problem.Declare(problem.Invalid, "invalid_token", "identity: unusable ready link").Say("forgot.ready.invalid")

	errTooManyWaits = problem.Declare(problem.RateLimited, "too_many_attempts", "identity: too many resets without the answer").
			Say("forgot.wait.too_many")
)

// ResetWait is a reset without the answer that is waiting, or ready to finish.
type ResetWait struct {
	ReadyAt time.Time
	Ready   bool
}

// WaitStop is what a stop link found.
type WaitStop string

const (
	WaitStopped  WaitStop = "stopped" // it was waiting; now it is stopped
	WaitWasEnded WaitStop = "ended"   // stopped, cancelled or expired before
	WaitWasUsed  WaitStop = "used"    // too late: the password was set with it
)

type waitRow struct {
	id        string
	accountID string
	readyAt   time.Time
	expiresAt time.Time
}

func (w *waitRow) public(now time.Time) *ResetWait {
	return &ResetWait{ReadyAt: w.readyAt, Ready: !now.Before(w.readyAt)}
}

// liveWait is the account's reset without the answer that can still be finished.
func liveWait(ctx context.Context, q querier, accountID string, now time.Time) (*waitRow, error) {
	var w waitRow
	err := q.QueryRowContext(ctx, `SELECT id, account_id, ready_at, expires_at FROM reset_waits
		WHERE account_id = $1 AND ended_at IS NULL AND expires_at > $2`, accountID, now).Scan(&w.id, &w.accountID, &w.readyAt, &w.expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read reset wait: %w", err)
	}
	return &w, nil
}

// waitOf is the account's live reset without the answer, or nil.
func (s *Service) waitOf(ctx context.Context, accountID string) (*ResetWait, error) {
	now := s.now().UTC()
	w, err := liveWait(ctx, s.db.Read(), accountID, now)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return w.public(now), nil
}

// notOver is the refusal of a wait that is not over: the time left, in words and
// as Retry-After.
func notOver(w *waitRow, now time.Time) error {
	left := w.readyAt.Sub(now)
	return ErrWaitNotOver.After(left).With(left)
}

// ForgotAnswer starts a reset without the answer for a verified reset (step is its
// token): the emailed code is spent, the owner is mailed at once with a link that
// stops it, and a job mails again when the wait is over. started is false when one
// was already live: a wait that is over comes back Ready (finish it with
// RenewPassword and the same step); one that is not is ErrWaitNotOver, saying how
// long is left, and is not restarted.
func (s *Service) ForgotAnswer(ctx context.Context, step string, c Client) (wait ResetWait, started bool, err error) {
	open, acct, err := s.resetByStep(ctx, step)
	if err != nil {
		return ResetWait{}, false, err
	}
	now := s.now().UTC()
	live, err := liveWait(ctx, s.db.Read(), acct.ID, now)
	if err == nil {
		return s.waiting(live, now)
	}
	if !errors.Is(err, ErrNotFound) {
		return ResetWait{}, false, err
	}
	// Each start mails the owner: a few a day are enough for anyone.
	if err := s.throttle.Reserve(ctx, []string{"reset:wait:" + acct.ID}, []throttle.Rule{s.cfg.WaitsPerAccount}); err != nil {
		if l, ok := throttle.IsLimited(err); ok {
			return ResetWait{}, false, errTooManyWaits.After(l.RetryAfter).With(l.RetryAfter)
		}
		return ResetWait{}, false, err
	}
	// Ready on the whole minute the mail names (up to a minute early): "after
	// 17:54" is then true at 17:54, and the wait left says "24 hours".
	readyAt := now.Add(s.cfg.ResetWait).Truncate(time.Minute)
	stop := randomToken()
	live = nil
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		// The account row is locked so that parallel requests start one wait.
		var id string
		if err := tx.QueryRowContext(ctx, "SELECT id FROM accounts WHERE id = $1"+s.db.ForUpdate(), acct.ID).Scan(&id); err != nil {
			return fmt.Errorf("identity: forgot answer: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE reset_waits SET ended_at = $2, ended_by = 'expired', link_hash = NULL
			WHERE account_id = $1 AND ended_at IS NULL AND expires_at <= $2`, acct.ID, now); err != nil {
			return fmt.Errorf("identity: forgot answer: %w", err)
		}
		var err error
		if live, err = liveWait(ctx, tx, acct.ID, now); err == nil || !errors.Is(err, ErrNotFound) {
			return err // err nil: started meanwhile by a parallel request
		}
		res, err := tx.ExecContext(ctx, "UPDATE email_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND voided_at IS NULL", open.id, now)
		if err != nil {
			return fmt.Errorf("identity: forgot answer: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrInvalidToken
		}
		waitID := ids.New()
		if _, err := tx.ExecContext(ctx, `INSERT INTO reset_waits (id, account_id, created_at, ready_at, expires_at, stop_hash)
			VALUES ($1, $2, $3, $4, $5, $6)`, waitID, acct.ID, now, readyAt, readyAt.Add(s.cfg.ResetWaitOpen), digest(stop)); err != nil {
			return fmt.Errorf("identity: forgot answer: %w", err)
		}
		if err := s.record(ctx, tx, acct.ID, EventWaitStarted, c); err != nil {
			return err
		}
		// Not a secret mail: its one link only stops the reset, and the warning
		// must get through even if the mail server is down for a while.
		if err := kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "reset_wait_started", Locale: acct.Locale,
			Data: map[string]string{"Name": acct.FullName, "ReadyAt": i18n.Time(acct.Locale, readyAt),
				"Hours": strconv.Itoa(int(s.cfg.ResetWait.Hours())), "StopLink": s.link("/password/stop?t=" + stop)}}); err != nil {
			return err
		}
		_, err = jobs.Enqueue(ctx, s.db, tx, ResetWaitJob, waitJob{ID: waitID}, jobs.EnqueueOptions{RunAfter: readyAt})
		return err
	})
	if err != nil {
		return ResetWait{}, false, err
	}
	if live != nil {
		// Started meanwhile by a parallel request.
		return s.waiting(live, now)
	}
	s.wake()
	return ResetWait{ReadyAt: readyAt}, true, nil
}

func (s *Service) waiting(w *waitRow, now time.Time) (ResetWait, bool, error) {
	if now.Before(w.readyAt) {
		return *w.public(now), false, notOver(w, now)
	}
	return *w.public(now), false, nil
}

type waitJob struct {
	ID string `json:"id"`
}

// HandleWaitJob is the jobs.Handler of ResetWaitJob: when the wait is over, it mails
// a link to finish (and another to stop it), once. A wait that ended meanwhile is
// left alone; a job that runs before its wait is over is queued again for then.
func (s *Service) HandleWaitJob(ctx context.Context, payload json.RawMessage) error {
	var job waitJob
	if err := json.Unmarshal(payload, &job); err != nil {
		return jobs.Permanent(err)
	}
	now := s.now().UTC()
	mailed := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var w waitRow
		var done bool
		err := tx.QueryRowContext(ctx, `SELECT id, account_id, ready_at, expires_at, ended_at IS NOT NULL OR mailed_at IS NOT NULL
			FROM reset_waits WHERE id = $1`, job.ID).Scan(&w.id, &w.accountID, &w.readyAt, &w.expiresAt, &done)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("identity: reset wait job: %w", err)
		}
		if done || !now.Before(w.expiresAt) {
			return nil
		}
		if now.Before(w.readyAt) {
			_, err := jobs.Enqueue(ctx, s.db, tx, ResetWaitJob, job, jobs.EnqueueOptions{RunAfter: w.readyAt})
			return err
		}
		acct, err := accountByID(ctx, tx, w.accountID)
		if err != nil || acct.Status != "active" {
			return err
		}
		link, stop := randomToken(), randomToken()
		res, err := tx.ExecContext(ctx, `UPDATE reset_waits SET link_hash = $2, ready_stop_hash = $3, mailed_at = $4
			WHERE id = $1 AND mailed_at IS NULL AND ended_at IS NULL`, w.id, digest(link), digest(stop), now)
		if err != nil {
			return fmt.Errorf("identity: reset wait job: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		mailed = true
		return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "reset_wait_ready", Locale: acct.Locale, Secret: true,
			Data: map[string]string{"Name": acct.FullName, "Link": s.link("/password/ready?t=" + link),
				"StopLink": s.link("/password/stop?t=" + stop), "Until": i18n.Time(acct.Locale, w.expiresAt)}})
	})
	if err == nil && mailed {
		s.wake()
	}
	return err
}

// VerifyWaitLink checks the link of the "ready" mail, which proves the mailbox
// again, as a fresh code does: it gives the step token of a verified reset whose
// wait is over (finish it with RenewPassword). The link works once.
func (s *Service) VerifyWaitLink(ctx context.Context, link string, c Client) (ResetStep, error) {
	if err := s.throttle.Reserve(ctx, []string{"code:ip:" + throttle.AddressKey(c.IP)}, []throttle.Rule{s.cfg.CodesPerIP}); err != nil {
		return ResetStep{}, err
	}
	if link == "" {
		return ResetStep{}, ErrWaitLink
	}
	now := s.now().UTC()
	var w waitRow
	err := s.db.Read().QueryRowContext(ctx, `SELECT id, account_id, ready_at, expires_at FROM reset_waits
		WHERE link_hash = $1 AND ended_at IS NULL AND expires_at > $2 AND ready_at <= $2`, digest(link), now).
		Scan(&w.id, &w.accountID, &w.readyAt, &w.expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return ResetStep{}, ErrWaitLink
	}
	if err != nil {
		return ResetStep{}, fmt.Errorf("identity: ready link: %w", err)
	}
	acct, err := accountByID(ctx, s.db.Read(), w.accountID)
	if err != nil {
		return ResetStep{}, err
	}
	if acct.Status != "active" || acct.Kind != "family" {
		return ResetStep{}, ErrWaitLink
	}
	step := randomToken()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE reset_waits SET link_hash = NULL WHERE id = $1 AND link_hash = $2 AND ended_at IS NULL",
			w.id, digest(link))
		if err != nil {
			return fmt.Errorf("identity: ready link: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrWaitLink
		}
		// A verified reset like the one a typed code gives: the rest of the journey
		// is the same for both.
		_, codeLink, err := s.issueCode(ctx, tx, acct.ID, "reset")
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE email_codes SET verified_at = $2, step_token_hash = $3 WHERE link_hash = $1",
			digest(codeLink), now, digest(step))
		if err != nil {
			return fmt.Errorf("identity: ready link: %w", err)
		}
		return nil
	})
	if err != nil {
		return ResetStep{}, err
	}
	return ResetStep{Token: step, Question: acct.SecurityQuestion, Wait: w.public(now)}, nil
}

// RenewPassword finishes a reset without the answer whose wait is over, for a
// reset verified since then (step): a new password and a new security question and
// answer, since the old answer is forgotten. Then as after any reset: every
// session, token and known device of the account ends, the owner is mailed, the
// login pause of unknown devices is lifted, and nobody is signed in.
func (s *Service) RenewPassword(ctx context.Context, step, password, question, answer string, c Client) error {
	open, acct, err := s.resetByStep(ctx, step)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	w, err := liveWait(ctx, s.db.Read(), acct.ID, now)
	if errors.Is(err, ErrNotFound) {
		return ErrNoWait
	}
	if err != nil {
		return err
	}
	if now.Before(w.readyAt) {
		return notOver(w, now)
	}
	var v ValidationError
	if password == "" {
		v.add("password", "required")
	} else if reasons := s.CheckPassword(password, acct.Email, acct.FullName); len(reasons) > 0 {
		v.add("password", "weak_password")
		v.Reasons = reasons
	}
	switch {
	case question == "":
		v.add("security_question_id", "required")
	case !slices.Contains(securityQuestions, question):
		v.add("security_question_id", "invalid")
	}
	checkAnswer(&v, answer)
	if err := v.orNil(); err != nil {
		return err
	}
	passwordHash, err := s.hasher.Hash(ctx, NormalizePassword(password))
	if err != nil {
		return err
	}
	answerHash, err := s.hasher.Hash(ctx, NormalizeAnswer(answer))
	if err != nil {
		return err
	}
	now = s.now().UTC()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		// The mailbox must have been proved again since the wait ended, whatever the
		// lifetime of codes: a code verified before then is refused (start again).
		res, err := tx.ExecContext(ctx, `UPDATE email_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND voided_at IS NULL
			AND verified_at >= $3`, open.id, now, w.readyAt)
		if err != nil {
			return fmt.Errorf("identity: renew: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrInvalidToken
		}
		res, err = tx.ExecContext(ctx, `UPDATE reset_waits SET ended_at = $2, ended_by = 'used', link_hash = NULL
			WHERE id = $1 AND ended_at IS NULL AND ready_at <= $2 AND expires_at > $2`, w.id, now)
		if err != nil {
			return fmt.Errorf("identity: renew: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoWait // stopped or ended a moment ago
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET password_hash = $2, password_changed_at = $3, security_question = $4,
			security_answer_hash = $5 WHERE id = $1`, acct.ID, passwordHash, now, question, answerHash); err != nil {
			return fmt.Errorf("identity: renew: %w", err)
		}
		if err := s.revokeAll(ctx, tx, acct.ID, ""); err != nil {
			return err
		}
		if err := s.record(ctx, tx, acct.ID, EventWaitCompleted, c); err != nil {
			return err
		}
		return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "security_change", Locale: acct.Locale,
			Data: map[string]string{"Name": acct.FullName, "Change": EventWaitCompleted, "ResetLink": s.link("/password/forgot")}})
	})
	if err != nil {
		return err
	}
	limits, err := s.limitsOf(ctx, "email:"+acct.Email, "")
	if err != nil {
		return err
	}
	return limits.succeeded(ctx)
}

// StopWait stops the reset without the answer that a stop link names, whether it
// is waiting or ready; it says what it found. One click of the owner's is enough,
// and nothing else is needed: the link is 256 random bits mailed to the address.
func (s *Service) StopWait(ctx context.Context, token string, c Client) (WaitStop, error) {
	if err := s.throttle.Reserve(ctx, []string{"code:ip:" + throttle.AddressKey(c.IP)}, []throttle.Rule{s.cfg.CodesPerIP}); err != nil {
		return "", err
	}
	if token == "" {
		return "", ErrStopLink
	}
	h := digest(token)
	var id, accountID string
	var endedBy sql.NullString
	err := s.db.Write().QueryRowContext(ctx, `SELECT id, account_id, ended_by FROM reset_waits WHERE stop_hash = $1 OR ready_stop_hash = $1`, h).
		Scan(&id, &accountID, &endedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrStopLink
	}
	if err != nil {
		return "", fmt.Errorf("identity: stop reset wait: %w", err)
	}
	if endedBy.String == "used" {
		return WaitWasUsed, nil
	}
	stopped := false
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE reset_waits SET ended_at = $2, ended_by = 'stop', link_hash = NULL WHERE id = $1 AND ended_at IS NULL AND expires_at > $2",
			id, s.now().UTC())
		if err != nil {
			return fmt.Errorf("identity: stop reset wait: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		stopped = true
		return s.record(ctx, tx, accountID, EventWaitStopped, c)
	})
	switch {
	case err != nil:
		return "", err
	case stopped:
		return WaitStopped, nil
	}
	// Ended meanwhile, or before: say how.
	if err := s.db.Write().QueryRowContext(ctx, "SELECT ended_by FROM reset_waits WHERE id = $1", id).Scan(&endedBy); err != nil {
		return "", fmt.Errorf("identity: stop reset wait: %w", err)
	}
	if endedBy.String == "used" {
		return WaitWasUsed, nil
	}
	return WaitWasEnded, nil
}

// endWaits ends an account's live reset without the answer when the owner shows
// they know the password (a login, a password change) or resets it the usual way;
// by says which (login, password, reset).
func (s *Service) endWaits(ctx context.Context, q querier, accountID, by string, c Client) error {
	res, err := q.ExecContext(ctx, `UPDATE reset_waits SET ended_at = $2, ended_by = $3, link_hash = NULL
		WHERE account_id = $1 AND ended_at IS NULL AND expires_at > $2`, accountID, s.now().UTC(), by)
	if err != nil {
		return fmt.Errorf("identity: end reset waits: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return s.record(ctx, q, accountID, EventWaitCancelled, c)
	}
	return nil
}

// checkAnswer checks a security answer being chosen (at sign-up, in a change, in a
// reset without the old one).
func checkAnswer(v *ValidationError, answer string) {
	switch n := len([]rune(NormalizeAnswer(answer))); {
	case n == 0:
		v.add("security_answer", "required")
	case n < 2:
		v.add("security_answer", "too_short")
	case n > 200:
		v.add("security_answer", "too_long")
	}
}
