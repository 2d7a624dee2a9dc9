package identity

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/throttle"
)

var common = func() *CommonPasswords {
	c, err := LoadCommonPasswords()
	if err != nil {
		panic(err)
	}
	return c
}()

func TestCommonPasswordListIsShippedAndUsed(t *testing.T) {
	if common.Len() < 100000 {
		t.Fatalf("the list has %d entries; at least 100,000 are required", common.Len())
	}
	for _, p := range []string{"password123", "iloveyou", "qwertyuiop", "1234567890"} {
		if !common.Contains(p) {
			t.Errorf("%q is not on the list", p)
		}
	}
	if common.Contains("a long family passphrase") {
		t.Error("an uncommon passphrase is on the list")
	}
}

func TestNormalisation(t *testing.T) {
	// Composed and decomposed accents are the same password.
	if NormalizePassword("Canci\u00f3n de cuna para mam\u00e1") != NormalizePassword("Cancio\u0301n de cuna para mama\u0301") {
		t.Error("NFKC does not unify accents")
	}
	if NormalizeAnswer("  Escuela   MARTÍ ") != NormalizeAnswer("escuela martí") {
		t.Error("answers are not case-folded and space-collapsed")
	}
	if NormalizeEmail("  Ana@Example.ORG ") != "ana@example.org" {
		t.Error("emails are not normalised")
	}
}

func TestHashesArePHCArgon2idWithTheRequiredCosts(t *testing.T) {
	h := NewHasher(DefaultHashParams, 2, 4, time.Second)
	a, err := h.Hash(context.Background(), "secret passphrase")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := h.Hash(context.Background(), "secret passphrase")
	if !strings.HasPrefix(a, "$argon2id$v=19$m=19456,t=2,p=1$") || a == b {
		t.Fatalf("hash %q (a second one: %q)", a, b)
	}
	p, salt, _, err := parsePHC(a)
	if err != nil || len(salt) != 16 || p.MemoryKiB < 19*1024 || p.Time < 2 || p.Threads < 1 {
		t.Fatalf("params %+v, salt %d bytes, %v", p, len(salt), err)
	}
	ok, rehash, err := h.Verify(context.Background(), "secret passphrase", a)
	if !ok || rehash || err != nil {
		t.Fatalf("verify: %v %v %v", ok, rehash, err)
	}
	if ok, _, _ := h.Verify(context.Background(), "Secret passphrase", a); ok {
		t.Fatal("a different password verified")
	}
	stronger := NewHasher(HashParams{MemoryKiB: 32 * 1024, Time: 3, Threads: 1}, 2, 4, time.Second)
	if _, rehash, _ := stronger.Verify(context.Background(), "secret passphrase", a); !rehash {
		t.Fatal("raising the parameters does not ask for a rehash")
	}
}

// Beyond the slots and the queue, hashing is refused at once instead of piling up.
func TestHasherRefusesOverloadFast(t *testing.T) {
	h := NewHasher(DefaultHashParams, 1, 1, 5*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	busy, done := 0, 0
	var slowest time.Duration
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := h.Hash(context.Background(), "x")
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, ErrBusy) {
				busy++
				slowest = max(slowest, time.Since(start))
			} else {
				done++
			}
		}()
	}
	wg.Wait()
	if done > 2+1 || busy < 9 {
		t.Fatalf("1 slot and a queue of 1: %d hashed, %d refused", done, busy)
	}
}

