package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/ledger"
)

func topUp(t *testing.T, w *ledger.Wallets, account string, cents int64, token, key string) (ledger.TopUp, error) {
	t.Helper()
	return w.TopUp(context.Background(), account, account+"@example.org", "en", cents, token, key)
}

// spend moves cents from a wallet to the platform, as a message will.
func spend(db *database.DB, l *ledger.Ledger, account string, cents int64, key string) error {
	return db.InTx(context.Background(), func(tx *sql.Tx) error {
		_, _, err := l.Post(context.Background(), tx, ledger.Transaction{Kind: "test", IdempotencyKey: key,
			Entries: []ledger.Entry{{Account: ledger.WalletOf(account), Amount: -cents}, {Account: ledger.Ref{Kind: ledger.Platform}, Amount: cents}}})
		return err
	})
}

func TestTopUpsAndIdempotency(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		l := ledger.New(db)
		w := ledger.NewWallets(l, ledger.Sandbox{}, func() {})
		if _, err := topUp(t, w, "acct1", 2500, "tok_chargeDeclined", "k0"); !errors.Is(err, ledger.ErrDeclined) {
			t.Fatalf("declined card: %v", err)
		}
		if _, err := topUp(t, w, "acct1", 2500, "tok_chargeDeclinedProcessingError", "k0"); !errors.Is(err, ledger.ErrProcessorFailed) {
			t.Fatalf("processor failure: %v", err)
		}
		if _, err := topUp(t, w, "acct1", 100, "tok_visa", "k0"); !errors.Is(err, ledger.ErrBadAmount) {
			t.Fatalf("a $1 top-up: %v", err)
		}
		first, err := topUp(t, w, "acct1", 2500, "tok_visa", "k1")
		if err != nil || first.BalanceCents != 2500 || first.Replay {
			t.Fatalf("top-up: %+v %v", first, err)
		}
		again, err := topUp(t, w, "acct1", 2500, "tok_visa", "k1")
		if err != nil || !again.Replay || again.BalanceCents != 2500 || again.ID != first.ID || again.ChargeID != first.ChargeID {
			t.Fatalf("a retried top-up moved money again: %+v %v", again, err)
		}
		// The same key of another family is another top-up.
		if other, _ := topUp(t, w, "acct2", 1000, "tok_visa", "k1"); other.Replay || other.BalanceCents != 1000 {
			t.Fatalf("another family's key: %+v", other)
		}
		if r, err := l.Verify(context.Background()); err != nil || len(r.Problems) > 0 || r.Transactions != 2 || r.Stored != 2 || r.System != 1 {
			t.Fatalf("verify: %+v, %v", r, err)
		}
	})
}

// Fifty parallel spends against a wallet that pays for ten: exactly ten succeed.
func TestWalletsNeverGoBelowZero(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		l := ledger.New(db)
		w := ledger.NewWallets(l, ledger.Sandbox{}, func() {})
		if _, err := topUp(t, w, "acct", 1000, "tok_visa", "fund"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, broke := 0, 0
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := spend(db, l, "acct", 100, fmt.Sprintf("send-%d", i))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ledger.ErrInsufficientFunds):
					broke++
				default:
					t.Errorf("spend: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok != 10 || broke != 40 {
			t.Fatalf("%d spends succeeded and %d were refused; want 10 and 40", ok, broke)
		}
		if b, _ := w.Balance(context.Background(), "acct"); b != 0 {
			t.Fatalf("balance %d", b)
		}
		if r, err := l.Verify(context.Background()); err != nil || len(r.Problems) > 0 {
			t.Fatalf("verify: %v %v", r.Problems, err)
		}
	})
}

func TestVerifyFindsTampering(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		l := ledger.New(db)
		w := ledger.NewWallets(l, ledger.Sandbox{}, func() {})
		topUp(t, w, "acct", 1000, "tok_visa", "fund")
		if _, err := db.Write().Exec("UPDATE ledger_accounts SET balance = balance + 500 WHERE kind = 'wallet'"); err != nil {
			t.Fatal(err)
		}
		if r, _ := l.Verify(context.Background()); len(r.Problems) != 1 {
			t.Fatalf("a balance that is not the sum of its entries: %v", r.Problems)
		}
		// A system account keeps no stored balance: a number written into its
		// balance column is found too, not read as if it meant something.
		if _, err := db.Write().Exec("UPDATE ledger_accounts SET balance = 12345 WHERE kind = 'processor'"); err != nil {
			t.Fatal(err)
		}
		if r, _ := l.Verify(context.Background()); len(r.Problems) != 2 || !strings.Contains(r.Problems[0]+r.Problems[1], "keeps no stored balance, but its balance column holds 12345") {
			t.Fatalf("a stored balance on the processor's account: %v", r.Problems)
		}
		if _, err := db.Write().Exec("UPDATE ledger_entries SET amount = amount + 1 WHERE position = 0 AND transaction_id = (SELECT MIN(transaction_id) FROM ledger_entries)"); err != nil {
			t.Fatal(err)
		}
		if r, _ := l.Verify(context.Background()); len(r.Problems) < 3 {
			t.Fatalf("an unbalanced transaction: %v", r.Problems)
		}
		if err := spend(db, l, "acct", 10, ""); err == nil {
			t.Fatal("a transaction without an idempotency key was posted")
		}
	})
}

