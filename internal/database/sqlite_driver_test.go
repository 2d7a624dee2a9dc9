package database

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// What the stores ask of a SQLite driver, on each of the two: $N parameters by
// number (out of order and repeated, inside and around quotes and comments),
// RETURNING, times as integer microseconds read back as time.Time, booleans,
// foreign keys, WAL, the read handle refusing writes, and the busy error of a second
// writer.
func TestSQLiteDrivers(t *testing.T) {
	for _, driver := range []string{Modernc, Ncruces} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "d.db")
			db, err := Open(ctx, "sqlite+"+driver+":"+path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			w := db.Write()
			if _, err := w.ExecContext(ctx, `CREATE TABLE p (id TEXT PRIMARY KEY);
				CREATE TABLE c (id TEXT PRIMARY KEY, p TEXT NOT NULL REFERENCES p (id), n INTEGER NOT NULL, s TEXT NOT NULL, at TIMESTAMP, ok BOOLEAN NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			if _, err := w.ExecContext(ctx, "INSERT INTO p (id) VALUES ($1)", "p1"); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 28, 9, 30, 0, 123456000, time.FixedZone("EST", -5*3600))
			var id string
			var n int
			// $3 first, $1 twice, a '$2' that is no parameter, and a comment.
			err = w.QueryRowContext(ctx, `INSERT INTO c (n, id, p, s, at, ok) -- $9 is no parameter
				VALUES ($3, $1 || '-$2', $2, $1, $4, $5) RETURNING id, n`, "x", "p1", 7, at, true).Scan(&id, &n)
			if err != nil {
				t.Fatal(err)
			}
			if id != "x-$2" || n != 7 {
				t.Errorf("RETURNING gave %q, %d; want x-$2, 7", id, n)
			}
			var s string
			var got time.Time
			var ok bool
			var raw any
			if err := db.Read().QueryRowContext(ctx, "SELECT s, at, ok, typeof(at), at FROM c WHERE id = $1", id).Scan(&s, &got, &ok, &raw, &raw); err != nil {
				t.Fatal(err)
			}
			if s != "x" {
				t.Errorf("s = %q, want x", s)
			}
			if !got.Equal(at) || got.Location() != time.UTC || !ok {
				t.Errorf("read back %v (%v), %v; want %v in UTC, true", got, got.Location(), ok, at)
			}
			var typ string
			var micros int64
			if err := db.Read().QueryRowContext(ctx, "SELECT typeof(at), at + 0 FROM c").Scan(&typ, &micros); err != nil {
				t.Fatal(err)
			}
			if typ != "integer" || micros != at.UnixMicro() {
				t.Errorf("stored %s %d, want integer %d", typ, micros, at.UnixMicro())
			}
			if _, err := w.ExecContext(ctx, "INSERT INTO c (id, p, n, s, ok) VALUES ($1, $2, 0, '', false)", "y", "nobody"); err == nil {
				t.Error("a row pointing at no parent was stored: foreign keys are off")
			}
			var mode string
			if err := db.Read().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("journal mode %q, %v; want wal", mode, err)
			}
			if _, err := db.Read().ExecContext(ctx, "DELETE FROM c"); err == nil {
				t.Error("the read handle deleted rows")
			}
			// A second writer on the same file, without waiting, meets SQLITE_BUSY.
			other, err := sqliteOpen(driver, "file:"+path+"?_pragma=busy_timeout(0)&_txlock=immediate")
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			tx, err := w.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := other.ExecContext(ctx, "INSERT INTO p (id) VALUES ('p2')"); err == nil || !busy(err) {
				t.Errorf("a second writer got %v, want SQLITE_BUSY", err)
			}
		})
	}
}

func TestSQLiteNumbered(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                             "SELECT 1",
		"a = $12 AND b = $1":                   "a = ?12 AND b = ?1",
		"'$1' || $2 || \"$3\" || `$4` || [$5]": "'$1' || ?2 || \"$3\" || `$4` || [$5]",
		"'it''s $1' || $2":                     "'it''s $1' || ?2",
		"-- $1\n$2 /* $3 */ $4":                "-- $1\n?2 /* $3 */ ?4",
		"x$1 + $$ + $a":                        "x$1 + $$ + $a",
		"'unterminated $1":                     "'unterminated $1",
	} {
		if got := sqliteNumbered(in); got != want {
			t.Errorf("sqliteNumbered(%q) = %q, want %q", in, got, want)
		}
	}
}
