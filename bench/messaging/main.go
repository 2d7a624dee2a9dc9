// Command messaging measures eMessages in one run against the same database:
//
//  1. the raw rate of one-row insert transactions (the database's own ceiling for
//     anything that commits once per request);
//  2. the HTTP send rate of text messages that need no review (POST
//     /api/v1/contacts/{id}/messages, each one message row and a balanced ledger
//     transaction) at a few concurrencies, as a ratio to (1), with p50/p99;
//  3. with 1,000,000 messages stored, the p99 of loading a conversation (API) and a
//     resident's kiosk inbox (GET /kiosk).
//
// Targets: send/raw ratio at least 0.25 on SQLite; both p99 under 20 ms. It exits
// non-zero when a target is missed.
//
//	go run ./bench/messaging [-seconds 5] [-messages 1000000] [-database postgres://...]
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinlink/kinlink/internal/app"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
)

var cpuProfile string

const (
	ratioTarget = 0.25
	loadTarget  = 20 * time.Millisecond
)

func main() {
	seconds := flag.Int("seconds", 5, "seconds per measured phase")
	rounds := flag.Int("rounds", 3, "rounds of raw inserts and sends at each concurrency (the median is judged)")
	messages := flag.Int("messages", 1_000_000, "messages stored before the load measurements")
	setting := flag.String("database", "", "database setting (default: a new SQLite file)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the sends at 4 concurrent to this file")
	flag.Parse()
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "messaging bench: -rounds must be at least 1")
		os.Exit(2)
	}
	if err := run(time.Duration(*seconds)*time.Second, *rounds, *messages, *setting); err != nil {
		fmt.Fprintln(os.Stderr, "messaging bench:", err)
		os.Exit(1)
	}
}

