package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	kmail "github.com/kinlink/kinlink/internal/mail"
)

var totpOpts = totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// matchTOTP finds the time step a code belongs to, allowing one step of clock skew
// either way (SECURITY.md 26), and returns it so that it can be used only once.
func matchTOTP(secret, code string, now time.Time) (int64, bool) {
	if secret == "" {
		return 0, false
	}
	step := now.Unix() / 30
	for _, s := range []int64{step, step - 1, step + 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*30, 0), totpOpts)
		if err == nil && want == code {
			return s, true
		}
	}
	return 0, false
}

// TwoFactorSetup is what the person needs to add Kinlink to an authenticator app.
type TwoFactorSetup struct {
	Secret string // base32, for typing in by hand
	URI    string // otpauth:// URI, the QR code's content
	QRPNG  []byte // the QR code as a PNG image
}

// BeginTwoFactor makes a new secret for the account and keeps it aside until the
// person proves their app has it (EnableTwoFactor). Calling it again replaces it.
func (s *Service) BeginTwoFactor(ctx context.Context, accountID string) (TwoFactorSetup, error) {
	acct, err := accountByID(ctx, s.db.Read(), accountID)
	if err != nil {
		return TwoFactorSetup{}, err
	}
	if acct.TwoFactor {
		return TwoFactorSetup{}, errors.New("identity: two-step verification is already on")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "Kinlink", AccountName: acct.Email, Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return TwoFactorSetup{}, fmt.Errorf("identity: totp: %w", err)
	}
	if _, err := s.db.Write().ExecContext(ctx, "UPDATE accounts SET totp_secret = $2 WHERE id = $1 AND totp_enabled = FALSE", accountID, key.Secret()); err != nil {
		return TwoFactorSetup{}, fmt.Errorf("identity: totp: %w", err)
	}
	return setupFor(key)
}

// PendingTwoFactor returns the setup begun but not yet confirmed, if any.
func (s *Service) PendingTwoFactor(ctx context.Context, accountID string) (TwoFactorSetup, bool, error) {
	acct, err := accountByID(ctx, s.db.Read(), accountID)
	if err != nil || acct.TwoFactor || acct.totpSecret == "" {
		return TwoFactorSetup{}, false, err
	}
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/Kinlink:" + acct.Email, RawQuery: url.Values{
		"secret": {acct.totpSecret}, "issuer": {"Kinlink"}, "period": {"30"}, "digits": {"6"}, "algorithm": {"SHA1"},
	}.Encode()}
	key, err := otp.NewKeyFromURL(u.String())
	if err != nil {
		return TwoFactorSetup{}, false, err
	}
	setup, err := setupFor(key)
	return setup, err == nil, err
}

func setupFor(key *otp.Key) (TwoFactorSetup, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return TwoFactorSetup{}, fmt.Errorf("identity: qr: %w", err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return TwoFactorSetup{}, err
	}
	return TwoFactorSetup{Secret: key.Secret(), URI: key.URL(), QRPNG: b.Bytes()}, nil
}

// EnableTwoFactor turns two-step verification on once the person enters a current
// code from their app and their password (a fresh proof, SECURITY.md 24). It returns
// ten one-time recovery codes, shown once.
func (s *Service) EnableTwoFactor(ctx context.Context, accountID, password, code string, c Client) ([]string, error) {
	acct, err := s.reauthenticate(ctx, accountID, password, c)
	if err != nil {
		return nil, err
	}
	if acct.TwoFactor || acct.totpSecret == "" {
		return nil, ErrInvalidSecondFactor
	}
	step, ok := matchTOTP(acct.totpSecret, strings.ReplaceAll(strings.TrimSpace(code), " ", ""), s.now())
	if !ok {
		return nil, ErrInvalidSecondFactor
	}
	codes := make([]string, 10)
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET totp_enabled = TRUE, totp_last_step = $2 WHERE id = $1", accountID, step); err != nil {
			return fmt.Errorf("identity: enable totp: %w", err)
		}
		if err := s.replaceRecoveryCodes(ctx, tx, accountID, codes); err != nil {
			return err
		}
		if err := s.record(ctx, tx, accountID, EventTwoFactorOn, c); err != nil {
			return err
		}
		return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "security_change", Locale: acct.Locale,
			Data: map[string]string{"Name": acct.FullName, "Change": EventTwoFactorOn, "ResetLink": s.link("/password/forgot")}})
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// DisableTwoFactor turns two-step verification off; it needs the password.
func (s *Service) DisableTwoFactor(ctx context.Context, accountID, password string, c Client) error {
	acct, err := s.reauthenticate(ctx, accountID, password, c)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET totp_enabled = FALSE, totp_secret = NULL WHERE id = $1", accountID); err != nil {
			return fmt.Errorf("identity: disable totp: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM recovery_codes WHERE account_id = $1", accountID); err != nil {
			return fmt.Errorf("identity: recovery codes: %w", err)
		}
		if err := s.record(ctx, tx, accountID, EventTwoFactorOff, c); err != nil {
			return err
		}
		return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "security_change", Locale: acct.Locale,
			Data: map[string]string{"Name": acct.FullName, "Change": EventTwoFactorOff, "ResetLink": s.link("/password/forgot")}})
	})
}

// replaceRecoveryCodes fills codes with new recovery codes and stores their digests
// in place of the account's old ones.
func (s *Service) replaceRecoveryCodes(ctx context.Context, tx *sql.Tx, accountID string, codes []string) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM recovery_codes WHERE account_id = $1", accountID); err != nil {
		return fmt.Errorf("identity: recovery codes: %w", err)
	}
	now := s.now().UTC()
	for i := range codes {
		codes[i] = newRecoveryCode()
		if _, err := tx.ExecContext(ctx, "INSERT INTO recovery_codes (account_id, code_hash, created_at) VALUES ($1, $2, $3)",
			accountID, digest(accountID, normalizeRecovery(codes[i])), now); err != nil {
			return fmt.Errorf("identity: recovery codes: %w", err)
		}
	}
	return nil
}

// newRecoveryCode returns 50 random bits as "xxxxx-xxxxx" in lower-case base32.
func newRecoveryCode() string {
	b := make([]byte, 7)
	rand.Read(b)
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:10]
	return s[:5] + "-" + s[5:]
}

func normalizeRecovery(code string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
}

// useRecoveryCode spends one recovery code, once.
func (s *Service) useRecoveryCode(ctx context.Context, accountID, code string, c Client) error {
	n := normalizeRecovery(code)
	if len(n) != 10 {
		return ErrInvalidSecondFactor
	}
	res, err := s.db.Write().ExecContext(ctx, "UPDATE recovery_codes SET used_at = $3 WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL",
		accountID, digest(accountID, n), s.now().UTC())
	if err != nil {
		return fmt.Errorf("identity: recovery code: %w", err)
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return ErrInvalidSecondFactor
	}
	return s.record(ctx, s.db.Write(), accountID, EventRecoveryCodeUsed, c)
}
