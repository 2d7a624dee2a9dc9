package database

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Statements run through TxExec/TxQueryRow give the same results prepared or not,
// inside transactions that hold SQLite's only writer connection (no deadlock while
// the statement is prepared), and Close forgets them.
func TestPreparedStatementsInTransactions(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write().ExecContext(ctx, "CREATE TABLE t (n INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 200 || db.prepared("INSERT INTO t (n) VALUES ($1)") == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the statement was never prepared")
		}
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := db.TxExec(ctx, tx, "INSERT INTO t (n) VALUES ($1)", 1); err != nil {
				return err
			}
			var n int
			return db.TxQueryRow(ctx, tx, "SELECT COUNT(*) FROM t WHERE n = $1", 1).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n)
	if n < 200 {
		t.Errorf("%d rows", n)
	}
	if got := db.QueryRow(ctx, "SELECT COUNT(*) FROM t WHERE n = $1", 1).Scan(&n); got != nil || n < 200 {
		t.Errorf("a prepared read: %d %v", n, got)
	}
	db.Close()
	for _, m := range []*sync.Map{&db.writeStmts, &db.readStmts} {
		m.Range(func(k, _ any) bool {
			t.Errorf("a statement of a closed database is still cached: %q", k)
			return true
		})
	}
}
