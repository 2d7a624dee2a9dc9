package identity

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"net/mail"
	"slices"
	"strings"

	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/throttle"
)

// SecurityQuestions are the ids of the questions a family can choose; their words, in
// every language, are in the i18n catalogs under "question.<id>".
var SecurityQuestions = []string{
	"first_pet", "childhood_street", "first_school", "favorite_teacher", "parents_met_city",
	"first_job", "childhood_friend", "favorite_childhood_book", "oldest_cousin", "first_concert",
}

// SignupRequest is what a family member fills in to create an account.
type SignupRequest struct {
	Email            string
	Password         string
	FullName         string
	SecurityQuestion string
	SecurityAnswer   string
	Locale           string
}

// CodeLength is the number of digits of emailed codes.
const CodeLength = 6

func newCode() string {
	var b strings.Builder
	for range CodeLength {
		n, _ := rand.Int(rand.Reader, big.NewInt(10))
		b.WriteByte(byte('0' + n.Int64()))
	}
	return b.String()
}

// validEmail accepts a plain address (no display name) of sensible length.
func validEmail(e string) bool {
	if len(e) > 254 || strings.ContainsAny(e, " <>\"") {
		return false
	}
	a, err := mail.ParseAddress(e)
	return err == nil && a.Address == e && strings.Contains(e[strings.LastIndex(e, "@"):], ".")
}

func (s *Service) validateSignup(r SignupRequest) error {
	var v ValidationError
	name := strings.TrimSpace(r.FullName)
	switch {
	case name == "":
		v.add("full_name", "required")
	case len([]rune(name)) > 200:
		v.add("full_name", "too_long")
	}
	email := NormalizeEmail(r.Email)
	switch {
	case email == "":
		v.add("email", "required")
	case !validEmail(email):
		v.add("email", "invalid")
	}
	if !slices.Contains(SecurityQuestions, r.SecurityQuestion) {
		v.add("security_question_id", "invalid")
	}
	answer := NormalizeAnswer(r.SecurityAnswer)
	switch {
	case answer == "":
		v.add("security_answer", "required")
	case len([]rune(answer)) < 2:
		v.add("security_answer", "too_short")
	case len([]rune(answer)) > 200:
		v.add("security_answer", "too_long")
	}
	if r.Password == "" {
		v.add("password", "required")
	} else if reasons := s.CheckPassword(r.Password, email, name); len(reasons) > 0 {
		v.add("password", "weak_password")
		v.Reasons = reasons
	}
	return v.orNil()
}

// Signup starts an account: it validates the request and emails a code to verify
// the address. For an address that already has an account it does the same work and
// answers the same, changes nothing, and mails the owner that someone tried
// (SECURITY.md 7). An unverified account may be claimed again by a new sign-up:
// until the code is entered, nobody has proved they own the address.
func (s *Service) Signup(ctx context.Context, r SignupRequest, c Client) error {
	if err := s.validateSignup(r); err != nil {
		return err
	}
	email := NormalizeEmail(r.Email)
	if err := s.throttle.Reserve(ctx, []string{"signup:email:" + email, "signup:ip:" + ipKey(c.IP)},
		[]throttle.Rule{s.cfg.RequestsPerEmail, s.cfg.RequestsPerIP}); err != nil {
		return err
	}
	// Hash before looking the address up, so both paths cost the same.
	pwHash, err := s.hasher.Hash(ctx, NormalizePassword(r.Password))
	if err != nil {
		return err
	}
	answerHash, err := s.hasher.Hash(ctx, NormalizeAnswer(r.SecurityAnswer))
	if err != nil {
		return err
	}
	now := s.now().UTC()
	locale := s.locale(r.Locale)
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		existing, err := accountByEmail(ctx, tx, email)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if existing != nil && existing.Status != "pending" {
			if err := s.record(ctx, tx, existing.ID, EventSignupAttempt, c); err != nil {
				return err
			}
			return kmail.Enqueue(ctx, tx, kmail.Message{To: existing.Email, Template: "signup_exists", Locale: existing.Locale,
				Data: map[string]string{"Name": existing.FullName, "LoginLink": s.link("/login"), "ResetLink": s.link("/password/forgot")}})
		}
		id := newID()
		if existing != nil {
			id = existing.ID
			_, err = tx.ExecContext(ctx, `UPDATE accounts SET full_name = $2, locale = $3, password_hash = $4, security_question = $5,
				security_answer_hash = $6, password_changed_at = $7 WHERE id = $1`,
				id, strings.TrimSpace(r.FullName), locale, pwHash, r.SecurityQuestion, answerHash, now)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question,
				security_answer_hash, status, created_at, password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)`,
				id, email, strings.TrimSpace(r.FullName), locale, pwHash, r.SecurityQuestion, answerHash, now)
		}
		if err != nil {
			return fmt.Errorf("identity: signup: %w", err)
		}
		code, link, err := s.issueCode(ctx, tx, id, "signup")
		if err != nil {
			return err
		}
		return kmail.Enqueue(ctx, tx, kmail.Message{To: email, Template: "signup_code", Locale: locale,
			Data: map[string]string{"Name": strings.TrimSpace(r.FullName), "Code": code, "Link": s.link("/signup/verify?t=" + link)}})
	})
}

// issueCode voids the open codes of the purpose and stores a new code and link token.
func (s *Service) issueCode(ctx context.Context, tx *sql.Tx, accountID, purpose string) (code, link string, err error) {
	now := s.now().UTC()
	if err := voidCodes(ctx, tx, accountID, purpose, now); err != nil {
		return "", "", err
	}
	id, code, link := newID(), newCode(), randomToken()
	_, err = tx.ExecContext(ctx, `INSERT INTO email_codes (id, account_id, purpose, code_hash, link_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, accountID, purpose, digest(id, code), digest(link), now, now.Add(s.cfg.CodeTTL))
	if err != nil {
		return "", "", fmt.Errorf("identity: issue code: %w", err)
	}
	return code, link, nil
}