// median is the middle of xs (the mean of the two middle ones for an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// poolWait is the total time the server's requests have waited for a connection of
// the pool that writes (SQLite's one writer, or PostgreSQL's pool), from its metrics.
func poolWait(client *http.Client, base string) time.Duration {
	res, err := client.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^go_sql_wait_duration_seconds_total\{db_name="(?:write|main)"\} (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	sec, _ := strconv.ParseFloat(string(m[1]), 64)
	return time.Duration(sec * float64(time.Second))
}

type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

func run(phase time.Duration, rounds, stored int, setting string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "kinlink-messaging-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if setting == "" {
		setting = "sqlite:" + filepath.Join(dir, "kinlink.db")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	env := map[string]string{"KINLINK_ADDR": addr, "KINLINK_DATABASE": setting, "KINLINK_DATA_DIR": dir, "KINLINK_LOG_LEVEL": "error"}
	var guide syncBuffer
	go app.Run(ctx, []string{"demo"}, func(k string) string { return env[k] }, &guide, io.Discard)
	base := "http://" + addr
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(guide.String(), "Stop with Ctrl+C"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the demo server did not start:\n%s", guide.String())
		}
	}
	db, err := database.Open(ctx, setting)
	if err != nil {
		return err
	}
	defer db.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	api := func(method, path, token string, body io.Reader, headers ...string) (int, map[string]any, error) {
		req, _ := http.NewRequest(method, base+path, body)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m, nil
	}
	login, _ := json.Marshal(map[string]string{"email": "maria@example.org", "password": "kinlink demo family 2026"})
	_, tok, err := api("POST", "/api/v1/login", "", bytes.NewReader(login), "Content-Type", "application/json")
	if err != nil || tok["token"] == nil {
		return fmt.Errorf("login: %v %v", err, tok)
	}
	token := tok["token"].(string)
	_, people, _ := api("GET", "/api/v1/contacts", token, nil)
	contact := people["contacts"].([]any)[0].(map[string]any)["id"].(string)
	// The senders: one family per concurrent client, as on a real server, where sends
	// at the same moment come from different families (one family's own sends take
	// turns on its wallet row, by design).
	senders, err := sendingFamilies(ctx, db, 16, contact)
	if err != nil {
		return err
	}
	for i := range senders {
		login, _ := json.Marshal(map[string]string{"email": senders[i].email, "password": "kinlink demo family 2026"})
		_, tok, err := api("POST", "/api/v1/login", "", bytes.NewReader(login), "Content-Type", "application/json")
		if err != nil || tok["token"] == nil {
			return fmt.Errorf("login of %s: %v %v", senders[i].email, err, tok)
		}
		senders[i].token = tok["token"].(string)
	}

	// 1. Raw one-row insert transactions.
	if _, err := db.Write().ExecContext(ctx, "CREATE TABLE bench_raw (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at TIMESTAMP NOT NULL)"); err != nil {
		return err
	}
	// Plain database/sql, not Kinlink's InTx, so that what the server does around its
	// transactions counts on the send side only; a context without cancellation, as
	// the server's statements have (see database.uninterrupted).
	rawInsert := func() error {
		ctx := context.WithoutCancel(ctx)
		tx, err := db.Write().BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO bench_raw (id, body, created_at) VALUES ($1, $2, $3)", ids.New(), "bench message", time.Now().UTC()); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	raw := func(workers int) float64 {
		var n atomic.Int64
		deadline := time.Now().Add(phase)
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					if err := rawInsert(); err == nil {
						n.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / time.Since(start).Seconds()
	}

	// 2. HTTP sends, and as the floor of any request on this machine the same
	// server's GET /healthz (no database, the same middleware and client).
	load := func(workers int, request func(worker, i int) (int, error), want int) (float64, latencies, int) {
		var mu sync.Mutex
		var lat latencies
		var failed int
		deadline := time.Now().Add(phase)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range workers {
			wg.Go(func() {
				for i := 0; time.Now().Before(deadline); i++ {
					t0 := time.Now()
					status, err := request(w, i)
					d := time.Since(t0)
					mu.Lock()
					if err == nil && status == want {
						lat = append(lat, d)
					} else {
						failed++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return float64(len(lat)) / time.Since(start).Seconds(), lat, failed
	}
	send := func(w, i int) (int, error) {
		status, _, err := api("POST", "/api/v1/contacts/"+senders[w].contact+"/messages", senders[w].token,
			strings.NewReader(url.Values{"text": {fmt.Sprintf("Bench message %d from worker %d. Te quiero mucho 💛", i, w)}}.Encode()),
			"Content-Type", "application/x-www-form-urlencoded", "Idempotency-Key", ids.New())
		return status, err
	}
	healthz := func(int, int) (int, error) {
		res, err := client.Get(base + "/healthz")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	}

	fmt.Printf("database: %s\n", strings.SplitN(setting, ":", 2)[0])
	var problems []string
	// Each concurrency runs `rounds` times, the raw inserts just before the sends
	// each time, so that both meet the same state of a shared machine; the ratio
	// judged is the median of the rounds'.
	for _, c := range []int{1, 4, 16} {
		var ratios, raws, rates, coreUse []float64
		var lat latencies
		var failed, sends int
		var wait time.Duration
		for round := range rounds {
			r := raw(c)
			profile := c == 4 && round == 0 && cpuProfile != ""
			if profile {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				pprof.StartCPUProfile(f)
			}
			cpu0, wait0 := processCPU(), poolWait(client, base)
			rate, roundLat, roundFailed := load(c, send, 201)
			coreUse = append(coreUse, (processCPU()-cpu0).Seconds()/phase.Seconds())
			wait += poolWait(client, base) - wait0
			if profile {
				pprof.StopCPUProfile()
			}
			raws, rates, ratios = append(raws, r), append(rates, rate), append(ratios, rate/r)
			lat = append(lat, roundLat...)
			failed += roundFailed
			sends += len(roundLat) + roundFailed
			if rounds > 1 {
				fmt.Printf("   %2d concurrent, round %d: raw insert tx %.0f/s; sends %.0f/s; ratio %.2f\n", c, round+1, r, rate, rate/r)
			}
		}
		ratio := median(ratios)
		fmt.Printf("at %2d concurrent (median of %d): raw insert tx %.0f/s; sends %.0f/s; ratio %.2f (target >= %.2f); p50 %v p99 %v; failed %d\n",
			c, rounds, median(raws), median(rates), ratio, ratioTarget, lat.pct(50).Round(10*time.Microsecond), lat.pct(99).Round(10*time.Microsecond), failed)
		fmt.Printf("             server and clients used %.2f of %d cores; a send waited %v for a write connection on average\n",
			median(coreUse), runtime.NumCPU(), (wait / time.Duration(max(1, sends))).Round(time.Microsecond))
		floor, _, _ := load(c, healthz, 200)
		fmt.Printf("             the same server's GET /healthz %.0f/s; sends are %.2f of it\n", floor, median(rates)/floor)
		if c == 4 && ratio < ratioTarget {
			problems = append(problems, fmt.Sprintf("send/raw ratio %.2f at 4 concurrent", ratio))
		}
		if failed > 0 {
			problems = append(problems, fmt.Sprintf("%d sends failed at %d concurrent", failed, c))
		}
	}

	// 3. Fill to `stored` messages: other families and residents, 100 messages a
	// conversation, then time the loads.
	t0 := time.Now()
	filled, err := fill(ctx, db, stored)
	if err != nil {
		return err
	}
	fmt.Printf("\nstored %d messages in %v (%d conversations)\n", filled, time.Since(t0).Round(time.Second), filled/100)

	var conv latencies
	for range 300 {
		t0 := time.Now()
		status, _, err := api("GET", "/api/v1/contacts/"+senders[0].contact+"/messages", senders[0].token, nil)
		if err != nil || status != 200 {
			return fmt.Errorf("conversation: %d %v", status, err)
		}
		conv = append(conv, time.Since(t0))
	}
	kiosk, err := residentAtKiosk(base, guide.String())
	if err != nil {
		return err
	}
	var inbox latencies
	for range 300 {
		t0 := time.Now()
		res, err := kiosk.Get(base + "/kiosk")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !bytes.Contains(body, []byte(`id="kiosk-contacts"`)) {
			return fmt.Errorf("kiosk inbox: %d", res.StatusCode)
		}
		inbox = append(inbox, time.Since(t0))
	}
	var mine int
	db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM messages WHERE contact_id = $1", senders[0].contact).Scan(&mine)
	fmt.Printf("conversation (newest 50 of %d): p50 %v p99 %v (target p99 < %v)\n", mine, conv.pct(50).Round(10*time.Microsecond), conv.pct(99).Round(10*time.Microsecond), loadTarget)
	fmt.Printf("kiosk inbox (GET /kiosk):        p50 %v p99 %v (target p99 < %v)\n", inbox.pct(50).Round(10*time.Microsecond), inbox.pct(99).Round(10*time.Microsecond), loadTarget)
	if conv.pct(99) > loadTarget {
		problems = append(problems, fmt.Sprintf("conversation p99 %v", conv.pct(99)))
	}
	if inbox.pct(99) > loadTarget {
		problems = append(problems, fmt.Sprintf("inbox p99 %v", inbox.pct(99)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// fill inserts messages until the table holds n, in conversations of 100 between
// generated families and residents, in large transactions.
// sender is a family that sends in the bench.
type sender struct{ email, contact, token string }

// sendingFamilies adds n families with the demo family's password, each with the demo
// family's resident as an approved contact and a wallet funded for 100,000 messages
// (a balanced top-up through the ledger, without the receipt mails of the API's).
func sendingFamilies(ctx context.Context, db *database.DB, n int, demoContact string) ([]sender, error) {
	var resident, hash, question, answer string
	if err := db.Read().QueryRowContext(ctx, `SELECT c.resident_id, a.password_hash, a.security_question, a.security_answer_hash
		FROM contacts c JOIN accounts a ON a.id = c.account_id WHERE c.id = $1`, demoContact).Scan(&resident, &hash, &question, &answer); err != nil {
		return nil, err
	}
	l := ledger.New(db)
	now := time.Now().UTC()
	var out []sender
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		for i := range n {
			account, contact := ids.New(), ids.New()
			email := fmt.Sprintf("sender-%d@bench.example.org", i)
			if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question, security_answer_hash,
				status, created_at, password_changed_at) VALUES ($1, $2, $3, 'en', $4, $5, $6, 'active', $7, $7)`,
				account, email, fmt.Sprintf("Bench Sender %d", i), hash, question, answer, now); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (id, account_id, resident_id, status, created_at, decided_at) VALUES ($1, $2, $3, 'approved', $4, $4)`,
				contact, account, resident, now); err != nil {
				return err
			}
			if _, _, err := l.Post(ctx, tx, ledger.Transaction{Kind: "topup", IdempotencyKey: "bench:" + account, Description: "Bench funds",
				Entries: []ledger.Entry{{Account: ledger.WalletOf(account), Amount: 1_000_000}, {Account: ledger.Ref{Kind: ledger.Cards}, Amount: -1_000_000}}}); err != nil {
				return err
			}
			out = append(out, sender{email: email, contact: contact})
		}
		return nil
	})
	return out, err
}

func fill(ctx context.Context, db *database.DB, n int) (int, error) {
	var have int
	if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM messages").Scan(&have); err != nil {
		return 0, err
	}
	var agency, facility string
	if err := db.Read().QueryRowContext(ctx, "SELECT agency_id, facility_id FROM residents LIMIT 1").Scan(&agency, &facility); err != nil {
		return 0, err
	}
	now := time.Now().UTC()
	for have < n {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			for range 100 { // conversations per transaction
				if have >= n {
					return nil
				}
				account, resident, contact := ids.New(), ids.New(), ids.New()
				if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question, security_answer_hash,
					status, created_at, password_changed_at) VALUES ($1, $2, 'Bench Family', 'en', 'x', 'first_pet', 'x', 'active', $3, $3)`,
					account, account+"@bench.example.org", now); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO residents (id, agency_id, facility_id, resident_number, first_name, last_name, search_first, search_last,
					housing_unit, status, created_at, updated_at) VALUES ($1, $2, $3, $4, 'Bench', 'Resident', 'bench', 'resident', 'A-1', 'active', $5, $5)`,
					resident, agency, facility, "B"+resident[:12], now); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (id, account_id, resident_id, status, created_at, decided_at) VALUES ($1, $2, $3, 'approved', $4, $4)`,
					contact, account, resident, now); err != nil {
					return err
				}
				for i := range 100 {
					at := now.Add(time.Duration(i-100) * time.Hour)
					dir, state := "to_resident", "read"
					if i%3 == 2 {
						dir, state = "from_resident", "read"
					}
					if _, err := tx.ExecContext(ctx, `INSERT INTO messages (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, body, state,
						cost_stamps, cost_cents, created_at, delivered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'A message of an ordinary length, a few sentences about the week.', $8, 1, 10, $9, $9)`,
						ids.New(), contact, account, resident, agency, facility, dir, state, at); err != nil {
						return err
					}
					have++
				}
			}
			return nil
		})
		if err != nil {
			return have, err
		}
	}
	return have, nil
}

// residentAtKiosk enrols a client as the demo kiosk and signs José (D1001) in.
func residentAtKiosk(base, guide string) (*http.Client, error) {
	code := regexp.MustCompile(`with code (\S+)`).FindStringSubmatch(guide)
	if code == nil {
		return nil, fmt.Errorf("no kiosk code in the demo guide")
	}
	jar, _ := cookiejar.New(nil)
	// The kiosk's cookies are Secure (__Host-): a plain-HTTP bench keeps them by
	// treating the server as the secure context it is on localhost.
	c := &http.Client{Jar: secureJar{jar}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) error {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := c.Do(req)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			return fmt.Errorf("%s: %d", path, res.StatusCode)
		}
		return nil
	}
	if err := post("/kiosk/enrol", url.Values{"code": {code[1]}}); err != nil {
		return nil, err
	}
	return c, post("/kiosk/login", url.Values{"resident_id": {"D1001"}, "pin": {"4826"}})
}

type secureJar struct{ jar *cookiejar.Jar }

func (j secureJar) SetCookies(u *url.URL, cs []*http.Cookie) { j.jar.SetCookies(secure(u), cs) }
func (j secureJar) Cookies(u *url.URL) []*http.Cookie        { return j.jar.Cookies(secure(u)) }
func secure(u *url.URL) *url.URL                             { s := *u; s.Scheme = "https"; return &s }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
