package deposits_test

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

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ledger"
	kmail "github.com/kinlink/kinlink/internal/mail"
	"github.com/kinlink/kinlink/internal/problem"
)

var ctx = context.Background()

// world is two agencies: Florida (FSP, where José A100 and Kim A200 live; Ana and
// Ben are their approved contacts) and Georgia.
type world struct {
	db       *database.DB
	fac      *facility.Service
	contacts *contacts.Service
	ledger   *ledger.Ledger
	deposits *deposits.Service
	proc     *recorder

	fl, ga           facility.Agency
	fsp              facility.Facility
	jose, kim        string // resident ids
	ana, ben         string // family account ids
	contact          map[string]map[string]string
	flAdmin, finance facility.Access
	officer, gaAdmin facility.Access
}

// recorder is the sandbox with a record of what it was asked: the processor's
// side of the story.
type recorder struct {
	ledger.Sandbox
	mu      sync.Mutex
	charges map[string]int64 // by processor key: what was charged
	calls   int
	refunds map[string]int64
	// hang makes the next n charges wait until their context ends, having charged:
	// a processor that charged but did not answer in time.
	hang int
	// whileRefunding, when set, runs once during the next refund's call, as
	// something that happens while the processor works.
	whileRefunding func()
	// loseRefundAnswers makes the next n refunds happen but answer an error, as a
	// connection lost after the processor acted.
	loseRefundAnswers int
}

func (r *recorder) Charge(ctx context.Context, token string, amount int64, key string) (string, error) {
	id, err := r.Sandbox.Charge(ctx, token, amount, key)
	r.mu.Lock()
	r.calls++
	if err == nil {
		r.charges[key] = amount
	}
	hang := r.hang > 0
	if hang {
		r.hang--
	}
	r.mu.Unlock()
	if hang {
		<-ctx.Done()
		return "", ledger.ErrChargeUnknown
	}
	return id, err
}

func (r *recorder) Refund(ctx context.Context, chargeID string, amount int64, key string) (string, error) {
	r.mu.Lock()
	meanwhile := r.whileRefunding
	r.whileRefunding = nil
	r.mu.Unlock()
	if meanwhile != nil {
		meanwhile()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// As Stripe: a key seen before answers its first refund, sending nothing
	// more; the same key with another amount is refused.
	if was, ok := r.refunds[key]; ok {
		if was != amount {
			return "", ledger.ErrKeyReused
		}
		return r.Sandbox.Refund(ctx, chargeID, amount, key)
	}
	r.refunds[key] = amount
	if r.loseRefundAnswers > 0 {
		r.loseRefundAnswers--
		return "", ledger.ErrChargeUnknown
	}
	return r.Sandbox.Refund(ctx, chargeID, amount, key)
}

func setup(t *testing.T, db *database.DB) *world {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	common, err := identity.LoadCommonPasswords()
	must(err)
	hasher := identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 2, 20, time.Second)
	id, err := identity.NewService(ctx, db, hasher, common, identity.DefaultConfig(), log)
	must(err)
	w := &world{db: db, fac: facility.NewService(db, id, log), contact: map[string]map[string]string{},
		proc: &recorder{charges: map[string]int64{}, refunds: map[string]int64{}}}
	w.contacts, w.ledger = contacts.NewService(db, w.fac), ledger.New(db)
	w.deposits = deposits.NewService(db, w.fac, w.contacts, w.ledger, w.proc, log, nil)
	w.fl, err = w.fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: "FLDOC", Name: "Florida DOC", State: "FL"})
	must(err)
	w.ga, err = w.fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: "GDC", Name: "Georgia DOC", State: "GA"})
	must(err)
	w.fsp, err = w.fac.CreateFacility(ctx, facility.Operator, w.fl.ID, facility.FacilityInput{Code: "FSP", Name: "Florida State Prison", Kind: "prison", TimeZone: "America/New_York", Population: 1400})
	must(err)
	_, err = w.fac.CreateFacility(ctx, facility.Operator, w.ga.ID, facility.FacilityInput{Code: "GSP", Name: "Georgia State Prison", Kind: "prison", TimeZone: "America/New_York", Population: 1400})
	must(err)
	_, err = w.fac.ImportRoster(ctx, facility.Operator, w.fl.ID, strings.NewReader("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"+
		"A100,García,José,FSP,B-1,active,\nA200,Lee,Kim,FSP,C-2,active,\n"), facility.RosterOptions{Apply: true})
	must(err)
	w.jose, w.kim = w.resident(t, "A100"), w.resident(t, "A200")
	staff := func(email, agencyID string, grants ...facility.Grant) facility.Access {
		t.Helper()
		accountID, err := id.EnsureStaff(ctx, email, "Staff "+email, "staff pass 42!", "JBSWY3DPEHPK3PXP")
		must(err)
		for _, g := range grants {
			must(w.fac.GrantRole(ctx, facility.Operator, agencyID, accountID, g.Role, g.FacilityID))
		}
		a, err := w.fac.AccessOf(ctx, accountID)
		must(err)
		return a
	}
	w.flAdmin = staff("fl.admin@example.org", w.fl.ID, facility.Grant{Role: facility.AgencyAdmin})
	w.finance = staff("finance@example.org", w.fl.ID, facility.Grant{Role: facility.Finance})
	w.officer = staff("officer@example.org", w.fl.ID, facility.Grant{Role: facility.MailReviewer, FacilityID: w.fsp.ID})
	w.gaAdmin = staff("ga.admin@example.org", w.ga.ID, facility.Grant{Role: facility.AgencyAdmin})
	for _, name := range []string{"ana", "ben"} {
		email := name + "@example.org"
		_, err := id.EnsureAccount(ctx, identity.SignupRequest{Email: email, Password: "a long family passphrase", FullName: name + " family",
			SecurityQuestion: "first_pet", SecurityAnswer: "Canela", Locale: "en"})
		must(err)
		a, err := id.AccountByEmail(ctx, email)
		must(err)
		w.contact[a.ID] = map[string]string{}
		for _, r := range []string{w.jose, w.kim} {
			c, err := w.contacts.Request(ctx, a.ID, r)
			must(err)
			if c.Status != contacts.Approved {
				must(w.contacts.Decide(ctx, w.flAdmin, c.ID, true, ""))
			}
			w.contact[a.ID][r] = c.ID
		}
		if name == "ana" {
			w.ana = a.ID
		} else {
			w.ben = a.ID
		}
	}
	return w
}

func (w *world) resident(t *testing.T, number string) string {
	t.Helper()
	found, err := w.fac.SearchResidents(ctx, facility.ResidentSearch{AgencyCode: "FLDOC", Number: number})
	if err != nil || len(found) != 1 {
		t.Fatalf("resident %s: %v %v", number, found, err)
	}
	return found[0].ID
}

// policy changes Florida's policy from the defaults.
func (w *world) policy(t *testing.T, change func(p *deposits.Policy)) {
	t.Helper()
	p := deposits.DefaultPolicy()
	change(&p)
	if err := w.deposits.SetPolicy(ctx, w.flAdmin, w.fl.ID, p); err != nil {
		t.Fatal(err)
	}
}

