// Command messaging measures eMessages in one run against the same database:
//
//  1. the raw rate of send transactions: the statements of messaging.Service.Send's
//     transaction with the same rows (the message, the ledger transaction, the
//     wallet's guarded balance and the two entries), run directly on the database
//     through database/sql, at the same concurrency, with no HTTP and none of a
//     send's reads; and, for context, of one-row insert transactions;
//  2. the HTTP send rate of text messages that need no review (POST
//     /api/v1/contacts/{id}/messages) at a few concurrencies, as a ratio to the raw
//     send transactions, with p50/p99, and as a multiple of the national peak;
//  3. with 1,000,000 messages stored, the p99 of loading a conversation (API) and a
//     resident's kiosk inbox (GET /kiosk).
//
// With no -database it runs each SQLite driver (-drivers) on a database of its own,
// in turns within each round, so that both meet the same state of the machine.
//
// Aims at 4 concurrent: sends at least 0.7 of the raw send transactions on every
// engine, and on SQLite at least 10x the national peak of sends; both p99 under
// 20 ms. It exits non-zero when an aim is missed.
//
//	go run ./bench/messaging [-seconds 5] [-rounds 3] [-messages 1000000] [-drivers modernc,ncruces] [-database postgres://...]
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
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

const (
	ratioAim = 0.7 // sends / raw send transactions, at 4 concurrent
	// nationalPeak is the US's sends per second at peak (/work/shared/DOMAIN.md,
	// "Scale": about a million messages a day, ~150 a second at peak); on SQLite one
	// machine should carry peakMultipleAim times that.
	nationalPeak    = 150
	peakMultipleAim = 10
	loadTarget      = 20 * time.Millisecond
)

