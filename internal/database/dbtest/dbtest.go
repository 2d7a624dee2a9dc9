// Package dbtest gives tests a fresh, migrated database on every engine available:
// always SQLite in a temporary folder, and PostgreSQL too when KINLINK_TEST_POSTGRES_URL
// is set, each test in a schema of its own that is dropped afterwards.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/kinlink/kinlink/internal/database"
)

// PostgresEnv names the variable that turns on the PostgreSQL runs.
const PostgresEnv = "KINLINK_TEST_POSTGRES_URL"

// Engine is one database a test runs on.
type Engine struct {
	Name    string // "sqlite" or "postgres"
	Setting string // a KINLINK_DATABASE value that opens it
}

// Engines creates a fresh empty database per engine for t and returns how to open
// each. The PostgreSQL schema is dropped when t ends.
func Engines(t testing.TB) []Engine {
	t.Helper()
	engines := []Engine{{Name: "sqlite", Setting: "sqlite:" + filepath.Join(t.TempDir(), "kinlink.db")}}
	if base := os.Getenv(PostgresEnv); base != "" {
		engines = append(engines, Engine{Name: "postgres", Setting: freshSchema(t, base)})
	}
	return engines
}

// Each runs fn as a subtest on every engine with a fresh, migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	for _, e := range Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			fn(t, Open(t, e.Setting))
		})
	}
}

// Open opens and migrates the database of a setting, closing it when t ends.
func Open(t testing.TB, setting string) *database.DB {
	t.Helper()
	return OpenAt(t, setting, 0)
}

// OpenAt is Open migrating up to version last only (0 for the latest), as an older
// Kinlink left the database.
func OpenAt(t testing.TB, setting string, last int) *database.DB {
	t.Helper()
	db, err := database.Open(context.Background(), setting)
	if err != nil {
		t.Fatalf("open %s: %v", setting, err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.MigrateTo(context.Background(), last); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

func freshSchema(t testing.TB, base string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "test_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema on %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