func (w *world) deposit(accountID, residentID string, cents int64, token, key string) (deposits.Deposit, error) {
	return w.deposits.Deposit(ctx, accountID, deposits.Request{Recipient: deposits.Recipient{ContactID: w.contact[accountID][residentID]},
		AmountCents: cents, Token: token, Key: key, Sender: deposits.Sender{Name: "Ana García", Address: "12 Palm St, Miami FL 33101"},
		Email: "ana@example.org", Locale: "en"})
}

func (w *world) balance(t *testing.T, ref ledger.Ref) int64 {
	t.Helper()
	b, err := w.ledger.Balance(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (w *world) verify(t *testing.T) {
	t.Helper()
	r, err := w.ledger.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("ledger: %v", r.Problems)
	}
}

// events hands the processor's events to deposits, as the webhook does.
func (w *world) events(t *testing.T, evs ...ledger.PaymentEvent) {
	t.Helper()
	for _, ev := range evs {
		if err := w.deposits.HandleEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
}

// anasTopUp gives deposits the family wallets and tops Ana's up with $50 under
// key t1 (topup:<ana>:t1).
func (w *world) anasTopUp(t *testing.T) (*ledger.Wallets, ledger.TopUp) {
	t.Helper()
	wallets := ledger.NewWallets(w.ledger, w.proc, func() {})
	w.deposits.SetWallets(wallets)
	top, err := wallets.TopUp(ctx, w.ana, "ana@example.org", "en", 5000, ledger.SandboxCard, "t1")
	if err != nil {
		t.Fatal(err)
	}
	return wallets, top
}

// stamps moves cents from Ana's wallet to the platform (negative: back), as
// messages bought or refunded do.
func (w *world) stamps(t *testing.T, cents int64, key string) {
	t.Helper()
	if err := w.db.InTx(ctx, func(tx *sql.Tx) error {
		_, _, err := w.ledger.Post(ctx, tx, ledger.Transaction{Kind: "test.stamps", IdempotencyKey: key, Entries: []ledger.Entry{
			{Account: ledger.WalletOf(w.ana), Amount: -cents}, {Account: ledger.Ref{Kind: ledger.Platform}, Amount: cents}}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// settleJobs counts the settle jobs waiting to run.
func (w *world) settleJobs(t *testing.T) int {
	t.Helper()
	var n int
	if err := w.db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state = 'available'", deposits.SettleJob).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// mails are the templates of the mails queued, in order.
func (w *world) mails(t *testing.T) []kmail.Message {
	t.Helper()
	rows, err := w.db.Read().QueryContext(ctx, "SELECT payload FROM jobs WHERE kind = $1 ORDER BY id", kmail.JobKind)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []kmail.Message
	for rows.Next() {
		var payload string
		var m kmail.Message
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(payload), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func (w *world) feed(t *testing.T, agencyID string) []deposits.FeedEntry {
	t.Helper()
	rows, _, err := w.deposits.Feed(ctx, agencyID, 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// A deposit with a fee schedule: the quote shows the fee first, the card pays
// amount and fee, the resident gets exactly the amount, the fee is a line of its
// own, a receipt is mailed, the feed has the row; the same key again charges
// nothing, and another amount under it is refused.
func TestDepositPostsExactlyTheAmountAndTheFeeApart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		w.policy(t, func(p *deposits.Policy) {
			p.FeeTiers = []deposits.FeeTier{{UpToCents: 2000, FeeCents: 0}, {UpToCents: 10000, FeeCents: 195}}
		})
		q, err := w.deposits.Quote(ctx, w.ana, deposits.Recipient{ContactID: w.contact[w.ana][w.jose]}, 5000)
		if err != nil || q.FeeCents != 195 || q.TotalCents() != 5195 || q.ResidentNumber != "A100" || q.Left.Most() != 30000 {
			t.Fatalf("quote: %+v %v", q, err)
		}
		if q, _ := w.deposits.Quote(ctx, w.ana, deposits.Recipient{ContactID: w.contact[w.ana][w.jose]}, 2000); q.FeeCents != 0 {
			t.Errorf("$20 costs %d", q.FeeCents)
		}
		d, err := w.deposit(w.ana, w.jose, 5000, ledger.SandboxCard, "k1")
		if err != nil {
			t.Fatal(err)
		}
		if d.State != deposits.Posted || d.AmountCents != 5000 || d.FeeCents != 195 || !d.Charged || !strings.HasPrefix(d.Confirmation, "KL-") {
			t.Fatalf("deposit: %+v", d)
		}
		if got := w.balance(t, ledger.ResidentOf(w.jose)); got != 5000 {
			t.Errorf("José's trust account holds %d, want exactly the deposit 5000", got)
		}
		if got := w.balance(t, ledger.Ref{Kind: ledger.Platform}); got != 195 {
			t.Errorf("the platform's fee: %d", got)
		}
		if got := w.balance(t, ledger.Ref{Kind: ledger.Cards}); got != -5195 {
			t.Errorf("the card paid %d", -got)
		}
		if got := w.balance(t, ledger.HoldFor("deposit:"+d.ID)); got != 0 {
			t.Errorf("left in the hold: %d", got)
		}
		if len(w.proc.charges) != 1 || w.proc.charges["deposit:"+d.ID] != 5195 {
			t.Errorf("the processor charged %v", w.proc.charges)
		}
		if n := w.settleJobs(t); n != 0 {
			t.Errorf("a deposit charged in its request left %d settle jobs", n)
		}
		w.deposits.SetClock(func() time.Time { return time.Now().Add(time.Hour) })
		if n, err := w.deposits.SweepUnsettled(ctx); n != 0 || err != nil || w.settleJobs(t) != 0 {
			t.Errorf("the sweep an hour later queued %d settle jobs (%v) for a settled deposit", n, err)
		}
		w.deposits.SetClock(time.Now)
		ms := w.mails(t)
		if len(ms) != 1 || ms[0].Template != "deposit_receipt" || ms[0].Data["State"] != "posted" || ms[0].Data["Fee"] != "$1.95" ||
			ms[0].Data["Confirmation"] != d.Confirmation || ms[0].Data["Facility"] != "Florida State Prison" || ms[0].Data["TestMode"] != "yes" {
			t.Errorf("mails: %+v", ms)
		}
		feed := w.feed(t, w.fl.ID)
		if len(feed) != 1 || feed[0].Kind != deposits.FeedPosted || feed[0].AmountCents != 5000 || feed[0].FeeCents != 195 ||
			feed[0].ResidentNumber != "A100" || feed[0].SenderName != "Ana García" || feed[0].SenderAddress != "12 Palm St, Miami FL 33101" ||
			feed[0].FacilityCode != "FSP" || feed[0].Confirmation != d.Confirmation {
			t.Errorf("feed: %+v", feed)
		}

		again, err := w.deposit(w.ana, w.jose, 5000, ledger.SandboxCard, "k1")
		if err != nil || again.ID != d.ID || w.proc.calls != 1 {
			t.Errorf("the same key again: %+v %v (processor calls %d)", again, err, w.proc.calls)
		}
		if _, err := w.deposit(w.ana, w.jose, 4000, ledger.SandboxCard, "k1"); !errors.Is(err, deposits.ErrKeyReused) {
			t.Errorf("another amount under the key: %v", err)
		}
		if got := w.balance(t, ledger.ResidentOf(w.jose)); got != 5000 {
			t.Errorf("after the retries José holds %d", got)
		}
		w.verify(t)
	})
}

// A facility that reviews deposits: they wait held; the finance office releases
// one (posted only then), rejects one with a reason (refunded in full), the family
// cancels one (refunded in full); nothing posted can be cancelled, and staff
// without the role or of another agency cannot decide.
func TestHeldDepositsAreReleasedRejectedOrCancelled(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		w.policy(t, func(p *deposits.Policy) {
			p.PostAtOnce = false
			p.FeeBasisPoints, p.FeeCapCents = 300, 250 // 3%, at most $2.50
		})
		a, err := w.deposit(w.ana, w.jose, 2000, ledger.SandboxCard, "a")
		if err != nil || a.State != deposits.Held || a.FeeCents != 60 {
			t.Fatalf("held: %+v %v", a, err)
		}
		if got := w.balance(t, ledger.ResidentOf(w.jose)); got != 0 {
			t.Errorf("held money reached the trust account: %d", got)
		}
		if got := w.balance(t, ledger.HoldFor("deposit:"+a.ID)); got != 2060 {
			t.Errorf("hold: %d", got)
		}
		if _, err := w.deposits.Decide(ctx, w.officer, a.ID, deposits.Release, ""); !errors.Is(err, facility.ErrForbidden) {
			t.Errorf("a mail reviewer released: %v", err)
		}
		if _, err := w.deposits.Decide(ctx, w.gaAdmin, a.ID, deposits.Release, ""); !errors.Is(err, deposits.ErrNotFound) {
			t.Errorf("another agency released: %v", err)
		}
		a, err = w.deposits.Decide(ctx, w.finance, a.ID, deposits.Release, "")
		if err != nil || a.State != deposits.Posted || a.DecidedBy != "staff:"+w.finance.AccountID {
			t.Fatalf("release: %+v %v", a, err)
		}
		if got := w.balance(t, ledger.ResidentOf(w.jose)); got != 2000 {
			t.Errorf("after release: %d", got)
		}
		if _, err := w.deposits.Cancel(ctx, w.ana, a.ID); !errors.Is(err, deposits.ErrDecided) {
			t.Errorf("cancelled a posted deposit: %v", err)
		}

		b, _ := w.deposit(w.ana, w.jose, 30000, ledger.SandboxCard, "b") // 3% is $9, capped at $2.50
		if b.FeeCents != 250 {
			t.Errorf("capped fee: %d", b.FeeCents)
		}
		if _, err := w.deposits.Decide(ctx, w.finance, b.ID, deposits.Reject, "  "); !errors.Is(err, deposits.ErrNeedReason) {
			t.Errorf("a rejection without a reason: %v", err)
		}
		b, err = w.deposits.Decide(ctx, w.finance, b.ID, deposits.Reject, "Sender is on the no-contact list")
		if err != nil || b.State != deposits.Rejected || b.Refund != "due" {
			t.Fatalf("reject: %+v %v", b, err)
		}
		c, _ := w.deposit(w.ben, w.jose, 1000, ledger.SandboxCard, "c")
		if _, err := w.deposits.Cancel(ctx, w.ana, c.ID); !errors.Is(err, deposits.ErrNotFound) {
			t.Errorf("Ana cancelled Ben's deposit: %v", err)
		}
		c, err = w.deposits.Cancel(ctx, w.ben, c.ID)
		if err != nil || c.State != deposits.Cancelled || c.Refund != "due" {
			t.Fatalf("cancel: %+v %v", c, err)
		}
		for _, id := range []string{b.ID, c.ID, b.ID} { // the job, once more after it is done
			if err := w.deposits.Settle(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []deposits.Deposit{b, c} {
			got, _ := w.deposits.Of(ctx, d.AccountID, d.ID)
			if got.Refund != "done" || got.RefundID == "" {
				t.Errorf("%s: refund %q", d.ID, got.Refund)
			}
			if w.proc.refunds["deposit:"+d.ID+":refund"] != d.TotalCents() {
				t.Errorf("%s: the processor refunded %v", d.ID, w.proc.refunds)
			}
			if got := w.balance(t, ledger.HoldFor("deposit:"+d.ID)); got != 0 {
				t.Errorf("hold left: %d", got)
			}
		}
		if got := w.balance(t, ledger.ResidentOf(w.jose)); got != 2000 {
			t.Errorf("José after a rejection and a cancellation: %d", got)
		}
		if got := w.balance(t, ledger.Ref{Kind: ledger.Cards}); got != -2060 {
			t.Errorf("cards: %d", got)
		}
		var templates []string
		for _, m := range w.mails(t) {
			templates = append(templates, m.Template+":"+m.Data["State"])
		}
		if strings.Join(templates, " ") != "deposit_receipt:held deposit_posted:posted deposit_receipt:held deposit_receipt:held deposit_refunded:rejected deposit_refunded:cancelled" {
			t.Errorf("mails: %v", templates)
		}
		var kinds []string
		for _, e := range w.feed(t, w.fl.ID) {
			kinds = append(kinds, e.Kind)
		}
		if strings.Join(kinds, " ") != "posted refunded refunded" {
			t.Errorf("feed: %v", kinds)
		}
		rows, _ := audit.Search(ctx, w.db, audit.Filter{AgencyID: w.fl.ID, Action: "deposits.reject"})
		if len(rows) != 1 || !strings.Contains(rows[0].Detail, "no-contact") {
			t.Errorf("audit: %+v", rows)
		}
		w.verify(t)
	})
}

// Refusals say which rule and how much is left, and move no money.
func TestDepositRefusals(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		w.policy(t, func(p *deposits.Policy) {
			p.SenderDayCents, p.ResidentMonthCents, p.MaxBalanceCents = 5000, 8000, 7000
		})
		if _, err := w.deposit(w.ana, w.jose, 3000, ledger.SandboxDeclined, "d"); !errors.Is(err, ledger.ErrDeclined) {
			t.Errorf("declined: %v", err)
		}
		if _, err := w.deposit(w.ana, w.jose, 30001, ledger.SandboxCard, "big"); !errors.Is(err, deposits.ErrBadAmount) {
			t.Errorf("over the per-deposit limit: %v", err)
		}
		if _, err := w.deposit(w.ana, w.jose, 4000, ledger.SandboxCard, "1"); err != nil {
			t.Fatal(err)
		}
		_, err := w.deposit(w.ana, w.jose, 1500, ledger.SandboxCard, "2")
		if !errors.Is(err, deposits.ErrSenderDay) || !strings.Contains(strings.Join(argsOf(err), ","), "$10.00") {
			t.Errorf("over the daily limit: %v %v", err, argsOf(err))
		}
		if _, err := w.deposit(w.ben, w.jose, 3500, ledger.SandboxCard, "3"); !errors.Is(err, deposits.ErrMaxBalance) {
			t.Errorf("past the balance cap: %v", err)
		}
		if _, err := w.deposit(w.ben, w.jose, 3000, ledger.SandboxCard, "4"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.deposits.Deposit(ctx, w.ana, deposits.Request{Recipient: deposits.Recipient{ContactID: w.contact[w.ana][w.jose]},
			AmountCents: 100, Token: "tok_visa", Key: "one-letter", Sender: deposits.Sender{Name: "A", Address: "12 Palm St"}}); !errors.Is(err, deposits.ErrSenderName) {
			t.Errorf("a one-letter name: %v", err)
		}
		// Georgia's residents are no contact of Ana's, and Georgia takes deposits
		// only from approved contacts.
		if _, err := w.deposits.Quote(ctx, w.ana, deposits.Recipient{ContactID: w.contact[w.ben][w.jose]}, 100); !errors.Is(err, deposits.ErrNotFound) {
			t.Errorf("another family's contact: %v", err)
		}
		if got := w.balance(t, ledger.ResidentOf(w.jose)); got != 7000 {
			t.Errorf("José: %d", got)
		}
		q, _ := w.deposits.Quote(ctx, w.ben, deposits.Recipient{ContactID: w.contact[w.ben][w.jose]}, 0)
		if q.Left.BalanceCents != 0 || q.Left.ResidentMonthCents != 1000 || q.Left.SenderDayCents != 2000 || q.Left.Most() != 0 {
			t.Errorf("left: %+v", q.Left)
		}
		w.verify(t)
	})
}

// argsOf are the values a refusal quotes.
func argsOf(err error) []string {
	var out []string
	if p, ok := problem.As(err); ok {
		for _, a := range p.Args {
			out = append(out, fmt.Sprint(a))
		}
	}
	return out
}

// spend takes cents from a resident's trust account, as buying stamps does.
func (w *world) spend(t *testing.T, residentID string, cents int64, key string) {
	t.Helper()
	err := w.db.InTx(ctx, func(tx *sql.Tx) error {
		_, _, err := w.ledger.Post(ctx, tx, ledger.Transaction{Kind: "stamps", IdempotencyKey: "test-spend:" + key,
			Entries: []ledger.Entry{{Account: ledger.ResidentOf(residentID), Amount: -cents}, {Account: ledger.Ref{Kind: ledger.Platform}, Amount: cents}}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A chargeback of a posted deposit takes back what is left of it; what the
// resident spent is borne by the platform by default (the resident's balance never
// goes below zero, and they are never blocked), or owed by the resident where the
// agency says so, and repaid from their next deposit. A webhook delivered twice
// changes nothing; each chargeback is audited and in the feed.
func TestChargebacks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		d, err := w.deposit(w.ana, w.jose, 5000, ledger.SandboxCard, "1")
		if err != nil {
			t.Fatal(err)
		}
		w.spend(t, w.jose, 3000, "1")
		ev := ledger.PaymentEvent{ID: "evt_1", Kind: ledger.EventDisputed, ChargeID: d.ChargeID, AmountCents: 5000}
		for range 2 {
			if err := w.deposits.HandleEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := w.deposits.Of(ctx, w.ana, d.ID)
		if got.State != deposits.Reversed || got.Reason != "disputed" {
			t.Errorf("after the chargeback: %+v", got)
		}
		if b := w.balance(t, ledger.ResidentOf(w.jose)); b != 0 {
			t.Errorf("José's balance: %d", b)
		}
		if b := w.balance(t, ledger.Ref{Kind: ledger.Cards}); b != 0 {
			t.Errorf("cards: %d (the card got its money back)", b)
		}
		// The platform keeps the $30 of stamps and bears the $30 José spent.
		if b := w.balance(t, ledger.Ref{Kind: ledger.Platform}); b != 3000 {
			t.Errorf("platform: %d", b)
		}
		if b := w.balance(t, ledger.Losses); b != -3000 {
			t.Errorf("losses: %d", b)
		}
		feed := w.feed(t, w.fl.ID)
		if len(feed) != 2 || feed[1].Kind != deposits.FeedReversed || feed[1].AmountCents != -2000 {
			t.Errorf("feed: %+v", feed)
		}
		rows, _ := audit.Search(ctx, w.db, audit.Filter{AgencyID: w.fl.ID, Action: "deposits.chargeback"})
		if len(rows) != 1 || !strings.Contains(rows[0].Detail, "$30.00 already spent, borne by the platform") {
			t.Errorf("audit: %+v", rows)
		}
		// José is not blocked: the next deposit is his.
		if _, err := w.deposit(w.ben, w.jose, 1000, ledger.SandboxCard, "2"); err != nil {
			t.Fatal(err)
		}
		if b := w.balance(t, ledger.ResidentOf(w.jose)); b != 1000 {
			t.Errorf("José after the next deposit: %d", b)
		}
		w.verify(t)

		// Where the agency has residents repay: Kim spends $40 of $50, the
		// chargeback takes the $10 left and Kim owes $40, repaid from the next $100.
		w.policy(t, func(p *deposits.Policy) { p.Chargebacks = deposits.ChargebackResident })
		k, _ := w.deposit(w.ana, w.kim, 5000, ledger.SandboxCard, "3")
		w.spend(t, w.kim, 4000, "2")
		if err := w.deposits.HandleEvent(ctx, ledger.PaymentEvent{ID: "evt_2", Kind: ledger.EventDisputed, ChargeID: k.ChargeID, AmountCents: 5000}); err != nil {
			t.Fatal(err)
		}
		tr, err := w.deposits.TrustOf(ctx, facility.Resident{ID: w.kim, Agency: facility.Ref{ID: w.fl.ID}}, 10)
		if err != nil || tr.BalanceCents != 0 || tr.OwedCents != 4000 {
			t.Errorf("Kim's trust: %+v %v", tr, err)
		}
		if _, err := w.deposit(w.ben, w.kim, 10000, ledger.SandboxCard, "4"); err != nil {
			t.Fatal(err)
		}
		tr, _ = w.deposits.TrustOf(ctx, facility.Resident{ID: w.kim, Agency: facility.Ref{ID: w.fl.ID}}, 10)
		if tr.BalanceCents != 6000 || tr.OwedCents != 0 {
			t.Errorf("Kim after repaying: %+v", tr)
		}
		feed = w.feed(t, w.fl.ID)
		last := feed[len(feed)-1]
		if last.Kind != deposits.FeedPosted || last.AmountCents != 6000 || last.DepositCents != 10000 || !strings.Contains(last.Memo, "$40.00") {
			t.Errorf("the repaying deposit's feed row: %+v", last)
		}
		w.verify(t)
	})
}

// The processor charges but does not answer in time: the deposit stays pending
// and the family is not told it failed. A dispute arrives before the charge is
// known here and waits. The settle job asks the processor again under the same
// key (one charge), posts the deposit and applies the waiting dispute. Nothing is
// lost or doubled.
func TestTimedOutChargeAndAnEarlyDispute(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		w.deposits.SetChargeTimeout(200 * time.Millisecond)
		w.proc.hang = 1
		d, err := w.deposit(w.ana, w.jose, 2500, ledger.SandboxCard, "slow")
		if err != nil || d.State != deposits.Pending || d.Charged {
			t.Fatalf("timed out: %+v %v", d, err)
		}
		if b := w.balance(t, ledger.ResidentOf(w.jose)); b != 0 {
			t.Errorf("posted before the charge was known: %d", b)
		}
		// The sweep queues its settle job once its request had time to finish,
		// and only once.
		if n, err := w.deposits.SweepUnsettled(ctx); n != 0 || err != nil {
			t.Errorf("the sweep queued %d at once (%v): the request may still finish it", n, err)
		}
		w.deposits.SetClock(func() time.Time { return time.Now().Add(3 * time.Minute) })
		for i, want := range []int{1, 0} {
			if n, err := w.deposits.SweepUnsettled(ctx); n != want || err != nil {
				t.Errorf("sweep %d queued %d (%v), want %d", i+1, n, err, want)
			}
		}
		w.deposits.SetClock(time.Now)
		if n := w.settleJobs(t); n != 1 {
			t.Errorf("a charge not confirmed has %d settle jobs, want 1", n)
		}
		// Retrying the request with its key answers the pending deposit, charging
		// nothing more.
		if again, err := w.deposit(w.ana, w.jose, 2500, ledger.SandboxCard, "slow"); err != nil || again.ID != d.ID || w.proc.calls != 1 {
			t.Errorf("retry: %+v %v (calls %d)", again, err, w.proc.calls)
		}
		charge, _ := ledger.Sandbox{}.Charge(ctx, ledger.SandboxCard, 2500, "deposit:"+d.ID)
		early := ledger.PaymentEvent{ID: "evt_early", Kind: ledger.EventDisputed, ChargeID: charge, AmountCents: 2500}
		if err := w.deposits.HandleEvent(ctx, early); err != nil {
			t.Fatal(err)
		}
		if got, _ := w.deposits.Of(ctx, w.ana, d.ID); got.State != deposits.Pending {
			t.Errorf("a dispute of an unknown charge changed the deposit: %+v", got)
		}
		for range 2 {
			if err := w.deposits.Settle(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := w.deposits.Of(ctx, w.ana, d.ID)
		if got.State != deposits.Reversed || !got.Charged || got.ChargeID != charge {
			t.Errorf("settled: %+v", got)
		}
		if len(w.proc.charges) != 1 || w.proc.calls != 2 {
			t.Errorf("processor: %d charges in %d calls", len(w.proc.charges), w.proc.calls)
		}
		if b := w.balance(t, ledger.ResidentOf(w.jose)); b != 0 {
			t.Errorf("José after the chargeback: %d", b)
		}
		if b := w.balance(t, ledger.Ref{Kind: ledger.Cards}); b != 0 {
			t.Errorf("cards: %d", b)
		}
		w.verify(t)
	})
}

// A resident spends trust money here (stamps): the feed tells the agency, the
// daily report's figures match the ledger, a purchase is paid once per key and
// given back once; spending more than the balance takes nothing.
func TestTrustSpendingIsInTheFeedAndTheReport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		w.policy(t, func(p *deposits.Policy) {
			p.FeeTiers = []deposits.FeeTier{{UpToCents: 100000, FeeCents: 100}}
			p.FinanceEmail = "finance@fldoc.example.org"
		})
		if _, err := w.deposit(w.ana, w.jose, 1000, ledger.SandboxCard, "1"); err != nil {
			t.Fatal(err)
		}
		jose, err := w.fac.Resident(ctx, w.jose)
		if err != nil {
			t.Fatal(err)
		}
		spend := func(cents int64, key string) error {
			return w.db.InTx(ctx, func(tx *sql.Tx) error { return w.deposits.Spend(ctx, tx, jose, cents, key, "Reply stamp") })
		}
		for range 2 {
			if err := spend(50, "reply-1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := spend(2000, "reply-2"); !errors.Is(err, deposits.ErrTrustShort) {
			t.Errorf("spending past the balance: %v", err)
		}
		for range 2 {
			if err := w.db.InTx(ctx, func(tx *sql.Tx) error { return w.deposits.GiveBack(ctx, tx, jose, "reply-1", "Reply not delivered") }); err != nil {
				t.Fatal(err)
			}
		}
		if err := spend(75, "reply-3"); err != nil {
			t.Fatal(err)
		}
		if b := w.balance(t, ledger.ResidentOf(w.jose)); b != 925 {
			t.Errorf("José: %d", b)
		}
		var kinds []string
		var sum int64
		for _, e := range w.feed(t, w.fl.ID) {
			kinds = append(kinds, fmt.Sprint(e.Kind, e.AmountCents))
			sum += e.AmountCents
		}
		if strings.Join(kinds, " ") != "posted1000 spent-50 spend_refunded50 spent-75" || sum != 925 {
			t.Errorf("feed: %v", kinds)
		}
		day, _ := w.deposits.Today(ctx, w.fl.ID)
		r, err := w.deposits.ReportFor(ctx, w.finance, day)
		if err != nil || !r.Matches() || r.TrustCents != 925 || r.FeeCents != 100 || r.Posted != 1 || r.Spent != 3 || len(r.Rows) != 4 {
			t.Fatalf("report: %+v %v", r, err)
		}
		csv := string(r.CSV())
		if !strings.Contains(csv, ",-0.75,") || !strings.Contains(csv, "matches_ledger,true") || !strings.Contains(csv, "Ana García") {
			t.Errorf("csv:\n%s", csv)
		}
		if _, err := w.deposits.ReportFor(ctx, w.officer, day); !errors.Is(err, facility.ErrForbidden) {
			t.Errorf("a mail reviewer read the report: %v", err)
		}
		// Yesterday's report goes to the finance address once.
		w.deposits.SetClock(func() time.Time { return time.Now().Add(24 * time.Hour) })
		for range 2 {
			if _, err := w.deposits.SendReports(ctx); err != nil {
				t.Fatal(err)
			}
		}
		var sent []kmail.Message
		for _, m := range w.mails(t) {
			if m.Template == "deposit_report" {
				sent = append(sent, m)
			}
		}
		if len(sent) != 1 || sent[0].To != "finance@fldoc.example.org" || sent[0].Data["Matches"] != "true" || len(sent[0].Attachments) != 1 ||
			!strings.Contains(sent[0].Attachments[0].Body, "trust_total,9.25") {
			t.Errorf("report mails: %+v", sent)
		}
		w.verify(t)
	})
}

// A partial chargeback takes back only what was disputed: of a posted deposit,
// from the trust account; of a held one, from its hold, with the rest refunded to
// the card.
func TestPartialChargebacks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		posted, _ := w.deposit(w.ana, w.jose, 5000, ledger.SandboxCard, "1")
		if err := w.deposits.HandleEvent(ctx, ledger.PaymentEvent{ID: "evt_p", Kind: ledger.EventDisputed, ChargeID: posted.ChargeID, AmountCents: 3000}); err != nil {
			t.Fatal(err)
		}
		if b := w.balance(t, ledger.ResidentOf(w.jose)); b != 2000 {
			t.Errorf("José after $30 of $50 disputed: %d", b)
		}
		w.policy(t, func(p *deposits.Policy) { p.PostAtOnce = false })
		held, _ := w.deposit(w.ana, w.kim, 4000, ledger.SandboxCard, "2")
		if err := w.deposits.HandleEvent(ctx, ledger.PaymentEvent{ID: "evt_h", Kind: ledger.EventDisputed, ChargeID: held.ChargeID, AmountCents: 1500}); err != nil {
			t.Fatal(err)
		}
		got, _ := w.deposits.Of(ctx, w.ana, held.ID)
		if got.State != deposits.Reversed || got.Refund != "due" || got.DisputedCents != 1500 || w.balance(t, ledger.HoldFor("deposit:"+held.ID)) != 2500 {
			t.Fatalf("a held deposit partly disputed: %+v", got)
		}
		if err := w.deposits.Settle(ctx, held.ID); err != nil {
			t.Fatal(err)
		}
		if w.proc.refunds["deposit:"+held.ID+":refund"] != 2500 || w.balance(t, ledger.HoldFor("deposit:"+held.ID)) != 0 {
			t.Errorf("the rest back to the card: %v", w.proc.refunds)
		}
		// The cards paid $90; $30 and $15 came back by disputes and $25 by the
		// refund: $20, José's undisputed part, is all that stayed.
		if b := w.balance(t, ledger.Ref{Kind: ledger.Cards}); b != -2000 {
			t.Errorf("cards: %d", b)
		}
		w.verify(t)
	})
}

// A charge whose outcome is not known: a deposit the finance office held and
// whose charge then failed ends failed and stops counting against the limits; a
// deposit the family cancelled meanwhile is never charged by the settle job (only
// the processor's own word that it was charged brings a refund).
func TestUnknownChargesAreNeverMadeForEndedDeposits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		w.deposits.SetChargeTimeout(100 * time.Millisecond)
		w.policy(t, func(p *deposits.Policy) { p.SenderDayCents = 5000 })
		w.proc.hang = 1
		held, _ := w.deposit(w.ana, w.jose, 4000, ledger.SandboxCard, "held")
		if _, err := w.deposits.Decide(ctx, w.finance, held.ID, deposits.Hold, "Check the sender"); err != nil {
			t.Fatal(err)
		}
		if err := w.deposits.HandleEvent(ctx, ledger.PaymentEvent{ID: "evt_f", Kind: ledger.EventChargeFailed, ChargeID: "pi_failed", Key: "deposit:" + held.ID}); err != nil {
			t.Fatal(err)
		}
		if got, _ := w.deposits.Of(ctx, w.ana, held.ID); got.State != deposits.Failed {
			t.Errorf("held, then its charge failed: %s", got.State)
		}
		if q, _ := w.deposits.Quote(ctx, w.ana, deposits.Recipient{ContactID: w.contact[w.ana][w.jose]}, 0); q.Left.SenderDayCents != 5000 {
			t.Errorf("a failed deposit still counts: %d left", q.Left.SenderDayCents)
		}

		w.proc.hang = 1
		cancelled, _ := w.deposit(w.ben, w.jose, 1000, ledger.SandboxCard, "cancelled")
		if _, err := w.deposits.Cancel(ctx, w.ben, cancelled.ID); err != nil {
			t.Fatal(err)
		}
		calls := w.proc.calls
		if err := w.deposits.Settle(ctx, cancelled.ID); err != nil || w.proc.calls != calls {
			t.Errorf("the settle job asked the processor for a cancelled deposit: %v (%d calls, was %d)", err, w.proc.calls, calls)
		}
		// The processor says it was charged after all: it goes back.
		charge, _ := ledger.Sandbox{}.Charge(ctx, ledger.SandboxCard, 1000, "deposit:"+cancelled.ID)
		if err := w.deposits.HandleEvent(ctx, ledger.PaymentEvent{ID: "evt_s", Kind: ledger.EventChargeSucceeded, ChargeID: charge, Key: "deposit:" + cancelled.ID}); err != nil {
			t.Fatal(err)
		}
		if err := w.deposits.Settle(ctx, cancelled.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := w.deposits.Of(ctx, w.ben, cancelled.ID); got.State != deposits.Cancelled || got.Refund != "done" {
			t.Errorf("cancelled, then charged after all: %+v", got)
		}
		if b := w.balance(t, ledger.ResidentOf(w.jose)); b != 0 {
			t.Errorf("José: %d", b)
		}
		w.verify(t)
	})
}

// The fee the family was shown is the fee charged: a fee changed meanwhile is
// refused before the card; a percentage never costs more than $25; the feed and
// the report are the agency-wide finance office's, not a facility's officer's
// who also holds an agency-wide role of another kind.
func TestFeesShownAndAgencyWideFinance(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		shown := int64(0)
		w.policy(t, func(p *deposits.Policy) { p.FeeBasisPoints = 1000 }) // 10%, no cap
		_, err := w.deposits.Deposit(ctx, w.ana, deposits.Request{Recipient: deposits.Recipient{ContactID: w.contact[w.ana][w.jose]},
			AmountCents: 30000, Token: ledger.SandboxCard, Key: "fee", QuotedFeeCents: &shown,
			Sender: deposits.Sender{Name: "Ana García", Address: "12 Palm St, Miami FL"}})
		if !errors.Is(err, deposits.ErrFeeChanged) || w.proc.calls != 0 {
			t.Errorf("a fee not the one shown: %v (%d charges)", err, w.proc.calls)
		}
		if fee := deposits.DefaultPolicy().Fee(100000); fee != 0 {
			t.Errorf("default fee: %d", fee)
		}
		p := deposits.Policy{FeeBasisPoints: 1000}
		if fee := p.Fee(30000); fee != deposits.MaxFeeCents {
			t.Errorf("10%% of $300 with no cap: %d, want at most %d", fee, deposits.MaxFeeCents)
		}
		mixed := facility.Access{AccountID: w.finance.AccountID, AgencyID: w.fl.ID,
			Grants: []facility.Grant{{Role: facility.Finance, FacilityID: w.fsp.ID}, {Role: facility.Investigator}}}
		if _, _, err := w.deposits.CreateFeedKey(ctx, mixed, "key"); !errors.Is(err, facility.ErrForbidden) {
			t.Errorf("a facility's finance officer made an agency feed key: %v", err)
		}
		if _, err := w.deposits.ReportFor(ctx, mixed, "2026-12-01"); !errors.Is(err, facility.ErrForbidden) {
			t.Errorf("a facility's finance officer read the agency's report: %v", err)
		}
		if _, _, err := w.deposits.CreateFeedKey(ctx, w.finance, "key"); err != nil {
			t.Errorf("the agency's finance office: %v", err)
		}
	})
}

// A dispute the card holder loses gives back what its chargeback took, once: a
// posted deposit is posted again (its trust money back, the platform's loss
// recovered, the trust system told); a resident's debt for it is forgiven and what
// they repaid of it comes back to them; a deposit that never posted sends the
// money to the card with a refund of its own; one refunded before its dispute
// only makes the platform whole.
func TestWonDisputes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		won := func(id, chargeID string, cents int64) { // delivered twice
			t.Helper()
			ev := ledger.PaymentEvent{ID: id, Kind: ledger.EventDisputeWon, ChargeID: chargeID, AmountCents: cents}
			w.events(t, ev, ev)
		}
		disputed := func(id, chargeID string, cents int64) {
			t.Helper()
			w.events(t, ledger.PaymentEvent{ID: id, Kind: ledger.EventDisputed, ChargeID: chargeID, AmountCents: cents})
		}

		// The platform bears what José spent; the dispute is won.
		d, err := w.deposit(w.ana, w.jose, 5000, ledger.SandboxCard, "1")
		if err != nil {
			t.Fatal(err)
		}
		w.spend(t, w.jose, 3000, "1")
		disputed("evt_1", d.ChargeID, 5000)
		won("evt_1w", d.ChargeID, 5000)
		got, _ := w.deposits.Of(ctx, w.ana, d.ID)
		if got.State != deposits.Posted || got.DisputedCents != 0 || got.Reason != "" {
			t.Errorf("after the won dispute: %+v", got)
		}
		if b := w.balance(t, ledger.ResidentOf(w.jose)); b != 2000 {
			t.Errorf("José holds %d, want the $20 he had not spent", b)
		}
		if b := w.balance(t, ledger.Losses); b != 0 {
			t.Errorf("the platform's losses: %d", b)
		}
		if b := w.balance(t, ledger.Ref{Kind: ledger.Cards}); b != -5000 {
			t.Errorf("cards: %d (the card paid the deposit after all)", b)
		}
		feed := w.feed(t, w.fl.ID)
		if last := feed[len(feed)-1]; len(feed) != 3 || last.Kind != deposits.FeedReinstated || last.AmountCents != 2000 || last.Confirmation != d.Confirmation {
			t.Errorf("feed: %+v", feed)
		}
		day, _ := w.deposits.Today(ctx, w.fl.ID)
		if r, err := w.deposits.ReportFor(ctx, w.finance, day); err != nil || !r.Matches() || r.Reinstated != 1 || r.Reversed != 1 || r.TrustCents != 5000 {
			t.Errorf("report: %+v %v", r, err)
		}
		if rows, _ := audit.Search(ctx, w.db, audit.Filter{AgencyID: w.fl.ID, Action: "deposits.dispute_won"}); len(rows) != 1 || !strings.Contains(rows[0].Detail, "$20.00 back into the trust account") {
			t.Errorf("audit: %+v", rows)
		}
		w.verify(t)

		// Where residents repay: Kim spent $40 of $50 and owed $40 after the
		// chargeback; $30 of the next deposit repaid it. Won: the $10 still owed
		// is forgiven, the $30 repaid and the $10 taken come back.
		w.policy(t, func(p *deposits.Policy) { p.Chargebacks = deposits.ChargebackResident })
		k, _ := w.deposit(w.ana, w.kim, 5000, ledger.SandboxCard, "2")
		w.spend(t, w.kim, 4000, "2")
		disputed("evt_2", k.ChargeID, 5000)
		if _, err := w.deposit(w.ben, w.kim, 3000, ledger.SandboxCard, "3"); err != nil {
			t.Fatal(err)
		}
		won("evt_2w", k.ChargeID, 5000)
		tr, err := w.deposits.TrustOf(ctx, facility.Resident{ID: w.kim, Agency: facility.Ref{ID: w.fl.ID}}, 10)
		if err != nil || tr.BalanceCents != 4000 || tr.OwedCents != 0 {
			t.Errorf("Kim: %+v %v, want $40 (the $10 left of the first deposit and Ben's $30) and nothing owed", tr, err)
		}
		w.verify(t)

		// Held, $15 of $40 disputed, the rest refunded; won: the $15 goes back to
		// the card under a refund key of its own.
		w.policy(t, func(p *deposits.Policy) { p.PostAtOnce = false })
		h, _ := w.deposit(w.ana, w.jose, 4000, ledger.SandboxCard, "4")
		disputed("evt_3", h.ChargeID, 1500)
		if err := w.deposits.Settle(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
		won("evt_3w", h.ChargeID, 1500)
		if b := w.balance(t, ledger.HoldFor("deposit:"+h.ID)); b != 1500 {
			t.Errorf("the hold after the won dispute: %d", b)
		}
		for range 2 {
			if err := w.deposits.Settle(ctx, h.ID); err != nil {
				t.Fatal(err)
			}
		}
		got, _ = w.deposits.Of(ctx, w.ana, h.ID)
		if w.proc.refunds["deposit:"+h.ID+":refund"] != 2500 || w.proc.refunds["deposit:"+h.ID+":refund:2500"] != 1500 || len(w.proc.refunds) != 2 ||
			got.RefundedCents != 4000 || got.Refund != "done" || got.State != deposits.Reversed || w.balance(t, ledger.HoldFor("deposit:"+h.ID)) != 0 {
			t.Errorf("refunds %v; deposit %+v", w.proc.refunds, got)
		}
		var refundedMails []string
		for _, m := range w.mails(t) {
			if m.Template == "deposit_refunded" {
				refundedMails = append(refundedMails, m.Data["Refunded"])
			}
		}
		if strings.Join(refundedMails, " ") != "$25.00 $15.00" {
			t.Errorf("refund mails say %v", refundedMails)
		}
		w.verify(t)

		// A dispute won while the rest's refund is with the processor: that refund
		// records what it sent, and the won money goes in a refund of its own.
		h2, _ := w.deposit(w.ana, w.jose, 3000, ledger.SandboxCard, "4b")
		disputed("evt_5", h2.ChargeID, 1000)
		w.proc.whileRefunding = func() { won("evt_5w", h2.ChargeID, 1000) }
		for range 2 {
			if err := w.deposits.Settle(ctx, h2.ID); err != nil {
				t.Fatal(err)
			}
		}
		got, _ = w.deposits.Of(ctx, w.ana, h2.ID)
		if w.proc.refunds["deposit:"+h2.ID+":refund"] != 2000 || w.proc.refunds["deposit:"+h2.ID+":refund:2000"] != 1000 ||
			got.RefundedCents != 3000 || got.Refund != "done" || w.balance(t, ledger.HoldFor("deposit:"+h2.ID)) != 0 {
			t.Errorf("refunds %v; deposit %+v", w.proc.refunds, got)
		}
		w.verify(t)

		// Cancelled and refunded in full, then disputed: the platform bore it;
		// won, the platform is whole and nothing more goes to the card.
		c, _ := w.deposit(w.ben, w.jose, 2000, ledger.SandboxCard, "5")
		if _, err := w.deposits.Cancel(ctx, w.ben, c.ID); err != nil {
			t.Fatal(err)
		}
		if err := w.deposits.Settle(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		disputed("evt_4", c.ChargeID, 2000)
		if b := w.balance(t, ledger.Losses); b != -2000 {
			t.Errorf("losses after a refunded deposit's dispute: %d", b)
		}
		won("evt_4w", c.ChargeID, 2000)
		if err := w.deposits.Settle(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if b := w.balance(t, ledger.Losses); b != 0 || len(w.proc.refunds) != 5 {
			t.Errorf("losses %d, refunds %v", b, w.proc.refunds)
		}
		w.verify(t)
	})
}

// A disputed wallet top-up (the processor's events come to the same webhook as
// deposits'): the wallet gives back what it still holds and the platform bears
// what was spent, once; the family's wallet refund no longer sends the disputed
// charge's money back a second time; a dispute the family loses gives each back.
// A dispute of a charge no top-up is known for waits.
func TestDisputedTopUps(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		wallets, first := w.anasTopUp(t)
		w.stamps(t, 3000, "stamps-1")
		// Stripe's order: the payment's own event (naming its key), then the
		// dispute (naming only the charge), the dispute delivered twice.
		dispute := ledger.PaymentEvent{ID: "evt_disputed", Kind: ledger.EventDisputed, ChargeID: first.ChargeID, AmountCents: 5000}
		w.events(t, ledger.PaymentEvent{ID: "evt_paid", Kind: ledger.EventChargeSucceeded, ChargeID: first.ChargeID, AmountCents: 5000, Key: "topup:" + w.ana + ":t1"},
			dispute, dispute, ledger.PaymentEvent{ID: "evt_stranger", Kind: ledger.EventDisputed, ChargeID: "ch_nobody_knows", AmountCents: 900})
		if b := w.balance(t, ledger.WalletOf(w.ana)); b != 0 {
			t.Errorf("Ana's wallet after the dispute: %d, want 0 (the $20 left went back)", b)
		}
		if b := w.balance(t, ledger.Losses); b != -3000 {
			t.Errorf("the platform's losses: %d, want the $30 spent", b)
		}
		if b := w.balance(t, ledger.Ref{Kind: ledger.Cards}); b != 0 {
			t.Errorf("cards: %d (the card got its $50 back)", b)
		}
		w.verify(t)

		// A later top-up is refunded from its own charge only: the disputed one
		// has nothing left to give back, so $15 credited from no card (stamps of a
		// rejected message) cannot go back on it.
		second, err := wallets.TopUp(ctx, w.ana, "ana@example.org", "en", 1000, ledger.SandboxCard, "t2")
		if err != nil {
			t.Fatal(err)
		}
		w.stamps(t, -1500, "stamps-back")
		if _, err := wallets.Refund(ctx, w.ana, "ana@example.org", "en", "r0"); !errors.Is(err, ledger.ErrRefundExceedsCharges) {
			t.Fatalf("a refund that would go back on the disputed charge: %v", err)
		}
		w.stamps(t, 1500, "stamps-again")
		r, err := wallets.Refund(ctx, w.ana, "ana@example.org", "en", "r1")
		if err != nil || r.AmountCents != 1000 || len(r.Parts) != 1 || r.Parts[0].ChargeID != second.ChargeID {
			t.Fatalf("the wallet refund: %+v %v", r, err)
		}

		// The family lost the dispute: the wallet and the platform get back what
		// they gave, once.
		for range 2 {
			if err := w.deposits.HandleEvent(ctx, ledger.PaymentEvent{ID: "evt_won", Kind: ledger.EventDisputeWon, ChargeID: first.ChargeID, AmountCents: 5000}); err != nil {
				t.Fatal(err)
			}
		}
		if b := w.balance(t, ledger.Losses); b != 0 {
			t.Errorf("the platform's losses after the won dispute: %d", b)
		}
		if b := w.balance(t, ledger.WalletOf(w.ana)); b != 2000 {
			t.Errorf("Ana's wallet after the won dispute: %d, want the $20 back", b)
		}
		w.verify(t)
	})
}

