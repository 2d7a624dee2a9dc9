package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/apptest"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
)

// depositsWorld is a server and the agency's side of deposits reached through the
// domain services on the same database: the Florida DOC with José García (A100)
// and María López (A200) at Florida State Prison, Ana with José and Ben with María
// as approved contacts, and an agency administrator who sets the deposit policy,
// makes feed keys and reads the ledger as the portal would (the portal itself is
// tested in internal/web).
type depositsWorld struct {
	*world
	deposits *deposits.Service
	ledger   *ledger.Ledger
	db       *database.DB
	id       *identity.Service
	fac      *facility.Service
	admin    facility.Access
	agencyID string

	tokenA, contactA, jose string // Ana, with José (his resident id)
	tokenB, contactB       string // Ben, with María
}

func startDeposits(t *testing.T, setting string, env map[string]string) *depositsWorld {
	t.Helper()
	ctx := context.Background()
	w := start(t, setting, env)
	dw := &depositsWorld{world: w}
	dw.tokenA, dw.contactA = contactOfJose(t, w)
	file := filepath.Join(t.TempDir(), "roster.csv")
	os.WriteFile(file, []byte("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"+
		"A100,García,José,FSP,B-12,active,\nA200,López,María,FSP,C-3,active,\n"), 0o600)
	w.Command(t, "roster", "import", "--agency", "FLDOC", file, "--apply")
	_, found := w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A100", nil, bearer(dw.tokenA)...)
	dw.jose = found["residents"].([]any)[0].(map[string]any)["id"].(string)
	dw.tokenB = w.register(t, "ben@example.org")
	_, found = w.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A200", nil, bearer(dw.tokenB)...)
	_, c := w.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": found["residents"].([]any)[0].(map[string]any)["id"]}, bearer(dw.tokenB)...)
	dw.contactB = c["id"].(string)

	db := dbtest.Open(t, w.Env["KINLINK_DATABASE"])
	dw.db = db
	log := slog.New(slog.DiscardHandler)
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	dw.id, err = identity.NewService(ctx, db, identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 1, 4, time.Second), common, identity.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	dw.fac = facility.NewService(db, dw.id, log)
	cs := contacts.NewService(db, dw.fac)
	dw.ledger = ledger.New(db)
	// The chargebacks of these tests are delivered by hand, as a webhook would.
	dw.deposits = deposits.NewService(db, dw.fac, cs, dw.ledger, ledger.Sandbox{}, log, nil)
	agency, err := dw.fac.AgencyByCode(ctx, "FLDOC")
	must(err)
	dw.agencyID = agency.ID
	dw.admin = dw.adminOf(t, agency.ID, "finance@example.org")
	for _, contact := range []string{dw.contactA, dw.contactB} {
		must(cs.Decide(ctx, dw.admin, contact, true, ""))
	}
	return dw
}

// adminOf makes an administrator of an agency and returns their access.
func (dw *depositsWorld) adminOf(t *testing.T, agencyID, email string) facility.Access {
	t.Helper()
	ctx := context.Background()
	accountID, err := dw.id.EnsureStaff(ctx, email, "Finance Office", "staff pass 42!", "JBSWY3DPEHPK3PXP")
	if err != nil {
		t.Fatal(err)
	}
	if err := dw.fac.GrantRole(ctx, facility.Operator, agencyID, accountID, facility.AgencyAdmin, ""); err != nil {
		t.Fatal(err)
	}
	access, err := dw.fac.AccessOf(ctx, accountID)
	if err != nil {
		t.Fatal(err)
	}
	return access
}

// setPolicy sets the agency's deposit policy: the defaults, changed by edit.
func (dw *depositsWorld) setPolicy(t *testing.T, edit func(p *deposits.Policy)) {
	t.Helper()
	p := deposits.DefaultPolicy()
	edit(&p)
	if err := dw.deposits.SetPolicy(context.Background(), dw.admin, dw.agencyID, p); err != nil {
		t.Fatalf("set policy: %v", err)
	}
}

