package facility_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
)

type fixture struct {
	db       *database.DB
	ids      *identity.Service
	fac      *facility.Service
	agency   facility.Agency
	fsp, lci facility.Facility
}

func setup(t *testing.T, db *database.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewService(ctx, db, identity.NewHasher(identity.DefaultHashParams, 2, 20, time.Second), common, identity.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, ids: id, fac: facility.NewService(db, id, log)}
	if f.agency, err = f.fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: "FLDOC", Name: "Florida DOC", State: "FL"}); err != nil {
		t.Fatal(err)
	}
	for _, in := range []facility.FacilityInput{
		{Code: "FSP", Name: "Florida State Prison", Kind: "prison", TimeZone: "America/New_York", Population: 1400},
		{Code: "LCI", Name: "Lowell", Kind: "prison", TimeZone: "America/New_York", Population: 2100},
	} {
		fac, err := f.fac.CreateFacility(ctx, facility.Operator, f.agency.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		if in.Code == "FSP" {
			f.fsp = fac
		} else {
			f.lci = fac
		}
	}
	return f
}

const header = "resident_id,last_name,first_name,facility_code,housing_unit,status,restrictions\n"

func (f *fixture) importCSV(t *testing.T, by facility.Actor, csv string, apply bool) facility.RosterSummary {
	t.Helper()
	sum, err := f.fac.ImportRoster(context.Background(), by, f.agency.ID, strings.NewReader(csv), facility.RosterOptions{Apply: apply})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

type resident struct{ facility, status, housing, restrictions, first string }

func (f *fixture) resident(t *testing.T, number string) resident {
	t.Helper()
	var r resident
	err := f.db.Read().QueryRow(`SELECT f.code, r.status, r.housing_unit, r.restrictions, r.first_name FROM residents r
		JOIN facilities f ON f.id = r.facility_id WHERE r.resident_number = $1`, number).Scan(&r.facility, &r.status, &r.housing, &r.restrictions, &r.first)
	if errors.Is(err, sql.ErrNoRows) {
		return resident{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func counts(s facility.RosterSummary) [6]int {
	return [6]int{s.New, s.Moved, s.Released, s.Changed, s.Unchanged, len(s.Rejected)}
}

func TestRosterImportDryRunApplyAndReimport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		f := setup(t, db)
		first := header + "A100,García,José,FSP,B-12,active,\nA101,Smith,John,FSP,C-1,active,no_video;no_messages\nA102,Nguyễn,Thị Lan,LCI,A-1,active,\n"
		dry := f.importCSV(t, facility.Operator, first, false)
		if counts(dry) != [6]int{3, 0, 0, 0, 0, 0} || dry.Applied {
			t.Fatalf("dry run: %+v", dry)
		}
		if f.resident(t, "A100").status != "" {
			t.Fatal("the dry run changed the database")
		}
		f.importCSV(t, facility.Operator, first, true)
		if r := f.resident(t, "A101"); r.status != "active" || r.restrictions != "no_messages;no_video" {
			t.Fatalf("A101 after import: %+v", r)
		}
		if r := f.resident(t, "A102"); r.first != "Thị Lan" {
			t.Fatalf("names in any script: %+v", r)
		}
		if again := f.importCSV(t, facility.Operator, first, true); counts(again) != [6]int{0, 0, 0, 0, 3, 0} {
			t.Fatalf("re-importing the same file: %+v", counts(again))
		}

		// José moves to LCI, Thị Lan leaves the roster (released), John changes unit,
		// a new resident arrives, and one bad row is rejected without harm.
		second := header + "A100,García,José,LCI,D-1,active,\nA101,Smith,John,FSP,C-2,active,no_video;no_messages\nA200,Brown,Amy,FSP,E-3,active,\nA201,Bad,Row,FSP,E-4,paroled,\n"
		sum := f.importCSV(t, facility.Operator, second, true)
		if counts(sum) != [6]int{1, 1, 1, 1, 0, 1} {
			t.Fatalf("second import: %+v (%+v)", counts(sum), sum.Rejected)
		}
		if sum.Rejected[0].Line != 5 || sum.Rejected[0].Reason != "bad_status" {
			t.Errorf("rejected row: %+v", sum.Rejected[0])
		}
		if r := f.resident(t, "A100"); r.facility != "LCI" || r.housing != "D-1" || r.status != "active" {
			t.Errorf("moved resident: %+v", r)
		}
		if r := f.resident(t, "A102"); r.status != "released" {
			t.Errorf("a resident missing from a full roster: %+v (released, never deleted)", r)
		}
	})
}

func TestRejectedRowsNeverReleaseAnyone(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		f := setup(t, db)
		f.importCSV(t, facility.Operator, header+"A100,García,José,FSP,B-12,active,\nA101,Smith,John,FSP,C-1,active,\n", true)
		// A100's row is broken: A100 must not be released for being "missing".
		sum := f.importCSV(t, facility.Operator, header+"A100,García,,FSP,B-12,active,\nA101,Smith,John,FSP,C-1,active,\n", true)
		if sum.Released != 0 || f.resident(t, "A100").status != "active" {
			t.Fatalf("a resident with a rejected row was released: %+v", counts(sum))
		}
		// A row with no readable id stops all releases for that file.
		sum = f.importCSV(t, facility.Operator, header+"A101,Smith,John,FSP,C-1,active,\n,García,José,FSP,B-12,active,\n", true)
		if !sum.ReleasesSkipped || sum.Released != 0 || f.resident(t, "A100").status != "active" {
			t.Fatalf("releases with an unreadable row: %+v", sum)
		}
		if _, err := f.fac.ImportRoster(context.Background(), facility.Operator, f.agency.ID, strings.NewReader("name,number\nx,1\n"), facility.RosterOptions{Apply: true}); err == nil {
			t.Fatal("a file without the roster columns was accepted")
		}
	})
}

