package database_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/ledger"
)

func TestMigrationsMatchAcrossDialects(t *testing.T) {
	lite, err := database.Migrations(database.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := database.Migrations(database.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Name != pg[i].Name {
			t.Errorf("migration %d is %q on sqlite but %q on postgres", i+1, lite[i].Name, pg[i].Name)
		}
	}
}

func TestMigrateIsIdempotentAndCurrent(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.Open(t, e.Setting) // migrates once
			again, err := db.Migrate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(again) != 0 {
				t.Fatalf("second migrate applied %d migrations, want none", len(again))
			}
			cur, latest, err := db.SchemaVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cur != latest || cur == 0 {
				t.Fatalf("schema at %d, latest %d", cur, latest)
			}
		})
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		if _, err := db.Write().ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', $1)", time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		_, err := db.Migrate(ctx)
		if !errors.Is(err, database.ErrSchemaTooNew) {
			t.Fatalf("migrate on a newer schema: %v, want ErrSchemaTooNew", err)
		}
		if !strings.Contains(err.Error(), "9999") {
			t.Errorf("error %q does not name the database's version", err)
		}
	})
}

// A database made by another build, whose migration of some number is not this
// build's, is refused by name rather than left without this build's migration.
func TestRefusesAnotherBuildsSchema(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		all, err := database.Migrations(db.Dialect)
		if err != nil {
			t.Fatal(err)
		}
		last := all[len(all)-1]
		if _, err := db.Write().ExecContext(ctx, "UPDATE schema_migrations SET name = 'held_for_a_branch' WHERE version = $1", last.Version); err != nil {
			t.Fatal(err)
		}
		_, err = db.Migrate(ctx)
		if !errors.Is(err, database.ErrSchemaOther) || !strings.Contains(err.Error(), "held_for_a_branch") || !strings.Contains(err.Error(), last.Name) {
			t.Fatalf("migrate on another build's schema: %v, want ErrSchemaOther naming both", err)
		}
	})
}

// Several instances starting together on one database must apply each migration once.
func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			var wg sync.WaitGroup
			applied := make([]int, 4)
			errs := make([]error, 4)
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					db, err := database.Open(ctx, e.Setting)
					if err != nil {
						errs[i] = err
						return
					}
					defer db.Close()
					ms, err := db.Migrate(ctx)
					applied[i], errs[i] = len(ms), err
				}()
			}
			wg.Wait()
			total := 0
			for i := range 4 {
				if errs[i] != nil {
					t.Fatalf("instance %d: %v", i, errs[i])
				}
				total += applied[i]
			}
			all, _ := database.Migrations(database.SQLite)
			if total != len(all) {
				t.Fatalf("instances applied %d migrations in all, want %d (each once)", total, len(all))
			}
		})
	}
}

func TestTimesRoundTripInUTC(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		want := time.Date(2026, 3, 8, 7, 30, 15, 123456000, time.FixedZone("EST", -5*3600))
		if _, err := db.Write().ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (1000, 'x', $1)", want); err != nil {
			t.Fatal(err)
		}
		var got time.Time
		if err := db.Read().QueryRowContext(ctx, "SELECT applied_at FROM schema_migrations WHERE version = 1000").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Fatalf("read %v, wrote %v", got, want)
		}
	})
}

func TestSQLiteReadHandleRefusesWrites(t *testing.T) {
	db := dbtest.Open(t, "sqlite:"+filepath.Join(t.TempDir(), "k.db"))
	_, err := db.Read().Exec("CREATE TABLE nope (x INTEGER)")
	if err == nil {
		t.Fatal("the read pool accepted a write")
	}
}

func TestOpenErrorsAreOneClearLine(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"sqlite:" + filepath.Join(blocker, "sub", "k.db"): "cannot create the folder",
		"postgres://nobody@127.0.0.1:1/nothing":           "cannot reach PostgreSQL at 127.0.0.1:1/nothing",
	}
	for setting, want := range cases {
		_, err := database.Open(context.Background(), setting)
		if err == nil {
			t.Fatalf("%s opened", setting)
		}
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q, want one line containing %q", setting, err, want)
		}
	}
}

