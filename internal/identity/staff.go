package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/kinlink/kinlink/internal/ids"

	kmail "github.com/kinlink/kinlink/internal/mail"
)

// Staff accounts are made by an administrator (or the operator's command line), never
// by sign-up. The new member gets a one-time enrolment link by email to choose their
// own password and set up their authenticator app; nobody else ever sees or picks
// the password (SECURITY.md 28). Staff always log in with a second factor.

// CreateStaff makes a pending staff account inside tx and queues its enrolment mail.
// It returns the account id and the enrolment link, which the operator's command
// prints for the very first administrator.
func (s *Service) CreateStaff(ctx context.Context, tx *sql.Tx, email, fullName, locale string) (accountID, link string, err error) {
	var v ValidationError
	email = NormalizeEmail(email)
	if !validEmail(email) {
		v.add("email", "invalid")
	}
	fullName = v.name("full_name", fullName)
	if err := v.orNil(); err != nil {
		return "", "", err
	}
	var existing int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM accounts WHERE email = $1", email).Scan(&existing); err != nil {
		return "", "", fmt.Errorf("identity: create staff: %w", err)
	}
	if existing > 0 {
		return "", "", &ValidationError{Fields: map[string]string{"email": "taken"}}
	}
	accountID = ids.New()
	now := s.now().UTC()
	_, err = tx.ExecContext(ctx, `INSERT INTO accounts (id, email, full_name, locale, kind, password_hash, security_question,
		security_answer_hash, status, created_at, password_changed_at) VALUES ($1, $2, $3, $4, 'staff', '', '', '', 'pending', $5, $5)`,
		accountID, email, fullName, s.locale(locale), now)
	if err != nil {
		return "", "", fmt.Errorf("identity: create staff: %w", err)
	}
	link, err = s.issueEnrolment(ctx, tx, accountID, email, fullName, s.locale(locale))
	return accountID, link, err
}

// issueEnrolment voids earlier enrolment links and mails a new one.
func (s *Service) issueEnrolment(ctx context.Context, tx *sql.Tx, accountID, email, fullName, locale string) (string, error) {
	now := s.now().UTC()
	if err := voidCodes(ctx, tx, accountID, "enrol", now); err != nil {
		return "", err
	}
	id, token := ids.New(), randomToken()
	_, err := tx.ExecContext(ctx, `INSERT INTO email_codes (id, account_id, purpose, code_hash, link_hash, created_at, expires_at)
		VALUES ($1, $2, 'enrol', '', $3, $4, $5)`, id, accountID, digest(token), now, now.Add(s.cfg.EnrolTTL))
	if err != nil {
		return "", fmt.Errorf("identity: enrolment: %w", err)
	}
	link := s.link("/facility/enrol?t=" + token)
	err = kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: email, Template: "staff_enrol", Locale: locale, Secret: true,
		Data: map[string]string{"Name": fullName, "Link": link}})
	return link, err
}

// enrolment finds the open enrolment of a link and its account.
func (s *Service) enrolment(ctx context.Context, token string) (*emailCode, *account, error) {
	if token == "" {
		return nil, nil, ErrInvalidToken
	}
	open, err := openCodeBy(ctx, s.db.Read(), "link_hash", digest(token), "enrol", s.now().UTC())
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrInvalidToken
	}
	if err != nil {
		return nil, nil, err
	}
	acct, err := accountByID(ctx, s.db.Read(), open.accountID)
	if err != nil {
		return nil, nil, err
	}
	if acct.Kind != "staff" || acct.Status == "disabled" {
		return nil, nil, ErrInvalidToken
	}
	return open, acct, nil
}

// EnrolmentSetup returns the account of an enrolment link and the authenticator
// secret to show as a QR code (made once, kept until enrolment completes).
func (s *Service) EnrolmentSetup(ctx context.Context, token string) (Account, TwoFactorSetup, error) {
	_, acct, err := s.enrolment(ctx, token)
	if err != nil {
		return Account{}, TwoFactorSetup{}, err
	}
	setup, ok, err := s.PendingTwoFactor(ctx, acct.ID)
	if err != nil {
		return Account{}, TwoFactorSetup{}, err
	}
	if !ok {
		if setup, err = s.BeginTwoFactor(ctx, acct.ID); err != nil {
			return Account{}, TwoFactorSetup{}, err
		}
	}
	return acct.Account, setup, nil
}