// newTestService builds a service on db with a clock the test moves.
func newTestService(t *testing.T, db *database.DB, log *slog.Logger) (*Service, *time.Time) {
	t.Helper()
	s, err := NewService(context.Background(), db, NewHasher(DefaultHashParams, 2, 50, 5*time.Second), common, DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.now = func() time.Time { return now }
	s.throttle = s.throttle.WithClock(s.now)
	return s, &now
}

// activeAccount signs up and verifies through the service, reading the code from
// the queued mail job as the mail would carry it.
func activeAccount(t *testing.T, s *Service, db *database.DB, email string) Account {
	t.Helper()
	ctx := context.Background()
	if err := s.Signup(ctx, SignupRequest{Email: email, Password: "a long family passphrase", FullName: "Ana",
		SecurityQuestion: "first_pet", SecurityAnswer: "Canela", Locale: "en"}, Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	acct, _, err := s.VerifySignup(ctx, email, queuedCode(t, db, email), "a long family passphrase", WebSession, "", Client{IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

// runResetJobs does what the job workers would: it handles queued reset requests.
func runResetJobs(t *testing.T, s *Service, db *database.DB) {
	t.Helper()
	rows, err := db.Read().Query("SELECT id, payload FROM jobs WHERE kind = $1 AND state = 'available'", ResetJob)
	if err != nil {
		t.Fatal(err)
	}
	type job struct {
		id      int64
		payload string
	}
	var pending []job
	for rows.Next() {
		var j job
		rows.Scan(&j.id, &j.payload)
		pending = append(pending, j)
	}
	rows.Close()
	for _, j := range pending {
		if err := s.HandleResetJob(context.Background(), json.RawMessage(j.payload)); err != nil {
			t.Fatal(err)
		}
		db.Write().Exec("UPDATE jobs SET state = 'succeeded' WHERE id = $1", j.id)
	}
}

func queuedCode(t *testing.T, db *database.DB, email string) string {
	t.Helper()
	rows, err := db.Read().Query("SELECT payload FROM jobs WHERE kind = 'mail.send' ORDER BY id DESC")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var payload string
		rows.Scan(&payload)
		var m struct {
			To   string
			Data map[string]string
		}
		json.Unmarshal([]byte(payload), &m)
		if m.To == email && m.Data["Code"] != "" {
			return m.Data["Code"]
		}
	}
	t.Fatalf("no queued code for %s", email)
	return ""
}

func TestSessionsEndWhenIdleAndAtTheirLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		s, now := newTestService(t, db, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
		ctx := context.Background()
		activeAccount(t, s, db, "ana@example.org")
		login := func() Session {
			sess, err := s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: "a long family passphrase", Kind: WebSession}, Client{IP: "192.0.2.1"})
			if err != nil {
				t.Fatal(err)
			}
			return sess
		}
		idle := login()
		*now = now.Add(s.cfg.WebIdle - time.Minute)
		if _, _, err := s.Authenticate(ctx, idle.Token, WebSession); err != nil {
			t.Fatalf("within the idle limit: %v", err)
		}
		// The last use is stored at most a minute behind, so the end may come up to
		// that much after the limit, never before it.
		*now = now.Add(s.cfg.WebIdle + time.Minute + time.Second)
		if _, _, err := s.Authenticate(ctx, idle.Token, WebSession); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("after the idle limit: %v", err)
		}

		// However short the idle limit, a session used more often than that stays.
		was := s.cfg.WebIdle
		s.cfg.WebIdle = time.Minute
		short := login()
		for range 20 {
			*now = now.Add(25 * time.Second)
			if _, _, err := s.Authenticate(ctx, short.Token, WebSession); err != nil {
				t.Fatalf("a session used every 25 s with a 1-minute idle limit ended: %v", err)
			}
		}
		*now = now.Add(time.Minute + 3*time.Second)
		if _, _, err := s.Authenticate(ctx, short.Token, WebSession); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("after a minute and more unused, with a 1-minute limit: %v", err)
		}
		s.cfg.WebIdle = was

		busy := login()
		for elapsed := time.Duration(0); elapsed < s.cfg.WebMax-time.Hour; elapsed += time.Hour {
			*now = now.Add(time.Hour)
			if _, _, err := s.Authenticate(ctx, busy.Token, WebSession); err != nil {
				t.Fatalf("an active session ended after %v: %v", elapsed, err)
			}
		}
		*now = now.Add(2 * time.Hour)
		if _, _, err := s.Authenticate(ctx, busy.Token, WebSession); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("a session outlived its absolute limit: %v", err)
		}
		// A web token is not an API token, nor the other way round.
		api, _ := s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: "a long family passphrase", Kind: APISession}, Client{IP: "192.0.2.1"})
		if _, _, err := s.Authenticate(ctx, api.Token, WebSession); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("an API token opened a web session: %v", err)
		}
	})
}

