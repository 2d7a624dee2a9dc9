package api_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/ledger"
)

// otherAgencyFeedKey makes the Texas DOC, another agency, and a feed key of its.
func (dw *depositsWorld) otherAgencyFeedKey(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dw.Command(t, "admin", "create-agency", "--code", "TXDOC", "--name", "Texas Department of Criminal Justice", "--state", "TX")
	tx, err := dw.fac.AgencyByCode(ctx, "TXDOC")
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := dw.deposits.CreateFeedKey(ctx, dw.adminOf(t, tx.ID, "finance@tdcj.example.org"), "TX trust")
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// chargeOf is a deposit as the portal shows it, with the processor's charge id.
func (dw *depositsWorld) chargeOf(t *testing.T, id string) deposits.Deposit {
	t.Helper()
	d, err := dw.deposits.ForStaff(context.Background(), dw.admin, id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The agency's trust system reads every change to its people's trust accounts in
// order, with signed amounts, resuming after the last row it read; a chargeback
// delivered twice is one row.
func TestDepositFeedForTheTrustSystem(t *testing.T) {
	eachEngineDeposits(t, func(t *testing.T, dw *depositsWorld) {
		ctx := context.Background()
		dw.setPolicy(t, func(p *deposits.Policy) { p.FeeBasisPoints, p.FeeCapCents = 500, 250 }) // 5%, $2.50 at most
		_, key, err := dw.deposits.CreateFeedKey(ctx, dw.admin, "Trust system")
		if err != nil {
			t.Fatal(err)
		}
		feed := bearer(key)
		res, page := dw.JSON(t, "GET", "/api/v1/agency/deposits", nil, feed...)
		if res.StatusCode != 200 || len(page["entries"].([]any)) != 0 || page["has_more"] != false {
			t.Fatalf("the empty feed: %d %s", res.StatusCode, res.Raw)
		}
		start := page["next_cursor"].(string)

		_, first := dw.deposit(t, dw.tokenA, "f1", dw.contactA, 2500, "tok_visa")
		_, second := dw.deposit(t, dw.tokenA, "f2", dw.contactA, 10000, "tok_visa")
		if first["state"] != "posted" || second["state"] != "posted" || first["fee_cents"] != 125.0 || second["fee_cents"] != 250.0 {
			t.Fatalf("the deposits: %v %v", first, second)
		}
		// The card holder disputes the first: the processor's webhook, delivered twice.
		d := dw.chargeOf(t, first["id"].(string))
		for range 2 {
			if err := dw.deposits.HandleEvent(ctx, ledger.PaymentEvent{ID: "evt_1", Kind: ledger.EventDisputed, ChargeID: d.ChargeID, AmountCents: d.TotalCents()}); err != nil {
				t.Fatal(err)
			}
		}
		if got := dw.trust(t); got != 10000 {
			t.Errorf("José's balance after the chargeback: %d, want 10000", got)
		}
		if res, one := dw.JSON(t, "GET", "/api/v1/deposits/"+d.ID, nil, bearer(dw.tokenA)...); res.StatusCode != 200 || one["state"] != "reversed" || one["reason"] != "disputed" {
			t.Errorf("the disputed deposit: %d %s", res.StatusCode, res.Raw)
		}

		res, page = dw.JSON(t, "GET", "/api/v1/agency/deposits?since="+start, nil, feed...)
		if res.StatusCode != 200 || page["has_more"] != false {
			t.Fatalf("the feed: %d %s", res.StatusCode, res.Raw)
		}
		entries := page["entries"].([]any)
		if len(entries) != 3 {
			t.Fatalf("%d rows, want posted, posted, reversed: %s", len(entries), res.Raw)
		}
		want := []struct {
			kind                 string
			deposit              any
			amount, depositCents float64
			fee                  float64
		}{
			{"posted", first["id"], 2500, 2500, 125},
			{"posted", second["id"], 10000, 10000, 250},
			{"reversed", first["id"], -2500, 2500, 125},
		}
		var sum float64
		for i, e := range entries {
			e := e.(map[string]any)
			w := want[i]
			if e["kind"] != w.kind || e["deposit_id"] != w.deposit || e["amount_cents"] != w.amount || e["deposit_amount_cents"] != w.depositCents ||
				e["fee_cents"] != w.fee || e["seq"] != float64(i+1) || e["resident_id"] != "A100" || e["resident_name"] != "José García" ||
				e["facility"] != "FSP" {
				t.Errorf("row %d: %v, want %+v", i+1, e, w)
			}
			if s := e["sender"].(map[string]any); s["name"] != "Ana García" || s["address"] != "12 Palm Street, Tampa FL 33601" {
				t.Errorf("row %d's sender: %v", i+1, s)
			}
			if i < 2 && e["confirmation"] != []any{first, second}[i].(map[string]any)["confirmation"] {
				t.Errorf("row %d's confirmation: %v", i+1, e["confirmation"])
			}
			sum += e["amount_cents"].(float64)
		}
		if got := dw.trust(t); float64(got) != sum {
			t.Errorf("the feed's rows add up to %v, the trust account holds %d", sum, got)
		}
		// Resuming after the last row: nothing more, and the same cursor to poll with.
		next := page["next_cursor"].(string)
		res, after := dw.JSON(t, "GET", "/api/v1/agency/deposits?since="+next, nil, feed...)
		if res.StatusCode != 200 || len(after["entries"].([]any)) != 0 || after["has_more"] != false || after["next_cursor"] != next {
			t.Errorf("the page after the last: %d %s", res.StatusCode, res.Raw)
		}
		// Pages of two: has_more, then the rest.
		res, p1 := dw.JSON(t, "GET", "/api/v1/agency/deposits?limit=2", nil, feed...)
		if res.StatusCode != 200 || len(p1["entries"].([]any)) != 2 || p1["has_more"] != true {
			t.Fatalf("a page of two: %d %s", res.StatusCode, res.Raw)
		}
		res, p2 := dw.JSON(t, "GET", "/api/v1/agency/deposits?limit=2&since="+p1["next_cursor"].(string), nil, feed...)
		if res.StatusCode != 200 || len(p2["entries"].([]any)) != 1 || p2["has_more"] != false || p2["entries"].([]any)[0].(map[string]any)["kind"] != "reversed" ||
			p2["next_cursor"] != next {
			t.Errorf("the page after a page of two: %d %s", res.StatusCode, res.Raw)
		}
		for _, bad := range []struct{ query, field, why string }{
			{"since=abc", "since", "invalid"}, {"since=-1", "since", "invalid"},
			{"limit=0", "limit", "range"}, {"limit=501", "limit", "range"}, {"limit=many", "limit", "range"},
		} {
			res, body := dw.JSON(t, "GET", "/api/v1/agency/deposits?"+bad.query, nil, feed...)
			if fields, _ := body["error"].(map[string]any)["fields"].(map[string]any); res.StatusCode != 400 || errCode(body) != "invalid_request" || fields[bad.field] != bad.why {
				t.Errorf("?%s: %d %s", bad.query, res.StatusCode, res.Raw)
			}
		}

		// José spends trust money here on a reply's stamps: the feed says so, with
		// no deposit, and the rows still add up to his balance.
		jose, err := dw.fac.Resident(ctx, dw.jose)
		if err != nil {
			t.Fatal(err)
		}
		if err := dw.db.InTx(ctx, func(tx *sql.Tx) error { return dw.deposits.Spend(ctx, tx, jose, 50, "reply-1", "Reply stamps") }); err != nil {
			t.Fatal(err)
		}
		res, spent := dw.JSON(t, "GET", "/api/v1/agency/deposits?since="+next, nil, feed...)
		rows, _ := spent["entries"].([]any)
		if res.StatusCode != 200 || len(rows) != 1 {
			t.Fatalf("after spending: %d %s", res.StatusCode, res.Raw)
		}
		if row := rows[0].(map[string]any); row["kind"] != "spent" || row["amount_cents"] != -50.0 || row["deposit_id"] != "" || row["resident_id"] != "A100" {
			t.Errorf("the spending row: %v", row)
		}

		// Another agency's key reads its own feed: none of these rows.
		other := dw.otherAgencyFeedKey(t)
		if res, page := dw.JSON(t, "GET", "/api/v1/agency/deposits", nil, bearer(other)...); res.StatusCode != 200 || len(page["entries"].([]any)) != 0 || strings.Contains(res.Raw, "José") {
			t.Errorf("another agency's feed: %d %s", res.StatusCode, res.Raw)
		}
		dw.verified(t)
	})
}

// Only a live feed key opens the feed: no key, a family's token, a staff member's
// token, a made-up or a revoked key all get the same 401 as no authentication; and
// a feed key opens nothing else.
func TestDepositFeedTakesOnlyFeedKeys(t *testing.T) {
	eachEngineDeposits(t, func(t *testing.T, dw *depositsWorld) {
		ctx := context.Background()
		k, key, err := dw.deposits.CreateFeedKey(ctx, dw.admin, "Trust system")
		if err != nil {
			t.Fatal(err)
		}
		if res, d := dw.deposit(t, dw.tokenA, "k1", dw.contactA, 2000, "tok_visa"); res.StatusCode != 201 || d["state"] != "posted" {
			t.Fatalf("a deposit: %d %s", res.StatusCode, res.Raw)
		}
		if res, page := dw.JSON(t, "GET", "/api/v1/agency/deposits", nil, bearer(key)...); res.StatusCode != 200 || len(page["entries"].([]any)) != 1 {
			t.Fatalf("the feed with its key: %d %s", res.StatusCode, res.Raw)
		}
		none, _ := dw.JSON(t, "GET", "/api/v1/agency/deposits", nil)
		if none.StatusCode != 401 || !strings.HasPrefix(none.Header.Get("WWW-Authenticate"), "Bearer ") {
			t.Fatalf("the feed without a key: %d %s", none.StatusCode, none.Raw)
		}
		staff := staffToken(t, dw.world, "FLDOC")
		if err := dw.deposits.RevokeFeedKey(ctx, dw.admin, k.ID); err != nil {
			t.Fatal(err)
		}
		for who, auth := range map[string][]string{
			"a family's token":     bearer(dw.tokenA),
			"a staff token":        bearer(staff),
			"a made-up key":        bearer("klfeed_" + strings.Repeat("A", 43)),
			"a revoked key":        bearer(key),
			"a key without Bearer": {"Authorization", key},
		} {
			res, _ := dw.JSON(t, "GET", "/api/v1/agency/deposits", nil, auth...)
			if res.StatusCode != 401 || res.Raw != none.Raw || strings.Contains(res.Raw, "José") {
				t.Errorf("the feed with %s: %d %s, want the answer to no key (%s)", who, res.StatusCode, res.Raw, none.Raw)
			}
		}
		// A live key is for the feed alone.
		_, live, err := dw.deposits.CreateFeedKey(ctx, dw.admin, "Trust system 2")
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/api/v1/deposits", "/api/v1/me", "/api/v1/contacts"} {
			if res, body := dw.JSON(t, "GET", path, nil, bearer(live)...); res.StatusCode != 401 || errCode(body) != "unauthenticated" {
				t.Errorf("GET %s with a feed key: %d %s", path, res.StatusCode, res.Raw)
			}
		}
	})
}

// A trust system that reads the feed faster than its agency's pace is told to wait
// (429 with Retry-After) once its burst is spent; another agency's system reads on.
func TestDepositFeedKeepsItsPace(t *testing.T) {
	// A page a second, ten at once.
	eachEngineDepositsWith(t, map[string]string{"KINLINK_DEPOSIT_FEED_PACE": "1"}, func(t *testing.T, dw *depositsWorld) {
		ctx := context.Background()
		_, key, err := dw.deposits.CreateFeedKey(ctx, dw.admin, "Trust system")
		if err != nil {
			t.Fatal(err)
		}
		// Twenty at once: the ten of the burst, and one more a second the reads took.
		start := time.Now()
		var mu sync.Mutex
		var read, told int
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				res, body := dw.JSON(t, "GET", "/api/v1/agency/deposits", nil, bearer(key)...)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case res.StatusCode == 200:
					read++
				case res.StatusCode == 429 && errCode(body) == "feed_rate_limited" && res.Header.Get("Retry-After") == "1":
					told++
				default:
					t.Errorf("a read: %d %s (Retry-After %q)", res.StatusCode, res.Raw, res.Header.Get("Retry-After"))
				}
			})
		}
		wg.Wait()
		if most := 10 + int(time.Since(start).Seconds()) + 1; read < 10 || read > most || told != 20-read {
			t.Fatalf("of 20 reads at once %d were answered and %d told to wait; want 10 to %d answered, the rest told to wait", read, told, most)
		}
		other := dw.otherAgencyFeedKey(t)
		if res, _ := dw.JSON(t, "GET", "/api/v1/agency/deposits", nil, bearer(other)...); res.StatusCode != 200 {
			t.Errorf("another agency's system, meanwhile: %d %s", res.StatusCode, res.Raw)
		}
	})
}