// TestUpgradeKeepsMessages fills a database as version 11 left it and upgrades it:
// the SQLite rebuild of the messages table keeps every row and the photos that point
// at them, and a resident's reply becomes "sent" (not yet opened by the family).
func TestUpgradeKeepsMessagesAndMoney(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.OpenAt(t, e.Setting, 11)
			now := time.Now().UTC()
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{"INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question, security_answer_hash, status, created_at, password_changed_at) VALUES ('acct', 'a@example.org', 'Ana', 'en', 'x', 'q', 'x', 'active', $1, $1)", []any{now}},
				{"INSERT INTO agencies (id, code, name, state, created_at) VALUES ('ag', 'AG', 'Agency', 'FL', $1)", []any{now}},
				{"INSERT INTO facilities (id, agency_id, code, name, kind, timezone, population, created_at) VALUES ('fac', 'ag', 'F', 'Facility', 'prison', 'UTC', 10, $1)", []any{now}},
				{"INSERT INTO residents (id, agency_id, resident_number, first_name, last_name, facility_id, status, created_at, updated_at) VALUES ('res', 'ag', 'A1', 'José', 'García', 'fac', 'active', $1, $1)", []any{now}},
				{"INSERT INTO contacts (id, account_id, resident_id, status, created_at) VALUES ('con', 'acct', 'res', 'approved', $1)", []any{now}},
				{`INSERT INTO messages (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, body, state, cost_stamps, cost_cents, idempotency_key, created_at, request_hash)
					VALUES ('m1', 'con', 'acct', 'res', 'ag', 'fac', 'to_resident', 'Hola', 'read', 2, 10, 'k1', $1, 'h1'),
					('m2', 'con', 'acct', 'res', 'ag', 'fac', 'from_resident', 'Gracias', 'delivered', 0, 0, 'k2', $1, '')`, []any{now}},
				{"INSERT INTO message_photos (id, message_id, position, width, height, bytes) VALUES ('p1', 'm1', 0, 10, 10, 100)", nil},
				// A top-up of $5, then the message's 10 cents, as the ledger wrote them
				// before 0015 (entries numbered by id).
				{`INSERT INTO ledger_accounts (id, kind, owner_id, currency, balance, allow_negative, created_at)
					VALUES ('w', 'wallet', 'acct', 'USD', 490, FALSE, $1), ('c', 'processor', '', 'USD', -500, TRUE, $1), ('p', 'platform', '', 'USD', 10, FALSE, $1)`, []any{now}},
				{`INSERT INTO ledger_transactions (id, kind, idempotency_key, description, reference, created_at)
					VALUES ('t1', 'topup', 'topup:1', 'Top-up', '', $1), ('t2', 'message', 'message:k1', 'Message', 'm1', $2)`, []any{now, now.Add(time.Second)}},
				{`INSERT INTO ledger_entries (transaction_id, account_id, amount, created_at)
					VALUES ('t1', 'c', -500, $1), ('t1', 'w', 500, $1), ('t2', 'w', -10, $2), ('t2', 'p', 10, $2)`, []any{now, now.Add(time.Second)}},
			} {
				if _, err := db.Write().ExecContext(ctx, q.sql, q.args...); err != nil {
					t.Fatalf("%s: %v", q.sql, err)
				}
			}
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			rows, err := db.Read().QueryContext(ctx, "SELECT id, state || ' ' || body || ' ' || request_hash FROM messages ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id, v string
				rows.Scan(&id, &v)
				got[id] = v
			}
			rows.Close()
			if got["m1"] != "read Hola h1" || got["m2"] != "sent Gracias " {
				t.Errorf("messages after the upgrade: %q", got)
			}
			var photoOf string
			if err := db.Read().QueryRowContext(ctx, "SELECT m.id FROM message_photos p JOIN messages m ON m.id = p.message_id").Scan(&photoOf); err != nil || photoOf != "m1" {
				t.Errorf("the photo lost its message: %q %v", photoOf, err)
			}
			// The money is all there: every transaction balances, the wallet's history
			// reads newest first, and the next post numbers its entries.
			l := ledger.New(db)
			if r, err := l.Verify(ctx); err != nil || r.Transactions != 2 || r.Stored+r.System != 3 || len(r.Problems) > 0 {
				t.Errorf("ledger after the upgrade: %+v, %v", r, err)
			}
			history, err := l.History(ctx, ledger.WalletOf("acct"), 10)
			if err != nil || len(history) != 2 || history[0].Amount != -10 || history[0].Reference != "m1" || history[1].Amount != 500 {
				t.Errorf("wallet history after the upgrade: %+v %v", history, err)
			}
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				_, _, err := l.Post(ctx, tx, ledger.Transaction{Kind: "message", IdempotencyKey: "message:k3", Reference: "m3",
					Entries: []ledger.Entry{{Account: ledger.WalletOf("acct"), Amount: -10}, {Account: ledger.Ref{Kind: ledger.Platform}, Amount: 10}}})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if balance, err := l.Balance(ctx, ledger.WalletOf("acct")); err != nil || balance != 480 {
				t.Errorf("wallet after a post on the upgraded ledger: %d %v", balance, err)
			}
			// Foreign keys are enforced again afterwards.
			if _, err := db.Write().ExecContext(ctx, "INSERT INTO ledger_entries (transaction_id, position, account_id, amount, created_at) VALUES ('nothing', 0, 'w', 1, $1)", now); err == nil {
				t.Error("an entry of no transaction was stored after migrating")
			}
			if _, err := db.Write().ExecContext(ctx, "INSERT INTO message_photos (id, message_id, position, width, height, bytes) VALUES ('p2', 'nothing', 0, 1, 1, 1)"); err == nil {
				t.Error("a photo of no message was stored after migrating")
			}
		})
	}
}

