// Command deposits measures deposits (issue 16) in one run against the same database:
//
//  1. the raw rate of a deposit's ledger work: the statements that write a deposit,
//     its two ledger transactions and its feed row, run directly on the database
//     through database/sql at the same concurrency, with no HTTP and none of a
//     deposit's reads (see rawDeposit for exactly what it does and does not do);
//  2. deposits through the API (POST /api/v1/deposits, the sandbox card tok_visa,
//     each request its own Idempotency-Key) at a few concurrencies, each client a
//     family of its own depositing to a resident of its own, with p50/p99 and the
//     ratio to the raw rate at the same concurrency;
//  3. with -deposits stored (1,000,000), the latency of pages of 500 of the agency's
//     trust-accounting feed (GET /api/v1/agency/deposits?since=&limit=500 with a
//     feed key): from the start following next_cursor, from random cursors, and
//     from random cursors by several readers at once; for context, not judged, by
//     one reader while 4 clients deposit.
//
// Aims: at 4 concurrent on SQLite, deposits at least 0.5 of the raw rate; the p99
// of a feed page under 50 ms in each of the three feed phases. It exits non-zero
// when an aim is missed.
//
//	go run ./bench/deposits [-seconds 5] [-rounds 3] [-concurrency 1,4,16] [-deposits 1000000] [-database postgres://...]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
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
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
)

const (
	ratioAim   = 0.5 // API deposits / raw deposits, at 4 concurrent on SQLite
	feedTarget = 50 * time.Millisecond
	feedPage   = deposits.MaxFeedPage // 500
	// depositCents is each bench deposit: $20, with the policy's fee of $1.95.
	depositCents = 2000
	maxWorkers   = 16
	// sendersPerClient is how many families each concurrent client deposits
	// for, in turn: with their deposits of earlier phases moved out of the
	// limits' windows before each phase (see ageSenders), a family's limit sums
	// read the dozen or so deposits a phase gives it, where one family per client
	// read the thousands it had made in a month, which no real sender has.
	sendersPerClient = 16
)

func main() {
	seconds := flag.Int("seconds", 5, "seconds per measured phase")
	rounds := flag.Int("rounds", 3, "rounds of raw deposits and API deposits at each concurrency (the median is judged)")
	stored := flag.Int("deposits", 1_000_000, "deposits stored before the feed is read")
	setting := flag.String("database", "", "database setting (default: a new SQLite file); a postgres:// URL gets a fresh schema of its own, dropped at the end")
	concurrency := flag.String("concurrency", "1,4,16", "concurrent clients, each a family of its own (at most 16)")
	pages := flag.Int("pages", 300, "feed pages read in each feed phase")
	readers := flag.Int("readers", 4, "readers of the feed at once in the parallel phase")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the API deposits at 4 concurrent to FILE, and of the feed's parallel phase to FILE.feed")
	flag.Parse()
	var cs []int
	for _, f := range strings.Split(*concurrency, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 || c > maxWorkers {
			fmt.Fprintln(os.Stderr, "deposits bench: -concurrency takes numbers from 1 to 16, such as 1,4,16")
			os.Exit(2)
		}
		cs = append(cs, c)
	}
	if *rounds < 1 || *pages < 1 || *readers < 1 {
		fmt.Fprintln(os.Stderr, "deposits bench: -rounds, -pages and -readers must be at least 1")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "kinlink-deposits-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deposits bench:", err)
		os.Exit(1)
	}
	s := *setting
	dropSchema := func() {}
	if s == "" {
		s = "sqlite:" + filepath.Join(dir, "kinlink.db")
	} else if _, _, ok := database.SQLiteSetting(s); !ok {
		if s, dropSchema, err = freshSchema(s); err != nil {
			fmt.Fprintln(os.Stderr, "deposits bench:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	err = run(bench{phase: time.Duration(*seconds) * time.Second, rounds: *rounds, stored: *stored, concurrency: cs,
		pages: *pages, readers: *readers, cpuProfile: *cpuProfile, dir: dir}, s)
	dropSchema()
	os.RemoveAll(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deposits bench:", err)
		os.Exit(1)
	}
}

// freshSchema makes a schema of its own on the PostgreSQL server of setting (whose
// database may hold other tables) and returns the setting that uses it, and how to
// drop it.
func freshSchema(setting string) (string, func(), error) {
	b := make([]byte, 6)
	rand.Read(b)
	schema := "depbench_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", setting)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	drop := func() {
		if admin, err := sql.Open("pgx", setting); err == nil {
			admin.Exec("DROP SCHEMA " + schema + " CASCADE")
			admin.Close()
		}
	}
	u, err := url.Parse(setting)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