func depositBody(contact string, cents int, card string) map[string]any {
	return map[string]any{"contact_id": contact, "amount_cents": cents, "payment_token": card,
		"sender": map[string]any{"name": "Ana García", "address": "12 Palm Street, Tampa FL 33601"}}
}

func (dw *depositsWorld) deposit(t *testing.T, token, key, contact string, cents int, card string) (*apptest.Response, map[string]any) {
	t.Helper()
	return dw.JSON(t, "POST", "/api/v1/deposits", depositBody(contact, cents, card), append(bearer(token), "Idempotency-Key", key)...)
}

// trust is José's trust balance, from the ledger.
func (dw *depositsWorld) trust(t *testing.T) int64 {
	t.Helper()
	b, err := dw.ledger.Balance(context.Background(), ledger.ResidentOf(dw.jose))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// charges counts the cards charged for deposits, from the ledger's own entries.
func (dw *depositsWorld) charges(t *testing.T) int {
	t.Helper()
	lines, err := dw.ledger.History(context.Background(), ledger.Ref{Kind: ledger.Cards}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ln := range lines {
		if ln.Kind == "deposit.charge" {
			n++
		}
	}
	return n
}

// verified fails the test unless the ledger balances.
func (dw *depositsWorld) verified(t *testing.T) {
	t.Helper()
	r, err := dw.ledger.Verify(context.Background())
	if err != nil || len(r.Problems) > 0 {
		t.Errorf("ledger verify: %v %v", err, r.Problems)
	}
}

func eachEngineDeposits(t *testing.T, fn func(t *testing.T, dw *depositsWorld)) {
	eachEngineDepositsWith(t, nil, fn)
}

// eachEngineDepositsWith is eachEngineDeposits with the server's environment env.
func eachEngineDepositsWith(t *testing.T, env map[string]string, fn func(t *testing.T, dw *depositsWorld)) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) { fn(t, startDeposits(t, e.Setting, env)) })
	}
}

