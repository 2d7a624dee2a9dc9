package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/ledger"
)

// statement is a processor's records, as its statement lists them.
type statement struct {
	moves []ledger.CardMovement
	asked [][2]time.Time
}

func (s *statement) CardMovements(_ context.Context, from, to time.Time) ([]ledger.CardMovement, error) {
	s.asked = append(s.asked, [2]time.Time{from, to})
	var out []ledger.CardMovement
	for _, m := range s.moves {
		if !m.At.Before(from) && m.At.Before(to) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *statement) CardRefunds(ctx context.Context, from, to time.Time) ([]ledger.CardMovement, error) {
	all, err := s.CardMovements(ctx, from, to)
	var out []ledger.CardMovement
	for _, m := range all {
		if m.Kind == ledger.CardRefund {
			out = append(out, m)
		}
	}
	return out, err
}

// cardWorld posts card movements into a ledger at the times the test says.
type cardWorld struct {
	t  *testing.T
	db *database.DB
	l  *ledger.Ledger
	n  int
}

// post records a movement of card money in the ledger as the posting sites do,
// then puts it at the time at: the ledger takes its own time when it posts.
func (w *cardWorld) post(kind, id, charge string, cents int64, key string, at time.Time) {
	w.t.Helper()
	w.n++
	if key == "" {
		key = fmt.Sprintf("test:%d", w.n)
	}
	cards := -cents // card money in: the processor's account goes down
	if kind == ledger.CardRefund || kind == ledger.CardChargeback {
		cards = cents
	}
	ctx := context.Background()
	err := w.db.InTx(ctx, func(tx *sql.Tx) error {
		txid, _, err := w.l.Post(ctx, tx, ledger.Transaction{Kind: "test." + kind, IdempotencyKey: key, Reference: charge,
			Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: cards}, {Account: ledger.Losses, Amount: -cards}},
			Card:    ledger.CardRef{Kind: kind, ID: id, ChargeID: charge}})
		if err != nil {
			return err
		}
		_, err = w.db.TxExec(ctx, tx, "UPDATE ledger_transactions SET created_at = $2 WHERE id = $1", txid, at)
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

var day = time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)

func at(h, m, s int) time.Time {
	return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
}

func move(kind, id, charge string, cents int64, key string, when time.Time) ledger.CardMovement {
	return ledger.CardMovement{CardRef: ledger.CardRef{Kind: kind, ID: id, ChargeID: charge}, AmountCents: cents, At: when, Key: key}
}

// matchingDay fills the ledger and the processor with the same movements of the
// day, some of them recorded on the other side of a midnight.
func matchingDay(w *cardWorld) *statement {
	st := &statement{}
	both := func(kind, id, charge string, cents int64, ledgerKey, processorKey string, ledgerAt, processorAt time.Time) {
		w.post(kind, id, charge, cents, ledgerKey, ledgerAt)
		pid := id
		if pid == "" && kind == ledger.CardChargeback {
			pid = "dp_" + charge
		}
		st.moves = append(st.moves, move(kind, pid, charge, cents, processorKey, processorAt))
	}
	// A top-up: its key is the processor's.
	both(ledger.CardCharge, "pi_1", "pi_1", 2000, "topup:a:1", "topup:a:1", at(10, 0, 1), at(10, 0, 0))
	// A deposit's charge: the ledger's key is not the processor's; the charge is.
	both(ledger.CardCharge, "pi_2", "pi_2", 5000, "deposit:x:charge", "deposit:x", at(12, 0, 1), at(12, 0, 0))
	// A wallet refund's part, with its refund's id on both sides.
	both(ledger.CardRefund, "re_1", "pi_1", 500, "wallet_refund:r:1", "wallet_refund:r:1", at(13, 0, 1), at(13, 0, 0))
	// A deposit's refund recorded before 0037: no refund id in the ledger, its key
	// at the processor.
	both(ledger.CardRefund, "", "pi_2", 1000, "deposit:x:refund", "deposit:x:refund", at(13, 30, 1), at(13, 30, 0))
	st.moves[len(st.moves)-1].ID = "re_2"
	// A charge of the day before, disputed today, the dispute won the same day.
	both(ledger.CardCharge, "pi_3", "pi_3", 3000, "", "topup:a:3", day.Add(-9*time.Hour), day.Add(-9*time.Hour-time.Second))
	both(ledger.CardChargeback, "", "pi_3", 3000, "", "", at(14, 0, 5), at(14, 0, 0))
	both(ledger.CardChargebackReversed, "", "pi_3", 3000, "", "", at(15, 0, 5), at(15, 0, 0))
	st.moves[len(st.moves)-1].ID = "dp_pi_3"
	// Near midnight: the processor charged before it, the ledger recorded after.
	both(ledger.CardCharge, "pi_4", "pi_4", 1500, "", "topup:a:4", day.Add(24*time.Hour+2*time.Second), at(23, 59, 58))
	// And a processor whose clock runs ahead: after midnight there, before here.
	both(ledger.CardCharge, "pi_5", "pi_5", 1200, "", "topup:a:5", at(23, 59, 59), day.Add(24*time.Hour+time.Second))
	// A charge settled by its job after a night's outage, the next morning.
	both(ledger.CardCharge, "pi_6", "pi_6", 800, "", "deposit:y", day.Add(24*time.Hour+8*time.Hour), at(22, 0, 0))
	return st
}

func TestReconcileMatchesTheProcessorOneByOne(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		w := &cardWorld{t: t, db: db, l: ledger.New(db)}
		st := matchingDay(w)

		from, to := ledger.Day(day)
		r, err := w.l.Reconcile(ctx, st, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if r.Differences() != 0 {
			t.Errorf("a day that matches has differences:\n%s", strings.Join(r.Lines(), "\n"))
		}
		// The day's own movements of each side: the ledger's late records of pi_4
		// and pi_6 belong to the next day, as the processor's pi_5 does.
		wantLedger := ledger.CardTotals{Movements: 7, Charges: 2000 + 5000 + 1200, Refunds: 1500, Chargebacks: 3000, Reinstated: 3000}
		wantProcessor := ledger.CardTotals{Movements: 8, Charges: 2000 + 5000 + 1500 + 800, Refunds: 1500, Chargebacks: 3000, Reinstated: 3000}
		if r.Ledger != wantLedger || r.Processor != wantProcessor {
			t.Errorf("totals: ledger %+v processor %+v, want %+v and %+v", r.Ledger, r.Processor, wantLedger, wantProcessor)
		}
		if r.Matched != 9 {
			t.Errorf("%d matched, want 9 (each movement of the day on either side)", r.Matched)
		}
		if !strings.Contains(r.Summary(), "no differences") {
			t.Errorf("summary: %s", r.Summary())
		}
		// The processor is asked past the day's edges.
		if got := st.asked[0]; !got[0].Equal(day.Add(-ledger.ReconcileLookBack)) || !got[1].Equal(day.Add(24*time.Hour+ledger.ReconcileLookAhead)) {
			t.Errorf("the processor was asked for %v", got)
		}
		// The next day finds its own halves of the midnight movements matched too.
		next, err := w.l.Reconcile(ctx, st, to, to.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if next.Differences() != 0 || next.Ledger.Movements != 2 || next.Processor.Movements != 1 || next.Matched != 3 {
			t.Errorf("the next day: %s\n%s", next.Summary(), strings.Join(next.Lines(), "\n"))
		}

		// Now the processor charged a card the ledger never credited, a refund the
		// ledger recorded never happened at the processor, and a charge's amounts
		// differ. A charge of the day before that the ledger lacks is that day's.
		st.moves = append(st.moves, move(ledger.CardCharge, "pi_7", "pi_7", 4000, "topup:a:7", at(16, 0, 0)))
		w.post(ledger.CardRefund, "re_9", "pi_2", 700, "deposit:x:refund:1000", at(17, 0, 0))
		w.post(ledger.CardCharge, "pi_8", "pi_8", 2500, "", at(18, 0, 1))
		st.moves = append(st.moves, move(ledger.CardCharge, "pi_8", "pi_8", 5200, "topup:a:8", at(18, 0, 0)))
		st.moves = append(st.moves, move(ledger.CardCharge, "pi_old", "pi_old", 900, "topup:a:old", day.Add(-10*time.Hour)))

		r, err = w.l.Reconcile(ctx, st, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.MissingInLedger) != 1 || r.MissingInLedger[0].ChargeID != "pi_7" || r.MissingInLedger[0].AmountCents != 4000 {
			t.Errorf("missing in the ledger: %+v", r.MissingInLedger)
		}
		if len(r.MissingAtProcessor) != 1 || r.MissingAtProcessor[0].ID != "re_9" || r.MissingAtProcessor[0].Key != "deposit:x:refund:1000" {
			t.Errorf("missing at the processor: %+v", r.MissingAtProcessor)
		}
		if len(r.Mismatched) != 1 || r.Mismatched[0].Ledger.AmountCents != 2500 || r.Mismatched[0].Processor.AmountCents != 5200 {
			t.Errorf("mismatched: %+v", r.Mismatched)
		}
		if r.Differences() != 3 || !strings.Contains(r.Summary(), "3 differences") {
			t.Errorf("%d differences: %s", r.Differences(), r.Summary())
		}
		lines := strings.Join(r.Lines(), "\n")
		for _, want := range []string{"at the processor, not in the ledger: charge $40.00 of pi_7", "in the ledger, not at the processor: refund $7.00 of pi_2 (re_9)",
			"amounts differ: ledger charge $25.00 of pi_8", "processor charge $52.00 of pi_8"} {
			if !strings.Contains(lines, want) {
				t.Errorf("the differences do not say %q:\n%s", want, lines)
			}
		}
		if strings.Contains(lines, "pi_4") || strings.Contains(lines, "pi_5") || strings.Contains(lines, "pi_6") || strings.Contains(lines, "pi_old") {
			t.Errorf("a movement of another day is reported:\n%s", lines)
		}
		if r.Ledger.Charges != 2000+5000+1200+2500 || r.Processor.Charges != 2000+5000+1500+800+4000+5200 || r.Ledger.Refunds != 2200 {
			t.Errorf("totals: ledger %+v processor %+v", r.Ledger, r.Processor)
		}
	})
}

// failingStatement is a processor that cannot be read.
type failingStatement struct{ statement }

func (failingStatement) CardMovements(context.Context, time.Time, time.Time) ([]ledger.CardMovement, error) {
	return nil, errors.New("the processor is unreachable")
}

// The server's daily run reconciles each day of the week before not yet
// recorded, oldest first, once, records and audits each; a day it missed is
// caught up by the next run.
func TestReconcileDueCatchesUpOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		w := &cardWorld{t: t, db: db, l: ledger.New(db)}
		st := matchingDay(w)
		st.moves = append(st.moves, move(ledger.CardCharge, "pi_7", "pi_7", 4000, "topup:a:7", at(16, 0, 0)))
		if _, ok, err := w.l.LastReconciliation(ctx); ok || err != nil {
			t.Fatalf("a reconciliation before any: %v %v", ok, err)
		}
		days := func(rs []ledger.Reconciliation) []string {
			var out []string
			for _, r := range rs {
				out = append(out, r.From.Format(time.DateOnly))
			}
			return out
		}
		// Midnight has just passed: the day's late webhooks may still come. The
		// week before it is reconciled, oldest first.
		rs, err := w.l.ReconcileDue(ctx, st, "stripe", day.Add(24*time.Hour+30*time.Minute))
		if want := []string{"2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09"}; err != nil || !slices.Equal(days(rs), want) {
			t.Fatalf("30 minutes past midnight: %v %v, want %v", days(rs), err, want)
		}
		rs, err = w.l.ReconcileDue(ctx, st, "stripe", day.Add(24*time.Hour+2*time.Hour))
		if err != nil || len(rs) != 1 || rs[0].From != day || rs[0].Differences() != 1 {
			t.Fatalf("yesterday: %v %v", days(rs), err)
		}
		r := rs[0]
		if rs, err := w.l.ReconcileDue(ctx, st, "stripe", day.Add(24*time.Hour+3*time.Hour)); err != nil || len(rs) != 0 {
			t.Errorf("yesterday again: %v %v", days(rs), err)
		}
		last, ok, err := w.l.LastReconciliation(ctx)
		if err != nil || !ok || last.Day != "2026-03-10" || last.Differences != 1 || last.Processor != "stripe" || last.Matched != 9 ||
			last.LedgerCents != r.Ledger.Net() || last.ProcessorCents != r.Processor.Net() || !strings.Contains(last.Report, "not in the ledger: charge $40.00 of pi_7") {
			t.Errorf("recorded: %+v %v %v", last, ok, err)
		}
		var detail string
		if err := db.Read().QueryRowContext(ctx, "SELECT detail FROM audit_log WHERE action = 'ledger.reconcile' AND subject = '2026-03-10'").Scan(&detail); err != nil ||
			!strings.Contains(detail, "1 differences") {
			t.Errorf("audit: %q %v", detail, err)
		}
		// The processor cannot be read for three days: nothing is recorded, and
		// the days are caught up afterwards, oldest first.
		for h := 1; h <= 3; h++ {
			now := day.Add(time.Duration(24*(1+h)+2) * time.Hour)
			if rs, err := w.l.ReconcileDue(ctx, &failingStatement{}, "stripe", now); err == nil || len(rs) != 0 || !strings.Contains(err.Error(), "unreachable") {
				t.Errorf("an unreachable processor: %v %v", days(rs), err)
			}
		}
		rs, err = w.l.ReconcileDue(ctx, st, "stripe", day.Add(4*24*time.Hour+2*time.Hour))
		if want := []string{"2026-03-11", "2026-03-12", "2026-03-13"}; err != nil || !slices.Equal(days(rs), want) {
			t.Errorf("caught up: %v %v, want %v", days(rs), err, want)
		}
		if n, err := audit.Verify(ctx, db); err != nil || n != 11 {
			t.Errorf("audit log: %d rows, %v", n, err)
		}
	})
}