// A panic inside a write transaction (a bug in one request, which the server's
// recovery turns into a 500) must not keep the transaction open: on SQLite it holds
// the only write connection, and every later write would wait for ever.
func TestPanicInTransactionReleasesTheWriter(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic did not reach the caller")
				}
			}()
			db.InTx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (2000, 'half done', $1)", time.Now()); err != nil {
					t.Fatal(err)
				}
				panic("a bug")
			})
		}()
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := db.InTx(wait, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(wait, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (2001, 'next', $1)", time.Now())
			return err
		})
		if err != nil {
			t.Fatalf("the next write transaction: %v", err)
		}
		var n int
		if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = 2000").Scan(&n); err != nil || n != 0 {
			t.Fatalf("the panicking transaction's row: count %d, %v; want it rolled back", n, err)
		}
	})
}

// upgradeFamily is what the upgrade tests start from: a family account, an agency,
// its facility and a resident (each statement takes the time as $1).
func upgradeFamily() []string {
	return []string{
		"INSERT INTO accounts (id, email, full_name, locale, password_hash, security_question, security_answer_hash, status, created_at, password_changed_at) VALUES ('acct', 'a@example.org', 'Ana', 'en', 'x', 'q', 'x', 'active', $1, $1)",
		"INSERT INTO agencies (id, code, name, state, created_at) VALUES ('ag', 'AG', 'Agency', 'FL', $1)",
		"INSERT INTO facilities (id, agency_id, code, name, kind, timezone, population, created_at) VALUES ('fac', 'ag', 'F', 'Facility', 'prison', 'UTC', 10, $1)",
		"INSERT INTO residents (id, agency_id, resident_number, first_name, last_name, facility_id, status, created_at, updated_at) VALUES ('res', 'ag', 'A1', 'José', 'García', 'fac', 'active', $1, $1)",
	}
}

