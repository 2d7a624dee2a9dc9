package stripepay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/ledger/stripepay"
)

// lists is a local stand-in for Stripe's list endpoints (GET /v1/payment_intents,
// /v1/refunds, /v1/disputes), shaped as Stripe documents them: newest first, the
// created[gte]/created[lt] filter, pages of at most two objects (fewer than the
// limit asked, as Stripe may give) continued with starting_after while has_more,
// and a refund's or a dispute's payment intent, and a refund's failure balance
// transaction, expanded only when the request asks for it
// (expand[]=data.payment_intent, data.failure_balance_transaction).
type lists struct {
	srv     *httptest.Server
	objects map[string][]map[string]any // by path
	fail    string                      // a path answered 500

	mu   sync.Mutex
	gets []url.Values
	path []string
}

const page = 2

func newLists(t *testing.T) *lists {
	l := &lists{objects: map[string][]map[string]any{}}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *lists) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	l.mu.Lock()
	l.gets, l.path = append(l.gets, q), append(l.path, r.URL.Path)
	l.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+secretKey {
		reply(w, 401, errorBody("invalid_request_error", "", "", "Invalid API Key provided."))
		return
	}
	objects, ok := l.objects[r.URL.Path]
	if r.Method != http.MethodGet || !ok {
		reply(w, 404, errorBody("invalid_request_error", "resource_missing", "", "Unrecognized request URL."))
		return
	}
	if r.URL.Path == l.fail {
		reply(w, 500, errorBody("api_error", "", "", "Something went wrong on Stripe's end."))
		return
	}
	gte, _ := strconv.ParseInt(q.Get("created[gte]"), 10, 64)
	lt, _ := strconv.ParseInt(q.Get("created[lt]"), 10, 64)
	var all []map[string]any
	for _, o := range objects {
		if c := o["created"].(int64); c >= gte && c < lt {
			all = append(all, o)
		}
	}
	slices.SortFunc(all, func(a, b map[string]any) int {
		if a["created"].(int64) != b["created"].(int64) {
			return int(b["created"].(int64) - a["created"].(int64))
		}
		return strings.Compare(b["id"].(string), a["id"].(string))
	})
	if after := q.Get("starting_after"); after != "" {
		i := slices.IndexFunc(all, func(o map[string]any) bool { return o["id"] == after })
		if i < 0 {
			reply(w, 400, errorBody("invalid_request_error", "resource_missing", "", "No such object: "+after))
			return
		}
		all = all[i+1:]
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	n := min(len(all), page, max(limit, 1))
	data := make([]map[string]any, 0, n)
	for _, o := range all[:n] {
		for _, field := range []string{"payment_intent", "failure_balance_transaction"} {
			if obj, ok := o[field].(map[string]any); ok && !slices.Contains(expanded(q), "data."+field) {
				c := map[string]any{}
				for k, v := range o {
					c[k] = v
				}
				c[field] = obj["id"]
				o = c
			}
		}
		data = append(data, o)
	}
	b, _ := json.Marshal(map[string]any{"object": "list", "url": r.URL.Path, "has_more": len(all) > n, "data": data})
	reply(w, 200, b)
}

// expanded is what a request asks to expand: expand[]=… or, as stripe-go writes
// arrays, expand[0]=…
func expanded(q url.Values) []string {
	var out []string
	for k, v := range q {
		if strings.HasPrefix(k, "expand[") {
			out = append(out, v...)
		}
	}
	return out
}

func (l *lists) requests() ([]string, []url.Values) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.path), slices.Clone(l.gets)
}

func paymentIntent(id string, created int64, status string, amount int64, key string) map[string]any {
	meta := map[string]string{}
	if key != "" {
		meta[stripepay.KeyMetadata] = key
	}
	received := amount
	if status != "succeeded" {
		received = 0
	}
	return map[string]any{"id": id, "object": "payment_intent", "amount": amount, "amount_received": received, "currency": "usd",
		"status": status, "created": created, "livemode": false, "metadata": meta, "latest_charge": "ch_" + strings.TrimPrefix(id, "pi_")}
}

// refund is a refund of the payment intent pi; key is the refund's own
// kinlink_key, "" for one made outside Kinlink (Stripe's Dashboard).
func refund(id string, pi map[string]any, created int64, status string, amount int64, key string) map[string]any {
	meta := map[string]string{}
	if key != "" {
		meta[stripepay.KeyMetadata] = key
	}
	return map[string]any{"id": id, "object": "refund", "amount": amount, "currency": "usd", "payment_intent": pi,
		"charge": pi["latest_charge"], "status": status, "created": created, "metadata": meta}
}