func TestCodesExpireWithin30Minutes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		s, now := newTestService(t, db, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
		ctx := context.Background()
		activeAccount(t, s, db, "ana@example.org")
		if err := s.ForgotPassword(ctx, "ana@example.org", Client{IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
		runResetJobs(t, s, db)
		code := queuedCode(t, db, "ana@example.org")
		*now = now.Add(31 * time.Minute)
		if _, err := s.VerifyReset(ctx, "ana@example.org", code, Client{IP: "192.0.2.1"}); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("a 31-minute-old code: %v", err)
		}
	})
}

func TestLoginRehashesWhenCostsRise(t *testing.T) {
	db := dbtest.Open(t, "sqlite:"+t.TempDir()+"/k.db")
	s, _ := newTestService(t, db, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	acct := activeAccount(t, s, db, "ana@example.org")
	s.hasher = NewHasher(HashParams{MemoryKiB: 24 * 1024, Time: 3, Threads: 1}, 2, 10, time.Second)
	if _, err := s.Login(context.Background(), LoginRequest{Email: "ana@example.org", Password: "a long family passphrase", Kind: APISession}, Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	stored, _ := accountByID(context.Background(), db.Read(), acct.ID)
	if !strings.Contains(stored.passwordHash, "m=24576,t=3,p=1") {
		t.Fatalf("hash after login with higher costs: %s", stored.passwordHash)
	}
}

// Security events are logged, and no password, code, answer or token ever is.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	db := dbtest.Open(t, "sqlite:"+t.TempDir()+"/k.db")
	s, _ := newTestService(t, db, slog.New(slog.NewJSONHandler(&logs, nil)))
	ctx := context.Background()
	c := Client{IP: "192.0.2.1"}
	activeAccount(t, s, db, "ana@example.org")
	s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: "wrong passphrase guess", Kind: WebSession}, c)
	sess, _ := s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: "a long family passphrase", Kind: WebSession}, c)
	s.ForgotPassword(ctx, "ana@example.org", c)
	runResetJobs(t, s, db)
	code := queuedCode(t, db, "ana@example.org")
	step, err := s.VerifyReset(ctx, "ana@example.org", code, c)
	if err != nil {
		t.Fatal(err)
	}
	s.AnswerQuestion(ctx, step.Token, "Canela", c)
	s.SetNewPassword(ctx, step.Token, "the next family passphrase", c)
	out := logs.String()
	for _, secret := range []string{"a long family passphrase", "wrong passphrase guess", "the next family passphrase", code, step.Token, sess.Token, "Canela"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds a secret %q", secret)
		}
	}
	for _, event := range []string{EventLoginFailed, EventLogin, EventResetRequested, EventResetCompleted} {
		if !strings.Contains(out, `"event":"`+event+`"`) {
			t.Errorf("the log lacks the %s event", event)
		}
	}
}

func TestANewResetVoidsTheOldCode(t *testing.T) {
	db := dbtest.Open(t, "sqlite:"+t.TempDir()+"/k.db")
	s, _ := newTestService(t, db, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	ctx := context.Background()
	c := Client{IP: "192.0.2.1"}
	activeAccount(t, s, db, "ana@example.org")
	s.ForgotPassword(ctx, "ana@example.org", c)
	runResetJobs(t, s, db)
	first := queuedCode(t, db, "ana@example.org")
	s.ForgotPassword(ctx, "ana@example.org", c)
	runResetJobs(t, s, db)
	second := queuedCode(t, db, "ana@example.org")
	if first != second {
		if _, err := s.VerifyReset(ctx, "ana@example.org", first, c); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("the replaced code still works: %v", err)
		}
	}
	if _, err := s.VerifyReset(ctx, "ana@example.org", second, c); err != nil {
		t.Fatalf("the new code: %v", err)
	}
}

