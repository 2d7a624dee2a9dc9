package deposits_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/deposits"
	"github.com/kinlink/kinlink/internal/ledger"
)

// Random sequences of deposits, holds, releases, rejections, cancellations,
// refunds, chargebacks (some delivered twice, some before the charge is known),
// spending and policy changes, on both engines. After every step: the ledger
// verifies, no trust account is below zero, a resident's balance is what the
// agency's feed says minus what they spent (the feed mirrors the trust account),
// and every deposit's hold holds exactly what its state says.
func TestDepositMoneyProperties(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("DEPOSITS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (set DEPOSITS_SEED to replay)", seed)
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		w.deposits.SetChargeTimeout(50 * time.Millisecond)
		rng := rand.New(rand.NewPCG(seed, 16))
		families := []string{w.ana, w.ben}
		residents := []string{w.jose, w.kim}
		spent := map[string]int64{}
		var all []deposits.Deposit
		policy := deposits.DefaultPolicy()
		steps := 120
		if testing.Short() {
			steps = 40
		}
		for step := range steps {
			op := rng.IntN(100)
			pick := func() (deposits.Deposit, bool) {
				if len(all) == 0 {
					return deposits.Deposit{}, false
				}
				d := all[rng.IntN(len(all))]
				got, err := w.deposits.Of(ctx, d.AccountID, d.ID)
				if err != nil {
					t.Fatal(err)
				}
				return got, true
			}
			what := ""
			switch {
			case op < 35:
				f, r := families[rng.IntN(2)], residents[rng.IntN(2)]
				token := []string{ledger.SandboxCard, ledger.SandboxCard, ledger.SandboxCard, ledger.SandboxDeclined}[rng.IntN(4)]
				if rng.IntN(8) == 0 {
					w.proc.hang = 1 // charged, but no answer in time
				}
				amount := int64(100 + rng.IntN(400)*50)
				d, err := w.deposit(f, r, amount, token, fmt.Sprint("k", step))
				w.proc.hang = 0 // unused when the deposit was refused before the charge
				what = fmt.Sprintf("deposit %d %s: %s %v", amount, token, d.State, err)
				if err != nil && !errors.Is(err, ledger.ErrDeclined) && !isLimit(err) {
					t.Fatalf("step %d: %s", step, what)
				}
				if d.ID != "" {
					all = append(all, d)
				}
			case op < 45:
				d, ok := pick()
				if !ok {
					continue
				}
				decision := []string{deposits.Hold, deposits.Release, deposits.Reject}[rng.IntN(3)]
				_, err := w.deposits.Decide(ctx, w.finance, d.ID, decision, "Review")
				what = fmt.Sprintf("%s %s (%s): %v", decision, d.ID, d.State, err)
				if err != nil && !errors.Is(err, deposits.ErrDecided) {
					t.Fatalf("step %d: %s", step, what)
				}
			case op < 52:
				d, ok := pick()
				if !ok {
					continue
				}
				_, err := w.deposits.Cancel(ctx, d.AccountID, d.ID)
				what = fmt.Sprintf("cancel %s (%s): %v", d.ID, d.State, err)
				if err != nil && !errors.Is(err, deposits.ErrDecided) {
					t.Fatalf("step %d: %s", step, what)
				}
			case op < 70:
				d, ok := pick()
				if !ok {
					continue
				}
				err := w.deposits.Settle(ctx, d.ID)
				what = fmt.Sprintf("settle %s (%s): %v", d.ID, d.State, err)
				if err != nil {
					t.Fatalf("step %d: %s", step, what)
				}
			case op < 80:
				d, ok := pick()
				if !ok || d.State == deposits.Failed {
					continue
				}
				// The charge id the processor gave (or will give, for a charge not
				// confirmed here yet): a dispute can come before the answer.
				charge, _ := ledger.Sandbox{}.Charge(ctx, ledger.SandboxCard, 0, "deposit:"+d.ID)
				// The whole total, or a part of it (a partial chargeback).
				disputed := d.TotalCents()
				if rng.IntN(3) == 0 {
					disputed = 1 + rng.Int64N(disputed)
				}
				ev := ledger.PaymentEvent{ID: "evt_" + d.ID, Kind: ledger.EventDisputed, ChargeID: charge, AmountCents: disputed}
				for range 1 + rng.IntN(2) {
					if err := w.deposits.HandleEvent(ctx, ev); err != nil {
						t.Fatalf("step %d: dispute %s: %v", step, d.ID, err)
					}
				}
				what = "dispute " + d.ID + " (" + d.State + ")"
			case op < 83:
				// A dispute the card holder lost: what its chargeback took comes back.
				d, ok := pick()
				if !ok || d.DisputedCents == 0 {
					continue
				}
				ev := ledger.PaymentEvent{ID: "evtw_" + d.ID, Kind: ledger.EventDisputeWon, ChargeID: d.ChargeID, AmountCents: d.DisputedCents}
				for range 1 + rng.IntN(2) {
					if err := w.deposits.HandleEvent(ctx, ev); err != nil {
						t.Fatalf("step %d: dispute won %s: %v", step, d.ID, err)
					}
				}
				what = "dispute won " + d.ID + " (" + d.State + ")"
			case op < 92:
				r := residents[rng.IntN(2)]
				b := w.balance(t, ledger.ResidentOf(r))
				if b == 0 {
					continue
				}
				amount := 1 + rng.Int64N(b)
				w.spend(t, r, amount, fmt.Sprint(step))
				spent[r] += amount
				what = fmt.Sprintf("spend %d", amount)
			default:
				policy.PostAtOnce = rng.IntN(2) == 0
				policy.Chargebacks = []string{deposits.ChargebackPlatform, deposits.ChargebackResident}[rng.IntN(2)]
				policy.FeeBasisPoints, policy.FeeCapCents = rng.IntN(500), int64(rng.IntN(300))
				if err := w.deposits.SetPolicy(ctx, w.flAdmin, w.fl.ID, policy); err != nil {
					t.Fatal(err)
				}
				what = fmt.Sprintf("policy %+v", policy)
			}
			w.checkMoney(t, step, what, residents, spent, all)
		}
	})
}

