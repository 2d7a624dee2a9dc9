package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kinlink/kinlink/internal/ids"
)

// Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"):
// a successful login hands the browser or app a device token bound to the account.
// A later login that brings it back is counted against that device alone, so failures
// made elsewhere by anyone who knows the address never lock the owner out of a device
// they have signed in on; logins without one are the "untrusted" ones that the
// email's limits throttle. A device can be locked by its own failures like an email.

// DeviceTTL is how long a device stays known without a login from it.
const DeviceTTL = 180 * 24 * time.Hour

// maxDevices is how many devices an account keeps; the least recently used go first.
const maxDevices = 20

// MaxDeviceTokens is how many device tokens one login may bring (a browser shared
// by a household keeps one per account signed in on it).
const MaxDeviceTokens = 5

// knownDev is a device of the account that a login brought: its id and token.
type knownDev struct{ id, token string }

// knownDevice returns the first token that is a live device of the account, or
// none. Tokens are stored as digests keyed by the account id, so a token is bound to
// its account: another account's token is simply unknown. For an unknown address
// (accountID "") the same queries run and find nothing.
func (s *Service) knownDevice(ctx context.Context, accountID string, tokens []string) (knownDev, error) {
	now := s.now().UTC()
	for i, tok := range tokens {
		if i == MaxDeviceTokens {
			break
		}
		if tok == "" || len(tok) > 100 {
			continue
		}
		var id string
		err := s.db.Read().QueryRowContext(ctx, "SELECT id FROM devices WHERE token_hash = $1 AND account_id = $2 AND expires_at > $3",
			digest(accountID, tok), accountID, now).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return knownDev{}, fmt.Errorf("identity: device: %w", err)
		}
		return knownDev{id, tok}, nil
	}
	return knownDev{}, nil
}

// keepDevice is the device token a successful login hands back: the known device's
// own (its life extended), or a new one. The account keeps its newest maxDevices.
func (s *Service) keepDevice(ctx context.Context, q querier, accountID, deviceID, presented string) (string, error) {
	now := s.now().UTC()
	if deviceID != "" {
		if _, err := q.ExecContext(ctx, "UPDATE devices SET last_used_at = $2, expires_at = $3 WHERE id = $1",
			deviceID, now, now.Add(DeviceTTL)); err != nil {
			return "", fmt.Errorf("identity: device: %w", err)
		}
		return presented, nil
	}
	tok := randomToken()
	if _, err := q.ExecContext(ctx, `INSERT INTO devices (id, account_id, token_hash, created_at, last_used_at, expires_at)
		VALUES ($1, $2, $3, $4, $4, $5)`, ids.New(), accountID, digest(accountID, tok), now, now.Add(DeviceTTL)); err != nil {
		return "", fmt.Errorf("identity: new device: %w", err)
	}
	if _, err := q.ExecContext(ctx, `DELETE FROM devices WHERE account_id = $1 AND (expires_at <= $2 OR id NOT IN
		(SELECT id FROM devices WHERE account_id = $1 ORDER BY last_used_at DESC, id LIMIT $3))`, accountID, now, maxDevices); err != nil {
		return "", fmt.Errorf("identity: prune devices: %w", err)
	}
	return tok, nil
}

// forgetDevices ends every device of an account: after a reset, a disable or an
// administrator's reset nothing from before is trusted any more.
func forgetDevices(ctx context.Context, q querier, accountID string) error {
	if _, err := q.ExecContext(ctx, "DELETE FROM devices WHERE account_id = $1", accountID); err != nil {
		return fmt.Errorf("identity: forget devices: %w", err)
	}
	return nil
}
