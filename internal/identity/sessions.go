package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/ids"
)

// Session is a signed-in browser, an app's API token, or a login waiting for its
// second factor. Token is set only when the session is created: only its hash is kept.
type Session struct {
	ID         string
	Token      string
	Kind       SessionKind
	AccountID  string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	IP         string
	UserAgent  string
	Device     string // set by a complete login: the device token to keep and bring back
	Locale     string // set by a sign-in: the account's language, for the device to take
}

// secondFactorTTL is how long a checked password waits for its code.
const secondFactorTTL = 5 * time.Minute

// touchEvery limits last-seen writes: a busy page does not write on every request.
const touchEvery = time.Minute

func (s *Service) lifetimes(kind SessionKind) (maxAge, idle time.Duration) {
	switch kind {
	case WebSession:
		return s.cfg.WebMax, s.cfg.WebIdle
	case APISession:
		return s.cfg.APITokenTTL, 0
	case StaffSession:
		return s.cfg.StaffMax, s.cfg.StaffIdle
	case StaffAPI:
		return 365 * 24 * time.Hour, 0
	default:
		return secondFactorTTL, 0
	}
}

// newSession stores a fresh session inside q and returns it with its token.
func (s *Service) newSession(ctx context.Context, q querier, accountID string, kind SessionKind, c Client) (Session, error) {
	now := s.now().UTC()
	maxAge, idle := s.lifetimes(kind)
	sess := Session{
		ID: ids.New(), Token: randomToken(), Kind: kind, AccountID: accountID,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(maxAge), IP: c.IP, UserAgent: truncate(c.UserAgent, 300),
	}
	_, err := q.ExecContext(ctx, `INSERT INTO sessions (id, token_hash, account_id, kind, created_at, last_seen_at, expires_at, idle_seconds, ip, user_agent)
		VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9)`,
		sess.ID, digest(sess.Token), accountID, string(kind), now, sess.ExpiresAt, int64(idle.Seconds()), c.IP, sess.UserAgent)
	if err != nil {
		return Session{}, fmt.Errorf("identity: new session: %w", err)
	}
	return sess, nil
}

// Authenticate returns the account and session of a token of the given kind, if the
// session is live: not revoked, not past its absolute limit, not idle too long, and
// its account active. Anything else is ErrUnauthenticated.
func (s *Service) Authenticate(ctx context.Context, token string, kind SessionKind) (Account, Session, error) {
	if token == "" || len(token) > 100 {
		return Account{}, Session{}, ErrUnauthenticated
	}
	now := s.now().UTC()
	var sess Session
	var idle int64
	var acct Account
	// One query for the session and its account: every authenticated request pays it.
	err := s.db.QueryRow(ctx, `SELECT s.id, s.account_id, s.created_at, s.last_seen_at, s.expires_at, s.idle_seconds, s.ip, s.user_agent,
		a.id, a.email, a.full_name, a.locale, a.kind, a.status, a.totp_enabled, a.security_question, a.created_at, a.email_when_videogram_watched
		FROM sessions s JOIN accounts a ON a.id = s.account_id
		WHERE s.token_hash = $1 AND s.kind = $2 AND s.revoked_at IS NULL AND s.expires_at > $3`,
		digest(token), string(kind), now).
		Scan(&sess.ID, &sess.AccountID, &sess.CreatedAt, &sess.LastSeenAt, &sess.ExpiresAt, &idle, &sess.IP, &sess.UserAgent,
			&acct.ID, &acct.Email, &acct.FullName, &acct.Locale, &acct.Kind, &acct.Status, &acct.TwoFactor, &acct.SecurityQuestion, &acct.CreatedAt, &acct.EmailWhenWatched)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, Session{}, ErrUnauthenticated
	}
	if err != nil {
		return Account{}, Session{}, fmt.Errorf("identity: authenticate: %w", err)
	}
	sess.Kind = kind
	// The last use is written at most every touch interval, so the stored time may
	// be that much behind: a session is idle only past its limit plus the interval
	// (at most an interval late, never early, however short the limit is set).
	touch := touchEvery
	if idle > 0 {
		touch = min(touchEvery, time.Duration(idle)*time.Second/30)
	}
	if acct.Status != "active" || (idle > 0 && now.Sub(sess.LastSeenAt) > time.Duration(idle)*time.Second+touch) {
		return Account{}, Session{}, ErrUnauthenticated
	}
	// The first use is always written, so "not used yet" never outlives it.
	if now.Sub(sess.LastSeenAt) > touch || sess.LastSeenAt.Equal(sess.CreatedAt) {
		if _, err := s.db.Write().ExecContext(ctx, "UPDATE sessions SET last_seen_at = $2 WHERE id = $1", sess.ID, now); err != nil {
			return Account{}, Session{}, fmt.Errorf("identity: touch session: %w", err)
		}
		sess.LastSeenAt = now
	}
	return acct, sess, nil
}