func TestFacilityAdminsImportOnlyTheirFacilities(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		f := setup(t, db)
		f.importCSV(t, facility.Operator, header+"A100,García,José,FSP,B-12,active,\nA200,Lee,Kim,LCI,A-1,active,\nA300,Park,Joe,LCI,A-2,active,\n", true)
		admin := f.staff(t, "fsp.admin@example.org", facility.FacilityAdmin, f.fsp.ID)
		// The FSP admin tries to pull A200 into FSP and to release A300 of LCI.
		sum := f.importCSV(t, admin, header+"A100,García,José,FSP,B-12,active,\nA200,Lee,Kim,FSP,X-1,active,\nA300,Park,Joe,FSP,A-2,released,\n", true)
		if r := f.resident(t, "A200"); r.facility != "LCI" {
			t.Errorf("an FSP admin moved an LCI resident into FSP: %+v", r)
		}
		if r := f.resident(t, "A300"); r.status != "active" {
			t.Errorf("an FSP admin released an LCI resident: %+v", r)
		}
		if len(sum.Rejected) != 2 || sum.Rejected[0].Reason != "not_your_facility" {
			t.Errorf("rejected: %+v", sum.Rejected)
		}
		// A file of only FSP rows releases nobody at LCI.
		f.importCSV(t, admin, header+"A100,García,José,FSP,B-12,active,\n", true)
		if f.resident(t, "A200").status != "active" {
			t.Errorf("an LCI resident was released by an FSP file")
		}
	})
}

