package identity

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kinlink/kinlink/internal/jobs"
	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/throttle"
)

// The reset follows the product's order with the mailbox proved first (SECURITY.md):
// email -> code (or link) -> security question -> new password. Each step hands the
// next a step token; the question and password steps refuse anything else.

// ResetJob is the background job that looks an address up and, if it has an active
// account, emails it a reset code.
const ResetJob = "identity.reset_request"

type resetRequest struct {
	Email     string `json:"email"`
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
}

// ForgotPassword asks for a reset code to be emailed if the address has an active
// account. The request only queues a job, the same for every address, so that known
// and unknown addresses get the same answer, the same limits and the same timing;
// the job makes no code for an unknown one.
func (s *Service) ForgotPassword(ctx context.Context, email string, c Client) error {
	email = NormalizeEmail(email)
	if email == "" {
		return &ValidationError{Fields: map[string]string{"email": "required"}}
	}
	// Every account's address passed the same check, so this refuses no one who has
	// an account, and tells whoever mistyped at once.
	if !validEmail(email) {
		return &ValidationError{Fields: map[string]string{"email": "invalid"}}
	}
	if err := s.throttle.Reserve(ctx, []string{"reset:email:" + email, "reset:ip:" + throttle.AddressKey(c.IP)},
		[]throttle.Rule{s.cfg.RequestsPerEmail, s.cfg.RequestsPerIP}); err != nil {
		return err
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := jobs.Enqueue(ctx, s.db, tx, ResetJob, resetRequest{Email: email, IP: c.IP, UserAgent: truncate(c.UserAgent, 300)},
			jobs.EnqueueOptions{MaxAttempts: 5})
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: forgot password: %w", err)
	}
	s.wake()
	return nil
}

// HandleResetJob is the jobs.Handler of ResetJob.
func (s *Service) HandleResetJob(ctx context.Context, payload json.RawMessage) error {
	var req resetRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return jobs.Permanent(err)
	}
	acct, err := accountByEmail(ctx, s.db.Read(), req.Email)
	// Staff passwords are reset only by their administrators (SECURITY.md 28).
	if errors.Is(err, ErrNotFound) || (acct != nil && (acct.Status != "active" || acct.Kind != "family")) {
		return nil
	}
	if err != nil {
		return err
	}
	c := Client{IP: req.IP, UserAgent: req.UserAgent}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		code, link, err := s.issueCode(ctx, tx, acct.ID, "reset")
		if err != nil {
			return err
		}
		if err := s.record(ctx, tx, acct.ID, EventResetRequested, c); err != nil {
			return err
		}
		return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "reset_code", Locale: acct.Locale, Secret: true,
			Data: map[string]string{"Name": acct.FullName, "Code": code, "Link": s.link("/password/verify?t=" + link)}})
	})
	if err == nil {
		s.wake()
	}
	return err
}

// ResetStep is where a verified reset stands: its step token, the security
// question (an id) to ask next, and the account's reset without the answer, if one
// is live.
type ResetStep struct {
	Token    string
	Question string
	Wait     *ResetWait
}

// VerifyReset checks the emailed code for an address.
func (s *Service) VerifyReset(ctx context.Context, email, code string, c Client) (ResetStep, error) {
	if err := s.throttle.Reserve(ctx, []string{"code:ip:" + throttle.AddressKey(c.IP)}, []throttle.Rule{s.cfg.CodesPerIP}); err != nil {
		return ResetStep{}, err
	}
	acct, err := accountByEmail(ctx, s.db.Read(), NormalizeEmail(email))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return ResetStep{}, err
	}
	if acct != nil && acct.Status != "active" {
		acct = nil
	}
	open, err := s.checkCode(ctx, acct, "reset", code)
	if err != nil {
		return ResetStep{}, err
	}
	return s.verified(ctx, acct, open)
}