// TestUpgradeNamesEveryCardMovement fills a database as version 36 left it with a
// transaction of each kind that moves money on the processor's account, and
// upgrades it: each then says what it mirrors at the processor (0037), which the
// reconciliation with the processor matches on.
func TestUpgradeNamesEveryCardMovement(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.OpenAt(t, e.Setting, 36)
			now := time.Now().UTC()
			for _, q := range append(upgradeFamily(),
				`INSERT INTO deposits (id, confirmation, agency_id, facility_id, resident_id, resident_number, resident_name, facility_code, account_id, amount_cents, fee_cents,
					state, sender_name, sender_address, email, locale, processor, charge_id, charged, refund, refund_id, idempotency_key, created_at)
					VALUES ('dep', 'KL-AAAA-BBBB', 'ag', 'fac', 'res', 'A1', 'José García', 'F', 'acct', 2000, 0, 'reversed', 'Ana', 'Street 1', 'a@example.org', 'en', 'stripe',
					'pi_dep', TRUE, 'done', 're_dep_last', 'k', $1)`,
				"INSERT INTO wallet_refunds (id, account_id, idempotency_key, amount_cents, state, created_at) VALUES ('wr', 'acct', 'wk', 300, 'refunded', $1)",
				"INSERT INTO wallet_refund_parts (refund_id, position, charge_id, amount_cents, processor_refund_id, refunded_at) VALUES ('wr', 1, 'pi_top', 300, 're_wallet', $1)",
				`INSERT INTO ledger_transactions (id, kind, idempotency_key, description, reference, created_at) VALUES
					('t1', 'topup', 'topup:acct:1', '', 'pi_top', $1), ('t2', 'topup.chargeback', 'topup-chargeback:pi_top', '', 'pi_top', $1),
					('t3', 'topup.dispute_won', 'topup-dispute-won:pi_top', '', 'pi_top', $1), ('t4', 'card_refund', 'wallet_refund:wr:1', '', 're_wallet', $1),
					('t5', 'deposit.charge', 'deposit:dep:charge', '', 'dep', $1), ('t6', 'deposit.refund', 'deposit:dep:refund', '', 'dep', $1),
					('t7', 'deposit.chargeback', 'deposit:dep:chargeback', '', 'dep', $1), ('t8', 'deposit.dispute_won', 'deposit:dep:dispute-won', '', 'dep', $1),
					('t9', 'message', 'message:1', '', 'm1', $1)`,
			) {
				if _, err := db.Write().ExecContext(ctx, q, now); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"t1": "charge pi_top pi_top", "t2": "chargeback  pi_top", "t3": "chargeback_reversed  pi_top", "t4": "refund re_wallet pi_top",
				"t5": "charge pi_dep pi_dep", "t6": "refund  pi_dep", "t7": "chargeback  pi_dep", "t8": "chargeback_reversed  pi_dep", "t9": "  ",
			}
			rows, err := db.Read().QueryContext(ctx, "SELECT id, card_kind, card_object, card_charge FROM ledger_transactions")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var id, kind, object, charge string
				if err := rows.Scan(&id, &kind, &object, &charge); err != nil {
					t.Fatal(err)
				}
				if got := kind + " " + object + " " + charge; got != want[id] {
					t.Errorf("%s after the upgrade: %q, want %q", id, got, want[id])
				}
				delete(want, id)
			}
			if len(want) > 0 {
				t.Errorf("transactions lost: %v", want)
			}
		})
	}
}

// TestUpgradeFillsFeedRowsFromTheirDeposits fills a database as version 37 left it
// with a deposit's feed row and a resident's spending row, and upgrades it: the
// deposit's row then carries its confirmation, whole amount and sender (0038), so
// the feed is read without its deposits; the spending row carries none; no row is
// lost, and the rows keep their order.
func TestUpgradeFillsFeedRowsFromTheirDeposits(t *testing.T) {
	for _, e := range dbtest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			db := dbtest.OpenAt(t, e.Setting, 37)
			now := time.Now().UTC()
			for _, q := range append(upgradeFamily(),
				`INSERT INTO deposits (id, confirmation, agency_id, facility_id, resident_id, resident_number, resident_name, facility_code, account_id, amount_cents, fee_cents,
					state, sender_name, sender_address, email, locale, processor, charge_id, charged, idempotency_key, created_at)
					VALUES ('dep', 'KL-AAAA-BBBB', 'ag', 'fac', 'res', 'A1', 'José García', 'F', 'acct', 2000, 195, 'posted', 'Ana López', '1 Main St, Tampa, FL', 'a@example.org', 'en', 'sandbox',
					'ch_dep', TRUE, 'k', $1)`,
				`INSERT INTO deposit_feed (agency_id, seq, kind, deposit_id, resident_id, resident_number, resident_name, facility_code, amount_cents, fee_cents, memo, ledger_key, at)
					VALUES ('ag', 1, 'posted', 'dep', 'res', 'A1', 'José García', 'F', 1500, 195, 'repaid $5.00', 'deposit:dep:post', $1),
					('ag', 2, 'spent', '', 'res', 'A1', 'José García', 'F', -300, 0, 'stamps', '', $1)`,
			) {
				if _, err := db.Write().ExecContext(ctx, q, now); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			rows, err := db.Read().QueryContext(ctx, `SELECT seq, kind, amount_cents, memo, confirmation, deposit_cents, sender_name, sender_address
				FROM deposit_feed WHERE agency_id = 'ag' ORDER BY seq`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var seq, amount, deposit int64
				var kind, memo, conf, sender, address string
				if err := rows.Scan(&seq, &kind, &amount, &memo, &conf, &deposit, &sender, &address); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%d %s %d %s|%s %d %s|%s", seq, kind, amount, memo, conf, deposit, sender, address))
			}
			want := []string{"1 posted 1500 repaid $5.00|KL-AAAA-BBBB 2000 Ana López|1 Main St, Tampa, FL", "2 spent -300 stamps| 0 |"}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("the feed after the upgrade:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
