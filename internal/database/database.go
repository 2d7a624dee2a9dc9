// Package database opens Kinlink's database, SQLite or PostgreSQL, and owns the
// schema migrations of both. Dialect differences live here and in the per-dialect
// migration files, so that stores elsewhere can write one query text for both engines.
package database

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/ncruces/go-sqlite3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect names a database engine.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open database. On SQLite all writes go through one connection, since
// SQLite has one writer at a time and a pool of writers would only queue on
// SQLITE_BUSY; reads use a pool of their own. On PostgreSQL both are the same pool.
type DB struct {
	Dialect Dialect
	write   *sql.DB
	read    *sql.DB
	// Statements prepared once on SQLite (see prepared): by query text, for the
	// writer (a *sql.Stmt, or preparing while it is made) and for the readers.
	writeStmts, readStmts sync.Map
}

// The SQLite drivers, both pure Go (no CGo). A setting "sqlite:PATH" uses
// DefaultSQLiteDriver; "sqlite+modernc:PATH" or "sqlite+ncruces:PATH" names one, so
// that bench/messaging can compare them in one run (docs/decisions.md).
const (
	Modernc = "modernc" // modernc.org/sqlite: SQLite translated from C to Go
	Ncruces = "ncruces" // github.com/ncruces/go-sqlite3: SQLite compiled to WebAssembly, then to Go

	DefaultSQLiteDriver = Modernc
)

// SQLiteSetting splits a SQLite database setting into its driver and file path; ok
// is false for any other setting.
func SQLiteSetting(setting string) (driver, path string, ok bool) {
	for prefix, driver := range map[string]string{"sqlite:": DefaultSQLiteDriver, "sqlite+" + Modernc + ":": Modernc, "sqlite+" + Ncruces + ":": Ncruces} {
		if path, ok := strings.CutPrefix(setting, prefix); ok {
			return driver, path, true
		}
	}
	return "", "", false
}

// Open connects to the database named by a Kinlink database setting:
// "sqlite:PATH" (or "sqlite+DRIVER:PATH") or a postgres:// URL. It checks that the
// database answers.
func Open(ctx context.Context, setting string) (*DB, error) {
	if driver, path, ok := SQLiteSetting(setting); ok {
		return openSQLite(ctx, driver, path)
	}
	return openPostgres(ctx, setting)
}

// sqliteOpen opens a pool of connections to dsn with a SQLite driver. The two
// drivers take the same pragmas and _txlock; times are stored as integer
// microseconds in TIMESTAMP columns and read back as time.Time, so stores pass
// time.Time on both engines and comparisons are numeric, each driver having its own
// option for that.
func sqliteOpen(driver, dsn string) (*sql.DB, error) {
	if driver == Ncruces {
		return openNcruces(dsn + "&_timefmt=unixepoch_micro")
	}
	return sql.Open("sqlite", dsn+"&_time_integer_format=unix_micro&_inttotime=1")
}

func openSQLite(ctx context.Context, driver, path string) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("database: cannot create the folder of %s: %w", path, unwrapPath(err))
		}
	}
	// _txlock=immediate takes the write lock at BEGIN, so two writers wait on
	// busy_timeout instead of failing mid-transaction on a lock upgrade. The busy
	// timeout comes first, as ncruces asks, so that it applies to the pragmas after it.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	write, err := sqliteOpen(driver, dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("database: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	if err := pingWritable(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("database: cannot use %s: %w", path, err)
	}
	read, err := sqliteOpen(driver, dsn+"&_pragma=query_only(1)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("database: open %s: %w", path, err)
	}
	readers := max(4, runtime.NumCPU())
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	return &DB{Dialect: SQLite, write: write, read: read}, nil
}