// A movement of the processor's account says what it mirrors at the processor,
// and only such a movement does.
func TestPostRefusesUnattributedCardMoney(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		l := ledger.New(db)
		for i, tx := range []ledger.Transaction{
			{Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -100}, {Account: ledger.WalletOf("a"), Amount: 100}}},
			{Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -100}, {Account: ledger.WalletOf("a"), Amount: 100}},
				Card: ledger.CardRef{Kind: "payout", ChargeID: "pi_1"}},
			{Entries: []ledger.Entry{{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -100}, {Account: ledger.WalletOf("a"), Amount: 100}},
				Card: ledger.CardRef{Kind: ledger.CardCharge}},
			{Entries: []ledger.Entry{{Account: ledger.WalletOf("a"), Amount: -100}, {Account: ledger.Ref{Kind: ledger.Platform}, Amount: 100}},
				Card: ledger.CardRef{Kind: ledger.CardCharge, ChargeID: "pi_1"}},
		} {
			tx.Kind, tx.IdempotencyKey = "test", fmt.Sprint("unattributed-", i)
			err := db.InTx(ctx, func(sqlTx *sql.Tx) error {
				_, _, err := l.Post(ctx, sqlTx, tx)
				return err
			})
			if !errors.Is(err, ledger.ErrUnattributed) {
				t.Errorf("transaction %d: %v", i, err)
			}
		}
		if r, err := l.Verify(ctx); err != nil || r.Transactions != 0 {
			t.Errorf("something was posted: %+v %v", r, err)
		}
	})
}