// failed is a refund that failed at the time failedAt: its money came back to
// the platform's balance in a balance transaction of then.
func failed(re map[string]any, failedAt int64) map[string]any {
	re["status"] = "failed"
	re["failure_reason"] = "expired_or_canceled_card"
	re["failure_balance_transaction"] = map[string]any{"id": "txn_" + re["id"].(string) + "_failure", "object": "balance_transaction",
		"amount": re["amount"], "net": re["amount"], "fee": 0, "currency": "usd", "created": failedAt, "available_on": failedAt,
		"type": "refund_failure", "reporting_category": "refund_failure", "source": re["id"], "status": "available"}
	return re
}

// listedDispute is a dispute of the payment intent pi, with the balance transactions
// that moved its money: withdrawn (negative), reinstated (positive).
func listedDispute(id string, pi map[string]any, created int64, amount int64, moves ...[2]int64) map[string]any {
	var bts []map[string]any
	for i, m := range moves {
		category := "dispute"
		if m[1] > 0 {
			category = "dispute_reversal"
		}
		bts = append(bts, map[string]any{"id": fmt.Sprintf("txn_%s_%d", id, i), "object": "balance_transaction", "amount": m[1], "net": m[1] - 1500,
			"fee": 1500, "currency": "usd", "created": m[0], "available_on": m[0], "type": "adjustment", "reporting_category": category, "source": id, "status": "available"})
	}
	return map[string]any{"id": id, "object": "dispute", "amount": amount, "currency": "usd", "charge": pi["latest_charge"], "payment_intent": pi,
		"status": "won", "reason": "fraudulent", "created": created, "balance_transactions": bts, "metadata": map[string]string{}}
}