// pingWritable makes SQLite touch the file: a plain ping would succeed on a
// read-only folder and fail only at the first write. Several processes opening a
// new database at once (a server and an operator command) can meet SQLITE_BUSY while
// one of them switches it to WAL, where SQLite does not wait on busy_timeout; those
// are retried for a while.
func pingWritable(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// A name of its own, so that processes opening at once do not drop each other's.
	b := make([]byte, 6)
	rand.Read(b)
	probe := "kinlink_probe_" + hex.EncodeToString(b)
	for {
		_, err := db.ExecContext(ctx, "CREATE TABLE "+probe+" (x INTEGER); DROP TABLE "+probe)
		if err == nil || !busy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// busy reports SQLite's SQLITE_BUSY, as either driver words it.
func busy(err error) bool {
	return errors.Is(err, sqlite3.BUSY) || strings.Contains(err.Error(), "SQLITE_BUSY")
}

func openPostgres(ctx context.Context, setting string) (*DB, error) {
	where := describePostgres(setting)
	pool, err := sql.Open("pgx", setting)
	if err != nil {
		return nil, fmt.Errorf("database: bad PostgreSQL URL %s: %w", where, err)
	}
	pool.SetMaxOpenConns(20)
	pool.SetMaxIdleConns(10)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: cannot reach PostgreSQL at %s: %s", where, oneLine(err))
	}
	return &DB{Dialect: Postgres, write: pool, read: pool}, nil
}

// describePostgres names host, port and database without the password, for errors.
func describePostgres(setting string) string {
	u, err := url.Parse(setting)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Host + u.Path
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Write is the handle for statements that change data.
func (db *DB) Write() *sql.DB { return db.write }

// Read is the handle for queries. On SQLite it refuses writes.
func (db *DB) Read() *sql.DB { return db.read }

// Pools names the connection pools for their statistics: on SQLite "write" (the one
// writer, whose wait time shows how much requests queue for it) and "read"; on
// PostgreSQL the one pool, "main".
func (db *DB) Pools() map[string]*sql.DB {
	if db.write == db.read {
		return map[string]*sql.DB{"main": db.write}
	}
	return map[string]*sql.DB{"write": db.write, "read": db.read}
}

// InTx runs fn in one write transaction: committed when fn returns nil, rolled back
// otherwise. Every change that matters goes with its audit records and jobs in one call.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.Dialect == SQLite {
		// A request whose client has gone does not start its transaction; once
		// started, it finishes (see uninterrupted).
		if err := ctx.Err(); err != nil {
			return err
		}
		ctx = uninterrupted(ctx)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("database: begin: %w", err)
	}
	// A panic in fn (a bug, which the server's recovery answers with a 500) rolls
	// back too: an open transaction would keep its connection, on SQLite the only
	// writer, and every later write would wait for it for ever.
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("database: commit: %w", err)
	}
	if db.Dialect == SQLite {
		// database/sql has handed the only write connection to the next waiting
		// writer, which would wait on this thread until this request had written its
		// whole response; stepping aside lets the next transaction start now
		// (bench/messaging: about a tenth more sends at 4 concurrent).
		runtime.Gosched()
	}
	return nil
}

// Placeholders is the list of n numbered parameters from $first, for an IN (...)
// clause: Placeholders(2, 3) is "$2, $3, $4".
func Placeholders(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(first+i))
	}
	return b.String()
}

// SkipLocked is the row-locking clause for queue-style claims: PostgreSQL locks the
// claimed rows and skips those other workers hold; SQLite has one writer already.
func (db *DB) SkipLocked() string {
	if db.Dialect == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// ForUpdate is the clause that locks a row read inside a transaction until it
// commits, on PostgreSQL. SQLite's write transactions already hold the database lock.
func (db *DB) ForUpdate() string {
	if db.Dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// LockChain serialises writers of an append-only chain (such as the audit log)
// until tx ends, so that two transactions never chain to the same last row. On
// SQLite the write transaction already holds the only write lock.
func (db *DB) LockChain(ctx context.Context, tx *sql.Tx, key int64) error {
	if db.Dialect != Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", key)
	return err
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return err
	}
	return db.write.PingContext(ctx)
}

// Close closes every connection and the statements prepared on them.
func (db *DB) Close() error {
	for _, m := range []*sync.Map{&db.writeStmts, &db.readStmts} {
		m.Range(func(k, v any) bool {
			if st, ok := v.(*sql.Stmt); ok {
				st.Close()
			}
			m.Delete(k)
			return true
		})
	}
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	return err
}

// AnyTime scans a time that SQL computed (MAX, a subquery): SQLite hands those back
// as the stored unix microseconds, since only declared columns are converted, and
// PostgreSQL as a time. NULL leaves the zero time. Text (a time not written by
// Kinlink) is read as RFC 3339 or SQLite's "YYYY-MM-DD HH:MM:SS", as modernc reads
// it in TIMESTAMP columns; ncruces hands it over as it is.
type AnyTime struct{ Time time.Time }

// Scan implements sql.Scanner.
func (t *AnyTime) Scan(v any) error {
	if b, ok := v.([]byte); ok {
		v = string(b)
	}
	switch v := v.(type) {
	case nil:
		t.Time = time.Time{}
	case time.Time:
		t.Time = v.UTC()
	case int64:
		t.Time = time.UnixMicro(v).UTC()
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
			if at, err := time.Parse(layout, v); err == nil {
				t.Time = at.UTC()
				return nil
			}
		}
		return fmt.Errorf("database: cannot read %q as a time", v)
	default:
		return fmt.Errorf("database: cannot scan %T as a time", v)
	}
	return nil
}

