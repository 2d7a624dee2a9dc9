package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/database"
)

// Reconciliation with the payment processor (SECURITY.md 41): the ledger's card
// money is matched, movement by movement, with the processor's own records of
// what it did (its statement). Charges, chargebacks and their reversals are
// matched by the payment they belong to; refunds by the refund's id, or, where the
// ledger does not keep it, by the idempotency key the processor keeps with it.

// A Statement is a processor that keeps its own records of card money and lists
// them. The sandbox keeps none (it does not implement it): there is nothing to
// reconcile against.
type Statement interface {
	// CardMovements lists the movements of card money made at or after from and
	// before to, every page of them. Payments that are not Kinlink's (another
	// integration on the same account) are left out. A refund that failed or was
	// canceled since it was made is listed with Undone set.
	CardMovements(ctx context.Context, from, to time.Time) ([]CardMovement, error)
	// CardRefunds lists the refunds alone, made at or after from and before to,
	// as CardMovements does: Reconcile reads those of the days before a day for
	// the ones that failed since.
	CardRefunds(ctx context.Context, from, to time.Time) ([]CardMovement, error)
}

// CardMovement is one movement of card money, as the processor or the ledger
// recorded it.
type CardMovement struct {
	CardRef
	AmountCents int64 // always the money moved, positive: the kind says which way
	At          time.Time
	// Key is the idempotency key: the ledger's transaction's, or the one the
	// processor keeps with its object (Stripe: the kinlink_key metadata), "" where
	// it keeps none.
	Key string
	// Undone is what became of a movement the processor made and took back later,
	// as it now says: a refund that "failed" (the card closed: the money came back
	// to the platform) or was "canceled"; "" for a movement that stands. UndoneAt is
	// when: the processor's record of the money coming back.
	Undone   string
	UndoneAt time.Time
}

func (m CardMovement) String() string {
	s := fmt.Sprintf("%s %s of %s", m.Kind, Dollars(m.AmountCents), m.ChargeID)
	if m.ID != "" && m.ID != m.ChargeID {
		s += " (" + m.ID + ")"
	}
	s += " at " + m.At.UTC().Format(time.RFC3339)
	if m.Key != "" {
		// Quoted: a top-up's key is the client's, and could hold a line break that
		// would forge a line of the report.
		s += fmt.Sprintf(", key %q", m.Key)
	}
	return s
}

// How far past a day's edges the processor's movements are read for the
// ledger's movements of the day. The ledger records a movement after the
// processor made it (the answer to a charge, a refund, the event of a dispute),
// as late as the settle job that finishes a charge after a night's outage: a day
// before. The processor's clock may run a little ahead of ours.
const (
	ReconcileLookBack  = 24 * time.Hour
	ReconcileLookAhead = time.Hour
)

// ReconcileRefundsBack is how far before a day its reconciliation reads the
// processor's refunds for those that failed on the day. A card refund is accepted
// (pending, then succeeded) and can still fail afterwards when the card's issuer
// cannot credit it (a closed card); Stripe documents no bound on when, only that
// a refund reaches the card in 5 to 10 business days: two weeks covers those. The
// extra listing is bounded by it: each day, the refunds of the thirteen days before
// the look-back, a hundred a page.
const ReconcileRefundsBack = 14 * 24 * time.Hour

// CardTotals are the card money of one side for the day.
type CardTotals struct {
	Movements                                 int
	Charges, Refunds, Chargebacks, Reinstated int64
}

// Net is what stayed with the platform: charges less what went back.
func (t CardTotals) Net() int64 { return t.Charges - t.Refunds - t.Chargebacks + t.Reinstated }

func (t *CardTotals) add(m CardMovement) {
	if m.Undone != "" {
		return // it did not happen after all
	}
	t.Movements++
	switch m.Kind {
	case CardCharge:
		t.Charges += m.AmountCents
	case CardRefund:
		t.Refunds += m.AmountCents
	case CardChargeback:
		t.Chargebacks += m.AmountCents
	case CardChargebackReversed:
		t.Reinstated += m.AmountCents
	}
}

// CardMismatch is one movement both sides have, with different amounts (or, in
// Reconciliation.Undone, one the processor took back since).
type CardMismatch struct {
	Ledger, Processor CardMovement
}