// Passwords are never truncated: a long passphrase differs from its prefix.
func TestLongPasswordsAreNotTruncated(t *testing.T) {
	db := dbtest.Open(t, "sqlite:"+t.TempDir()+"/k.db")
	s, _ := newTestService(t, db, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	ctx := context.Background()
	long := strings.Repeat("una frase larga y segura ", 8) + "final" // 205 characters
	if _, err := s.EnsureAccount(ctx, SignupRequest{Email: "ana@example.org", Password: long, FullName: "Ana",
		SecurityQuestion: "first_pet", SecurityAnswer: "Canela"}); err != nil {
		t.Fatal(err)
	}
	c := Client{IP: "192.0.2.1"}
	if _, err := s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: long[:len(long)-1], Kind: APISession}, c); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("the password without its last character: %v", err)
	}
	if _, err := s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: long, Kind: APISession}, c); err != nil {
		t.Fatalf("the whole password: %v", err)
	}
}

// Wrong codes count against the code they were compared with (issue 13). This test
// used to assert that five wrong codes paused the address for an hour, new codes
// included: anyone who knew the address could thus block the owner's reset. Now the
// fifth wrong guess stops that code only: the owner's next code works at once, and
// so does the emailed link of the stopped one.
func TestWrongCodesStopOnlyTheirCode(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		s, _ := newTestService(t, db, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
		ctx := context.Background()
		c := Client{IP: "192.0.2.1"}
		activeAccount(t, s, db, "ana@example.org")
		s.ForgotPassword(ctx, "ana@example.org", c)
		runResetJobs(t, s, db)
		right := queuedCode(t, db, "ana@example.org")
		wrong := "000000"
		if right == wrong {
			wrong = "111111"
		}
		for range 5 {
			s.VerifyReset(ctx, "ana@example.org", wrong, c)
			s.VerifyReset(ctx, "nobody@example.org", wrong, c)
		}
		// The stopped code is refused like any wrong code, for an address with an
		// account and one without alike: no pause, nothing told.
		for _, email := range []string{"ana@example.org", "nobody@example.org"} {
			if _, err := s.VerifyReset(ctx, email, right, c); !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("the right code for %s after five wrong ones: %v", email, err)
			}
			if err := s.ForgotPassword(ctx, email, c); err != nil {
				t.Errorf("a new reset for %s after five wrong codes: %v", email, err)
			}
		}
		runResetJobs(t, s, db)
		fresh := queuedCode(t, db, "ana@example.org")
		if _, err := s.VerifyReset(ctx, "ana@example.org", fresh, c); err != nil {
			t.Fatalf("a fresh code at once: %v", err)
		}
		var stopped int
		db.Read().QueryRow("SELECT COUNT(*) FROM email_codes WHERE code_failures >= 5").Scan(&stopped)
		if stopped != 1 {
			t.Errorf("%d codes stopped by wrong guesses, want 1", stopped)
		}
	})
}

// Unknown devices are slowed, never locked for days (issue 13). This test used to
// assert that 100 failures locked the email for 30 days, which let anyone who knew
// an address lock its owner out for a month. Now each lock of the email is twice as
// long as the last, up to four hours: a distributed attacker checks 100 passwords in
// the first day and 60 a day after, and the owner waits at most four hours on a new
// device (and not at all on a device they have signed in on).
func TestUnknownDevicesAreSlowedNotLocked(t *testing.T) {
	db := dbtest.Open(t, "sqlite:"+t.TempDir()+"/k.db")
	s, now := newTestService(t, db, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	ctx := context.Background()
	activeAccount(t, s, db, "ana@example.org")
	start := *now
	failures, longest := 0, time.Duration(0)
	for i := 0; now.Sub(start) < 24*time.Hour; i++ {
		// Each attempt from another address, as a distributed attacker would.
		_, err := s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: "a wrong guess here", Kind: APISession},
			Client{IP: fmt.Sprintf("198.51.100.%d", i%250)})
		if errors.Is(err, ErrInvalidCredentials) {
			failures++
			continue
		}
		l, limited := throttle.IsLimited(err)
		if !limited {
			t.Fatalf("attempt %d: %v", i, err)
		}
		longest = max(longest, l.RetryAfter)
		*now = now.Add(l.RetryAfter + time.Second)
	}
	if failures > 100 || longest > 4*time.Hour || longest < 4*time.Hour-time.Minute {
		t.Fatalf("in a day %d failed attempts were checked (at most 100), the longest wait %v (4h)", failures, longest)
	}
	// The attacker goes on until the next lock; the owner, on a device this account
	// has never seen, waits it out and gets in.
	for i := 0; i < 10; i++ {
		s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: "a wrong guess here", Kind: APISession}, Client{IP: "203.0.113.1"})
	}
	_, err := s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: "a long family passphrase", Kind: APISession}, Client{IP: "192.0.2.9"})
	l, limited := throttle.IsLimited(err)
	if !limited || l.RetryAfter > 4*time.Hour {
		t.Fatalf("the right password during a lock: %v (a lock of at most 4h)", err)
	}
	*now = now.Add(l.RetryAfter + time.Second)
	if _, err := s.Login(ctx, LoginRequest{Email: "ana@example.org", Password: "a long family passphrase", Kind: APISession}, Client{IP: "192.0.2.9"}); err != nil {
		t.Fatalf("the right password after the lock: %v", err)
	}
}