func isLimit(err error) bool {
	for _, e := range []error{deposits.ErrSenderDay, deposits.ErrSenderMonth, deposits.ErrResidentMonth, deposits.ErrMaxBalance} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (w *world) checkMoney(t *testing.T, step int, what string, residents []string, spent map[string]int64, all []deposits.Deposit) {
	t.Helper()
	r, err := w.ledger.Verify(ctx)
	if err != nil || len(r.Problems) > 0 {
		t.Fatalf("step %d (%s): ledger: %v %v", step, what, r.Problems, err)
	}
	feed := w.feed(t, w.fl.ID)
	for _, res := range residents {
		b := w.balance(t, ledger.ResidentOf(res))
		if b < 0 {
			t.Fatalf("step %d (%s): a trust account below zero: %d", step, what, b)
		}
		var mirrored int64
		for _, e := range feed {
			d, _ := w.deposits.ForStaff(ctx, w.finance, e.DepositID)
			if d.ResidentID == res {
				mirrored += e.AmountCents
			}
		}
		if b != mirrored-spent[res] {
			t.Fatalf("step %d (%s): resident holds %d, the feed says %d minus %d spent", step, what, b, mirrored, spent[res])
		}
	}
	for _, d := range all {
		d, _ = w.deposits.Of(ctx, d.AccountID, d.ID)
		want := int64(0)
		if d.Charged && (d.State == deposits.Pending || d.State == deposits.Held || d.Refund == "due") {
			want = d.RefundCents() // the total, less what a chargeback took back
		}
		if got := w.balance(t, ledger.HoldFor("deposit:"+d.ID)); got != want {
			t.Fatalf("step %d (%s): deposit %s (%s, charged %t, refund %q) holds %d, want %d", step, what, d.ID, d.State, d.Charged, d.Refund, got, want)
		}
		if d.State == deposits.Failed && d.Charged {
			t.Fatalf("step %d (%s): a failed deposit was charged: %+v", step, what, d)
		}
	}
}