func TestRosterSafetyNets(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		f := setup(t, db)
		var many strings.Builder
		many.WriteString(header)
		for i := range 20 {
			fmt.Fprintf(&many, "B%03d,Name,Person,FSP,A,active,\n", i)
		}
		f.importCSV(t, facility.Operator, many.String(), true)

		// An empty file (a truncated sync) releases nobody.
		if sum := f.importCSV(t, facility.Operator, header, true); sum.Released != 0 || !sum.ReleasesSkipped {
			t.Fatalf("an empty roster: %+v", sum)
		}
		// A file that would release most residents is refused unless confirmed.
		_, err := f.fac.ImportRoster(context.Background(), facility.Operator, f.agency.ID, strings.NewReader(header+"B000,Name,Person,FSP,A,active,\n"), facility.RosterOptions{Apply: true})
		var mass *facility.ErrMassRelease
		if !errors.As(err, &mass) || mass.Releases != 19 {
			t.Fatalf("a mass release: %v", err)
		}
		if f.resident(t, "B005").status != "active" {
			t.Fatal("a refused import changed something")
		}
		// IDs are the same whatever their case; a broken quote is one rejected line.
		sum := f.importCSV(t, facility.Operator, many.String()+"b000,Name,Person,FSP,A,active,\n\"C1,x\"y,z,FSP,A,active,\nC2,Nul\x00l,Row,FSP,A,active,\n", false)
		if len(sum.Rejected) != 3 || sum.New != 0 {
			t.Fatalf("case, quotes and NUL: %+v", sum)
		}
	})
}

func (f *fixture) staff(t *testing.T, email, role, facilityID string) facility.Actor {
	t.Helper()
	ctx := context.Background()
	id, err := f.ids.EnsureStaff(ctx, email, "Staff", "staff pass 42!", "JBSWY3DPEHPK3PXP")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.fac.GrantRole(ctx, facility.Operator, f.agency.ID, id, role, facilityID); err != nil {
		t.Fatal(err)
	}
	return facility.Actor{AccountID: id}
}

// Names are found the way people type them, full-width letters too; a name carrying
// invisible marks that change how it shows (a direction override, a zero-width
// space) is rejected, while the joiners some scripts need are kept.
func TestRosterNamesAreFoundAsTypedAndHideNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		f := setup(t, db)
		sum := f.importCSV(t, facility.Operator, header+
			"A100,Ｆｕｌｌ,Ｗｉｄｔｈ,FSP,B-1,active,\n"+
			"A101,Evil\u202eliam,Ann,FSP,B-2,active,\n"+
			"A102,Zero\u200bSpace,Ann,FSP,B-3,active,\n"+
			"A104,Soft\u00adHyphen,Ann,FSP,B-5,active,\n"+
			"A105,Arabic\u061cMark,Ann,FSP,B-6,active,\n"+
			"A103,می\u200cخواهم,Sara,FSP,B-4,active,\n", true)
		if counts(sum) != [6]int{2, 0, 0, 0, 0, 4} || sum.Rejected[0].Reason != "bad_characters" || sum.Rejected[3].Reason != "bad_characters" {
			t.Fatalf("import: %+v %+v", counts(sum), sum.Rejected)
		}
		search := func(last, first string) []facility.Resident {
			found, err := f.fac.SearchResidents(context.Background(), facility.ResidentSearch{AgencyCode: f.agency.Code, LastName: last, FirstName: first})
			if err != nil {
				t.Fatal(err)
			}
			return found
		}
		for _, typed := range [][2]string{{"full", "w"}, {"Ｆｕｌｌ", "Ｗ"}} {
			if found := search(typed[0], typed[1]); len(found) != 1 || found[0].Number != "A100" || found[0].LastName != "Full" {
				t.Errorf("a full-width name searched as %q: %+v", typed[0], found)
			}
		}
		// A name an older version stored full-width, with its old search fold, is
		// rewritten by the next import of the same file, and then found.
		if _, err := db.Write().Exec("UPDATE residents SET last_name = 'Ｆｕｌｌ', first_name = 'Ｗｉｄｔｈ', search_last = 'ｆｕｌｌ', search_first = 'ｗｉｄｔｈ' WHERE resident_number = 'A100'"); err != nil {
			t.Fatal(err)
		}
		again := f.importCSV(t, facility.Operator, header+"A100,Ｆｕｌｌ,Ｗｉｄｔｈ,FSP,B-1,active,\nA103,می\u200cخواهم,Sara,FSP,B-4,active,\n", true)
		if again.Changed != 1 {
			t.Errorf("the re-import: %+v", counts(again))
		}
		if found := search("Full", "Width"); len(found) != 1 {
			t.Errorf("after the re-import: %+v", found)
		}
	})
}