// Logout ends the session of a token at once. An unknown token is not an error.
func (s *Service) Logout(ctx context.Context, token string, c Client) error {
	if token == "" {
		return nil
	}
	var accountID string
	err := s.db.Write().QueryRowContext(ctx, `UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL
		RETURNING account_id`, digest(token), s.now().UTC()).Scan(&accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("identity: logout: %w", err)
	}
	return s.record(ctx, s.db.Write(), accountID, EventLogout, c)
}

// Sessions lists an account's live browser sessions and app tokens, newest first.
func (s *Service) Sessions(ctx context.Context, accountID string) ([]Session, error) {
	return s.sessionsOfKind(ctx, accountID, WebSession, APISession, StaffSession)
}

func (s *Service) sessionsOfKind(ctx context.Context, accountID string, kinds ...SessionKind) ([]Session, error) {
	args := []any{accountID, s.now().UTC()}
	for _, k := range kinds {
		args = append(args, string(k))
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id, kind, created_at, last_seen_at, expires_at, ip, user_agent FROM sessions
		WHERE account_id = $1 AND kind IN (`+database.Placeholders(3, len(kinds))+`) AND revoked_at IS NULL AND expires_at > $2
		ORDER BY last_seen_at DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("identity: sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		sess := Session{AccountID: accountID}
		if err := rows.Scan(&sess.ID, &sess.Kind, &sess.CreatedAt, &sess.LastSeenAt, &sess.ExpiresAt, &sess.IP, &sess.UserAgent); err != nil {
			return nil, fmt.Errorf("identity: sessions: %w", err)
		}
		out = append(out, sess)
	}
	return out, rows.Err()
}

// RevokeSession signs out one session of the account. A session of another account
// is ErrNotFound: ids are checked against their owner.
func (s *Service) RevokeSession(ctx context.Context, accountID, sessionID string, c Client) error {
	if !ids.Valid(sessionID) {
		return ErrNotFound
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL",
			sessionID, accountID, s.now().UTC())
		if err != nil {
			return fmt.Errorf("identity: revoke session: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		var kind string
		if err := tx.QueryRowContext(ctx, "SELECT kind FROM sessions WHERE id = $1", sessionID).Scan(&kind); err != nil {
			return err
		}
		if kind == string(StaffAPI) {
			if err := s.auditStaff(ctx, tx, accountID, "token.revoke", c); err != nil {
				return err
			}
		}
		return s.record(ctx, tx, accountID, EventSessionRevoked, c)
	})
}

// revokeAll ends every session of an account but keep (which may be ""). With
// nothing kept (a reset, a disable, an administrator's reset) the account's known
// devices are forgotten too; a password change from a signed-in device keeps them.
func (s *Service) revokeAll(ctx context.Context, q querier, accountID, keep string) error {
	_, err := q.ExecContext(ctx, "UPDATE sessions SET revoked_at = $3 WHERE account_id = $1 AND id <> $2 AND revoked_at IS NULL",
		accountID, keep, s.now().UTC())
	if err != nil {
		return fmt.Errorf("identity: revoke sessions: %w", err)
	}
	if keep == "" {
		return forgetDevices(ctx, q, accountID)
	}
	return nil
}

// CreateStaffToken gives a signed-in staff member a long-lived token for automated
// roster syncs; it is shown once. It needs the password (a fresh proof).
func (s *Service) CreateStaffToken(ctx context.Context, accountID, password, label string, c Client) (Session, error) {
	acct, err := s.reauthenticate(ctx, accountID, password, c)
	if err != nil {
		return Session{}, err
	}
	if acct.Kind != "staff" {
		return Session{}, ErrUnauthenticated
	}
	if label = strings.TrimSpace(label); label == "" {
		label = "roster sync"
	}
	var sess Session
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if sess, err = s.newSession(ctx, tx, accountID, StaffAPI, Client{IP: c.IP, UserAgent: "token: " + truncate(label, 80)}); err != nil {
			return err
		}
		return s.auditStaff(ctx, tx, accountID, "token.create", c)
	})
	return sess, err
}

// StaffTokens lists a staff member's live tokens.
func (s *Service) StaffTokens(ctx context.Context, accountID string) ([]Session, error) {
	all, err := s.sessionsOfKind(ctx, accountID, StaffAPI)
	return all, err
}
