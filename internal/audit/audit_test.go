package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
)

func record(t *testing.T, db *database.DB, n int) {
	t.Helper()
	for i := range n {
		err := db.InTx(context.Background(), func(tx *sql.Tx) error {
			return audit.Record(context.Background(), db, tx, audit.Entry{Actor: "staff:a1", Action: "roster.import",
				AgencyID: "ag1", Detail: fmt.Sprintf("import %d", i)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// tamper runs statements with the append-only guard lifted, as an attacker with
// database access could.
func tamper(t *testing.T, db *database.DB, stmts ...string) {
	t.Helper()
	if db.Dialect == database.Postgres {
		stmts = append([]string{"ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"}, stmts...)
	} else {
		stmts = append([]string{"DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"}, stmts...)
	}
	for _, s := range stmts {
		if _, err := db.Write().Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestTheLogIsAppendOnly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		record(t, db, 2)
		if _, err := db.Write().Exec("UPDATE audit_log SET detail = 'nothing happened'"); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("UPDATE: %v", err)
		}
		if _, err := db.Write().Exec("DELETE FROM audit_log"); err == nil {
			t.Errorf("DELETE worked")
		}
	})
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := map[string]func(db *database.DB) []string{
		"changed": func(*database.DB) []string {
			return []string{"UPDATE audit_log SET detail = 'nothing happened' WHERE id = 3"}
		},
		"removed":        func(*database.DB) []string { return []string{"DELETE FROM audit_log WHERE id = 3"} },
		"newest removed": func(*database.DB) []string { return []string{"DELETE FROM audit_log WHERE id = 5"} },
		"inserted": func(db *database.DB) []string {
			override := ""
			if db.Dialect == database.Postgres {
				override = " OVERRIDING SYSTEM VALUE"
			}
			return []string{`INSERT INTO audit_log (id, at, actor, action, prev_hash, hash)` + override +
				` VALUES (0, '2026-01-01T00:00:00Z', 'staff:x', 'portal.login', '0000000000000000000000000000000000000000000000000000000000000000', 'forged')`}
		},
	}
	for name, stmts := range cases {
		t.Run(name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *database.DB) {
				record(t, db, 5)
				if n, err := audit.Verify(context.Background(), db); err != nil || n != 5 {
					t.Fatalf("untouched log: %d rows, %v", n, err)
				}
				tamper(t, db, stmts(db)...)
				_, err := audit.Verify(context.Background(), db)
				var broken *audit.BrokenChain
				if !errors.As(err, &broken) {
					t.Fatalf("verify after a row was %s: %v", name, err)
				}
			})
		})
	}
}

// Parallel writers never fork the chain.
func TestParallelRecordsKeepOneChain(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); record(t, db, 10) }()
		}
		wg.Wait()
		if n, err := audit.Verify(context.Background(), db); err != nil || n != 40 {
			t.Fatalf("%d rows, %v", n, err)
		}
		rows, err := audit.Search(context.Background(), db, audit.Filter{AgencyID: "ag1", Action: "roster.", Limit: 5})
		if err != nil || len(rows) != 5 {
			t.Fatalf("search: %d rows, %v", len(rows), err)
		}
		if other, _ := audit.Search(context.Background(), db, audit.Filter{AgencyID: "ag2"}); len(other) != 0 {
			t.Fatalf("another agency sees %d rows", len(other))
		}
	})
}