func TestCardMovementsReadEveryPage(t *testing.T) {
	l := newLists(t)
	from := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	at := func(h int) int64 { return from.Add(time.Duration(h) * time.Hour).Unix() }
	old := paymentIntent("pi_old", from.AddDate(0, 0, -40).Unix(), "succeeded", 3000, "topup:a:old")
	today := paymentIntent("pi_3", at(3), "succeeded", 2500, "deposit:d3")
	theirs := paymentIntent("pi_other", at(4), "succeeded", 9900, "")
	pi1 := paymentIntent("pi_1", at(1), "succeeded", 2000, "topup:a:1")
	pi2 := paymentIntent("pi_2", at(2), "succeeded", 5000, "deposit:d2")
	l.objects["/v1/payment_intents"] = []map[string]any{
		pi1,
		pi2,
		today,
		paymentIntent("pi_4", at(5), "succeeded", 1200, "topup:a:4"),
		paymentIntent("pi_5", at(23), "succeeded", 800, "topup:a:5"),
		paymentIntent("pi_declined", at(6), "requires_payment_method", 700, "topup:a:6"),
		theirs,
		paymentIntent("pi_tomorrow", to.Unix(), "succeeded", 100, "topup:a:7"),
		old,
	}
	l.objects["/v1/refunds"] = []map[string]any{
		refund("re_1", pi1, at(7), "succeeded", 500, "wallet_refund:r:1"),
		refund("re_2", pi2, at(8), "pending", 1000, "deposit:d2:refund"),
		failed(refund("re_failed", pi2, at(9), "pending", 300, "deposit:d2:refund:1000"), at(15)),
		refund("re_other", theirs, at(9), "succeeded", 100, ""),
		// Made in Stripe's Dashboard on Kinlink's payment: no key of its own.
		refund("re_dashboard", today, at(9), "succeeded", 700, ""),
	}
	l.objects["/v1/disputes"] = []map[string]any{
		// Opened 40 days ago, won today: only its money coming back is today's.
		listedDispute("dp_old", old, from.AddDate(0, 0, -40).Unix(), 3000, [2]int64{from.AddDate(0, 0, -40).Unix(), -3000}, [2]int64{at(10), 3000}),
		listedDispute("dp_3", today, at(11), 2500, [2]int64{at(11), -2500}),
		listedDispute("dp_other", theirs, at(12), 9900, [2]int64{at(12), -9900}),
	}
	p, err := stripepay.New(stripepay.Settings{SecretKey: secretKey, WebhookSecret: webhookSecret, APIURL: l.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	moves, err := p.CardMovements(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range moves {
		s := fmt.Sprintf("%s %s %s %d %s %s", m.Kind, m.ID, m.ChargeID, m.AmountCents, m.At.Format("15"), m.Key)
		if m.Undone != "" {
			s += fmt.Sprintf(" %s at %s", m.Undone, m.UndoneAt.Format("15"))
		}
		got = append(got, s)
	}
	slices.Sort(got)
	want := []string{
		"charge pi_1 pi_1 2000 01 topup:a:1", "charge pi_2 pi_2 5000 02 deposit:d2", "charge pi_3 pi_3 2500 03 deposit:d3",
		"charge pi_4 pi_4 1200 05 topup:a:4", "charge pi_5 pi_5 800 23 topup:a:5",
		"chargeback dp_3 pi_3 2500 11 ", "chargeback_reversed dp_old pi_old 3000 10 ",
		"refund re_1 pi_1 500 07 wallet_refund:r:1", "refund re_2 pi_2 1000 08 deposit:d2:refund", "refund re_dashboard pi_3 700 09 ",
		"refund re_failed pi_2 300 09 deposit:d2:refund:1000 failed at 15",
	}
	if !slices.Equal(got, want) {
		t.Errorf("movements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	paths, queries := l.requests()
	count := map[string]int{}
	for i, path := range paths {
		count[path]++
		q := queries[i]
		if q.Get("limit") != "100" {
			t.Errorf("%s asked for %q a page", path, q.Get("limit"))
		}
		gte, lt := strconv.FormatInt(from.Unix(), 10), strconv.FormatInt(to.Unix(), 10)
		if path == "/v1/disputes" {
			gte = strconv.FormatInt(from.Add(-stripepay.DisputeLookBack).Unix(), 10)
		}
		if path != "/v1/payment_intents" && !slices.Contains(expanded(q), "data.payment_intent") {
			t.Errorf("%s without their payment intents: %v", path, q)
		}
		if path == "/v1/refunds" && !slices.Contains(expanded(q), "data.failure_balance_transaction") {
			t.Errorf("refunds without their failures: %v", q)
		}
		if q.Get("created[gte]") != gte || q.Get("created[lt]") != lt {
			t.Errorf("%s for %v", path, q)
		}
	}
	// Seven payment intents of the period at two a page, and so on: every page read.
	if count["/v1/payment_intents"] != 4 || count["/v1/refunds"] != 3 || count["/v1/disputes"] != 2 {
		t.Errorf("pages read: %v", count)
	}
}

// A list Stripe cannot give fails the whole statement: a statement with a list
// missing would report every movement of it as missing.
func TestCardMovementsFailWhole(t *testing.T) {
	l := newLists(t)
	l.objects["/v1/payment_intents"] = []map[string]any{paymentIntent("pi_1", time.Now().Unix(), "succeeded", 2000, "topup:a:1")}
	l.objects["/v1/refunds"] = nil
	l.objects["/v1/disputes"] = nil
	l.fail = "/v1/refunds"
	p, err := stripepay.New(stripepay.Settings{SecretKey: secretKey, WebhookSecret: webhookSecret, APIURL: l.srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	moves, err := p.CardMovements(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err == nil || moves != nil || !strings.Contains(err.Error(), "refunds") || !strings.Contains(err.Error(), "500") {
		t.Errorf("a failed list: %v %v", moves, err)
	}
	var _ ledger.Statement = p
}

// The refunds of the days before a day are listed alone, with what became of
// them: one accepted days ago that failed since says when it failed.
func TestCardRefundsSayWhichFailedSince(t *testing.T) {
	l := newLists(t)
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	pi := paymentIntent("pi_1", day.AddDate(0, 0, -6).Unix(), "succeeded", 5000, "deposit:d1")
	l.objects["/v1/payment_intents"] = []map[string]any{pi}
	l.objects["/v1/refunds"] = []map[string]any{
		failed(refund("re_late", pi, day.AddDate(0, 0, -5).Unix(), "succeeded", 2000, "deposit:d1:refund"), day.Add(11*time.Hour).Unix()),
		refund("re_fine", pi, day.AddDate(0, 0, -4).Unix(), "succeeded", 1000, "deposit:d1:refund:2000"),
	}
	p, err := stripepay.New(stripepay.Settings{SecretKey: secretKey, WebhookSecret: webhookSecret, APIURL: l.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	refunds, err := p.CardRefunds(context.Background(), day.Add(-ledger.ReconcileRefundsBack), day.Add(-ledger.ReconcileLookBack))
	if err != nil {
		t.Fatal(err)
	}
	if len(refunds) != 2 || refunds[0].ID != "re_fine" || refunds[0].Undone != "" ||
		refunds[1].ID != "re_late" || refunds[1].Undone != "failed" || !refunds[1].UndoneAt.Equal(day.Add(11*time.Hour)) || refunds[1].ChargeID != "pi_1" {
		t.Errorf("refunds: %+v", refunds)
	}
	paths, _ := l.requests()
	if !slices.Equal(paths, []string{"/v1/refunds"}) {
		t.Errorf("asked for %v: the refunds alone", paths)
	}
}