// A family's deposit from the quote to the cancellation: the fee is shown before
// paying, the resident receives exactly the amount, a retry charges once, a
// declined card posts nothing, a held deposit can be cancelled and its money
// goes back, and another family sees none of it.
func TestDepositsByAPI(t *testing.T) {
	eachEngineDeposits(t, func(t *testing.T, dw *depositsWorld) {
		a, b := bearer(dw.tokenA), bearer(dw.tokenB)
		dw.setPolicy(t, func(p *deposits.Policy) {
			p.FeeTiers = []deposits.FeeTier{{UpToCents: 5000, FeeCents: 150}, {UpToCents: 30000, FeeCents: 300}}
			p.SenderDayCents = 30000
		})

		// The quote: fee and total before paying, and every limit left.
		res, q := dw.JSON(t, "GET", "/api/v1/contacts/"+dw.contactA+"/deposits/quote?amount_cents=2500", nil, a...)
		if res.StatusCode != 200 || q["amount_cents"] != 2500.0 || q["fee_cents"] != 150.0 || q["total_cents"] != 2650.0 ||
			q["facility"] != "Florida State Prison" || q["max_cents"] != 30000.0 {
			t.Fatalf("quote: %d %s", res.StatusCode, res.Raw)
		}
		if r := q["resident"].(map[string]any); r["name"] != "José García" || r["number"] != "A100" {
			t.Errorf("quote's resident: %v", r)
		}
		left := q["limits_left"].(map[string]any)
		if left["per_deposit_cents"] != 30000.0 || left["sender_day_cents"] != 30000.0 || left["sender_month_cents"] != 300000.0 ||
			left["resident_month_cents"] != 500000.0 || left["balance_cents"] != nil || !strings.Contains(res.Raw, `"balance_cents":null`) {
			t.Errorf("limits left: %s", res.Raw)
		}
		if res, q := dw.JSON(t, "GET", "/api/v1/contacts/"+dw.contactA+"/deposits/quote?amount_cents=0", nil, a...); res.StatusCode != 200 ||
			q["fee_cents"] != 0.0 || q["total_cents"] != 0.0 || q["max_cents"] != 30000.0 {
			t.Errorf("the limits alone: %d %s", res.StatusCode, res.Raw)
		}

		// The deposit: posted at once; José receives exactly $25, the card pays $26.50.
		res, d := dw.deposit(t, dw.tokenA, "dep-1", dw.contactA, 2500, "tok_visa")
		if res.StatusCode != 201 || d["state"] != "posted" || d["amount_cents"] != 2500.0 || d["fee_cents"] != 150.0 || d["total_cents"] != 2650.0 ||
			d["facility_code"] != "FSP" || d["refund"] != "" || d["reason"] != "" || d["posted_at"] == nil ||
			!strings.HasPrefix(d["confirmation"].(string), "KL-") {
			t.Fatalf("deposit: %d %s", res.StatusCode, res.Raw)
		}
		if r := d["resident"].(map[string]any); r["name"] != "José García" || r["number"] != "A100" {
			t.Errorf("deposit's resident: %v", r)
		}
		id := d["id"].(string)
		if got := dw.trust(t); got != 2500 {
			t.Errorf("José's trust balance: %d, want 2500", got)
		}

		// The same key again, even with another card: the same deposit, charged and
		// posted once.
		for _, card := range []string{"tok_visa", "tok_chargeDeclined"} {
			res, again := dw.deposit(t, dw.tokenA, "dep-1", dw.contactA, 2500, card)
			if res.StatusCode != 201 || again["id"] != id || again["state"] != "posted" || again["confirmation"] != d["confirmation"] {
				t.Errorf("the retried deposit with %s: %d %s", card, res.StatusCode, res.Raw)
			}
		}
		if got, n := dw.trust(t), dw.charges(t); got != 2500 || n != 1 {
			t.Errorf("after the retries: José has %d (want 2500), %d charges (want 1)", got, n)
		}
		if res, body := dw.deposit(t, dw.tokenA, "dep-1", dw.contactA, 3000, "tok_visa"); res.StatusCode != 409 || errCode(body) != "idempotency_key_reused" {
			t.Errorf("the key again with another amount: %d %s", res.StatusCode, res.Raw)
		}
		dw.verified(t)

		// A declined card: 402, nothing charged nor posted, the deposit on record as
		// failed; its key answers that failed deposit again.
		res, body := dw.deposit(t, dw.tokenA, "dep-declined", dw.contactA, 4000, "tok_chargeDeclined")
		if res.StatusCode != 402 || errCode(body) != "payment_declined" {
			t.Fatalf("a declined card: %d %s", res.StatusCode, res.Raw)
		}
		if got, n := dw.trust(t), dw.charges(t); got != 2500 || n != 1 {
			t.Errorf("after a declined card: José has %d (want 2500), %d charges (want 1)", got, n)
		}
		res, list := dw.JSON(t, "GET", "/api/v1/deposits", nil, a...)
		items := list["deposits"].([]any)
		if res.StatusCode != 200 || len(items) != 2 {
			t.Fatalf("Ana's deposits: %d %s", res.StatusCode, res.Raw)
		}
		failed := items[0].(map[string]any)
		if failed["state"] != "failed" || failed["reason"] != "payment_declined" || failed["posted_at"] != nil || failed["refund"] != "" ||
			items[1].(map[string]any)["id"] != id {
			t.Errorf("Ana's deposits, newest first: %s", res.Raw)
		}
		if res, again := dw.deposit(t, dw.tokenA, "dep-declined", dw.contactA, 4000, "tok_visa"); res.StatusCode != 201 || again["id"] != failed["id"] || again["state"] != "failed" {
			t.Errorf("the declined deposit's key again: %d %s", res.StatusCode, res.Raw)
		}
		if res, list := dw.JSON(t, "GET", "/api/v1/deposits?limit=1", nil, a...); res.StatusCode != 200 || len(list["deposits"].([]any)) != 1 {
			t.Errorf("a page of one: %d %s", res.StatusCode, res.Raw)
		}
		if res, one := dw.JSON(t, "GET", "/api/v1/deposits/"+id, nil, a...); res.StatusCode != 200 || one["id"] != id || one["state"] != "posted" {
			t.Errorf("Ana's deposit: %d %s", res.StatusCode, res.Raw)
		}
		// A posted deposit is José's: it cannot be cancelled.
		if res, body := dw.JSON(t, "POST", "/api/v1/deposits/"+id+"/cancel", nil, a...); res.StatusCode != 409 || errCode(body) != "deposit_settled" {
			t.Errorf("cancelling a posted deposit: %d %s", res.StatusCode, res.Raw)
		}

		// Another family's deposit does not exist for Ben.
		if res, listB := dw.JSON(t, "GET", "/api/v1/deposits", nil, b...); res.StatusCode != 200 || len(listB["deposits"].([]any)) != 0 || strings.Contains(res.Raw, id) {
			t.Errorf("Ben's deposits: %d %s", res.StatusCode, res.Raw)
		}
		for _, c := range []struct{ method, path string }{
			{"GET", "/api/v1/deposits/" + id}, {"POST", "/api/v1/deposits/" + id + "/cancel"},
			{"GET", "/api/v1/deposits/" + ids.New()}, {"GET", "/api/v1/deposits/nonsense"},
			{"GET", "/api/v1/contacts/" + dw.contactA + "/deposits/quote?amount_cents=100"},
		} {
			if res, body := dw.JSON(t, c.method, c.path, nil, b...); res.StatusCode != 404 || errCode(body) != "not_found" || strings.Contains(res.Raw, "José") {
				t.Errorf("%s %s as Ben: %d %s", c.method, c.path, res.StatusCode, res.Raw)
			}
		}
		if res, body := dw.deposit(t, dw.tokenB, "theirs", dw.contactA, 1000, "tok_visa"); res.StatusCode != 404 || errCode(body) != "not_found" {
			t.Errorf("Ben depositing to Ana's contact: %d %s", res.StatusCode, res.Raw)
		}

		// Where the finance office releases deposits, a deposit is held; cancelled,
		// its whole total goes back to the card and José receives nothing.
		dw.setPolicy(t, func(p *deposits.Policy) {
			p.FeeTiers = []deposits.FeeTier{{UpToCents: 5000, FeeCents: 150}, {UpToCents: 30000, FeeCents: 300}}
			p.SenderDayCents = 30000
			p.PostAtOnce = false
		})
		res, held := dw.deposit(t, dw.tokenA, "dep-held", dw.contactA, 6000, "tok_visa")
		if res.StatusCode != 201 || held["state"] != "held" || held["posted_at"] != nil || held["total_cents"] != 6300.0 {
			t.Fatalf("a held deposit: %d %s", res.StatusCode, res.Raw)
		}
		if got := dw.trust(t); got != 2500 {
			t.Errorf("José's balance with a deposit held: %d, want 2500", got)
		}
		res, cancelled := dw.JSON(t, "POST", "/api/v1/deposits/"+held["id"].(string)+"/cancel", nil, a...)
		if res.StatusCode != 200 || cancelled["id"] != held["id"] || cancelled["state"] != "cancelled" || cancelled["reason"] != "cancelled_by_family" ||
			(cancelled["refund"] != "due" && cancelled["refund"] != "done") {
			t.Fatalf("cancelling a held deposit: %d %s", res.StatusCode, res.Raw)
		}
		dw.JobsSettled(t) // the refund goes to the processor from the settle job
		if res, one := dw.JSON(t, "GET", "/api/v1/deposits/"+held["id"].(string), nil, a...); res.StatusCode != 200 || one["state"] != "cancelled" || one["refund"] != "done" {
			t.Errorf("the cancelled deposit after its refund: %d %s", res.StatusCode, res.Raw)
		}
		if res, body := dw.JSON(t, "POST", "/api/v1/deposits/"+held["id"].(string)+"/cancel", nil, a...); res.StatusCode != 409 || errCode(body) != "deposit_settled" {
			t.Errorf("cancelling twice: %d %s", res.StatusCode, res.Raw)
		}
		if got, n := dw.trust(t), dw.charges(t); got != 2500 || n != 2 {
			t.Errorf("after the cancellation: José has %d (want 2500), %d charges (want 2)", got, n)
		}
		hold, err := dw.ledger.Balance(context.Background(), ledger.HoldFor("deposit:"+held["id"].(string)))
		if err != nil || hold != 0 {
			t.Errorf("the cancelled deposit's hold: %d %v", hold, err)
		}
		// The cancelled deposit no longer counts against the day: $300 − $25 is left.
		if _, q := dw.JSON(t, "GET", "/api/v1/contacts/"+dw.contactA+"/deposits/quote?amount_cents=100", nil, a...); q["limits_left"].(map[string]any)["sender_day_cents"] != 27500.0 {
			t.Errorf("the day's limit left: %v", q["limits_left"])
		}

		// A card whose bank asks for 3-D Secure: refused at once and said so, the
		// deposit failed with that reason, nothing charged.
		res, body = dw.deposit(t, dw.tokenA, "dep-3ds", dw.contactA, 1500, "tok_threeDSecure2Required")
		if res.StatusCode != 402 || errCode(body) != "card_authentication_required" || !strings.Contains(res.Raw, "3-D Secure") {
			t.Fatalf("a card that needs its bank's confirmation: %d %s", res.StatusCode, res.Raw)
		}
		if _, list := dw.JSON(t, "GET", "/api/v1/deposits?limit=1", nil, a...); list["deposits"].([]any)[0].(map[string]any)["reason"] != "card_authentication_required" {
			t.Errorf("the deposit it left: %v", list["deposits"])
		}
		if got, n := dw.trust(t), dw.charges(t); got != 2500 || n != 2 {
			t.Errorf("after it: José has %d (want 2500), %d charges (want 2)", got, n)
		}
		dw.verified(t)
		if out := dw.Command(t, "ledger", "verify"); !strings.Contains(out, "ledger verified") {
			t.Errorf("ledger verify: %s", out)
		}
	})
}

