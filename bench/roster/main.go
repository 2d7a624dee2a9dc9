// Command roster measures importing a generated full roster of 100,000 residents
// against the raw insert rate of the same database in the same run: rows per second
// of a dry run, of the applied import, and of plain prepared INSERTs of the same rows
// in one transaction. Targets: applied import at least 0.3 of the raw rate, and
// under 30 s on SQLite.
//
//	go run ./bench/roster [-rows 100000] [-database postgres://...]
package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
)

func main() {
	rows := flag.Int("rows", 100000, "residents in the roster")
	setting := flag.String("database", "", "database setting (default: a new SQLite file)")
	flag.Parse()
	if err := run(*rows, *setting); err != nil {
		fmt.Fprintln(os.Stderr, "roster bench:", err)
		os.Exit(1)
	}
}

func run(n int, setting string) error {
	ctx := context.Background()
	if setting == "" {
		dir, err := os.MkdirTemp("", "kinlink-roster-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		setting = "sqlite:" + filepath.Join(dir, "kinlink.db")
	}
	db, err := database.Open(ctx, setting)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		return err
	}
	id, err := identity.NewService(ctx, db, identity.NewHasher(identity.DefaultHashParams, 2, 8, time.Second), common, identity.DefaultConfig(), log)
	if err != nil {
		return err
	}
	fac := facility.NewService(db, id, log)
	code := fmt.Sprintf("B%d", time.Now().UnixNano()%1000000)
	agency, err := fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: code, Name: "Bench DOC", State: "TX"})
	if err != nil {
		return err
	}
	codes := []string{"F1", "F2", "F3", "F4", "F5"}
	var facilityIDs []string
	for _, c := range codes {
		f, err := fac.CreateFacility(ctx, facility.Operator, agency.ID, facility.FacilityInput{Code: c, Name: "Unit " + c, Kind: "prison", TimeZone: "America/Chicago", Population: n / 5})
		if err != nil {
			return err
		}
		facilityIDs = append(facilityIDs, f.ID)
	}

	var csv bytes.Buffer
	csv.WriteString("resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n")
	for i := range n {
		fmt.Fprintf(&csv, "T%07d,Last%d,First%d,%s,H-%d,active,\n", i, i, i, codes[i%len(codes)], i%400)
	}
	fmt.Printf("roster: %d rows, %.1f MB, on %s\n", n, float64(csv.Len())/1e6, db.Dialect)

	scratch, err := fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: code + "R", Name: "Raw inserts", State: "TX"})
	if err != nil {
		return err
	}
	raw, err := rawInserts(ctx, db, scratch.ID, facilityIDs, n)
	if err != nil {
		return err
	}
	fmt.Printf("raw prepared INSERTs in one transaction: %.0f rows/s\n", float64(n)/raw.Seconds())

	start := time.Now()
	sum, err := fac.ImportRoster(ctx, facility.Operator, agency.ID, bytes.NewReader(csv.Bytes()), facility.RosterOptions{})
	if err != nil {
		return err
	}
	dry := time.Since(start)
	fmt.Printf("dry run: %v (%.0f rows/s), %d new\n", dry.Round(time.Millisecond), float64(n)/dry.Seconds(), sum.New)

	start = time.Now()
	if _, err := fac.ImportRoster(ctx, facility.Operator, agency.ID, bytes.NewReader(csv.Bytes()), facility.RosterOptions{Apply: true}); err != nil {
		return err
	}
	applied := time.Since(start)
	ratio := raw.Seconds() / applied.Seconds()
	fmt.Printf("applied import: %v (%.0f rows/s); ratio to raw %.2f (target >= 0.30)\n", applied.Round(time.Millisecond), float64(n)/applied.Seconds(), ratio)

	start = time.Now()
	again, err := fac.ImportRoster(ctx, facility.Operator, agency.ID, bytes.NewReader(csv.Bytes()), facility.RosterOptions{Apply: true})
	if err != nil {
		return err
	}
	fmt.Printf("re-import of the same file: %v, %d unchanged\n", time.Since(start).Round(time.Millisecond), again.Unchanged)
	if ratio < 0.3 || (db.Dialect == database.SQLite && applied > 30*time.Second) {
		return fmt.Errorf("below target")
	}
	return nil
}

// rawInserts times plain prepared INSERTs of the same rows into the residents table
// (same indexes and constraints) for a scratch agency, in one transaction: the
// database's own speed on this machine.
func rawInserts(ctx context.Context, db *database.DB, agencyID string, facilityIDs []string, n int) (time.Duration, error) {
	start := time.Now()
	now := time.Now().UTC()
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO residents (id, agency_id, resident_number, first_name, last_name, facility_id,
			housing_unit, status, restrictions, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', '', $8, $8)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range n {
			if _, err := st.ExecContext(ctx, fmt.Sprintf("r%031d", i), agencyID, fmt.Sprintf("T%07d", i), fmt.Sprintf("First%d", i),
				fmt.Sprintf("Last%d", i), facilityIDs[i%len(facilityIDs)], fmt.Sprintf("H-%d", i%400), now); err != nil {
				return err
			}
		}
		return nil
	})
	return time.Since(start), err
}