// The platform's balance is the sum of what families paid, though no row holds it.
func TestSystemAccountBalanceIsTheSumOfItsEntries(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		l := ledger.New(db)
		w := ledger.NewWallets(l, ledger.Sandbox{}, func() {})
		if _, err := topUp(t, w, "acct1", 1000, "tok_visa", "t1"); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := spend(db, l, "acct1", 10, fmt.Sprint("s", i)); err != nil {
				t.Fatal(err)
			}
		}
		if b, err := l.Balance(context.Background(), ledger.Ref{Kind: ledger.Platform}); err != nil || b != 30 {
			t.Errorf("platform balance: %d %v", b, err)
		}
		if b, _ := l.Balance(context.Background(), ledger.WalletOf("acct1")); b != 970 {
			t.Errorf("wallet balance: %d", b)
		}
		if r, err := l.Verify(context.Background()); err != nil || len(r.Problems) > 0 {
			t.Errorf("verify: %v %v", r.Problems, err)
		}
	})
}

// Many accounts' balances read at once are each what Balance reads: for stored
// balances (trust accounts, more of them than one query's chunk) and for summed
// ones (what a resident owes); an owner with no account is left out.
func TestBalancesOfManyAccounts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		l := ledger.New(db)
		var residents []string
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			for i := range 510 {
				r := fmt.Sprint("res", i)
				residents = append(residents, r)
				if _, _, err := l.Post(ctx, tx, ledger.Transaction{Kind: "test", IdempotencyKey: "dep" + r, Entries: []ledger.Entry{
					{Account: ledger.Ref{Kind: ledger.Cards}, Amount: -int64(100 + i)}, {Account: ledger.ResidentOf(r), Amount: int64(100 + i)}},
					Card: ledger.CardRef{Kind: ledger.CardCharge, ChargeID: "ch_" + r}}); err != nil {
					return err
				}
			}
			_, _, err := l.Post(ctx, tx, ledger.Transaction{Kind: "test", IdempotencyKey: "owed", Entries: []ledger.Entry{
				{Account: ledger.OwedBy("res7"), Amount: -250}, {Account: ledger.Losses, Amount: 250}}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Balances(ctx, ledger.Resident, append(residents, "nobody"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 510 || got["res0"] != 100 || got["res509"] != 609 {
			t.Errorf("%d trust balances; res0 %d, res509 %d", len(got), got["res0"], got["res509"])
		}
		if _, ok := got["nobody"]; ok {
			t.Error("an owner with no account has a balance")
		}
		owed, err := l.Balances(ctx, ledger.OwedBy("").Kind, []string{"res7", "res8"})
		if err != nil || len(owed) != 1 || owed["res7"] != -250 {
			t.Errorf("owed: %v %v", owed, err)
		}
	})
}

// The first posts to a wallet nobody has used race to open it: money in and money
// out at once, from a fresh account. None is lost or doubled, a refusal is only ever
// "insufficient funds", and the books balance.
func TestFirstPostsToANewAccountRace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		l := ledger.New(db)
		var mu sync.Mutex
		var in, out int64
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				amount := int64(100)
				if i%2 == 1 {
					amount = -100
				}
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					_, _, err := l.Post(ctx, tx, ledger.Transaction{Kind: "test", IdempotencyKey: fmt.Sprint("race-", i),
						Entries: []ledger.Entry{{Account: ledger.WalletOf("fresh"), Amount: amount}, {Account: ledger.Ref{Kind: ledger.Cards}, Amount: -amount}},
						Card:    ledger.CardRef{Kind: ledger.CardCharge, ChargeID: fmt.Sprint("ch_race_", i)}})
					return err
				})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && amount > 0:
					in += amount
				case err == nil:
					out -= amount
				case amount > 0 || !errors.Is(err, ledger.ErrInsufficientFunds):
					t.Errorf("post %d (%d): %v", i, amount, err)
				}
			})
		}
		wg.Wait()
		if in != 2000 {
			t.Errorf("money in: %d of 2000", in)
		}
		if balance, err := l.Balance(ctx, ledger.WalletOf("fresh")); err != nil || balance != in-out || balance < 0 {
			t.Errorf("balance %d (%v); in %d, out %d", balance, err, in, out)
		}
		if r, err := l.Verify(ctx); err != nil || len(r.Problems) > 0 {
			t.Errorf("verify: %v %v", r.Problems, err)
		}
	})
}