// What each mistake in a deposit request is called, and which field it names; and
// a contact the facility has not approved deposits nothing where the agency takes
// deposits from approved contacts only.
func TestDepositRequestMistakesAreNamed(t *testing.T) {
	dw := startDeposits(t, dbtest.Engines(t)[0].Setting, nil)
	tokenC := dw.register(t, "carol@example.org")
	_, found := dw.JSON(t, "GET", "/api/v1/residents?agency=FLDOC&resident_id=A100", nil, bearer(tokenC)...)
	_, c := dw.JSON(t, "POST", "/api/v1/contacts", map[string]any{"resident": found["residents"].([]any)[0].(map[string]any)["id"]}, bearer(tokenC)...)
	if c["status"] != "pending" {
		t.Fatalf("Carol's contact: %v, want pending", c["status"])
	}
	s := scenarios{w: dw.world, tokens: map[string]string{"family": dw.tokenA, "Carol": tokenC},
		values: map[string]string{"contact": dw.contactA, "pending": c["id"].(string), "unknown": ids.New()}}
	key := []string{"Idempotency-Key", "mistakes"}
	body := func(edit func(m map[string]any)) map[string]any {
		m := depositBody("{contact}", 2000, "tok_visa")
		edit(m)
		return m
	}
	s.run(t, []scenario{
		{name: "a quote without a token", who: "anonymous", method: "GET", path: "/api/v1/contacts/{contact}/deposits/quote?amount_cents=100", status: 401, code: "unauthenticated"},
		{name: "a deposit without a token", who: "anonymous", method: "POST", path: "/api/v1/deposits", json: depositBody("{contact}", 2000, "tok_visa"), status: 401, code: "unauthenticated"},
		{name: "deposits without a token", who: "anonymous", method: "GET", path: "/api/v1/deposits", status: 401, code: "unauthenticated"},
		{name: "a deposit's page without a token", who: "anonymous", method: "GET", path: "/api/v1/deposits/{unknown}", status: 401, code: "unauthenticated"},
		{name: "a cancellation without a token", who: "anonymous", method: "POST", path: "/api/v1/deposits/{unknown}/cancel", status: 401, code: "unauthenticated"},

		{name: "a quote of nothing", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/deposits/quote",
			status: 400, code: "invalid_request", fields: map[string]string{"amount_cents": "required"}},
		{name: "a quote of minus a dollar", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/deposits/quote?amount_cents=-100",
			status: 400, code: "invalid_request", fields: map[string]string{"amount_cents": "invalid"}},
		{name: "a quote of 'ten'", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/deposits/quote?amount_cents=ten",
			status: 400, code: "invalid_request", fields: map[string]string{"amount_cents": "invalid"}},
		{name: "a quote of dollars and cents", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/deposits/quote?amount_cents=20.50",
			status: 400, code: "invalid_request", fields: map[string]string{"amount_cents": "invalid"}},
		{name: "a quote past any agency's largest deposit", who: "family", method: "GET", path: "/api/v1/contacts/{contact}/deposits/quote?amount_cents=1000001",
			status: 400, code: "invalid_request", fields: map[string]string{"amount_cents": "invalid"}},
		{name: "a quote to no one", who: "family", method: "GET", path: "/api/v1/contacts/{unknown}/deposits/quote?amount_cents=100", status: 404, code: "not_found"},
		{name: "a quote to a contact not approved", who: "Carol", method: "GET", path: "/api/v1/contacts/{pending}/deposits/quote?amount_cents=100",
			status: 403, code: "deposit_not_allowed"},

		{name: "a deposit of nothing", who: "family", method: "POST", path: "/api/v1/deposits", json: map[string]any{}, headers: key,
			status: 400, code: "invalid_request", fields: map[string]string{"contact_id": "required", "amount_cents": "required"}},
		{name: "a deposit of 'ten'", who: "family", method: "POST", path: "/api/v1/deposits", json: body(func(m map[string]any) { m["amount_cents"] = "ten" }), headers: key,
			status: 400, code: "invalid_request", fields: map[string]string{"amount_cents": "wrong_type"}},
		{name: "a deposit of 99 cents", who: "family", method: "POST", path: "/api/v1/deposits", json: body(func(m map[string]any) { m["amount_cents"] = 99 }), headers: key,
			status: 400, code: "deposit_amount", fields: map[string]string{"amount_cents": "range"}, holds: "$1.00 to $300.00"},
		{name: "a deposit past the agency's largest", who: "family", method: "POST", path: "/api/v1/deposits", json: body(func(m map[string]any) { m["amount_cents"] = 30001 }), headers: key,
			status: 400, code: "deposit_amount", fields: map[string]string{"amount_cents": "range"}},
		{name: "a deposit without a card", who: "family", method: "POST", path: "/api/v1/deposits", json: body(func(m map[string]any) { delete(m, "payment_token") }), headers: key,
			status: 400, code: "payment_token_required", fields: map[string]string{"payment_token": "required"}},
		{name: "a deposit from no name", who: "family", method: "POST", path: "/api/v1/deposits", json: body(func(m map[string]any) { m["sender"] = map[string]any{"name": "A", "address": "12 Palm Street"} }), headers: key,
			status: 400, code: "invalid_request", fields: map[string]string{"sender_name": "invalid"}},
		{name: "a deposit from no address", who: "family", method: "POST", path: "/api/v1/deposits", json: body(func(m map[string]any) { m["sender"] = map[string]any{"name": "Ana García"} }), headers: key,
			status: 400, code: "invalid_request", fields: map[string]string{"sender_address": "invalid"}},
		{name: "a deposit with a bad key", who: "family", method: "POST", path: "/api/v1/deposits", json: depositBody("{contact}", 2000, "tok_visa"),
			headers: []string{"Idempotency-Key", "clé"}, status: 400, code: "invalid_idempotency_key", fields: map[string]string{"Idempotency-Key": "invalid"}},
		{name: "a deposit without a key", who: "family", method: "POST", path: "/api/v1/deposits", json: depositBody("{contact}", 2000, "tok_visa"),
			status: 400, code: "invalid_idempotency_key", fields: map[string]string{"Idempotency-Key": "invalid"}},
		{name: "a deposit whose fee is not the one shown", who: "family", method: "POST", path: "/api/v1/deposits",
			json: body(func(m map[string]any) { m["fee_cents"] = 195 }), headers: []string{"Idempotency-Key", "fee"},
			status: 409, code: "fee_changed", holds: "$0.00"},
		{name: "a deposit to no one", who: "family", method: "POST", path: "/api/v1/deposits", json: depositBody("{unknown}", 2000, "tok_visa"), headers: key,
			status: 404, code: "not_found"},
		{name: "a deposit to a contact not approved", who: "Carol", method: "POST", path: "/api/v1/deposits", json: depositBody("{pending}", 2000, "tok_visa"), headers: key,
			status: 403, code: "deposit_not_allowed"},
		{name: "a deposit as a form", who: "family", method: "POST", path: "/api/v1/deposits", raw: "contact_id=x", headers: []string{"Content-Type", "application/x-www-form-urlencoded"},
			status: 400, code: "invalid_request", fields: map[string]string{"body": "invalid_json"}},
		{name: "a page of no deposits", who: "family", method: "GET", path: "/api/v1/deposits?limit=0", status: 400, code: "invalid_request", fields: map[string]string{"limit": "range"}},
		{name: "a page of too many deposits", who: "family", method: "GET", path: "/api/v1/deposits?limit=101", status: 400, code: "invalid_request", fields: map[string]string{"limit": "range"}},
		{name: "a cancellation of no deposit", who: "family", method: "POST", path: "/api/v1/deposits/{unknown}/cancel", status: 404, code: "not_found"},
		{name: "a deposit", who: "family", method: "POST", path: "/api/v1/deposits", json: body(func(m map[string]any) { m["note"] = "ignored" }), headers: key,
			status: 201, holds: `"state":"posted"`},
	})
	if got := dw.trust(t); got != 2000 {
		t.Errorf("José's balance after the mistakes and one deposit: %d, want 2000", got)
	}
	// Spanish words for a refusal that quotes the limits.
	res, body2 := dw.JSON(t, "POST", "/api/v1/deposits", depositBody(dw.contactA, 50, "tok_visa"),
		append(bearer(dw.tokenA), "Idempotency-Key", "es", "Accept-Language", "es")...)
	if msg, _ := body2["error"].(map[string]any)["message"].(string); res.StatusCode != 400 || !strings.Contains(msg, "$1.00 a $300.00") || !strings.Contains(msg, "depósito") {
		t.Errorf("a refusal in Spanish: %d %s", res.StatusCode, res.Raw)
	}
}