// A key is quoted in the report: a top-up's key is the client's, and one with a
// line break must not write a line of its own into the report.
func TestReconcileQuotesKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		w := &cardWorld{t: t, db: db, l: ledger.New(db)}
		st := &statement{}
		forged := "topup:a:1\nat the processor, not in the ledger: charge $999.00 of pi_forged"
		st.moves = append(st.moves, move(ledger.CardCharge, "pi_1", "pi_1", 2000, forged, at(10, 0, 0)))
		from, to := ledger.Day(day)
		r, err := w.l.Reconcile(ctx, st, from, to)
		if err != nil {
			t.Fatal(err)
		}
		lines := r.Lines()
		if len(lines) != 1 || strings.Contains(lines[0], "\n") || !strings.Contains(lines[0], `key "topup:a:1\nat the processor`) {
			t.Errorf("the key is not quoted: %q", lines)
		}
	})
}

// One card payment credited twice is reported, on the day of the second record,
// however far from the first: the processor's one charge is paired with the
// earliest record only, each day.
func TestReconcileReportsAPaymentRecordedTwice(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		w := &cardWorld{t: t, db: db, l: ledger.New(db)}
		st := &statement{}
		st.moves = append(st.moves, move(ledger.CardCharge, "pi_x", "pi_x", 5000, "deposit:x", at(20, 0, 0)))
		w.post(ledger.CardCharge, "pi_x", "pi_x", 5000, "deposit:x:charge", at(20, 0, 1))
		from, to := ledger.Day(day)
		if r, err := w.l.Reconcile(ctx, st, from, to); err != nil || r.Differences() != 0 {
			t.Fatalf("the day of the payment: %v %s", err, r.Summary())
		}
		// The next morning something credits the same payment again.
		w.post(ledger.CardCharge, "pi_x", "pi_x", 5000, "topup:again", to.Add(9*time.Hour))
		next, err := w.l.Reconcile(ctx, st, to, to.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Join(next.Lines(), "\n")
		if next.Differences() != 1 || len(next.Duplicated) != 1 || next.Duplicated[0].Again.Key != "topup:again" ||
			!strings.Contains(lines, `in the ledger twice, once at the processor: charge $50.00 of pi_x at 2026-03-11T09:00:00Z, key "topup:again"; recorded first at 2026-03-10T20:00:01Z, key "deposit:x:charge"`) {
			t.Errorf("the day of the second record: %s\n%s", next.Summary(), lines)
		}
		// The day of the first record still reconciles: its record is the paired one.
		if r, err := w.l.Reconcile(ctx, st, from, to); err != nil || r.Differences() != 0 {
			t.Errorf("the day of the payment again: %v %s\n%s", err, r.Summary(), strings.Join(r.Lines(), "\n"))
		}
		// A week later, out of the processor's window, a third record: still a
		// duplicate, not merely missing at the processor.
		week := to.AddDate(0, 0, 7)
		w.post(ledger.CardChargeback, "", "pi_x", 5000, "", week.Add(time.Hour))
		w.post(ledger.CardCharge, "pi_x", "pi_x", 5000, "topup:third", week.Add(2*time.Hour))
		later, err := w.l.Reconcile(ctx, st, week, week.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if len(later.Duplicated) != 1 || later.Duplicated[0].Again.Key != "topup:third" || len(later.MissingAtProcessor) != 1 ||
			later.MissingAtProcessor[0].Kind != ledger.CardChargeback {
			t.Errorf("a week later: %s\n%s", later.Summary(), strings.Join(later.Lines(), "\n"))
		}
	})
}