// CompleteEnrolment sets the staff member's password (at least 8 characters, since a
// second factor is always required) and turns on their authenticator once a current
// code proves it works. It returns ten recovery codes, shown once.
func (s *Service) CompleteEnrolment(ctx context.Context, token, password, code string, c Client) ([]string, error) {
	open, acct, err := s.enrolment(ctx, token)
	if err != nil {
		return nil, err
	}
	if reasons := s.common.CheckPassword(password, MinPasswordMFA, acct.Email, acct.FullName); len(reasons) > 0 {
		return nil, &ValidationError{Fields: map[string]string{"password": "weak_password"}, Reasons: reasons}
	}
	step, ok := matchTOTP(acct.totpSecret, strings.ReplaceAll(strings.TrimSpace(code), " ", ""), s.now())
	if !ok {
		return nil, ErrInvalidSecondFactor
	}
	hash, err := s.hasher.Hash(ctx, NormalizePassword(password))
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	codes := make([]string, 10)
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE email_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND voided_at IS NULL", open.id, now)
		if err != nil {
			return fmt.Errorf("identity: enrol: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrInvalidToken
		}
		_, err = tx.ExecContext(ctx, `UPDATE accounts SET password_hash = $2, password_changed_at = $3, status = 'active',
			activated_at = COALESCE(activated_at, $3), totp_enabled = TRUE, totp_last_step = $4 WHERE id = $1`, acct.ID, hash, now, step)
		if err != nil {
			return fmt.Errorf("identity: enrol: %w", err)
		}
		if err := s.replaceRecoveryCodes(ctx, tx, acct.ID, codes); err != nil {
			return err
		}
		return s.record(ctx, tx, acct.ID, EventSignup, c)
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// EnsureStaff creates an active staff account with a known password and
// authenticator secret, for demo data only: real staff enrol themselves. An existing
// account with the email is returned as it is.
func (s *Service) EnsureStaff(ctx context.Context, email, fullName, password, totpSecret string) (string, error) {
	email = NormalizeEmail(email)
	var v ValidationError
	fullName = v.name("full_name", fullName)
	if err := v.orNil(); err != nil {
		return "", err
	}
	if acct, err := accountByEmail(ctx, s.db.Read(), email); err == nil {
		return acct.ID, nil
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	if reasons := s.common.CheckPassword(password, MinPasswordMFA, email, fullName); len(reasons) > 0 {
		return "", &ValidationError{Fields: map[string]string{"password": "weak_password"}, Reasons: reasons}
	}
	hash, err := s.hasher.Hash(ctx, NormalizePassword(password))
	if err != nil {
		return "", err
	}
	id, now := ids.New(), s.now().UTC()
	_, err = s.db.Write().ExecContext(ctx, `INSERT INTO accounts (id, email, full_name, locale, kind, password_hash, security_question,
		security_answer_hash, status, totp_secret, totp_enabled, created_at, activated_at, password_changed_at)
		VALUES ($1, $2, $3, 'en', 'staff', $4, '', '', 'active', $5, TRUE, $6, $6, $6) ON CONFLICT (email) DO NOTHING`,
		id, email, fullName, hash, totpSecret, now)
	if err != nil {
		return "", fmt.Errorf("identity: ensure staff: %w", err)
	}
	acct, err := accountByEmail(ctx, s.db.Read(), email)
	if err != nil {
		return "", err
	}
	return acct.ID, nil
}

// StartStaffReset is an administrator's reset of a staff member's credentials: the
// password and authenticator are cleared, every session and token ends, and a new
// enrolment link is mailed to the staff member only. The administrator never sees
// or chooses the password (SECURITY.md 28).
func (s *Service) StartStaffReset(ctx context.Context, tx *sql.Tx, accountID string) error {
	acct, err := scanAccount(tx.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE id = $1"+s.db.ForUpdate(), accountID))
	if err != nil {
		return err
	}
	if acct.Kind != "staff" {
		return ErrNotFound
	}
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET status = 'pending', password_hash = '', totp_enabled = FALSE, totp_secret = NULL
		WHERE id = $1`, accountID); err != nil {
		return fmt.Errorf("identity: staff reset: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM recovery_codes WHERE account_id = $1", accountID); err != nil {
		return fmt.Errorf("identity: staff reset: %w", err)
	}
	if err := s.revokeAll(ctx, tx, accountID, ""); err != nil {
		return err
	}
	if err := s.record(ctx, tx, accountID, EventResetRequested, Client{}); err != nil {
		return err
	}
	_, err = s.issueEnrolment(ctx, tx, accountID, acct.Email, acct.FullName, acct.Locale)
	return err
}

// DisableStaff ends a staff account for good (someone who left): it cannot log in,
// and every session and token ends at once (SECURITY.md 23).
func (s *Service) DisableStaff(ctx context.Context, tx *sql.Tx, accountID string) error {
	res, err := tx.ExecContext(ctx, "UPDATE accounts SET status = 'disabled' WHERE id = $1 AND kind = 'staff'", accountID)
	if err != nil {
		return fmt.Errorf("identity: disable: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	if err := voidCodes(ctx, tx, accountID, "enrol", s.now().UTC()); err != nil {
		return err
	}
	return s.revokeAll(ctx, tx, accountID, "")
}
