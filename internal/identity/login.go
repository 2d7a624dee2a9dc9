package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/kinlink/kinlink/internal/throttle"
)

// LoginRequest is an email and password, with the second-factor code when the
// account uses one (the API sends it in the same request).
type LoginRequest struct {
	Email    string
	Password string
	Code     string      // authenticator or recovery code, if any
	Kind     SessionKind // WebSession or APISession
	Replaces string      // a session token the browser held before: it dies at login
}

func (s *Service) loginKeys(email string, c Client) ([]string, []throttle.Rule) {
	return []string{"login:email:" + email, "login:ip:" + ipKey(c.IP)}, []throttle.Rule{s.cfg.LoginPerEmail, s.cfg.LoginPerIP}
}

// Login checks an email and password. An unknown email, a wrong password and a
// pending or disabled account all give ErrInvalidCredentials after the same work
// (SECURITY.md 6). Each attempt is reserved against the email's and the address's
// limits before the password is checked, so parallel guesses cannot exceed them; a
// locked email is refused even with the right password. With two-step verification
// on and no code, it returns ErrSecondFactorRequired and a SecondFactor session that
// CompleteLogin takes with the code.
func (s *Service) Login(ctx context.Context, r LoginRequest, c Client) (Session, error) {
	email := NormalizeEmail(r.Email)
	if len(r.Password) > MaxPasswordBytes || email == "" || r.Password == "" {
		return Session{}, ErrInvalidCredentials
	}
	keys, rules := s.loginKeys(email, c)
	if err := s.throttle.Reserve(ctx, keys, rules); err != nil {
		return Session{}, err
	}
	acct, err := accountByEmail(ctx, s.db.Read(), email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Session{}, err
	}
	stored := s.dummy
	if acct != nil {
		stored = acct.passwordHash
	}
	ok, rehash, err := s.hasher.Verify(ctx, NormalizePassword(r.Password), stored)
	if err != nil {
		// Nothing was checked: give the attempt back rather than count overload
		// against the family.
		s.throttle.Release(ctx, keys[0], rules[0])
		s.throttle.Release(ctx, keys[1], rules[1])
		return Session{}, err
	}
	if acct == nil || !ok || acct.Status != "active" {
		if acct != nil {
			s.recordFailure(ctx, acct.ID, keys[0], c)
		}
		return Session{}, ErrInvalidCredentials
	}
	if rehash {
		s.rehash(ctx, acct.ID, r.Password)
	}
	if acct.TwoFactor {
		if r.Code == "" {
			if r.Kind == APISession {
				return Session{}, ErrSecondFactorRequired
			}
			pending, err := s.newSession(ctx, s.db.Write(), acct.ID, SecondFactor, c)
			if err != nil {
				return Session{}, err
			}
			return pending, ErrSecondFactorRequired
		}
		if err := s.checkSecondFactor(ctx, acct, r.Code, c); err != nil {
			s.recordFailure(ctx, acct.ID, keys[0], c)
			return Session{}, err
		}
	}
	return s.succeed(ctx, acct.ID, r.Kind, r.Replaces, keys, rules, c)
}

// CompleteLogin finishes a web login that waited for its second factor. Code
// guesses count against the email's login limit like passwords do.
func (s *Service) CompleteLogin(ctx context.Context, pendingToken, code, replaces string, c Client) (Session, error) {
	acctPublic, pending, err := s.Authenticate(ctx, pendingToken, SecondFactor)
	if err != nil {
		return Session{}, ErrInvalidToken
	}
	keys, rules := s.loginKeys(acctPublic.Email, c)
	if err := s.throttle.Reserve(ctx, keys, rules); err != nil {
		return Session{}, err
	}
	acct, err := accountByID(ctx, s.db.Read(), acctPublic.ID)
	if err != nil {
		return Session{}, err
	}
	if err := s.checkSecondFactor(ctx, acct, code, c); err != nil {
		s.recordFailure(ctx, acct.ID, keys[0], c)
		return Session{}, err
	}
	if _, err := s.db.Write().ExecContext(ctx, "UPDATE sessions SET revoked_at = $2 WHERE id = $1", pending.ID, s.now().UTC()); err != nil {
		return Session{}, fmt.Errorf("identity: end pending login: %w", err)
	}
	return s.succeed(ctx, acct.ID, WebSession, replaces, keys, rules, c)
}

// succeed clears the email's failures, gives back the address's reservation, ends
// any session the browser held before (a planted id dies here) and starts a new one.
func (s *Service) succeed(ctx context.Context, accountID string, kind SessionKind, replaces string, keys []string, rules []throttle.Rule, c Client) (Session, error) {
	if err := s.throttle.Reset(ctx, keys[0]); err != nil {
		return Session{}, err
	}
	if err := s.throttle.Release(ctx, keys[1], rules[1]); err != nil {
		return Session{}, err
	}
	var sess Session
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if replaces != "" {
			if _, err := tx.ExecContext(ctx, "UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
				digest(replaces), s.now().UTC()); err != nil {
				return fmt.Errorf("identity: end old session: %w", err)
			}
		}
		var err error
		if sess, err = s.newSession(ctx, tx, accountID, kind, c); err != nil {
			return err
		}
		return s.record(ctx, tx, accountID, EventLogin, c)
	})
	return sess, err
}

// recordFailure notes a failed login, and the lock when this failure caused it.
func (s *Service) recordFailure(ctx context.Context, accountID, emailKey string, c Client) {
	kind := EventLoginFailed
	if n, err := s.throttle.Failures(ctx, emailKey); err == nil && n == s.cfg.LoginPerEmail.Max {
		kind = EventLocked
	}
	if err := s.record(ctx, s.db.Write(), accountID, kind, c); err != nil {
		s.log.Error("identity: record failure", "err", err)
	}
}

// rehash replaces a hash made with weaker parameters; failure only delays it.
func (s *Service) rehash(ctx context.Context, accountID, password string) {
	h, err := s.hasher.Hash(ctx, NormalizePassword(password))
	if err == nil {
		_, err = s.db.Write().ExecContext(ctx, "UPDATE accounts SET password_hash = $2 WHERE id = $1", accountID, h)
	}
	if err != nil {
		s.log.Warn("identity: rehash", "account", accountID, "err", err)
	}
}

// checkSecondFactor accepts a current authenticator code once (a replayed or older
// code is refused, also in parallel) or an unused recovery code.
func (s *Service) checkSecondFactor(ctx context.Context, acct *account, code string, c Client) error {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) == 6 {
		step, ok := matchTOTP(acct.totpSecret, code, s.now())
		if !ok {
			return ErrInvalidSecondFactor
		}
		res, err := s.db.Write().ExecContext(ctx, "UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2", acct.ID, step)
		if err != nil {
			return fmt.Errorf("identity: totp step: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrInvalidSecondFactor // replayed
		}
		return nil
	}
	return s.useRecoveryCode(ctx, acct.ID, code, c)
}
