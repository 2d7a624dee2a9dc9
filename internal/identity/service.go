// Package identity owns family accounts and everything that proves who someone is:
// sign-up with email verification, passwords, login and its limits, sessions and API
// tokens, password reset by emailed code and security question, two-step
// verification with an authenticator app, and the security events shown to the
// account holder. The web pages and the mobile API call the same Service methods.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"
	"github.com/kinlink/kinlink/internal/throttle"
)

// Refusals, each with its stable code.
var (
	ErrInvalidCredentials   = problem.Declare(problem.Unauthenticated, "invalid_credentials", "identity: invalid credentials")
	ErrSecondFactorRequired = problem.Declare(problem.Unauthenticated, "second_factor_required", "identity: second factor required")
	ErrInvalidSecondFactor  = problem.Declare(problem.Unauthenticated, "invalid_second_factor", "identity: invalid second factor code")
	// ErrSecondFactorUsed is an authenticator code used already within its 30
	// seconds: right, but spent (a replay, or a second sign-in too soon).
	ErrSecondFactorUsed = problem.Declare(problem.Unauthenticated, "invalid_second_factor", "identity: second factor code already used").
				Say("login.code.used")
	ErrInvalidCode   = problem.Declare(problem.Invalid, "invalid_code", "identity: invalid or expired code")
	ErrInvalidAnswer = problem.Declare(problem.Invalid, "invalid_answer", "identity: wrong security answer")
	ErrInvalidToken  = problem.Declare(problem.Invalid, "invalid_token", "identity: invalid or expired token")
	// ErrWrongPassword is a signed-in person's password, asked again before a
	// sensitive change, typed wrong.
	ErrWrongPassword   = problem.Declare(problem.Unauthenticated, "invalid_credentials", "identity: wrong password").Say("account.wrong_password")
	ErrUnauthenticated = problem.Declare(problem.Unauthenticated, "unauthenticated", "identity: not signed in")
	ErrNotFound        = problem.Declare(problem.NotFound, "not_found", "identity: not found")

	errInvalid = problem.Declare(problem.Invalid, "invalid_request", "identity: invalid request")
	errWeak    = problem.Declare(problem.Invalid, "weak_password", "identity: weak password")
)

// ValidationError lists what is wrong with a request, field by field, as stable
// codes ("required", "invalid", "too_long", "weak_password"...).
type ValidationError struct {
	Fields  map[string]string
	Reasons []string // why the password was refused, when it was
}

func (v *ValidationError) Error() string {
	return fmt.Sprintf("identity: invalid request: %v", v.Fields)
}

// Problem is the refusal: weak_password when the password is the only problem (the
// API's contract), else invalid_request naming the fields.
func (v *ValidationError) Problem() *problem.Error {
	if v.OnlyWeakPassword() {
		return errWeak.WithFields(v.Fields).WithReasons(v.Reasons)
	}
	return errInvalid.WithFields(v.Fields).WithReasons(v.Reasons)
}

// OnlyWeakPassword reports whether the password is the only problem.
func (v *ValidationError) OnlyWeakPassword() bool {
	return len(v.Fields) == 1 && v.Fields["password"] == "weak_password"
}

func (v *ValidationError) add(field, code string) {
	if v.Fields == nil {
		v.Fields = map[string]string{}
	}
	if _, ok := v.Fields[field]; !ok {
		v.Fields[field] = code
	}
}

// name checks a name a person typed, as roster names are checked (textsafe): one
// holding a direction override or another invisible format character is refused
// ("hidden_characters"), since every page that shows it would show other text than
// the stored one. It returns the name as it is kept.
func (v *ValidationError) name(field, typed string) string {
	name := textsafe.Name(typed)
	switch {
	case name == "":
		v.add(field, "required")
	case textsafe.HasHidden(typed):
		v.add(field, "hidden_characters")
	case len([]rune(name)) > 200:
		v.add(field, "too_long")
	}
	return name
}

func (v *ValidationError) orNil() error {
	if len(v.Fields) == 0 {
		return nil
	}
	return v
}

// SessionKind says what a session is for.
type SessionKind string

const (
	WebSession   SessionKind = "web"
	APISession   SessionKind = "api"
	SecondFactor SessionKind = "second_factor" // password checked, code still to enter
	StaffSession SessionKind = "staff"         // the staff portal
	StaffAPI     SessionKind = "staff_api"     // a staff member's token for automated roster syncs
)

// accountKind is the kind of account a session kind belongs to.
func accountKind(k SessionKind) string {
	if k == StaffSession || k == StaffAPI {
		return "staff"
	}
	return "family"
}

// Client describes who is asking: the address (after trusted-proxy handling) and
// the browser or app, for limits and for the account's list of sessions and events.
type Client struct {
	IP        string
	UserAgent string
}

