package ledger_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/jobs"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
)

// refundCall is one refund the processor was asked for.
type refundCall struct {
	ChargeID string
	Amount   int64
	Key      string
}

// recordingProcessor is the sandbox, remembering the refunds it was asked for. Like
// a real processor, it refunds once per key: a call again with a key it knows gives
// back the same refund and moves no more money (refunded counts each key once).
type recordingProcessor struct {
	ledger.Sandbox
	mu       sync.Mutex
	calls    []refundCall
	refunded map[string]refundCall
	// after runs once the processor has refunded, before the caller hears of it:
	// a crash in that gap.
	after func()
}

func (p *recordingProcessor) Refund(ctx context.Context, chargeID string, amount int64, key string) (string, error) {
	id, err := p.Sandbox.Refund(ctx, chargeID, amount, key)
	p.mu.Lock()
	c := refundCall{chargeID, amount, key}
	p.calls = append(p.calls, c)
	if p.refunded == nil {
		p.refunded = map[string]refundCall{}
	}
	if was, ok := p.refunded[key]; ok && was != c {
		p.mu.Unlock()
		return "", fmt.Errorf("key %s used for %+v, then for %+v", key, was, c)
	}
	p.refunded[key] = c
	after := p.after
	p.mu.Unlock()
	if after != nil {
		after()
	}
	return id, err
}

// perCharge is what the processor gave back to each charge, each key counted once.
func (p *recordingProcessor) perCharge() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int64{}
	for _, c := range p.refunded {
		out[c.ChargeID] += c.Amount
	}
	return out
}

// credit puts cents into a wallet from the platform, as the refund of a rejected
// message's stamps does: money in the wallet that came from no card.
func credit(db *database.DB, l *ledger.Ledger, account string, cents int64, key string) error {
	return db.InTx(context.Background(), func(tx *sql.Tx) error {
		_, _, err := l.Post(context.Background(), tx, ledger.Transaction{Kind: "refund", IdempotencyKey: key,
			Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Platform}, Amount: -cents}, {Account: ledger.WalletOf(account), Amount: cents}}})
		return err
	})
}

func refund(w *ledger.Wallets, account, key string) (ledger.WalletRefund, error) {
	return w.Refund(context.Background(), account, account+"@example.org", "en", key)
}

func verified(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	if r, err := l.Verify(context.Background()); err != nil || len(r.Problems) > 0 {
		t.Fatalf("ledger verify: %v %v", r.Problems, err)
	}
}