// Reconciliation is what Reconcile found for [From, To).
type Reconciliation struct {
	From, To  time.Time
	Ledger    CardTotals // the ledger's card movements of the period
	Processor CardTotals // the processor's
	Matched   int        // movements found on both sides
	// MissingInLedger: money the processor moved that the ledger never recorded
	// (a card charged and nobody credited: the worst).
	MissingInLedger []CardMovement
	// MissingAtProcessor: movements the ledger recorded that the processor has
	// no record of.
	MissingAtProcessor []CardMovement
	Mismatched         []CardMismatch
	// Undone: refunds the ledger recorded that the processor says failed (or were
	// canceled) in the period, however long after they were made (up to
	// ReconcileRefundsBack): the ledger counts money as gone back to a card that
	// came back to the platform.
	Undone []CardMismatch
	// Duplicated: movements of a kind a payment has once (its charge, its
	// chargeback, its reversal) that the ledger recorded again, whenever the
	// earlier record: each a credit (or debit) too many. Reported on the day of the
	// later record.
	Duplicated []CardDuplicate
}

// CardDuplicate is a ledger record of a movement the ledger had recorded already.
type CardDuplicate struct {
	Again, First CardMovement
}

// oncePerCharge says whether a payment has at most one movement of the kind:
// one charge, and one dispute (Stripe allows one a payment), so one chargeback
// and one reversal.
func oncePerCharge(kind string) bool {
	return kind == CardCharge || kind == CardChargeback || kind == CardChargebackReversed
}

// Differences counts what does not reconcile.
func (r Reconciliation) Differences() int {
	return len(r.MissingInLedger) + len(r.MissingAtProcessor) + len(r.Mismatched) + len(r.Duplicated) + len(r.Undone)
}

// Summary is the result in one line.
func (r Reconciliation) Summary() string {
	head := fmt.Sprintf("%s to %s: ledger %d movements, net %s (charges %s, refunds %s, chargebacks %s, reinstated %s); processor %d movements, net %s (charges %s, refunds %s, chargebacks %s, reinstated %s); %d matched",
		r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339),
		r.Ledger.Movements, Dollars(r.Ledger.Net()), Dollars(r.Ledger.Charges), Dollars(r.Ledger.Refunds), Dollars(r.Ledger.Chargebacks), Dollars(r.Ledger.Reinstated),
		r.Processor.Movements, Dollars(r.Processor.Net()), Dollars(r.Processor.Charges), Dollars(r.Processor.Refunds), Dollars(r.Processor.Chargebacks), Dollars(r.Processor.Reinstated),
		r.Matched)
	if n := r.Differences(); n > 0 {
		return fmt.Sprintf("%s; %d differences", head, n)
	}
	return head + "; no differences"
}

// Lines are the differences, one a line, the worst first.
func (r Reconciliation) Lines() []string {
	var out []string
	for _, m := range r.MissingInLedger {
		out = append(out, "at the processor, not in the ledger: "+m.String())
	}
	for _, u := range r.Undone {
		out = append(out, fmt.Sprintf("in the ledger, but %s at the processor on %s: %s; the ledger recorded it at %s",
			u.Processor.Undone, u.Processor.UndoneAt.UTC().Format(time.RFC3339), u.Processor, u.Ledger.At.UTC().Format(time.RFC3339)))
	}
	for _, d := range r.Duplicated {
		out = append(out, fmt.Sprintf("in the ledger twice, once at the processor: %s; recorded first at %s, key %q",
			d.Again, d.First.At.UTC().Format(time.RFC3339), d.First.Key))
	}
	for _, m := range r.MissingAtProcessor {
		out = append(out, "in the ledger, not at the processor: "+m.String())
	}
	for _, m := range r.Mismatched {
		out = append(out, fmt.Sprintf("amounts differ: ledger %s, processor %s", m.Ledger, m.Processor))
	}
	return out
}

