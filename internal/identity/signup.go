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

	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"

	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/throttle"
)

// securityQuestions are the ids of the questions a family can choose; their words, in
// every language, are in the i18n catalogs under "question.<id>".
var securityQuestions = []string{
	"first_pet", "childhood_street", "first_school", "favorite_teacher", "parents_met_city",
	"first_job", "childhood_friend", "favorite_childhood_book", "oldest_cousin", "first_concert",
}

// SecurityQuestions lists the ids of the questions a family can choose; the list is a copy, so changing it changes nothing.
func SecurityQuestions() []string { return slices.Clone(securityQuestions) }

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
	name := v.name("full_name", r.FullName)
	email := NormalizeEmail(r.Email)
	switch {
	case email == "":
		v.add("email", "required")
	case !validEmail(email):
		v.add("email", "invalid")
	}
	if !slices.Contains(securityQuestions, r.SecurityQuestion) {
		v.add("security_question_id", "invalid")
	}
	checkAnswer(&v, r.SecurityAnswer)
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
// (SECURITY.md 7). An address whose account was never verified can be signed up
// again; each code carries the details of its own sign-up, so a second sign-up
// cannot change what the first one's code activates.
func (s *Service) Signup(ctx context.Context, r SignupRequest, c Client) error {
	if err := s.validateSignup(r); err != nil {
		return err
	}
	email := NormalizeEmail(r.Email)
	if err := s.throttle.Reserve(ctx, []string{"signup:email:" + email, "signup:ip:" + throttle.AddressKey(c.IP)},
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
	details := signupDetails{FullName: textsafe.Name(r.FullName), Locale: s.locale(r.Locale), PasswordHash: pwHash,
		Question: r.SecurityQuestion, AnswerHash: answerHash}
	defer s.wake()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Claim the address; of parallel sign-ups for a new address one inserts and
		// the others find its row, so none fails.
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question,
			security_answer_hash, status, created_at, password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)
			ON CONFLICT (email) DO NOTHING`,
			ids.New(), email, details.FullName, details.Locale, pwHash, r.SecurityQuestion, answerHash, now)
		if err != nil {
			return fmt.Errorf("identity: signup: %w", err)
		}
		acct, err := scanAccount(tx.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE email = $1"+s.db.ForUpdate(), email))
		if err != nil {
			return err
		}
		// An active account, or a staff account in any state (a pending one waits for
		// its own enrolment link), is never claimed or changed by a family sign-up: the
		// owner is told someone tried, as for any address that has an account.
		if acct.Status != "pending" || acct.Kind != "family" {
			if err := s.record(ctx, tx, acct.ID, EventSignupAttempt, c); err != nil {
				return err
			}
			if acct.Kind != "family" { // staff sign in at the portal: a family mail's links are not theirs
				return nil
			}
			return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: acct.Email, Template: "signup_exists", Locale: acct.Locale,
				Data: map[string]string{"Name": acct.FullName, "LoginLink": s.link("/login"), "ResetLink": s.link("/password/forgot")}})
		}
		code, link, err := s.insertCode(ctx, tx, acct.ID, "signup", &details)
		if err != nil {
			return err
		}
		return kmail.Enqueue(ctx, s.db, tx, kmail.Message{To: email, Template: "signup_code", Locale: details.Locale, Secret: true,
			Data: map[string]string{"Name": details.FullName, "Code": code, "Link": s.link("/signup/verify?t=" + link)}})
	})
}

// signupDetails are what a sign-up code activates.
type signupDetails struct {
	FullName, Locale, PasswordHash, Question, AnswerHash string
}

// issueCode voids the open codes of the purpose and stores a new code and link
// token. The account row is locked first, so that two parallel requests cannot both
// leave a code open.
func (s *Service) issueCode(ctx context.Context, tx *sql.Tx, accountID, purpose string) (code, link string, err error) {
	var id string
	if err := tx.QueryRowContext(ctx, "SELECT id FROM accounts WHERE id = $1"+s.db.ForUpdate(), accountID).Scan(&id); err != nil {
		return "", "", fmt.Errorf("identity: issue code: %w", err)
	}
	if err := voidCodes(ctx, tx, accountID, purpose, s.now().UTC()); err != nil {
		return "", "", err
	}
	return s.insertCode(ctx, tx, accountID, purpose, nil)
}

// insertCode stores a new code and link token, with the details a sign-up code
// activates.
func (s *Service) insertCode(ctx context.Context, tx *sql.Tx, accountID, purpose string, d *signupDetails) (code, link string, err error) {
	if d == nil {
		d = &signupDetails{}
	}
	now := s.now().UTC()
	id, code, link := ids.New(), newCode(), randomToken()
	_, err = tx.ExecContext(ctx, `INSERT INTO email_codes (id, account_id, purpose, code_hash, link_hash, created_at, expires_at,
		full_name, locale, password_hash, security_question, security_answer_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		id, accountID, purpose, digest(id, code), digest(link), now, now.Add(s.cfg.CodeTTL),
		d.FullName, d.Locale, d.PasswordHash, d.Question, d.AnswerHash)
	if err != nil {
		return "", "", fmt.Errorf("identity: issue code: %w", err)
	}
	return code, link, nil
}