func balanceOf(t *testing.T, l *ledger.Ledger, ref ledger.Ref) int64 {
	t.Helper()
	b, err := l.Balance(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func countRows(t *testing.T, db *database.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Read().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func refundRunner(db *database.DB, w *ledger.Wallets) *jobs.Runner {
	r := jobs.NewRunner(db, slog.New(slog.NewTextHandler(io.Discard, nil)), 1, time.Minute)
	r.Handle(ledger.WalletRefundJob, w.HandleRefundJob)
	return r
}

func refundPayload(id string) json.RawMessage {
	return json.RawMessage(`{"refund_id":"` + id + `"}`)
}

// Two top-ups, some stamps spent and some refunded: the whole balance goes back,
// newest charge first, each charge giving back at most what it took; a later refund
// uses what is left on the charges; a balance the charges cannot take is refused
// whole. The books balance after every step.
func TestWalletRefundGoesBackToTheCardsNewestFirst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		l := ledger.New(db)
		p := &recordingProcessor{}
		w := ledger.NewWallets(l, p, func() {})
		older, err := topUp(t, w, "acct", 2000, "tok_visa", "first")
		if err != nil {
			t.Fatal(err)
		}
		newer, err := topUp(t, w, "acct", 1500, "tok_visa", "second")
		if err != nil {
			t.Fatal(err)
		}
		if err := spend(db, l, "acct", 500, "stamps"); err != nil {
			t.Fatal(err)
		}
		if err := credit(db, l, "acct", 200, "rejected-message"); err != nil {
			t.Fatal(err)
		}
		r, err := refund(w, "acct", "r1")
		if err != nil {
			t.Fatal(err)
		}
		want := []ledger.RefundPart{{Position: 1, ChargeID: newer.ChargeID, AmountCents: 1500}, {Position: 2, ChargeID: older.ChargeID, AmountCents: 1700}}
		if r.AmountCents != 3200 || r.State != ledger.RefundPending || r.Replay || r.Cards() != 2 || fmt.Sprint(r.Parts) != fmt.Sprint(want) {
			t.Fatalf("refund: %+v; want $32.00 pending in parts %+v", r, want)
		}
		if b := balanceOf(t, l, ledger.WalletOf("acct")); b != 0 {
			t.Errorf("the wallet holds %d after its refund", b)
		}
		if b := balanceOf(t, l, ledger.HoldFor("wallet_refund:"+r.ID)); b != 3200 {
			t.Errorf("the refund's hold holds %d until the processor confirms", b)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM jobs WHERE kind = $1", ledger.WalletRefundJob); n != 1 {
			t.Errorf("%d refund jobs queued", n)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM jobs WHERE kind = 'mail.send' AND payload LIKE '%wallet_refund%'"); n != 1 {
			t.Errorf("%d refund receipts queued", n)
		}
		verified(t, l)
		if len(p.calls) != 0 {
			t.Fatalf("the processor was asked before the refund was recorded: %+v", p.calls)
		}

		runner := refundRunner(db, w)
		if ran, err := runner.RunOne(ctx); !ran || err != nil {
			t.Fatalf("the refund job: %v %v", ran, err)
		}
		wantCalls := []refundCall{{newer.ChargeID, 1500, "wallet_refund:" + r.ID + ":1"}, {older.ChargeID, 1700, "wallet_refund:" + r.ID + ":2"}}
		if fmt.Sprint(p.calls) != fmt.Sprint(wantCalls) {
			t.Fatalf("the processor was asked for %+v, want %+v", p.calls, wantCalls)
		}
		got, err := w.RefundOf(ctx, "acct", r.ID)
		if err != nil || got.State != ledger.RefundRefunded || got.AmountCents != 3200 || !got.Parts[0].Done || !got.Parts[1].Done || got.Parts[0].ProcessorRefundID == "" {
			t.Fatalf("after the job: %+v %v", got, err)
		}
		if b := balanceOf(t, l, ledger.HoldFor("wallet_refund:"+r.ID)); b != 0 {
			t.Errorf("the hold keeps %d after the processor confirmed", b)
		}
		// The processor's account: 3500 came in from cards, 3200 went back.
		if b := balanceOf(t, l, ledger.Ref{Kind: ledger.Cards}); b != -300 {
			t.Errorf("the processor's account is at %d, want -300", b)
		}
		verified(t, l)
		history, err := w.History(ctx, "acct", 10)
		if err != nil || len(history) == 0 || history[0].Kind != "wallet_refund" || history[0].Amount != -3200 || history[0].Reference != r.ID {
			t.Errorf("the wallet's history: %+v %v", history, err)
		}

		// Another family cannot see it.
		if _, err := w.RefundOf(ctx, "other", r.ID); !errors.Is(err, ledger.ErrRefundNotFound) {
			t.Errorf("another family's refund: %v", err)
		}

		// A later top-up goes back to its own charge; the older charges have 300 left.
		third, err := topUp(t, w, "acct", 1000, "tok_visa", "third")
		if err != nil {
			t.Fatal(err)
		}
		r2, err := refund(w, "acct", "r2")
		if err != nil || r2.AmountCents != 1000 || fmt.Sprint(r2.Parts) != fmt.Sprint([]ledger.RefundPart{{Position: 1, ChargeID: third.ChargeID, AmountCents: 1000}}) {
			t.Fatalf("second refund: %+v %v", r2, err)
		}
		if ran, err := runner.RunOne(ctx); !ran || err != nil {
			t.Fatalf("the second refund job: %v %v", ran, err)
		}

		// More in the wallet than the charges can take back (700 from no card, but
		// only 300 + 500 of room): refused, and nothing moves.
		fourth, err := topUp(t, w, "acct", 500, "tok_visa", "fourth")
		if err != nil {
			t.Fatal(err)
		}
		if err := credit(db, l, "acct", 700, "odd"); err != nil {
			t.Fatal(err)
		}
		if _, err := refund(w, "acct", "r3"); !errors.Is(err, ledger.ErrRefundExceedsCharges) {
			t.Fatalf("a refund past the charges: %v", err)
		}
		if b := balanceOf(t, l, ledger.WalletOf("acct")); b != 1200 {
			t.Errorf("a refused refund moved money: the wallet holds %d", b)
		}
		// Once it fits again (400 spent), it goes to the newest charge, then the
		// rest of the oldest.
		if err := spend(db, l, "acct", 400, "more stamps"); err != nil {
			t.Fatal(err)
		}
		r3, err := refund(w, "acct", "r3")
		if err != nil || fmt.Sprint(r3.Parts) != fmt.Sprint([]ledger.RefundPart{{Position: 1, ChargeID: fourth.ChargeID, AmountCents: 500}, {Position: 2, ChargeID: older.ChargeID, AmountCents: 300}}) {
			t.Fatalf("third refund: %+v %v", r3, err)
		}
		if ran, err := runner.RunOne(ctx); !ran || err != nil {
			t.Fatalf("the third refund job: %v %v", ran, err)
		}
		for charge, amount := range map[string]int64{older.ChargeID: 2000, newer.ChargeID: 1500, third.ChargeID: 1000, fourth.ChargeID: 500} {
			if got := p.perCharge()[charge]; got != amount {
				t.Errorf("charge %s got %d back, want %d", charge, got, amount)
			}
		}
		verified(t, l)
	})
}