// Reconcile matches the ledger's card movements of [from, to) with the
// processor's, one by one. A movement of the period on one side is looked for on
// the other past the period's edges: the ledger's by the payment it belongs to,
// whenever recorded; the processor's from ReconcileLookBack before to
// ReconcileLookAhead after, so that a movement near midnight that each side put
// on another day is matched, not reported. Every record the ledger has of the
// payments of the period's movements (on either side) is read, so that a payment's
// charge (or chargeback, or reversal) recorded twice is reported however far
// apart the two records are. The processor's refunds of ReconcileRefundsBack
// before are read too, for those that failed (or were canceled) in the period.
func (l *Ledger) Reconcile(ctx context.Context, st Statement, from, to time.Time) (Reconciliation, error) {
	from, to = from.UTC(), to.UTC()
	r := Reconciliation{From: from, To: to}
	theirs, err := st.CardMovements(ctx, from.Add(-ReconcileLookBack), to.Add(ReconcileLookAhead))
	if err != nil {
		return r, fmt.Errorf("ledger: reconcile: the processor's statement: %w", err)
	}
	earlier, err := st.CardRefunds(ctx, from.Add(-ReconcileRefundsBack), from.Add(-ReconcileLookBack))
	if err != nil {
		return r, fmt.Errorf("ledger: reconcile: the processor's refunds of the days before: %w", err)
	}
	within := func(m CardMovement) bool { return !m.At.Before(from) && m.At.Before(to) }
	undoneWithin := func(m CardMovement) bool {
		return m.Undone != "" && !m.UndoneAt.Before(from) && m.UndoneAt.Before(to)
	}
	for _, m := range earlier {
		if undoneWithin(m) {
			theirs = append(theirs, m)
		}
	}
	ours, err := l.cardMovements(ctx, "t.created_at >= $1 AND t.created_at < $2", from, to)
	if err != nil {
		return r, err
	}
	charges := map[string]bool{}
	var ask []string
	for _, m := range theirs {
		if (within(m) || undoneWithin(m)) && !charges[m.ChargeID] {
			charges[m.ChargeID] = true
			ask = append(ask, m.ChargeID)
		}
	}
	for _, m := range ours {
		if oncePerCharge(m.Kind) && !charges[m.ChargeID] {
			charges[m.ChargeID] = true
			ask = append(ask, m.ChargeID)
		}
	}
	seen := map[string]bool{}
	for _, m := range ours {
		seen[m.Key] = true
	}
	for len(ask) > 0 {
		n := min(len(ask), 500)
		args := make([]any, n)
		for i, c := range ask[:n] {
			args[i] = c
		}
		ask = ask[n:]
		more, err := l.cardMovements(ctx, "t.card_charge IN ("+database.Placeholders(1, n)+")", args...)
		if err != nil {
			return r, err
		}
		for _, m := range more {
			if !seen[m.Key] {
				seen[m.Key] = true
				ours = append(ours, m)
			}
		}
	}
	byTime := func(a, b CardMovement) int { return a.At.Compare(b.At) }
	slices.SortStableFunc(ours, byTime)
	slices.SortStableFunc(theirs, byTime)
	for _, m := range ours {
		if within(m) {
			r.Ledger.add(m)
		}
	}
	for _, m := range theirs {
		if within(m) {
			r.Processor.add(m)
		}
	}
	partner, paired, err := pairMovements(ctx, theirs, ours)
	if err != nil {
		return r, err
	}
	for i, p := range theirs {
		j := partner[i]
		switch {
		case p.Undone != "":
			// Money that went and came back: a difference only while the ledger
			// counts it gone, reported on the day it came back.
			if j >= 0 && undoneWithin(p) {
				r.Undone = append(r.Undone, CardMismatch{Ledger: ours[j], Processor: p})
			}
		case j < 0 && within(p):
			r.MissingInLedger = append(r.MissingInLedger, p)
		case j < 0:
		case within(p) || within(ours[j]):
			r.Matched++
			if ours[j].AmountCents != p.AmountCents {
				r.Mismatched = append(r.Mismatched, CardMismatch{Ledger: ours[j], Processor: p})
			}
		}
	}
	// The processor's one movement of a kind a payment has once took the ledger's
	// earliest record: a later one is a duplicate, whether the processor's is in
	// the window or not.
	firstOf := map[movementKey]int{}
	for i, m := range ours {
		k := movementKey{m.Kind, m.ChargeID, ""}
		first, again := firstOf[k]
		if !again {
			firstOf[k] = i
		}
		switch {
		case paired[i] || !within(m):
		case oncePerCharge(m.Kind) && again:
			r.Duplicated = append(r.Duplicated, CardDuplicate{Again: m, First: ours[first]})
		default:
			r.MissingAtProcessor = append(r.MissingAtProcessor, m)
		}
	}
	return r, nil
}

// movementKey finds the ledger's movements a processor's movement may be: by kind
// and payment; for refunds, by the refund's id or its idempotency key as well.
type movementKey struct{ kind, charge, ref string }