func TestStaffSessionsAreShort(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		s, now := newTestService(t, db, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
		ctx := context.Background()
		var link string
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			_, link, err = s.CreateStaff(ctx, tx, "officer@example.org", "Officer", "en")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		token := link[strings.Index(link, "t=")+2:]
		_, setup, err := s.EnrolmentSetup(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := totp.GenerateCode(setup.Secret, *now)
		if _, err := s.CompleteEnrolment(ctx, token, "staff pass 42!", code, Client{}); err != nil {
			t.Fatal(err)
		}
		c := Client{IP: "192.0.2.1"}
		pending, err := s.Login(ctx, LoginRequest{Email: "officer@example.org", Password: "staff pass 42!", Kind: StaffSession}, c)
		if !errors.Is(err, ErrSecondFactorRequired) {
			t.Fatalf("staff login without a code: %v", err)
		}
		next, _ := totp.GenerateCode(setup.Secret, now.Add(30*time.Second))
		sess, err := s.CompleteLogin(ctx, pending.Token, next, "", nil, c)
		if err != nil || sess.Kind != StaffSession {
			t.Fatalf("complete: %v %v", sess.Kind, err)
		}
		*now = now.Add(29 * time.Minute)
		if _, _, err := s.Authenticate(ctx, sess.Token, StaffSession); err != nil {
			t.Fatalf("within 30 minutes: %v", err)
		}
		*now = now.Add(31 * time.Minute)
		if _, _, err := s.Authenticate(ctx, sess.Token, StaffSession); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("after 31 idle minutes: %v", err)
		}
	})
}

// Parallel wrong codes get no more comparisons than a code allows: each guess is
// counted on the code before it is compared, in one conditional update.
func TestParallelCodeGuessesAreCountedPerCode(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		s, _ := newTestService(t, db, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
		ctx := context.Background()
		activeAccount(t, s, db, "ana@example.org")
		s.ForgotPassword(ctx, "ana@example.org", Client{IP: "192.0.2.1"})
		runResetJobs(t, s, db)
		right := queuedCode(t, db, "ana@example.org")
		done := make(chan error)
		for i := range 20 {
			go func() {
				guess := fmt.Sprintf("%06d", i)
				if guess == right {
					guess = "999999"
				}
				_, err := s.VerifyReset(ctx, "ana@example.org", guess, Client{IP: fmt.Sprintf("198.51.100.%d", i)})
				done <- err
			}()
		}
		for range 20 {
			if err := <-done; !errors.Is(err, ErrInvalidCode) {
				t.Errorf("a wrong code: %v", err)
			}
		}
		var n int
		db.Read().QueryRow("SELECT code_failures FROM email_codes WHERE purpose = 'reset'").Scan(&n)
		if n != maxCodeFail {
			t.Fatalf("20 parallel wrong codes counted %d times on the code, want %d", n, maxCodeFail)
		}
		if _, err := s.VerifyReset(ctx, "ana@example.org", right, Client{IP: "192.0.2.1"}); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("the right code after its five wrong guesses: %v", err)
		}
	})
}