// link builds an absolute link from the configured base URL, never from the request.
func (s *Service) link(pathAndQuery string) string { return s.cfg.BaseURL + pathAndQuery }

// checkCode verifies a code typed for an account and purpose. Wrong guesses count
// per account across all its codes; the fifth voids them all. Unknown accounts,
// missing codes and wrong codes all give ErrInvalidCode.
func (s *Service) checkCode(ctx context.Context, acct *account, purpose, code string) (*emailCode, error) {
	if acct == nil {
		return nil, ErrInvalidCode
	}
	guessKey := "code:" + purpose + ":" + acct.ID
	if n, err := s.throttle.Failures(ctx, guessKey); err != nil {
		return nil, err
	} else if n >= codeGuessRule.Max {
		return nil, ErrInvalidCode
	}
	now := s.now().UTC()
	open, err := openCode(ctx, s.db.Write(), acct.ID, purpose, now)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidCode
	}
	if err != nil {
		return nil, err
	}
	if !open.verified && digest(open.id, strings.TrimSpace(code)) == open.codeHash {
		return open, nil
	}
	err = s.throttle.Reserve(ctx, []string{guessKey}, []throttle.Rule{codeGuessRule})
	if n, _ := s.throttle.Failures(ctx, guessKey); n >= codeGuessRule.Max || err != nil {
		if err := voidCodes(ctx, s.db.Write(), acct.ID, purpose, now); err != nil {
			return nil, err
		}
		if purpose == "reset" {
			s.record(ctx, s.db.Write(), acct.ID, EventResetVoided, Client{})
		}
	}
	return nil, ErrInvalidCode
}

// VerifySignup activates an account with the emailed code and signs it in.
func (s *Service) VerifySignup(ctx context.Context, email, code string, kind SessionKind, c Client) (Account, Session, error) {
	if err := s.throttle.Reserve(ctx, []string{"code:ip:" + ipKey(c.IP)}, []throttle.Rule{s.cfg.CodesPerIP}); err != nil {
		return Account{}, Session{}, err
	}
	acct, err := accountByEmail(ctx, s.db.Read(), NormalizeEmail(email))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Account{}, Session{}, err
	}
	if acct != nil && acct.Status != "pending" {
		acct = nil
	}
	open, err := s.checkCode(ctx, acct, "signup", code)
	if err != nil {
		return Account{}, Session{}, err
	}
	return s.activate(ctx, acct, open, kind, c)
}

// VerifySignupLink activates an account from the link in its email.
func (s *Service) VerifySignupLink(ctx context.Context, link string, kind SessionKind, c Client) (Account, Session, error) {
	if err := s.throttle.Reserve(ctx, []string{"code:ip:" + ipKey(c.IP)}, []throttle.Rule{s.cfg.CodesPerIP}); err != nil {
		return Account{}, Session{}, err
	}
	open, err := openCodeBy(ctx, s.db.Read(), "link_hash", digest(link), "signup", s.now().UTC())
	if errors.Is(err, ErrNotFound) {
		return Account{}, Session{}, ErrInvalidCode
	}
	if err != nil {
		return Account{}, Session{}, err
	}
	acct, err := accountByID(ctx, s.db.Read(), open.accountID)
	if err != nil {
		return Account{}, Session{}, err
	}
	return s.activate(ctx, acct, open, kind, c)
}

func (s *Service) activate(ctx context.Context, acct *account, code *emailCode, kind SessionKind, c Client) (Account, Session, error) {
	var sess Session
	now := s.now().UTC()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE email_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND voided_at IS NULL", code.id, now)
		if err != nil {
			return fmt.Errorf("identity: use code: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrInvalidCode // used by a parallel request
		}
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET status = 'active', activated_at = $2 WHERE id = $1 AND status = 'pending'", acct.ID, now); err != nil {
			return fmt.Errorf("identity: activate: %w", err)
		}
		if err := s.record(ctx, tx, acct.ID, EventSignup, c); err != nil {
			return err
		}
		sess, err = s.newSession(ctx, tx, acct.ID, kind, c)
		return err
	})
	if err != nil {
		return Account{}, Session{}, err
	}
	acct.Status = "active"
	return acct.Account, sess, nil
}

// EnsureAccount creates an active account without email verification, for demo data
// and operator set-up; an existing account with the email is left as it is. The
// password must pass the same policy as any other.
func (s *Service) EnsureAccount(ctx context.Context, r SignupRequest) (created bool, err error) {
	if err := s.validateSignup(r); err != nil {
		return false, err
	}
	email := NormalizeEmail(r.Email)
	if _, err := accountByEmail(ctx, s.db.Read(), email); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	pwHash, err := s.hasher.Hash(ctx, NormalizePassword(r.Password))
	if err != nil {
		return false, err
	}
	answerHash, err := s.hasher.Hash(ctx, NormalizeAnswer(r.SecurityAnswer))
	if err != nil {
		return false, err
	}
	now := s.now().UTC()
	_, err = s.db.Write().ExecContext(ctx, `INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question,
		security_answer_hash, status, created_at, activated_at, password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8, $8)
		ON CONFLICT (email) DO NOTHING`,
		newID(), email, strings.TrimSpace(r.FullName), s.locale(r.Locale), pwHash, r.SecurityQuestion, answerHash, now)
	if err != nil {
		return false, fmt.Errorf("identity: ensure account: %w", err)
	}
	return true, nil
}