// pairMovements pairs each of the processor's movements (theirs, in time order)
// with the earliest of the ledger's (ours, in time order) that is the same
// movement: refunds by their ids (or, where one side has none, their keys), the
// rest by kind and payment. partner[i] is the index in ours of theirs[i]'s, -1 for
// none; paired[j] says whether ours[j] has one. Indexes make it linear in the
// movements (a busy day has thousands), and it stops when ctx ends.
func pairMovements(ctx context.Context, theirs, ours []CardMovement) (partner []int, paired []bool, err error) {
	byKind := map[movementKey][]int{} // charges, chargebacks, reversals
	byID := map[movementKey][]int{}   // refunds with their ids
	byKey := map[movementKey][]int{}  // refunds by key
	for j, m := range ours {
		switch {
		case m.Kind != CardRefund:
			byKind[movementKey{m.Kind, m.ChargeID, ""}] = append(byKind[movementKey{m.Kind, m.ChargeID, ""}], j)
		default:
			if m.ID != "" {
				byID[movementKey{m.Kind, m.ChargeID, m.ID}] = append(byID[movementKey{m.Kind, m.ChargeID, m.ID}], j)
			}
			if m.Key != "" {
				byKey[movementKey{m.Kind, m.ChargeID, m.Key}] = append(byKey[movementKey{m.Kind, m.ChargeID, m.Key}], j)
			}
		}
	}
	paired = make([]bool, len(ours))
	// first is the earliest unpaired of candidates (each list in time order) that ok accepts.
	first := func(ok func(CardMovement) bool, lists ...[]int) int {
		best := -1
		for _, list := range lists {
			for _, j := range list {
				if !paired[j] && ok(ours[j]) {
					if best < 0 || j < best {
						best = j
					}
					break
				}
			}
		}
		return best
	}
	anyOne := func(CardMovement) bool { return true }
	noID := func(m CardMovement) bool { return m.ID == "" }
	partner = make([]int, len(theirs))
	for i, p := range theirs {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, nil, fmt.Errorf("ledger: reconcile: %w", ctx.Err())
		}
		j := -1
		switch {
		case p.Kind != CardRefund:
			j = first(anyOne, byKind[movementKey{p.Kind, p.ChargeID, ""}])
		case p.ID != "" && p.Key != "":
			// By its id, or by its key a ledger refund that has no id.
			j = first(anyOne, byID[movementKey{p.Kind, p.ChargeID, p.ID}])
			if k := first(noID, byKey[movementKey{p.Kind, p.ChargeID, p.Key}]); k >= 0 && (j < 0 || k < j) {
				j = k
			}
		case p.ID != "":
			j = first(anyOne, byID[movementKey{p.Kind, p.ChargeID, p.ID}])
		case p.Key != "":
			j = first(anyOne, byKey[movementKey{p.Kind, p.ChargeID, p.Key}])
		}
		partner[i] = j
		if j >= 0 {
			paired[j] = true
		}
	}
	return partner, paired, nil
}

