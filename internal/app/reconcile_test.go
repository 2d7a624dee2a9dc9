package app_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/app"
	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/ledger"
)

// stripeLists stands in for Stripe's list endpoints with one page each: the
// paging itself is stripepay's test.
type stripeLists struct {
	mu      sync.Mutex
	intents []map[string]any
}

func (s *stripeLists) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodGet || r.Header.Get("Authorization") != "Bearer sk_test_0123456789abcdef" {
		w.WriteHeader(400)
		w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"no"}}`))
		return
	}
	gte, _ := strconv.ParseInt(r.URL.Query().Get("created[gte]"), 10, 64)
	lt, _ := strconv.ParseInt(r.URL.Query().Get("created[lt]"), 10, 64)
	data := []map[string]any{}
	if r.URL.Path == "/v1/payment_intents" {
		for _, pi := range s.intents {
			if c := pi["created"].(int64); c >= gte && c < lt {
				data = append(data, pi)
			}
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"object": "list", "url": r.URL.Path, "has_more": false, "data": data})
}

func (s *stripeLists) charge(id string, cents int64, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.intents = append(s.intents, map[string]any{"id": id, "object": "payment_intent", "amount": cents, "amount_received": cents,
		"currency": "usd", "status": "succeeded", "created": at.Unix(), "metadata": map[string]string{"kinlink_key": "topup:a:" + id}})
}

// kinlink ledger reconcile matches a day of the ledger with Stripe's records, and
// fails, listing them, on differences; the sandbox has nothing to reconcile with.
func TestLedgerReconcileCommand(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.Open(t, e.Setting)
			day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
			stripe := &stripeLists{}
			srv := httptest.NewServer(stripe)
			t.Cleanup(srv.Close)
			l := ledger.New(db)
			for i, id := range []string{"pi_a", "pi_b"} {
				at := day.Add(time.Duration(10+i) * time.Hour)
				stripe.charge(id, 2000, at)
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					txid, _, err := l.Post(ctx, tx, ledger.Transaction{Kind: "topup", IdempotencyKey: "topup:a:" + id, Reference: id,
						Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -2000}, {Account: ledger.WalletOf("a"), Amount: 2000}},
						Card:    ledger.CardRef{Kind: ledger.CardCharge, ID: id, ChargeID: id}})
					if err != nil {
						return err
					}
					_, err = db.TxExec(ctx, tx, "UPDATE ledger_transactions SET created_at = $2 WHERE id = $1", txid, at.Add(time.Second))
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{"KINLINK_DATABASE": e.Setting, "KINLINK_DATA_DIR": t.TempDir(),
				"KINLINK_PAYMENT_PROCESSOR": "stripe", "KINLINK_STRIPE_SECRET_KEY": "sk_test_0123456789abcdef",
				"KINLINK_STRIPE_PUBLISHABLE_KEY": "pk_test_0123456789abcdef", "KINLINK_STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
				"KINLINK_STRIPE_API_URL": srv.URL}

			out, _, err := run(t, env, "ledger", "reconcile", "--day", "2026-03-10")
			if err != nil || !strings.Contains(out, "2026-03-10, Tuesday (UTC)") || !strings.Contains(out, "2 movements matched") ||
				!strings.Contains(out, "reconciled: every movement") || !strings.Contains(out, "charges $40.00") {
				t.Fatalf("a day that matches: %v\n%s", err, out)
			}
			// Stripe took $55.00 from a card the ledger never credited.
			stripe.charge("pi_lost", 5500, day.Add(15*time.Hour))
			out, _, err = run(t, env, "ledger", "reconcile", "-day=2026-03-10")
			if err == nil || app.IsUsage(err) || !strings.Contains(err.Error(), "do not reconcile for 2026-03-10: 1 differences") ||
				!strings.Contains(out, "at the processor, not in the ledger: charge $55.00 of pi_lost") {
				t.Errorf("a charge the ledger lacks: %v\n%s", err, out)
			}
			// Another day has nothing on either side.
			if out, _, err := run(t, env, "ledger", "reconcile", "--day", "2026-03-12"); err != nil || !strings.Contains(out, "0 movements matched") {
				t.Errorf("an empty day: %v\n%s", err, out)
			}
			if _, _, err := run(t, env, "ledger", "reconcile", "--day", "10/03/2026"); !app.IsUsage(err) || !strings.Contains(err.Error(), "--day") {
				t.Errorf("a bad day: %v", err)
			}
			sandbox := map[string]string{"KINLINK_DATABASE": e.Setting, "KINLINK_DATA_DIR": t.TempDir()}
			if _, _, err := run(t, sandbox, "ledger", "reconcile"); err == nil || !strings.Contains(err.Error(), "sandbox, which keeps no records") {
				t.Errorf("the sandbox: %v", err)
			}
		})
	}
}

// A daily reconciliation that cannot be done (Stripe unreachable) is no quiet
// warning: the server counts it in its metrics, and tries again.
func TestDailyReconciliationFailuresAreCounted(t *testing.T) {
	var lists atomic.Int64
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lists.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		w.Write([]byte(`{"error":{"type":"api_error","message":"Something went wrong on Stripe's end."}}`))
	}))
	t.Cleanup(stripe.Close)
	in := apptest.Start(t, "serve", dbtest.Engines(t)[0].Setting, map[string]string{
		"KINLINK_PAYMENT_PROCESSOR": "stripe", "KINLINK_STRIPE_SECRET_KEY": "sk_test_0123456789abcdef",
		"KINLINK_STRIPE_PUBLISHABLE_KEY": "pk_test_0123456789abcdef", "KINLINK_STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
		"KINLINK_STRIPE_API_URL": stripe.URL})
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := http.Get(in.MetricsURL)
		if err != nil {
			t.Fatalf("metrics listener: %v", err)
		}
		b := apptest.Body(t, res)
		if strings.Contains(b, "kinlink_ledger_reconciliation_failures_total 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d requests to Stripe, no failure counted:\n%s", lists.Load(), grepLines(b, "kinlink_ledger"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, word) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
