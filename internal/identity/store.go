package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Account is a family member's account as the rest of Kinlink sees it.
type Account struct {
	ID               string
	Email            string
	FullName         string
	Locale           string
	Kind             string // family or staff
	Status           string // pending, active, disabled
	TwoFactor        bool
	SecurityQuestion string
	CreatedAt        time.Time
	// EmailWhenWatched asks for a mail the first time a resident plays a VideoGram
	// the account sent; off unless the family turns it on.
	EmailWhenWatched bool
}

// account is the stored row, secrets included; it never leaves the package.
type account struct {
	Account
	passwordHash string
	answerHash   string
	totpSecret   string
	totpLastStep int64
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

const accountColumns = `id, email, full_name, locale, kind, status, totp_enabled, security_question, created_at, email_when_videogram_watched,
	password_hash, security_answer_hash, COALESCE(totp_secret, ''), totp_last_step`

func scanAccount(row *sql.Row) (*account, error) {
	var a account
	err := row.Scan(&a.ID, &a.Email, &a.FullName, &a.Locale, &a.Kind, &a.Status, &a.TwoFactor, &a.SecurityQuestion, &a.CreatedAt, &a.EmailWhenWatched,
		&a.passwordHash, &a.answerHash, &a.totpSecret, &a.totpLastStep)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read account: %w", err)
	}
	return &a, nil
}

func accountByEmail(ctx context.Context, q querier, email string) (*account, error) {
	return scanAccount(q.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE email = $1", email))
}

func accountByID(ctx context.Context, q querier, id string) (*account, error) {
	return scanAccount(q.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE id = $1", id))
}

// Account returns an account by its id.
func (s *Service) Account(ctx context.Context, id string) (Account, error) {
	a, err := accountByID(ctx, s.db.Read(), id)
	if err != nil {
		return Account{}, err
	}
	return a.Account, nil
}

// AccountByEmail returns an account by its email.
func (s *Service) AccountByEmail(ctx context.Context, email string) (Account, error) {
	a, err := accountByEmail(ctx, s.db.Read(), NormalizeEmail(email))
	if err != nil {
		return Account{}, err
	}
	return a.Account, nil
}

// emailCode is one row of email_codes.
type emailCode struct {
	id             string
	accountID      string
	codeHash       string
	expiresAt      time.Time
	verified       bool
	answered       bool
	answerFailures int
}

const codeColumns = "id, account_id, code_hash, expires_at, verified_at IS NOT NULL, answered_at IS NOT NULL, answer_failures"

// openCodes finds the usable codes of an account for a purpose: not used, not
// voided, not expired. A reset has at most one; a pending sign-up may have several,
// each carrying the details of its own sign-up.
func openCodes(ctx context.Context, q querier, accountID, purpose string, now time.Time) ([]*emailCode, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+codeColumns+` FROM email_codes
		WHERE account_id = $1 AND purpose = $2 AND used_at IS NULL AND voided_at IS NULL AND expires_at > $3
		ORDER BY created_at DESC LIMIT 20`, accountID, purpose, now)
	if err != nil {
		return nil, fmt.Errorf("identity: read codes: %w", err)
	}
	defer rows.Close()
	var out []*emailCode
	for rows.Next() {
		c, err := scanCode(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// openCodeBy finds a usable code by the hash of its link or of its step token.
func openCodeBy(ctx context.Context, q querier, column, hash, purpose string, now time.Time) (*emailCode, error) {
	return scanCode(q.QueryRowContext(ctx, "SELECT "+codeColumns+" FROM email_codes WHERE "+column+` = $1
		AND purpose = $2 AND used_at IS NULL AND voided_at IS NULL AND expires_at > $3`, hash, purpose, now))
}

func scanCode(row interface{ Scan(...any) error }) (*emailCode, error) {
	var c emailCode
	err := row.Scan(&c.id, &c.accountID, &c.codeHash, &c.expiresAt, &c.verified, &c.answered, &c.answerFailures)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read code: %w", err)
	}
	return &c, nil
}

// voidCodes voids every open code of an account for a purpose.
func voidCodes(ctx context.Context, q querier, accountID, purpose string, now time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE email_codes SET voided_at = $3
		WHERE account_id = $1 AND purpose = $2 AND used_at IS NULL AND voided_at IS NULL`, accountID, purpose, now)
	if err != nil {
		return fmt.Errorf("identity: void codes: %w", err)
	}
	return nil
}

// Event kinds shown to the account holder.
const (
	EventSignup           = "signup"
	EventLogin            = "login"
	EventLoginFailed      = "login_failed"
	EventLocked           = "locked"
	EventLogout           = "logout"
	EventResetRequested   = "reset_requested"
	EventResetCompleted   = "reset_completed"
	EventResetVoided      = "reset_voided"
	EventPasswordChanged  = "password_changed"
	EventQuestionChanged  = "question_changed"
	EventTwoFactorOn      = "two_factor_enabled"
	EventTwoFactorOff     = "two_factor_disabled"
	EventRecoveryCodeUsed = "recovery_code_used"
	EventSessionRevoked   = "session_revoked"
	EventSignupAttempt    = "signup_attempt"
	EventWaitStarted      = "reset_wait_started"   // a reset without the security answer was asked for
	EventWaitStopped      = "reset_wait_stopped"   // by the link in its mail
	EventWaitCancelled    = "reset_wait_cancelled" // by a login, a password change or a completed reset
	EventWaitCompleted    = "reset_wait_completed" // new password and question set without the old answer
)

// Event is one security event of an account.
type Event struct {
	Kind      string
	At        time.Time
	IP        string
	UserAgent string
}

func (s *Service) record(ctx context.Context, q querier, accountID, kind string, c Client) error {
	_, err := q.ExecContext(ctx, "INSERT INTO security_events (account_id, kind, at, ip, user_agent) VALUES ($1, $2, $3, $4, $5)",
		accountID, kind, s.now().UTC(), c.IP, truncate(c.UserAgent, 300))
	if err != nil {
		return fmt.Errorf("identity: record %s: %w", kind, err)
	}
	s.log.Info("security event", "event", kind, "account", accountID, "ip", c.IP)
	return nil
}

// Events returns an account's recent security events, newest first.
func (s *Service) Events(ctx context.Context, accountID string, limit int) ([]Event, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT kind, at, ip, user_agent FROM security_events
		WHERE account_id = $1 ORDER BY at DESC, id DESC LIMIT $2`, accountID, limit)
	if err != nil {
		return nil, fmt.Errorf("identity: events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.Kind, &e.At, &e.IP, &e.UserAgent); err != nil {
			return nil, fmt.Errorf("identity: events: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}