// link builds an absolute link from the configured base URL, never from the request.
func (s *Service) link(pathAndQuery string) string { return s.cfg.BaseURL + pathAndQuery }

// checkCode verifies a code typed for an address and purpose. Guesses are counted
// per code (per sign-up or reset attempt), not per address: each guess is counted,
// atomically and before it is compared, against every open code it is compared
// with, and a code that has had maxCodeFail wrong guesses is no longer accepted when
// typed (its emailed link, 256 bits that cannot be guessed, still works). Parallel
// guesses thus get at most maxCodeFail comparisons per code, and a stranger's wrong
// codes never stop the owner from asking for a new code and using it, nor from
// following the link (issue 13). Addresses without an account (acct nil) run the
// same update, which finds nothing. Missing, wrong, spent and expired codes all give
// ErrInvalidCode.
func (s *Service) checkCode(ctx context.Context, acct *account, purpose, code string) (*emailCode, error) {
	accountID := ""
	if acct != nil {
		accountID = acct.ID
	}
	now := s.now().UTC()
	rows, err := s.db.Write().QueryContext(ctx, `UPDATE email_codes SET code_failures = code_failures + 1
		WHERE account_id = $1 AND purpose = $2 AND used_at IS NULL AND voided_at IS NULL AND verified_at IS NULL
		AND expires_at > $3 AND code_failures < $4 RETURNING id, code_failures`, accountID, purpose, now, maxCodeFail)
	if err != nil {
		return nil, fmt.Errorf("identity: count code guess: %w", err)
	}
	counted := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("identity: count code guess: %w", err)
		}
		counted[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("identity: count code guess: %w", err)
	}
	if len(counted) == 0 {
		return nil, ErrInvalidCode
	}
	codes, err := openCodes(ctx, s.db.Write(), accountID, purpose, now)
	if err != nil {
		return nil, err
	}
	for _, open := range codes {
		if _, ok := counted[open.id]; ok && !open.verified && digest(open.id, strings.TrimSpace(code)) == open.codeHash {
			// The right code gives its own attempt back.
			if _, err := s.db.Write().ExecContext(ctx, "UPDATE email_codes SET code_failures = code_failures - 1 WHERE id = $1", open.id); err != nil {
				return nil, fmt.Errorf("identity: code: %w", err)
			}
			return open, nil
		}
	}
	for _, n := range counted {
		if n == maxCodeFail && purpose == "reset" {
			if err := s.record(ctx, s.db.Write(), acct.ID, EventResetVoided, Client{}); err != nil {
				return nil, err
			}
			break
		}
	}
	return nil, ErrInvalidCode
}

// ErrSignupPassword is a verification whose password is not the one any open
// sign-up for the address chose.
var ErrSignupPassword = problem.Declare(problem.Unauthenticated, "invalid_credentials", "identity: not the password of this sign-up").
	On("password", "signup_password").Say("verify.wrong_password")

// VerifySignup activates an account with the emailed code and the password chosen at
// sign-up, and signs it in. The code proves the mailbox; the password says which
// sign-up it activates, so someone who signed up for another's address with their own
// password can never have it activated by the owner's code (the owner's mailbox
// receives the codes of every sign-up for the address). replaces is a session token
// the browser held before, which dies here.
func (s *Service) VerifySignup(ctx context.Context, email, code, password string, kind SessionKind, replaces string, c Client) (Account, Session, error) {
	if err := s.throttle.Reserve(ctx, []string{"code:ip:" + throttle.AddressKey(c.IP)}, []throttle.Rule{s.cfg.CodesPerIP}); err != nil {
		return Account{}, Session{}, err
	}
	acct, err := accountByEmail(ctx, s.db.Read(), NormalizeEmail(email))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Account{}, Session{}, err
	}
	if acct != nil && (acct.Status != "pending" || acct.Kind != "family") {
		acct = nil
	}
	if _, err := s.checkCode(ctx, acct, "signup", code); err != nil {
		return Account{}, Session{}, err
	}
	chosen, err := s.signupOf(ctx, acct.ID, password)
	if err != nil {
		return Account{}, Session{}, err
	}
	return s.activate(ctx, acct, chosen, kind, replaces, c)
}