// A job that runs again, after a crash between the processor's refund and the
// ledger's record of it or after it finished, refunds nothing twice.
func TestWalletRefundJobRunTwiceRefundsNothingTwice(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		l := ledger.New(db)
		p := &recordingProcessor{}
		w := ledger.NewWallets(l, p, func() {})
		a, _ := topUp(t, w, "acct", 1000, "tok_visa", "a")
		b, _ := topUp(t, w, "acct", 1000, "tok_visa", "b")
		if err := spend(db, l, "acct", 300, "stamps"); err != nil {
			t.Fatal(err)
		}
		r, err := refund(w, "acct", "k")
		if err != nil || len(r.Parts) != 2 {
			t.Fatalf("refund: %+v %v", r, err)
		}
		// The first run dies right after the processor confirmed the first part.
		ctx, crash := context.WithCancel(context.Background())
		p.after = crash
		if err := w.HandleRefundJob(ctx, refundPayload(r.ID)); err == nil {
			t.Fatal("the crashed run reported success")
		}
		p.after = nil
		if got, _ := w.RefundOf(context.Background(), "acct", r.ID); got.State != ledger.RefundPending || got.Parts[0].Done {
			t.Fatalf("after the crash: %+v", got)
		}
		verified(t, l)
		for range 2 {
			if err := w.HandleRefundJob(context.Background(), refundPayload(r.ID)); err != nil {
				t.Fatal(err)
			}
		}
		// The first part was asked for twice under one key (the processor refunds
		// it once), the second once; the job that ran once more asked nothing.
		if len(p.calls) != 3 || p.calls[0] != p.calls[1] || p.calls[2].Key != "wallet_refund:"+r.ID+":2" {
			t.Errorf("processor calls: %+v", p.calls)
		}
		if got := p.perCharge(); got[b.ChargeID] != 1000 || got[a.ChargeID] != 700 {
			t.Errorf("refunded per charge: %v", got)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'card_refund'"); n != 2 {
			t.Errorf("%d card refunds in the ledger, want 2", n)
		}
		if got, _ := w.RefundOf(context.Background(), "acct", r.ID); got.State != ledger.RefundRefunded {
			t.Errorf("after the job: %+v", got)
		}
		if b := balanceOf(t, l, ledger.Ref{Kind: ledger.Cards}); b != -300 {
			t.Errorf("the processor's account is at %d, want -300", b)
		}
		verified(t, l)
		if err := w.HandleRefundJob(context.Background(), json.RawMessage(`{}`)); err == nil {
			t.Error("a job without a refund did not fail")
		}
	})
}