// Statements prepared once, for hot paths. modernc's SQLite parses every statement
// afresh, which a profile of sending a message put at a third of its time; pgx
// caches prepared statements per connection by itself, so on PostgreSQL these go
// straight to the connection. Only fixed query texts belong here: the cache keeps
// one statement per text for the life of the database.

type preparing struct{}

// prepared returns the writer's cached statement for query, or nil the first time.
// The statement cannot be made right here: the caller's transaction holds SQLite's
// one writer connection, which PrepareContext would wait for. It is made in the
// background as soon as the connection is free, and the first few calls run the
// query unprepared.
func (db *DB) prepared(query string) *sql.Stmt {
	if v, loaded := db.writeStmts.LoadOrStore(query, preparing{}); loaded {
		st, _ := v.(*sql.Stmt)
		return st
	}
	go func() {
		st, err := db.write.PrepareContext(context.Background(), query)
		if err != nil {
			db.writeStmts.Delete(query) // try again another time (or the database closed)
			return
		}
		db.writeStmts.Store(query, st)
	}()
	return nil
}

// readStmt returns the readers' statement for query, prepared the first time.
func (db *DB) readStmt(ctx context.Context, query string) *sql.Stmt {
	if v, ok := db.readStmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	st, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil // the query runs unprepared and reports the error itself
	}
	if v, loaded := db.readStmts.LoadOrStore(query, st); loaded {
		st.Close()
		return v.(*sql.Stmt)
	}
	return st
}

// QueryRow runs a one-row query on the read handle, prepared once on SQLite.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if db.Dialect == SQLite {
		ctx = uninterrupted(ctx)
		if st := db.readStmt(ctx, query); st != nil {
			return st.QueryRowContext(ctx, args...)
		}
	}
	return db.read.QueryRowContext(ctx, query, args...)
}

// Query runs a query on the read handle, prepared once on SQLite.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if db.Dialect == SQLite {
		ctx = uninterrupted(ctx)
		if st := db.readStmt(ctx, query); st != nil {
			return st.QueryContext(ctx, args...)
		}
	}
	return db.read.QueryContext(ctx, query, args...)
}

// WriteQueryRow runs a one-row statement (an UPDATE … RETURNING) on the writer
// outside a transaction, prepared once on SQLite.
func (db *DB) WriteQueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if db.Dialect == SQLite {
		ctx = uninterrupted(ctx)
		if st := db.prepared(query); st != nil {
			return st.QueryRowContext(ctx, args...)
		}
	}
	return db.write.QueryRowContext(ctx, query, args...)
}

// uninterrupted keeps ctx's values but not its cancellation, for SQLite statements
// that take microseconds: the driver watches a cancellable context with a goroutine
// per statement, and on a small machine waking those cost more than the statements
// (bench/messaging: the scheduler's median wait fell from 57 to 4 µs, and sends per
// second rose by about a quarter). A request that ends early lets them finish, and
// a write transaction then commits or rolls back whole, as it would anyway. A
// context with a deadline (a job's time limit) is kept as it is: its limit counts.
func uninterrupted(ctx context.Context) context.Context {
	if _, limited := ctx.Deadline(); limited {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// TxExec runs a statement in tx, prepared once on SQLite.
func (db *DB) TxExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if db.Dialect != SQLite {
		return tx.ExecContext(ctx, query, args...)
	}
	ctx = uninterrupted(ctx)
	st := db.prepared(query)
	if st == nil {
		return tx.ExecContext(ctx, query, args...)
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// TxQueryRow runs a one-row query in tx, prepared once on SQLite.
func (db *DB) TxQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if db.Dialect != SQLite {
		return tx.QueryRowContext(ctx, query, args...)
	}
	ctx = uninterrupted(ctx)
	st := db.prepared(query)
	if st == nil {
		return tx.QueryRowContext(ctx, query, args...)
	}
	return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}