// VerifyResetLink checks the link from the reset email.
func (s *Service) VerifyResetLink(ctx context.Context, link string, c Client) (ResetStep, error) {
	if err := s.throttle.Reserve(ctx, []string{"code:ip:" + throttle.AddressKey(c.IP)}, []throttle.Rule{s.cfg.CodesPerIP}); err != nil {
		return ResetStep{}, err
	}
	open, err := openCodeBy(ctx, s.db.Read(), "link_hash", digest(link), "reset", s.now().UTC())
	if errors.Is(err, ErrNotFound) || (open != nil && open.verified) {
		return ResetStep{}, ErrInvalidCode
	}
	if err != nil {
		return ResetStep{}, err
	}
	acct, err := accountByID(ctx, s.db.Read(), open.accountID)
	if err != nil {
		return ResetStep{}, err
	}
	if acct.Status != "active" {
		return ResetStep{}, ErrInvalidCode
	}
	return s.verified(ctx, acct, open)
}

// verified marks the code as proved and issues the token of the next step. The code
// itself cannot be used again.
func (s *Service) verified(ctx context.Context, acct *account, open *emailCode) (ResetStep, error) {
	step := randomToken()
	now := s.now().UTC()
	res, err := s.db.Write().ExecContext(ctx, `UPDATE email_codes SET verified_at = $2, step_token_hash = $3
		WHERE id = $1 AND verified_at IS NULL AND used_at IS NULL AND voided_at IS NULL AND expires_at > $2`,
		open.id, now, digest(step))
	if err != nil {
		return ResetStep{}, fmt.Errorf("identity: verify reset: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ResetStep{}, ErrInvalidCode
	}
	wait, err := s.waitOf(ctx, acct.ID)
	if err != nil {
		return ResetStep{}, err
	}
	return ResetStep{Token: step, Question: acct.SecurityQuestion, Wait: wait}, nil
}

// resetByStep finds the open, verified reset of a step token and its account.
func (s *Service) resetByStep(ctx context.Context, step string) (*emailCode, *account, error) {
	if step == "" {
		return nil, nil, ErrInvalidToken
	}
	open, err := openCodeBy(ctx, s.db.Write(), "step_token_hash", digest(step), "reset", s.now().UTC())
	if errors.Is(err, ErrNotFound) || (open != nil && !open.verified) {
		return nil, nil, ErrInvalidToken
	}
	if err != nil {
		return nil, nil, err
	}
	acct, err := accountByID(ctx, s.db.Read(), open.accountID)
	if err != nil {
		return nil, nil, err
	}
	if acct.Status != "active" {
		return nil, nil, ErrInvalidToken
	}
	return open, acct, nil
}

// ResetState is where a verified reset stands.
type ResetState struct {
	Question string     // the security question's id
	Answered bool       // the question was answered; the new password comes next
	Wait     *ResetWait // the account's live reset without the answer, if any
}

// ResetState returns the state of a verified reset, or ErrInvalidToken.
func (s *Service) ResetState(ctx context.Context, step string) (ResetState, error) {
	open, acct, err := s.resetByStep(ctx, step)
	if err != nil {
		return ResetState{}, err
	}
	wait, err := s.waitOf(ctx, acct.ID)
	if err != nil {
		return ResetState{}, err
	}
	return ResetState{Question: acct.SecurityQuestion, Answered: open.answered, Wait: wait}, nil
}

// AnswerQuestion checks the security answer of a verified reset. The third wrong
// answer voids the reset.
func (s *Service) AnswerQuestion(ctx context.Context, step, answer string, c Client) error {
	open, acct, err := s.resetByStep(ctx, step)
	if err != nil {
		return err
	}
	if len(answer) > MaxPasswordBytes {
		return ErrInvalidAnswer
	}
	// Count the attempt before checking it, atomically, so that parallel answers get
	// no more than maxAnswerFail comparisons.
	var failures int
	err = s.db.Write().QueryRowContext(ctx, `UPDATE email_codes SET answer_failures = answer_failures + 1
		WHERE id = $1 AND answer_failures < $2 AND voided_at IS NULL AND used_at IS NULL RETURNING answer_failures`,
		open.id, maxAnswerFail).Scan(&failures)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrInvalidToken
	}
	if err != nil {
		return fmt.Errorf("identity: answer: %w", err)
	}
	ok, _, err := s.hasher.Verify(ctx, NormalizeAnswer(answer), acct.answerHash)
	if err != nil {
		// Nothing was checked: give the attempt back.
		s.db.Write().ExecContext(ctx, "UPDATE email_codes SET answer_failures = answer_failures - 1 WHERE id = $1", open.id)
		return err
	}
	now := s.now().UTC()
	if !ok {
		// The person is told how many tries are left before this reset stops.
		wrong := ErrInvalidAnswer.Left(maxAnswerFail - failures)
		if failures >= maxAnswerFail {
			if _, err := s.db.Write().ExecContext(ctx, "UPDATE email_codes SET voided_at = $2 WHERE id = $1 AND voided_at IS NULL", open.id, now); err != nil {
				return fmt.Errorf("identity: answer: %w", err)
			}
			if err := s.record(ctx, s.db.Write(), acct.ID, EventResetVoided, c); err != nil {
				return err
			}
		}
		return wrong
	}
	res, err := s.db.Write().ExecContext(ctx, `UPDATE email_codes SET answered_at = $2, answer_failures = answer_failures - 1
		WHERE id = $1 AND voided_at IS NULL AND used_at IS NULL`, open.id, now)
	if err != nil {
		return fmt.Errorf("identity: answer: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrInvalidToken
	}
	return nil
}

// SetNewPassword completes a reset whose question was answered: it sets the
// password, ends every session and token of the account, clears its login lock and
// mails the owner. It does not sign anyone in.
func (s *Service) SetNewPassword(ctx context.Context, step, password string, c Client) error {
	open, acct, err := s.resetByStep(ctx, step)
	if err != nil {
		return err
	}
	if !open.answered {
		return ErrInvalidToken
	}
	if reasons := s.CheckPassword(password, acct.Email, acct.FullName); len(reasons) > 0 {
		return &ValidationError{Fields: map[string]string{"password": "weak_password"}, Reasons: reasons}
	}
	hash, err := s.hasher.Hash(ctx, NormalizePassword(password))
	if err != nil {
		return err
	}
	now := s.now().UTC()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE email_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND voided_at IS NULL", open.id, now)
		if err != nil {
			return fmt.Errorf("identity: reset: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrInvalidToken
		}
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET password_hash = $2, password_changed_at = $3 WHERE id = $1", acct.ID, hash, now); err != nil {
			return fmt.Errorf("identity: reset: %w", err)
		}
		if err := s.revokeAll(ctx, tx, acct.ID, ""); err != nil {
			return err
		}
		if err := s.endWaits(ctx, tx, acct.ID, "reset", c); err != nil {
			return err
		}
		if err := s.record(ctx, tx, acct.ID, EventResetCompleted, c); err != nil {
			return err
		}
		return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "security_change", Locale: acct.Locale,
			Data: map[string]string{"Name": acct.FullName, "Change": EventResetCompleted, "ResetLink": s.link("/password/forgot")}})
	})
	if err != nil {
		return err
	}
	// A proved mailbox and answer end the lock of unknown devices on the address.
	limits, err := s.limitsOf(ctx, "email:"+acct.Email, "")
	if err != nil {
		return err
	}
	return limits.succeeded(ctx)
}

// ResetPassword is the API's last step: answer and new password together. A weak
// password is reported before the answer is checked, so it costs no answer attempt.
func (s *Service) ResetPassword(ctx context.Context, step, answer, password string, c Client) error {
	_, acct, err := s.resetByStep(ctx, step)
	if err != nil {
		return err
	}
	if reasons := s.CheckPassword(password, acct.Email, acct.FullName); len(reasons) > 0 {
		return &ValidationError{Fields: map[string]string{"password": "weak_password"}, Reasons: reasons}
	}
	if err := s.AnswerQuestion(ctx, step, answer, c); err != nil {
		return err
	}
	return s.SetNewPassword(ctx, step, password, c)
}