// The same key twice is one refund; parallel requests with one key make one refund,
// and parallel requests with different keys refund the money once.
func TestWalletRefundKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		l := ledger.New(db)
		w := ledger.NewWallets(l, &recordingProcessor{}, func() {})
		topUp(t, w, "acct", 2500, "tok_visa", "fund")
		first, err := refund(w, "acct", "same")
		if err != nil || first.Replay {
			t.Fatalf("refund: %+v %v", first, err)
		}
		again, err := refund(w, "acct", "same")
		if err != nil || !again.Replay || again.ID != first.ID || again.AmountCents != 2500 {
			t.Fatalf("the same key again: %+v %v", again, err)
		}
		// The same key of another family is theirs.
		if _, err := refund(w, "other", "same"); !errors.Is(err, ledger.ErrNothingToRefund) {
			t.Errorf("another family's key: %v", err)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM wallet_refunds"); n != 1 {
			t.Errorf("%d refunds", n)
		}

		var wg sync.WaitGroup
		var mu sync.Mutex
		topUp(t, w, "acct2", 1000, "tok_visa", "fund")
		seen := map[string]int{}
		for range 8 {
			wg.Go(func() {
				r, err := refund(w, "acct2", "one")
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("parallel refund with one key: %v", err)
					return
				}
				seen[r.ID]++
			})
		}
		wg.Wait()
		if len(seen) != 1 {
			t.Errorf("one key made %d refunds", len(seen))
		}
		topUp(t, w, "acct3", 1000, "tok_visa", "fund")
		made, empty := 0, 0
		for i := range 8 {
			wg.Go(func() {
				_, err := refund(w, "acct3", fmt.Sprint("key-", i))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					made++
				case errors.Is(err, ledger.ErrNothingToRefund):
					empty++
				default:
					t.Errorf("parallel refund: %v", err)
				}
			})
		}
		wg.Wait()
		if made != 1 || empty != 7 {
			t.Errorf("%d refunds made and %d found the wallet empty; want 1 and 7", made, empty)
		}
		if _, err := refund(w, "acct", strings.Repeat("k", 200)); !errors.Is(err, ledger.ErrRefundBadKey) {
			t.Errorf("an overlong key: %v", err)
		}
		verified(t, l)
	})
}

// An empty wallet is refused, in words in every language, and nothing is recorded.
func TestEmptyWalletRefundIsRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		l := ledger.New(db)
		w := ledger.NewWallets(l, &recordingProcessor{}, func() {})
		_, err := refund(w, "never-used", "k")
		p, ok := problem.As(err)
		if !errors.Is(err, ledger.ErrNothingToRefund) || !ok || p.Code != "nothing_to_refund" || p.Kind != problem.Conflict {
			t.Fatalf("an empty wallet: %v", err)
		}
		cat, cerr := i18n.Load()
		if cerr != nil {
			t.Fatal(cerr)
		}
		for _, lang := range i18n.Supported() {
			if said := cat.T(lang, p.Message); said == p.Message || said == "" {
				t.Errorf("in %s the refusal says %q", lang, said)
			}
		}
		// Spent down to zero is empty too.
		topUp(t, w, "acct", 500, "tok_visa", "fund")
		if err := spend(db, l, "acct", 500, "all"); err != nil {
			t.Fatal(err)
		}
		if _, err := refund(w, "acct", "k"); !errors.Is(err, ledger.ErrNothingToRefund) {
			t.Fatalf("a spent wallet: %v", err)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM wallet_refunds"); n != 0 {
			t.Errorf("%d refunds recorded", n)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM jobs"); n != 1 { // the top-up's receipt
			t.Errorf("%d jobs queued", n)
		}
		verified(t, l)
	})
}
