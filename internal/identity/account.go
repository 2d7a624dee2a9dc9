package identity

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/problem"
)

// reauthenticate checks the password of a signed-in account before a sensitive
// change (SECURITY.md 24). Wrong passwords count against a limit of the account's
// own, with the same rule and growing locks as logins, so a stolen session cannot be
// used to guess the password; failed logins by others do not stop the signed-in
// owner (issue 13).
func (s *Service) reauthenticate(ctx context.Context, accountID, password string, c Client) (*account, error) {
	acct, err := accountByID(ctx, s.db.Read(), accountID)
	if err != nil {
		return nil, err
	}
	if len(password) > MaxPasswordBytes || password == "" || acct.passwordHash == "" {
		return nil, ErrWrongPassword
	}
	limits, err := s.limitsOf(ctx, "account:"+acct.ID, "")
	if err != nil {
		return nil, err
	}
	if err := limits.reserve(ctx); err != nil {
		return nil, err
	}
	ok, _, err := s.hasher.Verify(ctx, NormalizePassword(password), acct.passwordHash)
	if err != nil {
		limits.giveBack(ctx)
		return nil, err
	}
	if !ok {
		s.recordFailure(ctx, acct.ID, limits, c)
		return nil, ErrWrongPassword
	}
	if err := limits.passwordRight(ctx); err != nil {
		return nil, err
	}
	return acct, limits.succeeded(ctx)
}

// ChangePassword sets a new password after checking the current one. Every other
// session and token of the account ends; the one in use (keepSession) stays.
func (s *Service) ChangePassword(ctx context.Context, accountID, keepSession, current, next string, c Client) error {
	acct, err := s.reauthenticate(ctx, accountID, current, c)
	if err != nil {
		return err
	}
	if reasons := s.CheckPassword(next, acct.Email, acct.FullName); len(reasons) > 0 {
		return &ValidationError{Fields: map[string]string{"new_password": "weak_password"}, Reasons: reasons}
	}
	hash, err := s.hasher.Hash(ctx, NormalizePassword(next))
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
			accountID, hash, s.now().UTC()); err != nil {
			return fmt.Errorf("identity: change password: %w", err)
		}
		if err := s.revokeAll(ctx, tx, accountID, keepSession); err != nil {
			return err
		}
		if err := s.endWaits(ctx, tx, accountID, "password", c); err != nil {
			return err
		}
		if err := s.record(ctx, tx, accountID, EventPasswordChanged, c); err != nil {
			return err
		}
		return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "security_change", Locale: acct.Locale,
			Data: map[string]string{"Name": acct.FullName, "Change": EventPasswordChanged, "ResetLink": s.link("/password/forgot")}})
	})
}

// ChangeSecurityQuestion sets a new question and answer after checking the password.
func (s *Service) ChangeSecurityQuestion(ctx context.Context, accountID, password, question, answer string, c Client) error {
	var v ValidationError
	if !slices.Contains(securityQuestions, question) {
		v.add("security_question_id", "invalid")
	}
	checkAnswer(&v, answer)
	if err := v.orNil(); err != nil {
		return err
	}
	acct, err := s.reauthenticate(ctx, accountID, password, c)
	if err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, NormalizeAnswer(answer))
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET security_question = $2, security_answer_hash = $3 WHERE id = $1",
			accountID, question, hash); err != nil {
			return fmt.Errorf("identity: change question: %w", err)
		}
		if err := s.record(ctx, tx, accountID, EventQuestionChanged, c); err != nil {
			return err
		}
		return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "security_change", Locale: acct.Locale,
			Data: map[string]string{"Name": acct.FullName, "Change": EventQuestionChanged, "ResetLink": s.link("/password/forgot")}})
	})
}

// ErrBadLocale is a language Kinlink does not speak.
var ErrBadLocale = problem.Declare(problem.Invalid, "invalid_request", "identity: unsupported language").On("locale", "invalid")

// Settings is a change to what a family chose for their account; a field left nil
// stays as it is.
type Settings struct {
	// Locale is the language of the account's email (and of its pages where the
	// person has not picked one on a device).
	Locale *string
	// EmailWhenWatched asks for a mail the first time a resident plays a VideoGram
	// the account sent.
	EmailWhenWatched *bool
}

// ChangeSettings changes an account's settings, all of them or, when one is
// refused, none, and returns the account as it now is.
func (s *Service) ChangeSettings(ctx context.Context, accountID string, c Settings) (Account, error) {
	if c.Locale != nil && !slices.Contains(s.cfg.Locales, *c.Locale) {
		return Account{}, ErrBadLocale
	}
	var locale, watched any // NULL keeps the stored value
	if c.Locale != nil {
		locale = *c.Locale
	}
	if c.EmailWhenWatched != nil {
		watched = *c.EmailWhenWatched
	}
	acct, err := scanAccount(s.db.Write().QueryRowContext(ctx, `UPDATE accounts SET locale = COALESCE($2, locale),
		email_when_videogram_watched = COALESCE($3, email_when_videogram_watched) WHERE id = $1 RETURNING `+accountColumns,
		accountID, locale, watched))
	if err != nil {
		return Account{}, fmt.Errorf("identity: change settings: %w", err)
	}
	return acct.Account, nil
}