// Config holds the limits and lifetimes of identity, all operator settings.
type Config struct {
	BaseURL          string        // links in emails are built from it, never from a request
	LoginPerEmail    throttle.Rule // failed logins per email
	LoginPerIP       throttle.Rule // failed logins per client address
	RequestsPerEmail throttle.Rule // sign-up and reset requests per email
	RequestsPerIP    throttle.Rule // sign-up and reset requests per client address
	CodesPerIP       throttle.Rule // code guesses per client address
	WebIdle          time.Duration
	WebMax           time.Duration
	StaffIdle        time.Duration // staff portal sessions
	StaffMax         time.Duration
	EnrolTTL         time.Duration // staff enrolment links
	APITokenTTL      time.Duration
	CodeTTL          time.Duration // email codes and links
	ResetWait        time.Duration // a reset without the security answer waits this long (reset_wait.go)
	ResetWaitOpen    time.Duration // and can then be finished for this long
	WaitsPerAccount  throttle.Rule // resets without the answer started per account (each mails the owner)
	Locales          []string      // accepted preferred languages; the first is the default
}

// DefaultConfig is what the settings default to.
func DefaultConfig() Config {
	return Config{
		BaseURL:          "http://localhost:8080",
		LoginPerEmail:    throttle.Rule{Max: 10, Window: 15 * time.Minute, Lockout: 15 * time.Minute},
		LoginPerIP:       throttle.Rule{Max: 100, Window: 15 * time.Minute, Lockout: 15 * time.Minute},
		RequestsPerEmail: throttle.Rule{Max: 5, Window: time.Hour, Lockout: time.Hour},
		RequestsPerIP:    throttle.Rule{Max: 50, Window: time.Hour, Lockout: time.Hour},
		CodesPerIP:       throttle.Rule{Max: 50, Window: 15 * time.Minute, Lockout: 15 * time.Minute},
		WebIdle:          2 * time.Hour,
		WebMax:           7 * 24 * time.Hour,
		StaffIdle:        30 * time.Minute,
		StaffMax:         12 * time.Hour,
		EnrolTTL:         7 * 24 * time.Hour,
		APITokenTTL:      30 * 24 * time.Hour,
		CodeTTL:          30 * time.Minute,
		ResetWait:        24 * time.Hour,
		ResetWaitOpen:    72 * time.Hour,
		WaitsPerAccount:  throttle.Rule{Max: 3, Window: 24 * time.Hour, Lockout: 24 * time.Hour},
		Locales:          []string{"en", "es"},
	}
}

// Per-code limits that are rules of the system, not settings (SECURITY.md 13, 15):
// wrong guesses of one emailed code, wrong answers in one reset.
const (
	maxCodeFail   = 5
	maxAnswerFail = 3
)

// Service is identity's use cases.
type Service struct {
	db       *database.DB
	hasher   *Hasher
	common   *CommonPasswords
	throttle *throttle.Throttle
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	dummy    string // a hash to verify against for unknown emails, so timing matches
	wake     func() // tells the job workers that jobs were just queued
	// auditStaff records a staff member's sign-in or credential change in the audit
	// log, inside the transaction of the change.
	auditStaff func(ctx context.Context, tx *sql.Tx, accountID, action string, c Client) error
}

// NewService builds the service. It computes one dummy hash at start.
func NewService(ctx context.Context, db *database.DB, hasher *Hasher, common *CommonPasswords, cfg Config, log *slog.Logger) (*Service, error) {
	s := &Service{db: db, hasher: hasher, common: common, throttle: throttle.New(db), cfg: cfg, log: log, now: time.Now, wake: func() {},
		auditStaff: func(context.Context, *sql.Tx, string, string, Client) error { return nil }}
	dummy, err := hasher.Hash(ctx, randomToken())
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	s.dummy = dummy
	return s, nil
}

// WakeJobsWith sets what to call after committing work that queued jobs (mail, reset
// requests), so workers start at once instead of at their next poll.
func (s *Service) WakeJobsWith(f func()) { s.wake = f }

// AuditStaffWith sets what records staff sign-ins and token changes in the audit
// log, inside their transaction (the audit log belongs to the facility side).
func (s *Service) AuditStaffWith(f func(ctx context.Context, tx *sql.Tx, accountID, action string, c Client) error) {
	s.auditStaff = f
}

// Hasher is the password hasher, shared with other secrets that need argon2id (PINs).
func (s *Service) Hasher() *Hasher { return s.hasher }

// Config returns the service's limits and lifetimes.
func (s *Service) Config() Config { return s.cfg }

// CheckPassword says why a new family password would be refused, or nil.
func (s *Service) CheckPassword(password string, context ...string) []string {
	return s.common.CheckPassword(password, MinPasswordFamily, context...)
}

func (s *Service) locale(l string) string {
	if slices.Contains(s.cfg.Locales, l) {
		return l
	}
	return s.cfg.Locales[0]
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// digest is how tokens and codes are stored: a token has 256 random bits, so a fast
// hash is enough; codes are short but expire in minutes and allow five guesses.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