// A refund the processor accepted and that failed days later (the card closed)
// is reported on the day it failed, once, in words that say so; one that failed
// and that the ledger never counted is no difference.
func TestReconcileReportsARefundThatFailedLater(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		w := &cardWorld{t: t, db: db, l: ledger.New(db)}
		st := &statement{}
		made := day.AddDate(0, 0, -5).Add(10 * time.Hour)
		st.moves = append(st.moves, move(ledger.CardCharge, "pi_1", "pi_1", 5000, "deposit:d1", made.Add(-time.Hour)))
		w.post(ledger.CardCharge, "pi_1", "pi_1", 5000, "deposit:d1:charge", made.Add(-time.Hour+time.Second))
		st.moves = append(st.moves, move(ledger.CardRefund, "re_1", "pi_1", 2000, "deposit:d1:refund", made))
		w.post(ledger.CardRefund, "re_1", "pi_1", 2000, "deposit:d1:refund", made.Add(time.Second))
		madeFrom, madeTo := ledger.Day(made)
		if r, err := w.l.Reconcile(ctx, st, madeFrom, madeTo); err != nil || r.Differences() != 0 || r.Matched != 2 {
			t.Fatalf("the day of the refund: %v %s", err, r.Summary())
		}
		// Five days later the card's issuer sends it back. A refund that failed at
		// once, and that the ledger never counted, is no difference.
		st.moves[1].Undone, st.moves[1].UndoneAt = "failed", at(11, 0, 0)
		failedAtOnce := move(ledger.CardRefund, "re_2", "pi_1", 500, "deposit:d1:refund:2000", made.Add(time.Hour))
		failedAtOnce.Undone, failedAtOnce.UndoneAt = "failed", at(12, 0, 0)
		st.moves = append(st.moves, failedAtOnce)
		from, to := ledger.Day(day)
		r, err := w.l.Reconcile(ctx, st, from, to)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Join(r.Lines(), "\n")
		if r.Differences() != 1 || len(r.Undone) != 1 || r.Undone[0].Ledger.ID != "re_1" ||
			!strings.Contains(lines, `in the ledger, but failed at the processor on 2026-03-10T11:00:00Z: refund $20.00 of pi_1 (re_1) at 2026-03-05T10:00:00Z, key "deposit:d1:refund"; the ledger recorded it at 2026-03-05T10:00:01Z`) {
			t.Errorf("the day it failed: %s\n%s", r.Summary(), lines)
		}
		// The refunds of the days before were asked for, and no further back.
		if got := st.asked[len(st.asked)-1]; !got[0].Equal(from.Add(-ledger.ReconcileRefundsBack)) || !got[1].Equal(from.Add(-ledger.ReconcileLookBack)) {
			t.Errorf("the earlier refunds were asked for %v", got)
		}
		// The next day says it no more, and the day of the refund, reconciled
		// again, neither counts it at the processor nor reports it.
		if next, err := w.l.Reconcile(ctx, st, to, to.AddDate(0, 0, 1)); err != nil || next.Differences() != 0 {
			t.Errorf("the next day: %v %s", err, next.Summary())
		}
		if again, err := w.l.Reconcile(ctx, st, madeFrom, madeTo); err != nil || again.Differences() != 0 || again.Processor.Refunds != 0 || again.Ledger.Refunds != 2000 {
			t.Errorf("the day of the refund again: %v %s", err, again.Summary())
		}
		// A refund that failed more than ReconcileRefundsBack after it was made is
		// not looked for.
		late := day.AddDate(0, 0, 20)
		st.moves[1].UndoneAt = late.Add(time.Hour)
		lateFrom, lateTo := ledger.Day(late)
		if r, err := w.l.Reconcile(ctx, st, lateFrom, lateTo); err != nil || r.Differences() != 0 {
			t.Errorf("three weeks later: %v %s", err, r.Summary())
		}
	})
}