func main() {
	seconds := flag.Int("seconds", 5, "seconds per measured phase")
	rounds := flag.Int("rounds", 3, "rounds of raw transactions and sends at each concurrency (the median is judged)")
	messages := flag.Int("messages", 1_000_000, "messages stored before the load measurements")
	setting := flag.String("database", "", "database setting (default: a new SQLite file for each of -drivers)")
	drivers := flag.String("drivers", database.Modernc+","+database.Ncruces, "SQLite drivers to compare when -database is not given")
	concurrency := flag.String("concurrency", "1,4,16", "concurrent clients, each a family of its own (at most 16)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the sends at 4 concurrent to FILE (FILE.DRIVER with several drivers)")
	flag.Parse()
	var cs []int
	for _, f := range strings.Split(*concurrency, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 || c > 16 {
			fmt.Fprintln(os.Stderr, "messaging bench: -concurrency takes numbers from 1 to 16, such as 1,4,16")
			os.Exit(2)
		}
		cs = append(cs, c)
	}
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "messaging bench: -rounds must be at least 1")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "kinlink-messaging-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "messaging bench:", err)
		os.Exit(1)
	}
	settings := []string{*setting}
	if *setting == "" {
		settings = nil
		for _, d := range strings.Split(*drivers, ",") {
			d = strings.TrimSpace(d)
			if d != database.Modernc && d != database.Ncruces {
				fmt.Fprintf(os.Stderr, "messaging bench: -drivers takes %s and %s\n", database.Modernc, database.Ncruces)
				os.RemoveAll(dir)
				os.Exit(2)
			}
			settings = append(settings, "sqlite+"+d+":"+filepath.Join(dir, d, "kinlink.db"))
		}
	}
	err = run(bench{phase: time.Duration(*seconds) * time.Second, rounds: *rounds, stored: *messages, concurrency: cs, cpuProfile: *cpuProfile, dir: dir}, settings)
	os.RemoveAll(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "messaging bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	phase       time.Duration
	rounds      int
	stored      int
	concurrency []int
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

// target is one database under test with its own demo server.
type target struct {
	name    string // "sqlite/modernc", "sqlite/ncruces", "postgres"
	setting string
	sqlite  bool
	base    string
	metrics string // the server's metrics listener
	guide   *syncBuffer
	db      *database.DB
	senders []sender
	sendRow sendRow
}

// sendRow is what a text send without review stores besides its ids and text, read
// back from a real send so that the raw send transactions write the same rows.
type sendRow struct {
	state        string
	stamps       int
	cents        int64
	prepaidReply bool
	watchMatch   string
}

// insertMessage is messaging.Service.Send's message INSERT, word for word; the rest
// of a send's transaction is ledger.Post, which the raw send transactions call
// themselves.
const insertMessage = `INSERT INTO messages (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, body, state,
			cost_stamps, cost_cents, prepaid_reply, watch_match, idempotency_key, created_at, delivered_at, request_hash)
			VALUES ($1, $2, $3, $4, $5, $6, 'to_resident', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT (idempotency_key) DO NOTHING`

func run(b bench, settings []string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	api := func(base, method, path, token string, body io.Reader, headers ...string) (int, map[string]any, error) {
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
	sendText := func(w, i int) string {
		return fmt.Sprintf("Bench message %d from worker %d. Te quiero mucho 💛", i, w)
	}
	send := func(t *target, w, i int) (int, error) {
		status, _, err := api(t.base, "POST", "/api/v1/contacts/"+t.senders[w].contact+"/messages", t.senders[w].token,
			strings.NewReader(url.Values{"text": {sendText(w, i)}}.Encode()),
			"Content-Type", "application/x-www-form-urlencoded", "Idempotency-Key", ids.New())
		return status, err
	}

	var targets []*target
	for i, setting := range settings {
		t := &target{setting: setting, guide: &syncBuffer{}}
		if driver, _, ok := database.SQLiteSetting(setting); ok {
			t.name, t.sqlite = "sqlite/"+driver, true
		} else {
			t.name = "postgres"
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr := l.Addr().String()
		l.Close()
		ml, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		maddr := ml.Addr().String()
		ml.Close()
		t.metrics = "http://" + maddr
		data := filepath.Join(b.dir, fmt.Sprintf("data-%d", i))
		env := map[string]string{"KINLINK_ADDR": addr, "KINLINK_METRICS_ADDR": maddr, "KINLINK_DATABASE": setting, "KINLINK_DATA_DIR": data, "KINLINK_LOG_LEVEL": "error"}
		go app.Run(ctx, []string{"demo"}, func(k string) string { return env[k] }, t.guide, io.Discard)
		t.base = "http://" + addr
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(t.guide.String(), "Stop with Ctrl+C"); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("the demo server on %s did not start:\n%s", t.name, t.guide.String())
			}
		}
		if t.db, err = database.Open(ctx, setting); err != nil {
			return err
		}
		defer t.db.Close()
		login, _ := json.Marshal(map[string]string{"email": "maria@example.org", "password": "kinlink demo family 2026"})
		_, tok, err := api(t.base, "POST", "/api/v1/login", "", bytes.NewReader(login), "Content-Type", "application/json")
		if err != nil || tok["token"] == nil {
			return fmt.Errorf("login: %v %v", err, tok)
		}
		_, people, _ := api(t.base, "GET", "/api/v1/contacts", tok["token"].(string), nil)
		contact := people["contacts"].([]any)[0].(map[string]any)["id"].(string)
		// The senders: one family per concurrent client, as on a real server, where
		// sends at the same moment come from different families (one family's own
		// sends take turns on its wallet row, by design).
		if t.senders, err = sendingFamilies(ctx, t.db, 16, contact); err != nil {
			return err
		}
		for i := range t.senders {
			login, _ := json.Marshal(map[string]string{"email": t.senders[i].email, "password": "kinlink demo family 2026"})
			_, tok, err := api(t.base, "POST", "/api/v1/login", "", bytes.NewReader(login), "Content-Type", "application/json")
			if err != nil || tok["token"] == nil {
				return fmt.Errorf("login of %s: %v %v", t.senders[i].email, err, tok)
			}
			t.senders[i].token = tok["token"].(string)
			// One send each through the API: it opens the accounts the ledger posts
			// to, and its row is the model of the raw send transactions' rows.
			if status, err := send(t, i, -1); err != nil || status != 201 {
				return fmt.Errorf("first send of %s: %d %v", t.senders[i].email, status, err)
			}
		}
		r := &t.sendRow
		if err := t.db.Read().QueryRowContext(ctx, `SELECT state, cost_stamps, cost_cents, prepaid_reply, watch_match FROM messages
			WHERE account_id = $1 AND direction = 'to_resident'`, t.senders[0].account).Scan(&r.state, &r.stamps, &r.cents, &r.prepaidReply, &r.watchMatch); err != nil {
			return fmt.Errorf("the first send's row: %w", err)
		}
		if r.state != "delivered" || r.cents <= 0 {
			return fmt.Errorf("the first send was %s costing %d cents: the bench measures sends delivered without review, paid from the wallet", r.state, r.cents)
		}
		if _, err := t.db.Write().ExecContext(ctx, "CREATE TABLE bench_raw (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at TIMESTAMP NOT NULL)"); err != nil {
			return err
		}
		targets = append(targets, t)
	}

	// 1. Raw transactions, plain database/sql rather than Kinlink's InTx, so that what
	// the server does around its transactions counts on the send side only; contexts
	// without cancellation, as the server's SQLite statements have (see
	// database.uninterrupted).
	rawInsert := func(t *target, _, _ int) error {
		ctx := context.WithoutCancel(ctx)
		tx, err := t.db.Write().BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO bench_raw (id, body, created_at) VALUES ($1, $2, $3)", ids.New(), "bench message", time.Now().UTC()); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	// The send's own transaction, nothing else: the same statements prepared once
	// (the server's are, through the same database helpers), the same kinds of rows
	// with fresh ids, keys and times, for the worker's own family.
	ledgers := map[*target]*ledger.Ledger{}
	for _, t := range targets {
		ledgers[t] = ledger.New(t.db)
	}
	rawSend := func(t *target, w, i int) error {
		ctx := context.WithoutCancel(ctx)
		s, r := t.senders[w], t.sendRow
		text := sendText(w, i)
		hash := sha256.Sum256([]byte(s.contact + "\x00" + text))
		id, key, now := ids.Ordered(), "message:"+s.account+":"+ids.New(), time.Now().UTC().Truncate(time.Microsecond)
		tx, err := t.db.Write().BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := t.db.TxExec(ctx, tx, insertMessage, id, s.contact, s.account, s.resident, s.agency, s.facility, text, r.state,
			r.stamps, r.cents, r.prepaidReply, r.watchMatch, key, now, now, hex.EncodeToString(hash[:])); err != nil {
			tx.Rollback()
			return err
		}
		if _, _, err := ledgers[t].Post(ctx, tx, ledger.Transaction{Kind: "message", IdempotencyKey: key, Description: "Message", Reference: id,
			Entries: []ledger.Entry{{Account: ledger.WalletOf(s.account), Amount: -r.cents}, {Account: ledger.Ref{Kind: ledger.Platform}, Amount: r.cents}}}); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	raw := func(t *target, workers int, do func(t *target, w, i int) error) (float64, int) {
		var n, failed atomic.Int64
		deadline := time.Now().Add(b.phase)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range workers {
			wg.Go(func() {
				for i := 0; time.Now().Before(deadline); i++ {
					if err := do(t, w, i); err == nil {
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

	// 2. HTTP sends, and as the floor of any request on this machine the same
	// server's GET /healthz (no database, the same middleware and client).
	load := func(workers int, request func(worker, i int) (int, error), want int) (float64, latencies, int) {
		var mu sync.Mutex
		var lat latencies
		var failed int
		deadline := time.Now().Add(b.phase)
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

	var names []string
	for _, t := range targets {
		names = append(names, t.name)
	}
	fmt.Printf("databases: %s; %d cores; %d rounds of %v phases; load average %s\n", strings.Join(names, ", "), runtime.NumCPU(), b.rounds, b.phase, loadAverage())
	fmt.Printf("national peak: %d sends/s (DOMAIN.md: about a million messages a day, ~150 a second at peak); aim on SQLite: at least %dx, %d sends/s\n",
		nationalPeak, peakMultipleAim, peakMultipleAim*nationalPeak)
	var problems []string
	// Each concurrency runs `rounds` times; in each round every database in turn
	// runs its raw transactions just before its sends, so that all meet the same
	// state of a shared machine; the ratio judged is the median of the rounds'.
	type figures struct {
		inserts, raws, rates, ratios, coreUse []float64
		rawCPU, sendCPU                       []float64 // µs of CPU (the whole process) per raw send tx, per send
		lat                                   latencies
		failed, rawFailed, sends              int
		wait                                  time.Duration
	}
	for _, c := range b.concurrency {
		fig := map[*target]*figures{}
		for _, t := range targets {
			fig[t] = &figures{}
		}
		for round := range b.rounds {
			for _, t := range targets {
				f := fig[t]
				ins, insFailed := raw(t, c, rawInsert)
				cpuRaw := processCPU()
				r, rFailed := raw(t, c, rawSend)
				cpuRaw = processCPU() - cpuRaw
				profile := c == 4 && round == 0 && b.cpuProfile != ""
				if profile {
					name := b.cpuProfile
					if len(targets) > 1 {
						name += "." + strings.ReplaceAll(t.name, "/", "-")
					}
					pf, err := os.Create(name)
					if err != nil {
						return err
					}
					pprof.StartCPUProfile(pf)
					defer pf.Close()
				}
				cpu0, wait0 := processCPU(), poolWait(client, t.metrics)
				rate, roundLat, roundFailed := load(c, func(w, i int) (int, error) { return send(t, w, i) }, 201)
				cpuSends := processCPU() - cpu0
				f.coreUse = append(f.coreUse, cpuSends.Seconds()/b.phase.Seconds())
				f.rawCPU = append(f.rawCPU, float64(cpuRaw.Microseconds())/(r*b.phase.Seconds()))
				f.sendCPU = append(f.sendCPU, float64(cpuSends.Microseconds())/(rate*b.phase.Seconds()))
				f.wait += poolWait(client, t.metrics) - wait0
				if profile {
					pprof.StopCPUProfile()
				}
				f.inserts, f.raws, f.rates, f.ratios = append(f.inserts, ins), append(f.raws, r), append(f.rates, rate), append(f.ratios, rate/r)
				f.lat = append(f.lat, roundLat...)
				f.failed += roundFailed
				f.rawFailed += insFailed + rFailed
				f.sends += len(roundLat) + roundFailed
				if b.rounds > 1 {
					fmt.Printf("   %2d concurrent, round %d, %-14s raw insert tx %5.0f/s; raw send tx %5.0f/s; sends %5.0f/s; ratio %.2f\n",
						c, round+1, t.name+":", ins, r, rate, rate/r)
				}
			}
		}
		fmt.Printf("at %2d concurrent (median of %d rounds):\n", c, b.rounds)
		for _, t := range targets {
			f := fig[t]
			ratio, rate := median(f.ratios), median(f.rates)
			fmt.Printf("  %-15s raw send tx %.0f/s; sends %.0f/s; ratio %.2f (aim >= %.2f); p50 %v p99 %v; failed %d\n",
				t.name+":", median(f.raws), rate, ratio, ratioAim, f.lat.pct(50).Round(10*time.Microsecond), f.lat.pct(99).Round(10*time.Microsecond), f.failed)
			fmt.Printf("  %-15s raw insert tx (one row, for context) %.0f/s; sends are %.2f of it\n", "", median(f.inserts), rate/median(f.inserts))
			if t.sqlite {
				fmt.Printf("  %-15s sends are %.1fx the national peak of %d/s (aim >= %dx)\n", "", rate/nationalPeak, nationalPeak, peakMultipleAim)
			}
			fmt.Printf("  %-15s server and clients used %.2f of %d cores; a send waited %v for a write connection on average\n",
				"", median(f.coreUse), runtime.NumCPU(), (f.wait / time.Duration(max(1, f.sends))).Round(time.Microsecond))
			fmt.Printf("  %-15s CPU per raw send tx %.0fµs, per send %.0fµs (server and client; less moved by other processes than the rates)\n",
				"", median(f.rawCPU), median(f.sendCPU))
			healthz := func(int, int) (int, error) {
				res, err := client.Get(t.base + "/healthz")
				if err != nil {
					return 0, err
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return res.StatusCode, nil
			}
			floor, _, _ := load(c, healthz, 200)
			fmt.Printf("  %-15s the same server's GET /healthz %.0f/s; sends are %.2f of it\n", "", floor, rate/floor)
			if c == 4 && ratio < ratioAim {
				problems = append(problems, fmt.Sprintf("%s: send/raw send tx ratio %.2f at 4 concurrent", t.name, ratio))
			}
			if c == 4 && t.sqlite && rate < peakMultipleAim*nationalPeak {
				problems = append(problems, fmt.Sprintf("%s: %.0f sends/s at 4 concurrent, under %dx the national peak", t.name, rate, peakMultipleAim))
			}
			if f.failed > 0 || f.rawFailed > 0 {
				problems = append(problems, fmt.Sprintf("%s: %d sends and %d raw transactions failed at %d concurrent", t.name, f.failed, f.rawFailed, c))
			}
		}
		if len(targets) == 2 {
			a, z := fig[targets[0]], fig[targets[1]]
			var sends, raws, cpu []float64
			for i := range a.rates {
				sends, raws, cpu = append(sends, z.rates[i]/a.rates[i]), append(raws, z.raws[i]/a.raws[i]), append(cpu, z.sendCPU[i]/a.sendCPU[i])
			}
			fmt.Printf("  %s against %s, median of the rounds: sends %.2fx, raw send tx %.2fx, CPU per send %.2fx\n",
				targets[1].name, targets[0].name, median(sends), median(raws), median(cpu))
		}
	}

	// 3. Fill to `stored` messages: other families and residents, 100 messages a
	// conversation, then time the loads.
	for _, t := range targets {
		t0 := time.Now()
		filled, err := fill(ctx, t.db, b.stored)
		if err != nil {
			return err
		}
		fmt.Printf("\n%s: stored %d messages in %v (%d conversations)\n", t.name, filled, time.Since(t0).Round(time.Second), filled/100)
		var conv latencies
		for range 300 {
			t0 := time.Now()
			status, _, err := api(t.base, "GET", "/api/v1/contacts/"+t.senders[0].contact+"/messages", t.senders[0].token, nil)
			if err != nil || status != 200 {
				return fmt.Errorf("conversation: %d %v", status, err)
			}
			conv = append(conv, time.Since(t0))
		}
		kiosk, err := residentAtKiosk(t.base, t.guide.String())
		if err != nil {
			return err
		}
		var inbox latencies
		for range 300 {
			t0 := time.Now()
			res, err := kiosk.Get(t.base + "/kiosk")
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
		t.db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM messages WHERE contact_id = $1", t.senders[0].contact).Scan(&mine)
		fmt.Printf("conversation (newest 50 of %d): p50 %v p99 %v (target p99 < %v)\n", mine, conv.pct(50).Round(10*time.Microsecond), conv.pct(99).Round(10*time.Microsecond), loadTarget)
		fmt.Printf("kiosk inbox (GET /kiosk):        p50 %v p99 %v (target p99 < %v)\n", inbox.pct(50).Round(10*time.Microsecond), inbox.pct(99).Round(10*time.Microsecond), loadTarget)
		if conv.pct(99) > loadTarget {
			problems = append(problems, fmt.Sprintf("%s: conversation p99 %v", t.name, conv.pct(99)))
		}
		if inbox.pct(99) > loadTarget {
			problems = append(problems, fmt.Sprintf("%s: inbox p99 %v", t.name, inbox.pct(99)))
		}
	}
	fmt.Printf("\nload average at the end: %s\n", loadAverage())
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// loadAverage is the machine's 1-minute load average, where the system tells it: on
// a shared machine, how many other processes wanted the same cores.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}

// sender is a family that sends in the bench, with what a send of theirs finds out
// by reading (the contact's resident, agency and facility).
type sender struct{ email, account, contact, resident, agency, facility, token string }

// sendingFamilies adds n families with the demo family's password, each with the demo
// family's resident as an approved contact and a wallet funded for 10,000,000 messages
// (a balanced top-up through the ledger, without the receipt mails of the API's).
func sendingFamilies(ctx context.Context, db *database.DB, n int, demoContact string) ([]sender, error) {
	var resident, agency, facility, hash, question, answer string
	if err := db.Read().QueryRowContext(ctx, `SELECT c.resident_id, r.agency_id, r.facility_id, a.password_hash, a.security_question, a.security_answer_hash
		FROM contacts c JOIN accounts a ON a.id = c.account_id JOIN residents r ON r.id = c.resident_id WHERE c.id = $1`, demoContact).Scan(&resident, &agency, &facility, &hash, &question, &answer); err != nil {
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
				Entries: []ledger.Entry{{Account: ledger.WalletOf(account), Amount: 100_000_000}, {Account: ledger.Ref{Kind: ledger.Cards}, Amount: -100_000_000}},
				Card:    ledger.CardRef{Kind: ledger.CardCharge, ChargeID: "ch_bench_" + account}}); err != nil {
				return err
			}
			out = append(out, sender{email: email, account: account, contact: contact, resident: resident, agency: agency, facility: facility})
		}
		return nil
	})
	return out, err
}

// fill inserts messages until the table holds n, in conversations of 100 between
// generated families and residents, in large transactions.
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