// signupOf finds the open sign-up of an account whose password is this one. Each
// sign-up keeps its own details with its code; at most the newest few are tried,
// which the limit on sign-up requests per address keeps to a handful anyway.
func (s *Service) signupOf(ctx context.Context, accountID, password string) (*emailCode, error) {
	if password == "" || len(password) > MaxPasswordBytes {
		return nil, ErrSignupPassword
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id, password_hash FROM email_codes WHERE account_id = $1 AND purpose = 'signup'
		AND used_at IS NULL AND voided_at IS NULL AND expires_at > $2 ORDER BY created_at DESC LIMIT 5`, accountID, s.now().UTC())
	if err != nil {
		return nil, fmt.Errorf("identity: sign-ups: %w", err)
	}
	type signup struct{ id, hash string }
	var open []signup
	for rows.Next() {
		var o signup
		if err := rows.Scan(&o.id, &o.hash); err != nil {
			rows.Close()
			return nil, err
		}
		open = append(open, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, o := range open {
		ok, _, err := s.hasher.Verify(ctx, NormalizePassword(password), o.hash)
		if err != nil {
			return nil, err
		}
		if ok {
			return &emailCode{id: o.id, accountID: accountID}, nil
		}
	}
	return nil, ErrSignupPassword
}

// VerifySignupLink activates an account from the link in its email, with the
// password chosen at sign-up (see VerifySignup).
func (s *Service) VerifySignupLink(ctx context.Context, link, password string, kind SessionKind, replaces string, c Client) (Account, Session, error) {
	if err := s.throttle.Reserve(ctx, []string{"code:ip:" + throttle.AddressKey(c.IP)}, []throttle.Rule{s.cfg.CodesPerIP}); err != nil {
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
	chosen, err := s.signupOf(ctx, acct.ID, password)
	if err != nil {
		return Account{}, Session{}, err
	}
	return s.activate(ctx, acct, chosen, kind, replaces, c)
}

func (s *Service) activate(ctx context.Context, acct *account, code *emailCode, kind SessionKind, replaces string, c Client) (Account, Session, error) {
	var sess Session
	now := s.now().UTC()
	var d signupDetails
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE email_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND voided_at IS NULL", code.id, now)
		if err != nil {
			return fmt.Errorf("identity: use code: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrInvalidCode // used by a parallel request
		}
		err = tx.QueryRowContext(ctx, `SELECT full_name, locale, password_hash, security_question, security_answer_hash
			FROM email_codes WHERE id = $1`, code.id).Scan(&d.FullName, &d.Locale, &d.PasswordHash, &d.Question, &d.AnswerHash)
		if err != nil {
			return fmt.Errorf("identity: activate: %w", err)
		}
		res, err = tx.ExecContext(ctx, `UPDATE accounts SET status = 'active', activated_at = $2, full_name = $3, locale = $4,
			password_hash = $5, security_question = $6, security_answer_hash = $7, password_changed_at = $2
			WHERE id = $1 AND status = 'pending' AND kind = 'family'`, acct.ID, now, d.FullName, d.Locale, d.PasswordHash, d.Question, d.AnswerHash)
		if err != nil {
			return fmt.Errorf("identity: activate: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrInvalidCode // activated by another code meanwhile
		}
		if err := voidCodes(ctx, tx, acct.ID, "signup", now); err != nil {
			return err
		}
		if replaces != "" {
			if _, err := tx.ExecContext(ctx, "UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL", digest(replaces), now); err != nil {
				return fmt.Errorf("identity: end old session: %w", err)
			}
		}
		if err := s.record(ctx, tx, acct.ID, EventSignup, c); err != nil {
			return err
		}
		if sess, err = s.newSession(ctx, tx, acct.ID, kind, c); err != nil {
			return err
		}
		// Verifying the sign-up is this device's first sign-in.
		sess.Device, err = s.keepDevice(ctx, tx, acct.ID, "", "")
		return err
	})
	if err != nil {
		return Account{}, Session{}, err
	}
	a := acct.Account
	a.Status, a.FullName, a.Locale, a.SecurityQuestion = "active", d.FullName, d.Locale, d.Question
	sess.Locale = d.Locale
	return a, sess, nil
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
		ids.New(), email, strings.TrimSpace(r.FullName), s.locale(r.Locale), pwHash, r.SecurityQuestion, answerHash, now)
	if err != nil {
		return false, fmt.Errorf("identity: ensure account: %w", err)
	}
	return true, nil
}
