package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

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
	Devices  []string    // device tokens the browser or app holds (see knownDevice)
}

// consecutiveRule counts the failures of an email (from unknown devices) or of a
// device between two successful logins. It never locks by itself: it makes each
// lock longer than the last (growLockout), so that steady guessing is slowed down
// without anyone being locked out for days (issue 13).
var consecutiveRule = throttle.Rule{Max: math.MaxInt32, Window: 30 * 24 * time.Hour}

// maxLockout is the longest a lock grows to: 15 minutes, then 30, 1 hour, 2, 4.
const maxLockout = 4 * time.Hour

// growLockout is the lock that the next failure sets if it reaches the rule's Max:
// the rule's own lock, doubled for every Max failures already in a row, up to
// maxLockout (or the rule's own lock, if an operator set it longer).
func growLockout(r throttle.Rule, failures int) time.Duration {
	d := r.Lockout
	for i := failures / max(r.Max, 1); i > 0 && d < maxLockout; i-- {
		d *= 2
	}
	return min(d, max(maxLockout, r.Lockout))
}

// loginLimits are the counters a password attempt is reserved against: its
// subject's short window (the email's for a device the account does not know, else
// the device's own), the subject's consecutive failures, and, for an unknown device,
// the client address.
type loginLimits struct {
	t     *throttle.Throttle
	keys  []string
	rules []throttle.Rule
}

// loginLimits builds the limits of a login: deviceID is a device of the account
// that the request brought (see knownDevice), or "".
func (s *Service) loginLimits(ctx context.Context, email, deviceID string, c Client) (loginLimits, error) {
	if deviceID != "" {
		return s.limitsOf(ctx, "device:"+deviceID, "")
	}
	return s.limitsOf(ctx, "email:"+email, throttle.AddressKey(c.IP))
}

// limitsOf builds the limits of one subject; address is "" when the attempt does not
// count against its client address (a known device: a household or a visiting
// centre sharing one address is never stopped by another's guesses there).
func (s *Service) limitsOf(ctx context.Context, subject, address string) (loginLimits, error) {
	consecutive := "login:consecutive:" + subject
	n, err := s.throttle.Failures(ctx, consecutive, consecutiveRule)
	if err != nil {
		return loginLimits{}, err // the store failed: fail closed
	}
	rule := s.cfg.LoginPerEmail
	rule.Lockout = growLockout(rule, n)
	l := loginLimits{t: s.throttle, keys: []string{"login:" + subject, consecutive}, rules: []throttle.Rule{rule, consecutiveRule}}
	if address != "" {
		l.keys = append(l.keys, "login:ip:"+address)
		l.rules = append(l.rules, s.cfg.LoginPerIP)
	}
	return l, nil
}

func (l loginLimits) reserve(ctx context.Context) error { return l.t.Reserve(ctx, l.keys, l.rules) }

// giveBack returns an attempt that checked nothing (the hasher was busy).
func (l loginLimits) giveBack(ctx context.Context) {
	for i := range l.keys {
		l.t.Release(ctx, l.keys[i], l.rules[i])
	}
}

// passwordRight gives back the address's attempt: a right password never counts
// against a household's shared address, even when a second factor is still due.
func (l loginLimits) passwordRight(ctx context.Context) error {
	if len(l.keys) < 3 {
		return nil
	}
	return l.t.Release(ctx, l.keys[2], l.rules[2])
}

// succeeded clears the subject's counters after a complete login.
func (l loginLimits) succeeded(ctx context.Context) error {
	if err := l.t.Reset(ctx, l.keys[0]); err != nil {
		return err
	}
	return l.t.Reset(ctx, l.keys[1])
}