// Fifty deposits of $20 at once against a sender's daily limit of $300: exactly
// fifteen go through, the rest are told the limit, and José's trust account holds
// exactly $300 (property 34).
func TestParallelDepositsStopAtTheSenderDayLimit(t *testing.T) {
	eachEngineDeposits(t, func(t *testing.T, dw *depositsWorld) {
		dw.setPolicy(t, func(p *deposits.Policy) { p.SenderDayCents = 30000 })
		type answer struct {
			res  *apptest.Response
			req  *http.Request
			body map[string]any
		}
		out := make([]answer, 50)
		var ready, wg sync.WaitGroup
		ready.Add(len(out))
		gate := make(chan struct{})
		for i := range out {
			b, _ := json.Marshal(depositBody(dw.contactA, 2000, "tok_visa"))
			req, _ := http.NewRequest("POST", dw.URL+"/api/v1/deposits", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+dw.tokenA)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprint("burst-", i))
			out[i].req = req
			wg.Go(func() {
				ready.Done()
				<-gate
				res, err := dw.Client.Do(req)
				if err != nil {
					t.Errorf("deposit %d: %v", i, err)
					return
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				out[i].res = &apptest.Response{Response: res, Raw: string(raw)}
				json.Unmarshal(raw, &out[i].body)
			})
		}
		ready.Wait()
		close(gate)
		wg.Wait()
		codes := map[string]int{}
		for i, a := range out {
			if a.res == nil {
				t.FailNow()
			}
			dw.OnResponse(t, a.req, a.res)
			switch {
			case a.res.StatusCode == 201 && a.body["state"] == "posted":
				codes["201 posted"]++
			case a.res.StatusCode == 409 && errCode(a.body) == "deposit_limit_sender_day":
				codes["409 deposit_limit_sender_day"]++
			default:
				t.Errorf("deposit %d: %d %s", i, a.res.StatusCode, a.res.Raw)
			}
		}
		t.Logf("50 deposits of $20 against $300 a day: %v", codes)
		if codes["201 posted"] != 15 || codes["409 deposit_limit_sender_day"] != 35 {
			t.Errorf("answers to 50 deposits of $20 against $300 a day: %v, want 15 posted and 35 refused", codes)
		}
		if got, n := dw.trust(t), dw.charges(t); got != 30000 || n != 15 {
			t.Errorf("José's trust balance: %d (want 30000), %d charges (want 15)", got, n)
		}
		if _, list := dw.JSON(t, "GET", "/api/v1/deposits?limit=100", nil, bearer(dw.tokenA)...); len(list["deposits"].([]any)) != 15 {
			t.Errorf("Ana's deposits after the burst: %d, want 15 (a refusal is no deposit)", len(list["deposits"].([]any)))
		}
		// The refusal says how much is left: nothing.
		if res, body := dw.deposit(t, dw.tokenA, "one-more", dw.contactA, 100, "tok_visa"); res.StatusCode != 409 || errCode(body) != "deposit_limit_sender_day" ||
			!strings.Contains(res.Raw, "$0.00") {
			t.Errorf("one more dollar: %d %s", res.StatusCode, res.Raw)
		}
		dw.verified(t)
	})
}

// The sandbox's disputed card: the deposit posts, and two seconds later the card
// holder disputes it; the deposit is reversed by itself (the sandbox reports the
// dispute as Stripe's webhook would), José's trust account gives the money back,
// and the ledger verifies.
func TestSandboxDisputedCardReversesTheDeposit(t *testing.T) {
	eachEngineDeposits(t, func(t *testing.T, dw *depositsWorld) {
		res, d := dw.deposit(t, dw.tokenA, "disputed", dw.contactA, 1500, "tok_createDispute")
		if res.StatusCode != 201 || d["state"] != "posted" {
			t.Fatalf("the disputed card's deposit: %d %s", res.StatusCode, res.Raw)
		}
		if got := dw.trust(t); got != 1500 {
			t.Errorf("José before the dispute: %d", got)
		}
		id := d["id"].(string)
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			_, got := dw.JSON(t, "GET", "/api/v1/deposits/"+id, nil, bearer(dw.tokenA)...)
			if got["state"] == "reversed" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("never reversed: %v", got)
			}
		}
		if got := dw.trust(t); got != 0 {
			t.Errorf("José after the dispute: %d", got)
		}
		dw.verified(t)
	})
}