type bench struct {
	phase       time.Duration
	rounds      int
	stored      int
	concurrency []int
	pages       int
	readers     int
	cpuProfile  string
	dir         string
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

type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

func rounded(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

// family is a family that deposits in the bench, to a resident of its own, with the
// row its first deposit through the API wrote: the model of the raw deposits' rows.
type family struct {
	email, account, contact, token string
	resident, agency, facility     string
	row                            depositRow
}

// depositRow is what a deposit stores besides its ids, keys and times.
type depositRow struct {
	facilityCode, facilityName, residentNumber, residentName string
	amount, fee                                              int64
	senderName, senderAddress, email, locale                 string
	processor                                                string
}

// insertDeposit is deposits.Service.Deposit's INSERT, word for word.
const insertDeposit = `INSERT INTO deposits (id, confirmation, agency_id, facility_id, facility_code, resident_id,
			resident_number, resident_name, account_id, contact_id, amount_cents, fee_cents, state, sender_name, sender_address, email,
			locale, processor, payment_token, idempotency_key, created_at, facility_name)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
			ON CONFLICT (idempotency_key) DO NOTHING`

func run(b bench, setting string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	api := func(base, method, path, token string, body io.Reader, headers ...string) (int, []byte, error) {
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
		out, err := io.ReadAll(res.Body)
		return res.StatusCode, out, err
	}

	// The real server, as `kinlink demo` starts it: an agency, its facilities and
	// residents, one staff member of each role.
	sqlite := strings.HasPrefix(setting, "sqlite")
	name := "postgres"
	if driver, _, ok := database.SQLiteSetting(setting); ok {
		name = "sqlite/" + driver
	}
	free := func() (string, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer l.Close()
		return l.Addr().String(), nil
	}
	addr, err := free()
	if err != nil {
		return err
	}
	maddr, err := free()
	if err != nil {
		return err
	}
	guide := &syncBuffer{}
	// Every deposit through the API is settled by its own request; the server's
	// sweep for deposits a request left unsettled looks for those older than the
	// settle delay. The raw side's rows stay pending with their card's token (the
	// raw side makes no charge), so with the default delay of two minutes the
	// sweep would settle them, charging and posting thousands of them during the
	// later phases; an hour is longer than the bench.
	env := map[string]string{"KINLINK_ADDR": addr, "KINLINK_METRICS_ADDR": maddr, "KINLINK_DATABASE": setting,
		"KINLINK_DATA_DIR": filepath.Join(b.dir, "data"), "KINLINK_LOG_LEVEL": "error", "KINLINK_DEPOSIT_SETTLE_AFTER": "1h",
		// The feed phases read as fast as they can: far past a trust system's pace.
		"KINLINK_DEPOSIT_FEED_PACE": "1000"}
	served := make(chan error, 1)
	go func() {
		served <- app.Run(ctx, []string{"demo"}, func(k string) string { return env[k] }, guide, io.Discard)
	}()
	base, metrics := "http://"+addr, "http://"+maddr
	for deadline := time.Now().Add(90 * time.Second); !strings.Contains(guide.String(), "Stop with Ctrl+C"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the demo server on %s did not start:\n%s", name, guide.String())
		}
	}
	defer func() {
		cancel()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
		}
	}()
	db, err := database.Open(ctx, setting)
	if err != nil {
		return err
	}
	defer db.Close()

	// The agency's policy: posted at once, a fee by tiers, and every limit set as
	// high as a policy may (so the limit sums run on each deposit and none refuses
	// the load), set by the demo's agency administrator through the domain.
	var agencyID, adminID string
	if err := db.Read().QueryRowContext(ctx, `SELECT a.id, s.account_id FROM agencies a JOIN staff_roles s ON s.agency_id = a.id
		WHERE a.code = 'DEMO' AND s.role = $1`, facility.AgencyAdmin).Scan(&agencyID, &adminID); err != nil {
		return fmt.Errorf("the demo agency and its administrator: %w", err)
	}
	admin := facility.Access{AccountID: adminID, AgencyID: agencyID, Grants: []facility.Grant{{Role: facility.AgencyAdmin}}}
	// SetPolicy and CreateFeedKey use the database alone: no facility, contacts or
	// processor is needed for them.
	dep := deposits.NewService(db, nil, nil, ledger.New(db), &ledger.Sandbox{}, slog.New(slog.DiscardHandler), nil)
	high := int64(100 * deposits.MaxDepositLimit)
	if err := dep.SetPolicy(ctx, admin, agencyID, deposits.Policy{PostAtOnce: true, ShowSender: true, MaxDepositCents: 30000,
		SenderDayCents: high, SenderMonthCents: high, ResidentMonthCents: high, MaxBalanceCents: high,
		FeeTiers:    []deposits.FeeTier{{UpToCents: 2000, FeeCents: 195}, {UpToCents: 10000, FeeCents: 395}, {UpToCents: 30000, FeeCents: 595}},
		Chargebacks: deposits.ChargebackPlatform}); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	_, feedKey, err := dep.CreateFeedKey(ctx, admin, "Bench trust system")
	if err != nil {
		return fmt.Errorf("feed key: %w", err)
	}

	// Families: 16 × 16 that deposit through the API (each client takes its 16 in
	// turn) and 16 whose rows the raw deposits write, each to a resident of its
	// own, so that the raw side's rows (which stay pending: it makes no charge)
	// never enter the API families' limit sums.
	apiCount := maxWorkers * sendersPerClient
	families, err := depositingFamilies(ctx, db, agencyID, apiCount+maxWorkers)
	if err != nil {
		return err
	}
	apiFamilies, rawFamilies := families[:apiCount], families[apiCount:]
	var turns [maxWorkers]int // each client's next family
	body := func(f family, amount int64) io.Reader {
		j, _ := json.Marshal(map[string]any{"contact_id": f.contact, "amount_cents": amount, "payment_token": ledger.SandboxCard,
			"sender": map[string]string{"name": "Bench Sender", "address": "100 Main Street, Austin, TX 78701"}})
		return bytes.NewReader(j)
	}
	deposit := func(w int) (int, error) {
		f := apiFamilies[w*sendersPerClient+turns[w]%sendersPerClient]
		turns[w]++
		status, _, err := api(base, "POST", "/api/v1/deposits", f.token, body(f, depositCents),
			"Content-Type", "application/json", "Idempotency-Key", ids.New())
		return status, err
	}
	// Each family logs in through the API and makes one deposit through it, which
	// opens its resident's trust account and whose row is the model of the raw
	// deposits' rows; four at a time (the server hashes passwords a core each).
	setUp := func(f *family) error {
		login, _ := json.Marshal(map[string]string{"email": f.email, "password": "kinlink demo family 2026"})
		status, out, err := api(base, "POST", "/api/v1/login", "", bytes.NewReader(login), "Content-Type", "application/json")
		var tok struct{ Token string }
		json.Unmarshal(out, &tok)
		if err != nil || status != 200 || tok.Token == "" {
			return fmt.Errorf("login of %s: %d %v %s", f.email, status, err, out)
		}
		f.token = tok.Token
		status, out, err = api(base, "POST", "/api/v1/deposits", f.token, body(*f, depositCents), "Content-Type", "application/json", "Idempotency-Key", ids.New())
		var d struct{ State string }
		json.Unmarshal(out, &d)
		if err != nil || status != 201 || d.State != deposits.Posted {
			return fmt.Errorf("first deposit of %s: %d %v %s", f.email, status, err, out)
		}
		r := &f.row
		if err := db.Read().QueryRowContext(ctx, `SELECT facility_code, facility_name, resident_number, resident_name, amount_cents, fee_cents, sender_name,
			sender_address, email, locale, processor FROM deposits WHERE account_id = $1`, f.account).Scan(&r.facilityCode, &r.facilityName, &r.residentNumber,
			&r.residentName, &r.amount, &r.fee, &r.senderName, &r.senderAddress, &r.email, &r.locale, &r.processor); err != nil {
			return fmt.Errorf("the first deposit's row: %w", err)
		}
		if r.fee <= 0 {
			return fmt.Errorf("the first deposit's fee is %d: the bench measures deposits with a fee", r.fee)
		}
		return nil
	}
	var setUpErr error
	var setUpMu sync.Mutex
	var next atomic.Int64
	var setUpWG sync.WaitGroup
	for range 4 {
		setUpWG.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(families); i = int(next.Add(1)) - 1 {
				if err := setUp(&families[i]); err != nil {
					setUpMu.Lock()
					setUpErr = err
					setUpMu.Unlock()
					return
				}
			}
		})
	}
	setUpWG.Wait()
	if setUpErr != nil {
		return setUpErr
	}
	// ageSenders moves the API families' deposits so far back in time that no
	// limit counts them (31 days), before each API phase: each phase's limit sums
	// read what that phase made, as a sender's read the deposits of their month.
	apiAccounts := make([]any, 0, len(apiFamilies)+1)
	apiAccounts = append(apiAccounts, nil)
	for _, f := range apiFamilies {
		apiAccounts = append(apiAccounts, f.account)
	}
	ageSenders := func() error {
		apiAccounts[0] = time.Now().UTC().Add(-31 * 24 * time.Hour)
		_, err := db.Write().ExecContext(ctx, `UPDATE deposits SET created_at = $1 WHERE created_at > $1 AND account_id IN (`+
			database.Placeholders(2, len(apiAccounts)-1)+`)`, apiAccounts...)
		return err
	}

	// 1. The raw side. Per deposit, the two write transactions a deposit through
	// the API makes, through the same helper (database.DB.InTx) and the same
	// prepared statements (DB.TxExec), with the same rows for the worker's family:
	//   - the deposit's INSERT (Deposit's own text; state pending, the card token);
	//   - then, in one transaction, the charge's ledger transaction (ledger.Post:
	//     processor −total, the deposit's hold +total, the hold account opened by
	//     Post on its first use and its guarded balance updated), the posting's
	//     (ledger.Post: hold −total, the resident's trust account +amount with its
	//     guarded balance, the platform +fee), and the feed row (append's INSERT …
	//     SELECT MAX(seq) + 1, under the agency's feed lock, which PostgreSQL needs
	//     for the numbers to be unique and SQLite's one writer gives anyway).
	// Not done on the raw side, and counted on the API side only: HTTP and the
	// token's check; every read of a deposit (the key's replay check, the contact
	// and resident, the policy, the four limit sums and the balance, the deposit
	// read back before and after the charge and under its lock, the owed balance,
	// the resident's check before posting, the facility for the receipt, waiting
	// payment events); the sender and resident locks (PostgreSQL); the settle job
	// and the receipt mail queued, and the job workers' work on them; the three
	// UPDATEs of the deposit's row (charged, state, posted_at); the sandbox
	// processor's call.
	led := ledger.New(db)
	rawDeposit := func(w, _ int) error {
		f := rawFamilies[w]
		r := f.row
		id, key, now, conf := ids.Ordered(), "deposit:"+f.account+":"+ids.New(), time.Now().UTC(), confirmation()
		total := r.amount + r.fee
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := db.TxExec(ctx, tx, insertDeposit, id, conf, f.agency, f.facility, r.facilityCode, f.resident, r.residentNumber,
				r.residentName, f.account, f.contact, r.amount, r.fee, deposits.Pending, r.senderName, r.senderAddress, r.email, r.locale,
				r.processor, ledger.SandboxCard, key, now, r.facilityName)
			return err
		}); err != nil {
			return err
		}
		return db.InTx(ctx, func(tx *sql.Tx) error {
			hold := ledger.HoldFor("deposit:" + id)
			if _, _, err := led.Post(ctx, tx, ledger.Transaction{Kind: "deposit.charge", IdempotencyKey: "deposit:" + id + ":charge",
				Description: "Deposit paid by card", Reference: id,
				Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -total}, {Account: hold, Amount: total}},
				Card:    ledger.CardRef{Kind: ledger.CardCharge, ID: "ch_bench_" + id, ChargeID: "ch_bench_" + id}}); err != nil {
				return err
			}
			if _, _, err := led.Post(ctx, tx, ledger.Transaction{Kind: "deposit.post", IdempotencyKey: "deposit:" + id + ":post",
				Description: "Deposit from " + r.senderName, Reference: id,
				Entries: []ledger.Entry{{Account: hold, Amount: -total}, {Account: ledger.ResidentOf(f.resident), Amount: r.amount},
					{Account: ledger.Ref{Kind: ledger.Platform}, Amount: r.fee}}}); err != nil {
				return err
			}
			if err := db.LockChain(ctx, tx, feedLock(f.agency)); err != nil {
				return err
			}
			_, err := db.TxExec(ctx, tx, deposits.InsertFeedRow, f.agency, deposits.FeedPosted, id, f.resident, r.residentNumber, r.residentName,
				r.facilityCode, r.amount, r.fee, "Kinlink deposit "+conf, "deposit:"+id+":post", now, conf, r.amount, r.senderName, r.senderAddress)
			return err
		})
	}
	raw := func(workers int) (float64, int) {
		var n, failed atomic.Int64
		deadline := time.Now().Add(b.phase)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range workers {
			wg.Go(func() {
				for i := 0; time.Now().Before(deadline); i++ {
					if err := rawDeposit(w, i); err == nil {
						n.Add(1)
					} else {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / time.Since(start).Seconds(), int(failed.Load())
	}

	// 2. Deposits through the API.
	load := func(workers int, request func(w int) (int, error), want int) (float64, latencies, int) {
		var mu sync.Mutex
		var lat latencies
		var failed int
		deadline := time.Now().Add(b.phase)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range workers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					t0 := time.Now()
					status, err := request(w)
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

	// drain waits until the job workers have run every job due (the deposits'
	// receipts and settle jobs), so that the next phase starts on a quiet server.
	drain := func() (time.Duration, error) {
		t0 := time.Now()
		for {
			var due int
			if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM jobs WHERE state IN ('available', 'running') AND run_after <= $1",
				time.Now().UTC().Add(time.Second)).Scan(&due); err != nil {
				return 0, err
			}
			if due == 0 {
				return time.Since(t0), nil
			}
			if time.Since(t0) > 2*time.Minute {
				return 0, fmt.Errorf("%d jobs still due after 2 minutes", due)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := drain(); err != nil {
		return err
	}

	serverNote := "" // PostgreSQL's own processes count as other processes
	if !sqlite {
		serverNote = "; with PostgreSQL's own, which do the database's work"
	}
	fmt.Printf("deposits bench: %s; %d cores; %d rounds of %v phases; load average %s\n", name, runtime.NumCPU(), b.rounds, b.phase, loadAverage())
	fmt.Printf("each deposit $%d.%02d with a fee of $%d.%02d, posted at once; limits set to $%d each (checked on every deposit)\n",
		depositCents/100, depositCents%100, apiFamilies[0].row.fee/100, apiFamilies[0].row.fee%100, high/100)
	var problems []string
	for _, c := range b.concurrency {
		var raws, rates, ratios, sustainedRatios, rawCPU, apiCPU, drains, apiOthers []float64
		var lat latencies
		var failed, rawFailed, sent int
		var wait, readWait time.Duration
		for round := range b.rounds {
			cpu0 := processCPU()
			r, rf := raw(c)
			cpuRaw := processCPU() - cpu0
			profile := c == 4 && round == 0 && b.cpuProfile != ""
			if profile {
				pf, err := os.Create(b.cpuProfile)
				if err != nil {
					return err
				}
				pprof.StartCPUProfile(pf)
				defer pf.Close()
			}
			if err := ageSenders(); err != nil {
				return err
			}
			cpu0, wait0, readWait0 := processCPU(), poolWait(client, metrics), poolWaitOf(client, metrics, "read")
			m0 := machineCPU()
			rate, l, fl := load(c, deposit, 201)
			apiOthers = append(apiOthers, max(0, machineCPU().busyCores(m0)-(processCPU()-cpu0).Seconds()/b.phase.Seconds()))
			cpuAPI := processCPU() - cpu0
			wait += poolWait(client, metrics) - wait0
			readWait += poolWaitOf(client, metrics, "read") - readWait0
			if profile {
				pprof.StopCPUProfile()
			}
			drained, err := drain()
			if err != nil {
				return err
			}
			drains = append(drains, drained.Seconds())
			// The sustained rate counts the time the job workers ran on after the
			// phase (the receipts): what the server finished, not only what it
			// accepted.
			sustained := rate * b.phase.Seconds() / (b.phase.Seconds() + drained.Seconds())
			sustainedRatios = append(sustainedRatios, sustained/r)
			raws, rates, ratios = append(raws, r), append(rates, rate), append(ratios, rate/r)
			rawCPU = append(rawCPU, float64(cpuRaw.Microseconds())/max(1, r*b.phase.Seconds()))
			apiCPU = append(apiCPU, float64(cpuAPI.Microseconds())/max(1, rate*b.phase.Seconds()))
			lat = append(lat, l...)
			failed += fl
			rawFailed += rf
			sent += len(l) + fl
			if b.rounds > 1 {
				fmt.Printf("   %2d concurrent, round %d: raw deposits %5.0f/s; API deposits %5.0f/s; ratio %.2f\n", c, round+1, r, rate, rate/r)
			}
		}
		ratio := median(ratios)
		fmt.Printf("at %2d concurrent (median of %d rounds): raw deposits %.0f/s; API deposits %.0f/s; ratio %.2f",
			c, b.rounds, median(raws), median(rates), ratio)
		if c == 4 && sqlite {
			fmt.Printf(" (aim >= %.2f)", ratioAim)
		}
		fmt.Printf("\n    API deposits p50 %v p99 %v; failed %d (raw %d)\n", rounded(lat.pct(50)), rounded(lat.pct(99)), failed, rawFailed)
		perDeposit := func(d time.Duration) time.Duration { return (d / time.Duration(max(1, sent))).Round(time.Microsecond) }
		if sqlite {
			fmt.Printf("    CPU per raw deposit %.0fµs, per API deposit %.0fµs (server and clients); a deposit waited %v for the write connection, %v for read connections on average\n",
				median(rawCPU), median(apiCPU), perDeposit(wait), perDeposit(readWait))
		} else {
			fmt.Printf("    CPU per raw deposit %.0fµs, per API deposit %.0fµs (server and clients); a deposit waited %v for a connection on average\n",
				median(rawCPU), median(apiCPU), perDeposit(wait))
		}
		fmt.Printf("    other processes on the machine used %.2f cores during the API phases (median)%s\n", median(apiOthers), serverNote)
		fmt.Printf("    after the API phase its job workers ran %.1fs more (median; the receipts); counting that time, ratio %.2f\n",
			median(drains), median(sustainedRatios))
		if c == 4 && sqlite && ratio < ratioAim {
			problems = append(problems, fmt.Sprintf("API deposits / raw deposits %.2f at 4 concurrent (aim >= %.2f)", ratio, ratioAim))
		}
		if failed > 0 || rawFailed > 0 {
			problems = append(problems, fmt.Sprintf("%d API deposits and %d raw deposits failed at %d concurrent", failed, rawFailed, c))
		}
	}
	// Every deposit through the API should have been posted.
	var notPosted int
	marks := make([]any, len(apiFamilies))
	for i, f := range apiFamilies {
		marks[i] = f.account
	}
	if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM deposits WHERE state <> 'posted' AND account_id IN ("+database.Placeholders(1, len(marks))+")",
		marks...).Scan(&notPosted); err != nil {
		return err
	}
	if notPosted > 0 {
		problems = append(problems, fmt.Sprintf("%d deposits through the API were not posted", notPosted))
	}

	// 3. The feed with `stored` deposits.
	t0 := time.Now()
	have, rows, err := fill(ctx, db, agencyID, b.stored)
	if err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	if _, err := drain(); err != nil {
		return err
	}
	fmt.Printf("\nstored %d deposits (%d feed rows of the agency) in %v; load average %s\n", have, rows, time.Since(t0).Round(time.Second), loadAverage())
	page := func(since int64) (time.Duration, int64, int, error) {
		t0 := time.Now()
		status, out, err := api(base, "GET", "/api/v1/agency/deposits?since="+strconv.FormatInt(since, 10)+"&limit="+strconv.Itoa(feedPage), feedKey, nil)
		d := time.Since(t0)
		if err != nil || status != 200 {
			return d, 0, 0, fmt.Errorf("feed page after %d: %d %v %.200s", since, status, err, out)
		}
		// The page is not decoded, which would take a core from the readers in
		// parallel: its rows are counted, and its cursor read (a full page of a
		// feed numbered without gaps ends at since + 500).
		const key = `"next_cursor":"`
		at := bytes.LastIndex(out, []byte(key))
		end := -1
		if at >= 0 {
			end = bytes.IndexByte(out[at+len(key):], '"')
		}
		if end < 0 {
			return d, 0, 0, fmt.Errorf("feed page after %d: no next_cursor in %.200s", since, out)
		}
		next, _ := strconv.ParseInt(string(out[at+len(key):at+len(key)+end]), 10, 64)
		return d, next, bytes.Count(out, []byte(`{"seq":`)), nil
	}
	var last int64
	if err := db.Read().QueryRowContext(ctx, "SELECT MAX(seq) FROM deposit_feed WHERE agency_id = $1", agencyID).Scan(&last); err != nil {
		return err
	}
	randomCursor := func() int64 { return mrand.Int64N(max(1, last-feedPage)) }
	type feedPhase struct {
		name   string
		lat    latencies
		others float64 // cores other processes kept busy meanwhile
	}
	var phases []feedPhase
	// others measures, from when it is called to when the function it returns is,
	// the cores other processes on the machine kept busy: every process's (from
	// /proc/stat) less this one's.
	others := func() func() float64 {
		m0, p0, t0 := machineCPU(), processCPU(), time.Now()
		return func() float64 {
			return max(0, machineCPU().busyCores(m0)-(processCPU()-p0).Seconds()/time.Since(t0).Seconds())
		}
	}
	phaseOthers := others()
	// From the start, following next_cursor, as a trust system catching up (and
	// from the start again at the end of the feed).
	var fromStart latencies
	for since, i := int64(0), 0; i < b.pages; i++ {
		if since+feedPage > last {
			since = 0
		}
		d, next, n, err := page(since)
		if err != nil {
			return err
		}
		if n != feedPage || next != since+feedPage {
			return fmt.Errorf("the page from the start after %d had %d rows, up to %d", since, n, next)
		}
		fromStart, since = append(fromStart, d), next
	}
	phases = append(phases, feedPhase{"from the start (next_cursor)", fromStart, phaseOthers()})
	phaseOthers = others()
	var random latencies
	for range b.pages {
		d, _, n, err := page(randomCursor())
		if err != nil {
			return err
		}
		if n != feedPage {
			return fmt.Errorf("a page from a random cursor had %d rows", n)
		}
		random = append(random, d)
	}
	phases = append(phases, feedPhase{"random cursors, one reader", random, phaseOthers()})
	if b.cpuProfile != "" {
		pf, err := os.Create(b.cpuProfile + ".feed")
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(pf)
		defer pf.Close()
	}
	var parallel latencies
	var mu sync.Mutex
	var perr error
	var wg sync.WaitGroup
	t0 = time.Now()
	phaseOthers = others()
	for range b.readers {
		wg.Go(func() {
			for range b.pages {
				d, _, n, err := page(randomCursor())
				mu.Lock()
				if err == nil && n != feedPage {
					err = fmt.Errorf("a page from a random cursor had %d rows", n)
				}
				if err != nil {
					perr = err
				}
				parallel = append(parallel, d)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if b.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if perr != nil {
		return perr
	}
	phases = append(phases, feedPhase{fmt.Sprintf("random cursors, %d readers at once", b.readers), parallel, phaseOthers()})
	fmt.Printf("feed pages of %d (GET /api/v1/agency/deposits?since=&limit=%d), %d pages a phase:\n", feedPage, feedPage, b.pages)
	for _, p := range phases {
		p99 := p.lat.pct(99)
		fmt.Printf("  %-36s p50 %v p99 %v; p99 / %v = %.2f (aim < 1); other processes used %.2f cores%s\n", p.name+":", rounded(p.lat.pct(50)),
			rounded(p99), feedTarget, float64(p99)/float64(feedTarget), p.others, serverNote)
		if p99 >= feedTarget {
			problems = append(problems, fmt.Sprintf("feed p99 %v %s", rounded(p99), p.name))
		}
	}
	fmt.Printf("  with %d readers at once: %.0f pages/s (%.0f rows/s)\n", b.readers, float64(len(parallel))/elapsed.Seconds(),
		float64(len(parallel)*feedPage)/elapsed.Seconds())

	// For context, not judged: one reader while families deposit through the API
	// at 4 concurrent, as a trust system polls during the day; the writes hold
	// SQLite's one writer.
	if _, err := drain(); err != nil {
		return err
	}
	var made, refused atomic.Int64
	stop := make(chan struct{})
	var depositors sync.WaitGroup
	for w := range 4 {
		depositors.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if status, err := deposit(w); err == nil && status == 201 {
					made.Add(1)
				} else {
					refused.Add(1)
				}
			}
		})
	}
	time.Sleep(time.Second)
	t0 = time.Now()
	var busy latencies
	for range b.pages {
		d, _, n, err := page(randomCursor())
		if err == nil && n != feedPage {
			err = fmt.Errorf("a page from a random cursor had %d rows", n)
		}
		if err != nil {
			close(stop)
			depositors.Wait()
			return err
		}
		busy = append(busy, d)
	}
	close(stop)
	depositors.Wait()
	fmt.Printf("  %-36s p50 %v p99 %v (for context; %.0f deposits/s meanwhile, %d failed)\n", "random cursors, one reader, while 4 deposit:",
		rounded(busy.pct(50)), rounded(busy.pct(99)), float64(made.Load())/(time.Since(t0).Seconds()+1), refused.Load())
	if refused.Load() > 0 {
		problems = append(problems, fmt.Sprintf("%d deposits failed while the feed was read", refused.Load()))
	}

	fmt.Printf("\nload average at the end: %s\n", loadAverage())
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// feedLock is the key of deposits' per-agency feed lock, as its lockKey makes it.
func feedLock(agencyID string) int64 {
	h := fnv.New64a()
	h.Write([]byte("deposit-feed:" + agencyID))
	return int64(h.Sum64() >> 1)
}

// confirmation is a deposit's confirmation, as deposits makes them: KL-XXXX-XXXX.
func confirmation() string {
	const alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
	b := make([]byte, 8)
	rand.Read(b)
	out := []byte("KL-")
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}

// depositingFamilies adds n families with the demo family's password, each with an
// approved contact with a resident of its own, added to the demo agency's first
// facility (BD00001, BD00002, …).
func depositingFamilies(ctx context.Context, db *database.DB, agencyID string, n int) ([]family, error) {
	var hash, question, answer, facilityID string
	if err := db.Read().QueryRowContext(ctx, "SELECT password_hash, security_question, security_answer_hash FROM accounts WHERE email = 'maria@example.org'").
		Scan(&hash, &question, &answer); err != nil {
		return nil, err
	}
	if err := db.Read().QueryRowContext(ctx, "SELECT id FROM facilities WHERE agency_id = $1 ORDER BY code LIMIT 1", agencyID).Scan(&facilityID); err != nil {
		return nil, err
	}
	out := make([]family, n)
	now := time.Now().UTC()
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		for i := range out {
			f := &out[i]
			f.agency, f.facility, f.resident = agencyID, facilityID, ids.New()
			f.account, f.contact, f.email = ids.New(), ids.New(), fmt.Sprintf("depositor-%d@bench.example.org", i)
			if _, err := tx.ExecContext(ctx, `INSERT INTO residents (id, agency_id, facility_id, resident_number, first_name, last_name, search_first, search_last,
				housing_unit, status, created_at, updated_at) VALUES ($1, $2, $3, $4, 'Bench', $5, 'bench', $6, 'A-1', 'active', $7, $7)`,
				f.resident, agencyID, facilityID, fmt.Sprintf("BD%05d", i+1), fmt.Sprintf("Depositee%d", i), fmt.Sprintf("depositee%d", i), now); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question, security_answer_hash,
				status, created_at, password_changed_at) VALUES ($1, $2, $3, 'en', $4, $5, $6, 'active', $7, $7)`,
				f.account, f.email, fmt.Sprintf("Bench Depositor %d", i), hash, question, answer, now); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (id, account_id, resident_id, status, created_at, decided_at) VALUES ($1, $2, $3, 'approved', $4, $4)`,
				f.contact, f.account, f.resident, now); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// fill inserts posted deposits of the agency, with their feed rows, until the
// deposits table holds n: multi-row INSERTs of 500 rows, 100 of them a
// transaction. The deposits come from 1,000 generated families to 1,000
// generated residents of the agency, over the past year. It returns the deposits
// and the agency's feed rows.
func fill(ctx context.Context, db *database.DB, agencyID string, n int) (int, int, error) {
	var have, seq int
	if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM deposits").Scan(&have); err != nil {
		return 0, 0, err
	}
	if err := db.Read().QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM deposit_feed WHERE agency_id = $1", agencyID).Scan(&seq); err != nil {
		return 0, 0, err
	}
	type resident struct{ id, facility, code, number, name string }
	type facilityRow struct{ id, code string }
	var facilities []facilityRow
	rows, err := db.Read().QueryContext(ctx, "SELECT id, code FROM facilities WHERE agency_id = $1 ORDER BY code", agencyID)
	if err != nil {
		return 0, 0, err
	}
	for rows.Next() {
		var f facilityRow
		if err := rows.Scan(&f.id, &f.code); err != nil {
			rows.Close()
			return 0, 0, err
		}
		facilities = append(facilities, f)
	}
	rows.Close()
	now := time.Now().UTC()
	// Residents and families of their own, so that the deposits of the bench's
	// families (and their residents' limit sums) stay what the rate phases made.
	residents := make([]resident, 1000)
	accounts := make([]string, 1000)
	if have < n {
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			for i := range accounts {
				accounts[i] = ids.New()
				if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question, security_answer_hash,
					status, created_at, password_changed_at) VALUES ($1, $2, 'Bench Family', 'en', 'x', 'first_pet', 'x', 'active', $3, $3)`,
					accounts[i], accounts[i]+"@bench.example.org", now); err != nil {
					return err
				}
				f := facilities[i%len(facilities)]
				r := resident{id: ids.New(), facility: f.id, code: f.code, number: fmt.Sprintf("BF%05d", i), name: fmt.Sprintf("Bench Resident%d", i)}
				if _, err := tx.ExecContext(ctx, `INSERT INTO residents (id, agency_id, facility_id, resident_number, first_name, last_name, search_first, search_last,
					housing_unit, status, created_at, updated_at) VALUES ($1, $2, $3, $4, 'Bench', $5, 'bench', $6, 'A-1', 'active', $7, $7)`,
					r.id, agencyID, r.facility, r.number, fmt.Sprintf("Resident%d", i), fmt.Sprintf("resident%d", i), now); err != nil {
					return err
				}
				residents[i] = r
			}
			return nil
		}); err != nil {
			return 0, 0, err
		}
	}
	const batch, perTx = 500, 100
	// On SQLite the parameters are anonymous (?): to bind each numbered one
	// ($1…) the driver asks SQLite its name, which SQLite finds by a walk through
	// the list of names, in time that grows with the square of their number
	// (thousands here).
	values := func(rows, cols int) string {
		var s strings.Builder
		for r := range rows {
			if r > 0 {
				s.WriteString(", ")
			}
			if db.Dialect == database.SQLite {
				s.WriteString("(?" + strings.Repeat(", ?", cols-1) + ")")
			} else {
				s.WriteString("(" + database.Placeholders(r*cols+1, cols) + ")")
			}
		}
		return s.String()
	}
	const depositCols, feedCols = 23, 17
	insertDeposits := `INSERT INTO deposits (id, confirmation, agency_id, facility_id, facility_code, resident_id, resident_number, resident_name,
		account_id, contact_id, amount_cents, fee_cents, state, sender_name, sender_address, email, locale, processor, charge_id, charged,
		idempotency_key, created_at, posted_at) VALUES `
	insertFeedRows := `INSERT INTO deposit_feed (agency_id, seq, kind, deposit_id, resident_id, resident_number, resident_name,
		facility_code, amount_cents, fee_cents, memo, ledger_key, at, confirmation, deposit_cents, sender_name, sender_address) VALUES `
	full := map[string]*sql.Stmt{} // the statements of full batches, prepared once
	for _, q := range []struct {
		sql  string
		cols int
	}{{insertDeposits, depositCols}, {insertFeedRows, feedCols}} {
		st, err := db.Write().PrepareContext(ctx, q.sql+values(batch, q.cols))
		if err != nil {
			return 0, 0, err
		}
		defer st.Close()
		full[q.sql] = st
	}
	exec := func(tx *sql.Tx, query string, k, cols int, args []any) error {
		if k == batch {
			_, err := tx.StmtContext(ctx, full[query]).ExecContext(ctx, args...)
			return err
		}
		_, err := tx.ExecContext(ctx, query+values(k, cols), args...)
		return err
	}
	total := n - have
	made := 0
	for made < total {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			for range perTx {
				k := min(batch, total-made)
				if k == 0 {
					return nil
				}
				dargs := make([]any, 0, k*depositCols)
				fargs := make([]any, 0, k*feedCols)
				for j := range k {
					i := made + j
					r := residents[i%len(residents)]
					at := now.Add(-365 * 24 * time.Hour).Add(time.Duration(i) * (365 * 24 * time.Hour / time.Duration(total)))
					id := ids.Ordered()
					amount := int64(500 + (i%60)*500)
					fee := int64(195)
					if amount > 2000 {
						fee = 395
					}
					conf := fmt.Sprintf("BN-%04d-%04d", i/10000, i%10000)
					const sender, address = "Bench Sender", "100 Main Street, Austin, TX 78701"
					dargs = append(dargs, id, conf, agencyID, r.facility, r.code, r.id, r.number, r.name,
						accounts[i%len(accounts)], "", amount, fee, deposits.Posted, sender, address,
						"", "en", "sandbox", "ch_bench_"+id, true, "bench-fill:"+id, at, at)
					seq++
					fargs = append(fargs, agencyID, seq, deposits.FeedPosted, id, r.id, r.number, r.name, r.code, amount, fee,
						"Kinlink deposit "+conf, "deposit:"+id+":post", at, conf, amount, sender, address)
				}
				if err := exec(tx, insertDeposits, k, depositCols, dargs); err != nil {
					return err
				}
				if err := exec(tx, insertFeedRows, k, feedCols, fargs); err != nil {
					return err
				}
				made += k
			}
			return nil
		})
		if err != nil {
			return have + made, seq, err
		}
	}
	return have + made, seq, nil
}

// poolWait is the total time the server's requests have waited for a connection of
// the pool that writes (SQLite's one writer, or PostgreSQL's pool), from its metrics.
func poolWait(client *http.Client, base string) time.Duration {
	return poolWaitOf(client, base, "(?:write|main)")
}

// poolWaitOf is the total time the server's requests have waited for a
// connection of the pool named (a regular expression).
func poolWaitOf(client *http.Client, base, pool string) time.Duration {
	res, err := client.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^go_sql_wait_duration_seconds_total\{db_name="` + pool + `"\} (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	sec, _ := strconv.ParseFloat(string(m[1]), 64)
	return time.Duration(sec * float64(time.Second))
}

// loadAverage is the machine's load average over 1, 5 and 15 minutes, where the
// system tells it: on a shared machine, how many other processes wanted the cores.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// cpuTimes is the first line of /proc/stat: all cores' ticks, and the idle ones.
type cpuTimes struct{ total, idle float64 }

func machineCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var t cpuTimes
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		t.total += v
		if i == 3 || i == 4 { // idle, iowait
			t.idle += v
		}
	}
	return t
}

// busyCores is how many cores every process on the machine kept busy since then
// (0 where /proc/stat is not).
func (t cpuTimes) busyCores(then cpuTimes) float64 {
	total := t.total - then.total
	if total <= 0 {
		return 0
	}
	return (1 - (t.idle-then.idle)/total) * float64(runtime.NumCPU())
}

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