// Login checks an email and password. An unknown email, a wrong password and a
// pending or disabled account all give ErrInvalidCredentials after the same work
// (SECURITY.md 6). Each attempt is reserved before the password is checked, so
// parallel guesses cannot exceed the limits: against the device's own limits when
// the request brings a device token the account knows, else against the email's
// and the address's. A paused email is refused even with the right password, except
// from the account's known devices (issue 13). With two-step verification
// on and no code, it returns ErrSecondFactorRequired and a SecondFactor session that
// CompleteLogin takes with the code.
func (s *Service) Login(ctx context.Context, r LoginRequest, c Client) (Session, error) {
	email := NormalizeEmail(r.Email)
	if len(r.Password) > MaxPasswordBytes || email == "" || len(email) > 254 || r.Password == "" {
		return Session{}, ErrInvalidCredentials
	}
	acct, err := accountByEmail(ctx, s.db.Read(), email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Session{}, err
	}
	// A device the account knows is counted on its own; anything else against the
	// email. An unknown address runs the same queries and finds no device.
	accountID := ""
	if acct != nil {
		accountID = acct.ID
	}
	device, err := s.knownDevice(ctx, accountID, r.Devices)
	if err != nil {
		return Session{}, err
	}
	limits, err := s.loginLimits(ctx, email, device.id, c)
	if err != nil {
		return Session{}, err
	}
	if err := limits.reserve(ctx); err != nil {
		return Session{}, err
	}
	// Unknown emails, and accounts with no password yet (staff before enrolment or
	// after an administrator's reset), are checked against the dummy hash: the same
	// work, and never a match.
	stored := s.dummy
	if acct != nil && acct.passwordHash != "" {
		stored = acct.passwordHash
	} else {
		acct = nil
	}
	ok, rehash, err := s.hasher.Verify(ctx, NormalizePassword(r.Password), stored)
	if err != nil {
		// Nothing was checked: give the attempt back rather than count overload
		// against the family.
		limits.giveBack(ctx)
		return Session{}, err
	}
	// A family account cannot open the staff portal, nor a staff account the family
	// site: for the wrong door the account does not exist.
	if acct != nil && acct.Kind != accountKind(r.Kind) {
		acct = nil
	}
	if acct == nil || !ok || acct.Status != "active" {
		if acct != nil {
			s.recordFailure(ctx, acct.ID, limits, c)
		}
		return Session{}, ErrInvalidCredentials
	}
	if rehash {
		s.rehash(ctx, acct.ID, r.Password)
	}
	if err := limits.passwordRight(ctx); err != nil {
		return Session{}, err
	}
	if acct.TwoFactor || acct.Kind == "staff" {
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
			s.recordFailure(ctx, acct.ID, limits, c)
			return Session{}, err
		}
	}
	return s.succeed(ctx, acct, r.Kind, r.Replaces, limits, device, c)
}

// CompleteLogin finishes a web login that waited for its second factor. Code
// guesses count against the login's limits like passwords do: the device's, for a
// device the account knows, else the email's.
func (s *Service) CompleteLogin(ctx context.Context, pendingToken, code, replaces string, devices []string, c Client) (Session, error) {
	acctPublic, pending, err := s.Authenticate(ctx, pendingToken, SecondFactor)
	if err != nil {
		return Session{}, ErrInvalidToken
	}
	device, err := s.knownDevice(ctx, acctPublic.ID, devices)
	if err != nil {
		return Session{}, err
	}
	limits, err := s.loginLimits(ctx, acctPublic.Email, device.id, c)
	if err != nil {
		return Session{}, err
	}
	if err := limits.reserve(ctx); err != nil {
		return Session{}, err
	}
	acct, err := accountByID(ctx, s.db.Read(), acctPublic.ID)
	if err != nil {
		return Session{}, err
	}
	if err := s.checkSecondFactor(ctx, acct, code, c); err != nil {
		s.recordFailure(ctx, acct.ID, limits, c)
		return Session{}, err
	}
	if err := limits.passwordRight(ctx); err != nil {
		return Session{}, err
	}
	if _, err := s.db.Write().ExecContext(ctx, "UPDATE sessions SET revoked_at = $2 WHERE id = $1", pending.ID, s.now().UTC()); err != nil {
		return Session{}, fmt.Errorf("identity: end pending login: %w", err)
	}
	kind := WebSession
	if acct.Kind == "staff" {
		kind = StaffSession
	}
	return s.succeed(ctx, acct, kind, replaces, limits, device, c)
}

// succeed clears the login's failures (a known device's own, or the email's for a
// new one: a login on a known device leaves the lock of unknown devices as it is),
// ends any session the browser held before (a planted id dies here), starts a new
// one and hands back the device token to keep.
func (s *Service) succeed(ctx context.Context, acct *account, kind SessionKind, replaces string, limits loginLimits, device knownDev, c Client) (Session, error) {
	accountID := acct.ID
	if err := limits.succeeded(ctx); err != nil {
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
		if sess.Device, err = s.keepDevice(ctx, tx, accountID, device.id, device.token); err != nil {
			return err
		}
		// The owner knows the password: a reset without the answer is not needed.
		if err := s.endWaits(ctx, tx, accountID, "login", c); err != nil {
			return err
		}
		if kind == StaffSession {
			if err := s.auditStaff(ctx, tx, accountID, "portal.login", c); err != nil {
				return err
			}
		}
		return s.record(ctx, tx, accountID, EventLogin, c)
	})
	sess.Locale = acct.Locale
	return sess, err
}

// recordFailure notes a failed login, and the lock when this failure caused it.
func (s *Service) recordFailure(ctx context.Context, accountID string, limits loginLimits, c Client) {
	kind := EventLoginFailed
	if n, err := s.throttle.Failures(ctx, limits.keys[0], limits.rules[0]); err == nil && n == limits.rules[0].Max {
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
			return ErrSecondFactorUsed
		}
		return nil
	}
	return s.useRecoveryCode(ctx, acct.ID, code, c)
}