// cardMovements reads the ledger's card movements where says (of ledger_transactions t).
func (l *Ledger) cardMovements(ctx context.Context, where string, args ...any) ([]CardMovement, error) {
	rows, err := l.db.Read().QueryContext(ctx, `SELECT t.card_kind, t.card_object, t.card_charge, t.idempotency_key, t.created_at, COALESCE(SUM(e.amount), 0)
		FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'processor'
		WHERE t.card_kind <> '' AND `+where+` GROUP BY t.id, t.card_kind, t.card_object, t.card_charge, t.idempotency_key, t.created_at`, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: card movements: %w", err)
	}
	defer rows.Close()
	var out []CardMovement
	for rows.Next() {
		var m CardMovement
		var sum int64
		if err := rows.Scan(&m.Kind, &m.ID, &m.ChargeID, &m.Key, &m.At, &sum); err != nil {
			return nil, fmt.Errorf("ledger: card movements: %w", err)
		}
		// The processor's account goes down as card money comes in.
		m.AmountCents = sum
		if m.Kind == CardCharge || m.Kind == CardChargebackReversed {
			m.AmountCents = -sum
		}
		m.At = m.At.UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// Day is the UTC day that starts at day's date, as [from, to).
func Day(day time.Time) (from, to time.Time) {
	y, m, d := day.UTC().Date()
	from = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return from, from.AddDate(0, 0, 1)
}

// ReconcileAfter is how long after a UTC day ends the server reconciles it:
// webhooks of the day's last minutes have come in by then.
const ReconcileAfter = time.Hour

// ReconcileEvery is how often the server looks for a day to reconcile.
const ReconcileEvery = 10 * time.Minute

// DailyReconciliation is a day the server reconciled, as recorded.
type DailyReconciliation struct {
	Day                         string // YYYY-MM-DD, UTC
	Processor                   string
	Matched, Differences        int
	LedgerCents, ProcessorCents int64 // the day's net card money on each side
	Report                      string
	CheckedAt                   time.Time
}

// ReconcileCatchUp is how many days back the server reconciles the days not yet
// recorded: a day missed while no server ran (or Stripe could not be read) is
// caught up within a week.
const ReconcileCatchUp = 7

// ReconcileDue reconciles, oldest first, each of the ReconcileCatchUp UTC days
// before now (a day once it is ReconcileAfter past its end) not yet recorded,
// records each (ledger_reconciliations, and the audit log), and returns the
// results of the days it recorded; none when there was nothing to do. It stops at
// the first day that fails, returning the days done before it with the error.
// Two servers that reconcile the same day at once record it once.
func (l *Ledger) ReconcileDue(ctx context.Context, st Statement, processor string, now time.Time) ([]Reconciliation, error) {
	last, _ := Day(now.UTC().Add(-ReconcileAfter).AddDate(0, 0, -1))
	first := last.AddDate(0, 0, 1-ReconcileCatchUp)
	rows, err := l.db.Read().QueryContext(ctx, "SELECT day FROM ledger_reconciliations WHERE day >= $1", first.Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("ledger: reconciliations: %w", err)
	}
	recorded := map[string]bool{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ledger: reconciliations: %w", err)
		}
		recorded[d] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: reconciliations: %w", err)
	}
	var out []Reconciliation
	for from := first; !from.After(last); from = from.AddDate(0, 0, 1) {
		if recorded[from.Format(time.DateOnly)] {
			continue
		}
		r, done, err := l.reconcileDay(ctx, st, processor, from)
		if err != nil {
			return out, fmt.Errorf("%s: %w", from.Format(time.DateOnly), err)
		}
		if done {
			out = append(out, r)
		}
	}
	return out, nil
}

// reconcileDay reconciles the UTC day from and records it; done is false when
// another server recorded it meanwhile.
func (l *Ledger) reconcileDay(ctx context.Context, st Statement, processor string, from time.Time) (r Reconciliation, done bool, err error) {
	from, to := Day(from)
	day := from.Format(time.DateOnly)
	r, err = l.Reconcile(ctx, st, from, to)
	if err != nil {
		return r, false, err
	}
	report := r.Summary()
	if lines := r.Lines(); len(lines) > 0 {
		report += "\n" + strings.Join(lines, "\n")
	}
	err = l.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := l.db.TxExec(ctx, tx, `INSERT INTO ledger_reconciliations (day, processor, matched, differences, ledger_cents, processor_cents, report, checked_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (day) DO NOTHING`,
			day, processor, r.Matched, r.Differences(), r.Ledger.Net(), r.Processor.Net(), report, time.Now().UTC())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // another server recorded it meanwhile
		}
		done = true
		detail := fmt.Sprintf("%s: %d matched, %d differences; net %s in the ledger, %s at the processor",
			processor, r.Matched, r.Differences(), Dollars(r.Ledger.Net()), Dollars(r.Processor.Net()))
		return audit.Record(ctx, l.db, tx, audit.Entry{Actor: "system", Action: "ledger.reconcile", Subject: day, Detail: detail})
	})
	if err != nil {
		return r, false, fmt.Errorf("ledger: reconciliations: %w", err)
	}
	return r, done, nil
}

// LastReconciliation is the latest day the server reconciled; ok is false before
// the first.
func (l *Ledger) LastReconciliation(ctx context.Context) (d DailyReconciliation, ok bool, err error) {
	err = l.db.Read().QueryRowContext(ctx, `SELECT day, processor, matched, differences, ledger_cents, processor_cents, report, checked_at
		FROM ledger_reconciliations ORDER BY day DESC LIMIT 1`).
		Scan(&d.Day, &d.Processor, &d.Matched, &d.Differences, &d.LedgerCents, &d.ProcessorCents, &d.Report, &d.CheckedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("ledger: reconciliations: %w", err)
	}
	return d, true, nil
}
