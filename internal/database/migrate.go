package database

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFiles embed.FS

// Migration is one schema change: migrations/<dialect>/NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// ErrSchemaTooNew means the database was migrated by a newer Kinlink.
var ErrSchemaTooNew = errors.New("database schema is newer than this kinlink")

// ErrSchemaOther means the database has a migration of this number that is not
// this Kinlink's: it was made by another build (a development branch), and going
// on would skip this build's migration of that number without a word.
var ErrSchemaOther = errors.New("database schema was made by another build of kinlink")

// Migrations lists the migrations of a dialect in version order.
func Migrations(d Dialect) ([]Migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".sql")
		if !ok {
			continue
		}
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("database: migration file %s: want NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: rest, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("database: migrations of %s are not numbered 1, 2, 3...: found %04d at position %d", d, m.Version, i+1)
		}
	}
	return out, nil
}

// advisoryLockKey serialises migrations of every Kinlink instance on one PostgreSQL
// database: the second instance to start waits, then finds nothing left to do.
const advisoryLockKey = 0x4b696e6c696e6b // "Kinlink"

// versionTable creates the table of applied migrations; it is the one table that
// exists before any migration, so its dialects differ here.
func (db *DB) versionTable() string {
	ts := "TIMESTAMP"
	if db.Dialect == Postgres {
		ts = "TIMESTAMPTZ"
	}
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at ` + ts + ` NOT NULL
)`
}

// Migrate applies every migration the database lacks, each in its own transaction
// together with its row in schema_migrations. It refuses a database that records a
// version this binary does not know. It returns the versions it applied.
func (db *DB) Migrate(ctx context.Context) ([]Migration, error) {
	return db.MigrateTo(ctx, 0)
}

// MigrateTo is Migrate stopping after version last (0 for the latest), so that a
// test can fill a database as an older Kinlink left it and then upgrade it.
func (db *DB) MigrateTo(ctx context.Context, last int) ([]Migration, error) {
	all, err := Migrations(db.Dialect)
	if err != nil {
		return nil, err
	}
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("database: migrate: %w", err)
	}
	defer conn.Close()
	if db.Dialect == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", advisoryLockKey); err != nil {
			return nil, fmt.Errorf("database: migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", advisoryLockKey)
	}
	if _, err := conn.ExecContext(ctx, db.versionTable()); err != nil {
		return nil, fmt.Errorf("database: migrate: %w", err)
	}
	if db.Dialect == SQLite {
		// SQLite changes some tables only by rebuilding them, which must not cascade
		// to or be refused by the rows that point at them; applyOne checks every
		// foreign key before it commits instead. The pragma has no effect inside a
		// transaction, so it is set around them.
		if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
			return nil, fmt.Errorf("database: migrate: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA foreign_keys = ON")
	}
	var applied []Migration
	for _, m := range all {
		if last > 0 && m.Version > last {
			break
		}
		done, err := applyOne(ctx, conn, db.Dialect, m, len(all))
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m)
		}
	}
	return applied, nil
}

// applyOne applies m unless the database already has it. The version is read inside
// the transaction, so a concurrent migrator (another SQLite process) cannot apply it twice.
func applyOne(ctx context.Context, conn *sql.Conn, d Dialect, m Migration, latest int) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("database: migrate: begin: %w", err)
	}
	defer tx.Rollback()
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return false, fmt.Errorf("database: migrate: read version: %w", err)
	}
	if current > latest {
		return false, fmt.Errorf("%w: the database is at version %d, this kinlink knows up to %d; run a newer kinlink", ErrSchemaTooNew, current, latest)
	}
	if current >= m.Version {
		var name string
		err := tx.QueryRowContext(ctx, "SELECT name FROM schema_migrations WHERE version = $1", m.Version).Scan(&name)
		if err == nil && name != m.Name {
			return false, fmt.Errorf("%w: its migration %04d is %q, this kinlink's is %q; restore a backup made by this kinlink, or start with an empty database",
				ErrSchemaOther, m.Version, name, m.Name)
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("database: migrate: read migration %04d: %w", m.Version, err)
		}
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("database: migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if d == SQLite {
		var table string
		err := tx.QueryRowContext(ctx, "SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1").Scan(&table)
		if err == nil {
			return false, fmt.Errorf("database: migration %04d_%s: leaves rows of %s pointing at nothing", m.Version, m.Name, table)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("database: migration %04d_%s: check foreign keys: %w", m.Version, m.Name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
		m.Version, m.Name, time.Now().UTC()); err != nil {
		return false, fmt.Errorf("database: migration %04d_%s: record: %w", m.Version, m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("database: migration %04d_%s: commit: %w", m.Version, m.Name, err)
	}
	return true, nil
}

// SchemaVersion returns the version the database is at and the latest this binary knows.
func (db *DB) SchemaVersion(ctx context.Context) (current, latest int, err error) {
	all, err := Migrations(db.Dialect)
	if err != nil {
		return 0, 0, err
	}
	err = db.read.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current)
	if err != nil {
		return 0, len(all), fmt.Errorf("database: schema version: %w", err)
	}
	return current, len(all), nil
}