// A refund's amount is fixed with its key before the processor is asked: asked
// again after a lost answer and a dispute won meanwhile, it asks the same under
// the same key, and the won money goes back under the next; a chargeback taken
// while the processor refunds leaves the platform bearing the card's double; a
// dispute won before its chargeback arrives waits for it.
func TestRefundsAndDisputesInEitherOrder(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		event := func(ev ledger.PaymentEvent) { t.Helper(); w.events(t, ev) }
		w.policy(t, func(p *deposits.Policy) { p.PostAtOnce = false })
		h, _ := w.deposit(w.ana, w.jose, 3000, ledger.SandboxCard, "1")
		event(ledger.PaymentEvent{ID: "evt_1", Kind: ledger.EventDisputed, ChargeID: h.ChargeID, AmountCents: 1000})
		w.proc.loseRefundAnswers = 1
		if err := w.deposits.Settle(ctx, h.ID); err == nil {
			t.Fatal("a refund whose answer was lost counted as done")
		}
		event(ledger.PaymentEvent{ID: "evt_1w", Kind: ledger.EventDisputeWon, ChargeID: h.ChargeID, AmountCents: 1000})
		for range 3 {
			if err := w.deposits.Settle(ctx, h.ID); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := w.deposits.Of(ctx, w.ana, h.ID)
		if w.proc.refunds["deposit:"+h.ID+":refund"] != 2000 || w.proc.refunds["deposit:"+h.ID+":refund:2000"] != 1000 ||
			got.Refund != "done" || got.RefundedCents != 3000 || w.balance(t, ledger.HoldFor("deposit:"+h.ID)) != 0 {
			t.Errorf("refunds %v; deposit %+v", w.proc.refunds, got)
		}
		w.verify(t)

		c, _ := w.deposit(w.ben, w.jose, 3000, ledger.SandboxCard, "2")
		if _, err := w.deposits.Cancel(ctx, w.ben, c.ID); err != nil {
			t.Fatal(err)
		}
		w.proc.whileRefunding = func() {
			event(ledger.PaymentEvent{ID: "evt_2", Kind: ledger.EventDisputed, ChargeID: c.ChargeID, AmountCents: 1000})
		}
		for range 2 {
			if err := w.deposits.Settle(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
		}
		got, _ = w.deposits.Of(ctx, w.ben, c.ID)
		if got.Refund != "done" || w.proc.refunds["deposit:"+c.ID+":refund"] != 3000 || w.balance(t, ledger.Losses) != -1000 ||
			w.balance(t, ledger.HoldFor("deposit:"+c.ID)) != 0 {
			t.Errorf("a chargeback during the refund: refunds %v, losses %d, deposit %+v", w.proc.refunds, w.balance(t, ledger.Losses), got)
		}
		w.verify(t)

		w.policy(t, func(p *deposits.Policy) { p.PostAtOnce = true })
		d, _ := w.deposit(w.ana, w.kim, 5000, ledger.SandboxCard, "3")
		event(ledger.PaymentEvent{ID: "evt_3w", Kind: ledger.EventDisputeWon, ChargeID: d.ChargeID, AmountCents: 5000})
		event(ledger.PaymentEvent{ID: "evt_3", Kind: ledger.EventDisputed, ChargeID: d.ChargeID, AmountCents: 5000})
		got, _ = w.deposits.Of(ctx, w.ana, d.ID)
		if b := w.balance(t, ledger.ResidentOf(w.kim)); b != 5000 || got.State != deposits.Posted {
			t.Errorf("a dispute won before its chargeback came: Kim holds %d, the deposit is %s", b, got.State)
		}
		w.verify(t)
	})
}

// A top-up disputed while the family's wallet refund of it waits to be sent: the
// card got its money back through the card company, so the refund's part is not
// sent too; it stays in the refund's hold for an operator.
func TestTopUpDisputedDuringItsWalletRefund(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		wallets, top := w.anasTopUp(t)
		r, err := wallets.Refund(ctx, w.ana, "ana@example.org", "en", "r1")
		if err != nil {
			t.Fatal(err)
		}
		w.events(t, ledger.PaymentEvent{ID: "evt_paid", Kind: ledger.EventChargeSucceeded, ChargeID: top.ChargeID, AmountCents: 5000, Key: "topup:" + w.ana + ":t1"},
			ledger.PaymentEvent{ID: "evt_dis", Kind: ledger.EventDisputed, ChargeID: top.ChargeID, AmountCents: 5000})
		if err := wallets.HandleRefundJob(ctx, []byte(`{"refund_id":"`+r.ID+`"}`)); err == nil || !strings.Contains(err.Error(), "disputed") {
			t.Errorf("the refund job: %v", err)
		}
		if len(w.proc.refunds) != 0 {
			t.Errorf("the card was paid twice: refunds %v", w.proc.refunds)
		}
		w.verify(t)
	})
}
