package visits_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/database/dbtest"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/identity"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/visits"
)

var ctx = context.Background()

// world is two agencies:
//
//	Florida: FSP (New York time, kiosks "Unit B" and "Old"; "Old" revoked), LCI
//	Georgia: GSP (Chicago time)
type world struct {
	db       *database.DB
	id       *identity.Service
	fac      *facility.Service
	visits   *visits.Service
	contacts *contacts.Service
	ledger   *ledger.Ledger
	fl, ga   facility.Agency
	fsp, lci facility.Facility
	gsp      facility.Facility

	unitB, old facility.Kiosk

	fspAdmin, lciAdmin, flAdmin, fspOfficer, gaAdmin facility.Access
}

func setup(t *testing.T, db *database.DB) *world {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	common, err := identity.LoadCommonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	hasher := identity.NewHasher(identity.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}, 2, 20, time.Second)
	id, err := identity.NewService(ctx, db, hasher, common, identity.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{db: db, id: id, fac: facility.NewService(db, id, log)}
	caps, err := visits.ParseRateCaps(visits.DefaultRateCaps)
	if err != nil {
		t.Fatal(err)
	}
	w.contacts, w.ledger = contacts.NewService(db, w.fac), ledger.New(db)
	w.visits = visits.NewService(db, w.fac, w.contacts, w.ledger, caps, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	w.fl, err = w.fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: "FLDOC", Name: "Florida DOC", State: "FL"})
	must(err)
	w.ga, err = w.fac.CreateAgency(ctx, facility.Operator, facility.AgencyInput{Code: "GDC", Name: "Georgia DOC", State: "GA"})
	must(err)
	w.fsp, err = w.fac.CreateFacility(ctx, facility.Operator, w.fl.ID, facility.FacilityInput{Code: "FSP", Name: "Florida State Prison", Kind: "prison", TimeZone: "America/New_York", Population: 1400})
	must(err)
	w.lci, err = w.fac.CreateFacility(ctx, facility.Operator, w.fl.ID, facility.FacilityInput{Code: "LCI", Name: "Lowell", Kind: "prison", TimeZone: "America/New_York", Population: 2100})
	must(err)
	w.gsp, err = w.fac.CreateFacility(ctx, facility.Operator, w.ga.ID, facility.FacilityInput{Code: "GSP", Name: "Georgia State Prison", Kind: "prison", TimeZone: "America/Chicago", Population: 1500})
	must(err)
	w.unitB, _, err = w.fac.CreateKiosk(ctx, facility.Operator, w.fl.ID, w.fsp.ID, "Unit B")
	must(err)
	w.old, _, err = w.fac.CreateKiosk(ctx, facility.Operator, w.fl.ID, w.fsp.ID, "Old")
	must(err)

	staff := func(email, agencyID string, grants ...facility.Grant) facility.Access {
		t.Helper()
		accountID, err := id.EnsureStaff(ctx, email, "Staff "+email, "staff pass 42!", "JBSWY3DPEHPK3PXP")
		must(err)
		for _, g := range grants {
			must(w.fac.GrantRole(ctx, facility.Operator, agencyID, accountID, g.Role, g.FacilityID))
		}
		a, err := w.fac.AccessOf(ctx, accountID)
		must(err)
		return a
	}
	w.fspAdmin = staff("fsp.admin@example.org", w.fl.ID, facility.Grant{Role: facility.FacilityAdmin, FacilityID: w.fsp.ID})
	w.lciAdmin = staff("lci.admin@example.org", w.fl.ID, facility.Grant{Role: facility.FacilityAdmin, FacilityID: w.lci.ID})
	w.flAdmin = staff("fl.admin@example.org", w.fl.ID, facility.Grant{Role: facility.AgencyAdmin})
	w.fspOfficer = staff("fsp.officer@example.org", w.fl.ID, facility.Grant{Role: facility.VisitationOfficer, FacilityID: w.fsp.ID})
	w.gaAdmin = staff("ga.admin@example.org", w.ga.ID, facility.Grant{Role: facility.AgencyAdmin})
	must(w.fac.RevokeKiosk(ctx, facility.Operator, w.flAdmin, w.old.ID))
	return w
}

// today is the date now at a facility.
func today(t *testing.T, f facility.Facility) visits.Date {
	t.Helper()
	loc, err := time.LoadLocation(f.TimeZone)
	if err != nil {
		t.Fatal(err)
	}
	return visits.DateOf(time.Now().In(loc))
}

func clock(t *testing.T, s string) visits.Clock {
	t.Helper()
	c, err := visits.ParseClock(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// weekdays is a schedule of Monday to Friday, 09:00–11:40 and 13:00–16:00, with a
// closure next week.
func weekdays(t *testing.T, f facility.Facility) visits.Schedule {
	s := visits.Schedule{SlotMinutes: 20, MinLeadHours: 24, MaxAheadDays: 14, WeeklyLimit: 3, NeedsApproval: true}
	for d := time.Friday; d >= time.Monday; d-- { // given out of order: stored in order
		s.Hours = append(s.Hours,
			visits.Hours{Weekday: d, Start: clock(t, "13:00"), End: clock(t, "16:00")},
			visits.Hours{Weekday: d, Start: clock(t, "09:00"), End: clock(t, "11:40")})
	}
	s.Closures = []visits.Closure{{Date: today(t, f).AddDays(9), Reason: "Count day"}, {Date: today(t, f).AddDays(7), Reason: " Lockdown drill "}}
	return s
}

// entries are the audit rows of an action at an agency.
func entries(t *testing.T, w *world, agencyID, action string) []audit.Row {
	t.Helper()
	rows, err := audit.Search(ctx, w.db, audit.Filter{AgencyID: agencyID, Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// A facility that saved nothing has the defaults and no hours; a saved schedule
// reads back as saved (hours in order, closures by date, reasons trimmed), the
// change is in the audit log, and an agency administrator may replace it.
func TestScheduleRoundTrip(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		got, err := w.visits.Schedule(ctx, w.fsp.ID)
		if err != nil || !reflect.DeepEqual(got, visits.DefaultSchedule()) {
			t.Fatalf("before any is saved: %+v, %v", got, err)
		}
		if got.SlotMinutes != 20 || got.MinLeadHours != 24 || got.MaxAheadDays != 14 || got.WeeklyLimit != 3 || !got.NeedsApproval || len(got.Hours) != 0 {
			t.Errorf("defaults: %+v", got)
		}

		in := weekdays(t, w.fsp)
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, in); err != nil {
			t.Fatal(err)
		}
		got, err = w.visits.Schedule(ctx, w.fsp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Hours) != 10 || got.Hours[0] != (visits.Hours{Weekday: time.Monday, Start: clock(t, "09:00"), End: clock(t, "11:40")}) ||
			got.Hours[1] != (visits.Hours{Weekday: time.Monday, Start: clock(t, "13:00"), End: clock(t, "16:00")}) ||
			got.Hours[9].Weekday != time.Friday {
			t.Errorf("hours read back: %+v", got.Hours)
		}
		wantClosures := []visits.Closure{{Date: today(t, w.fsp).AddDays(7), Reason: "Lockdown drill"}, {Date: today(t, w.fsp).AddDays(9), Reason: "Count day"}}
		if !reflect.DeepEqual(got.Closures, wantClosures) {
			t.Errorf("closures read back: %+v", got.Closures)
		}
		if got.SlotMinutes != 20 || got.MinLeadHours != 24 || got.MaxAheadDays != 14 || got.WeeklyLimit != 3 || !got.NeedsApproval {
			t.Errorf("rules read back: %+v", got)
		}
		if in.Closures[1].Reason != " Lockdown drill " || in.Hours[0].Weekday != time.Friday {
			t.Error("SetSchedule changed its caller's schedule")
		}

		rows := entries(t, w, w.fl.ID, "visits.schedule")
		if len(rows) != 1 || rows[0].Actor != "staff:"+w.fspAdmin.AccountID || rows[0].FacilityID != w.fsp.ID || rows[0].Subject != "FSP" ||
			!strings.Contains(rows[0].Detail, "Mon 09:00-11:40, Mon 13:00-16:00") || !strings.Contains(rows[0].Detail, "approval true") {
			t.Fatalf("audit: %+v", rows)
		}

		// The agency's administrator replaces it: 30-minute slots, Sundays only, no
		// approval, no closures.
		next := visits.Schedule{SlotMinutes: 30, MinLeadHours: 48, MaxAheadDays: 7, WeeklyLimit: 1,
			Hours: []visits.Hours{{Weekday: time.Sunday, Start: clock(t, "10:00"), End: clock(t, "24:00")}}}
		if err := w.visits.SetSchedule(ctx, w.flAdmin, w.fsp.ID, next); err != nil {
			t.Fatal(err)
		}
		if got, _ := w.visits.Schedule(ctx, w.fsp.ID); !reflect.DeepEqual(got, next) {
			t.Errorf("replaced:\n got %+v\nwant %+v", got, next)
		}
		if other, _ := w.visits.Schedule(ctx, w.lci.ID); !reflect.DeepEqual(other, visits.DefaultSchedule()) {
			t.Errorf("another facility's schedule changed: %+v", other)
		}
		if n := len(entries(t, w, w.fl.ID, "visits.schedule")); n != 2 {
			t.Errorf("%d audit entries after two changes", n)
		}
		if _, err := audit.Verify(ctx, w.db); err != nil {
			t.Error(err)
		}
		if _, err := w.visits.Schedule(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, facility.ErrNotFound) {
			t.Errorf("the schedule of no facility: %v", err)
		}
	})
}

// Each fault is refused by the name of its input, and nothing is saved.
func TestScheduleRefusalsNameTheInput(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		good := weekdays(t, w.fsp)
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, good); err != nil {
			t.Fatal(err)
		}
		before, _ := w.visits.Schedule(ctx, w.fsp.ID)
		mon := func(start, end string) visits.Hours {
			return visits.Hours{Weekday: time.Monday, Start: clock(t, start), End: clock(t, end)}
		}
		for _, c := range []struct {
			name   string
			change func(s *visits.Schedule)
			field  string
			reason string
		}{
			{"end before start", func(s *visits.Schedule) { s.Hours = []visits.Hours{mon("11:00", "09:00")} }, "hours[0].end", "before_start"},
			{"end equals start", func(s *visits.Schedule) { s.Hours = []visits.Hours{mon("09:00", "09:00")} }, "hours[0].end", "before_start"},
			{"overlapping ranges", func(s *visits.Schedule) { s.Hours = []visits.Hours{mon("09:00", "11:00"), mon("10:40", "12:00")} }, "hours[1]", "overlap"},
			{"a range inside another", func(s *visits.Schedule) { s.Hours = []visits.Hours{mon("09:00", "17:00"), mon("13:00", "14:00")} }, "hours[1]", "overlap"},
			{"shorter than a slot", func(s *visits.Schedule) { s.Hours = []visits.Hours{mon("09:00", "09:15")} }, "hours[0]", "shorter_than_slot"},
			{"no such weekday", func(s *visits.Schedule) { s.Hours = []visits.Hours{{Weekday: 7, Start: 540, End: 600}} }, "hours[0].weekday", "invalid"},
			{"past midnight", func(s *visits.Schedule) { s.Hours = []visits.Hours{{Weekday: 1, Start: 1400, End: 1500}} }, "hours[0].end", "invalid"},
			{"slots of 10 minutes", func(s *visits.Schedule) { s.SlotMinutes = 10 }, "slot_minutes", "slot_length"},
			{"slots of 61 minutes", func(s *visits.Schedule) { s.SlotMinutes = 61 }, "slot_minutes", "slot_length"},
			{"a closure yesterday", func(s *visits.Schedule) {
				s.Closures = []visits.Closure{{Date: today(t, w.fsp).AddDays(-1), Reason: "Too late"}}
			}, "closures[0].date", "past"},
			{"a closure twice", func(s *visits.Schedule) { s.Closures = append(s.Closures, s.Closures[0]) }, "closures[2].date", "duplicate"},
			{"a closure without a reason", func(s *visits.Schedule) { s.Closures[1].Reason = "  " }, "closures[1].reason", "required"},
			{"a reason with a hidden character", func(s *visits.Schedule) { s.Closures[0].Reason = "Count\u202eday" }, "closures[0].reason", "invalid"},
			{"no such date", func(s *visits.Schedule) { s.Closures[0].Date = visits.Date{Year: 2099, Month: 2, Day: 30} }, "closures[0].date", "invalid"},
			{"notice as long as the window", func(s *visits.Schedule) { s.MinLeadHours, s.MaxAheadDays = 48, 2 }, "min_lead_hours", "window"},
			{"notice longer than the window", func(s *visits.Schedule) { s.MinLeadHours, s.MaxAheadDays = 72, 2 }, "min_lead_hours", "window"},
			{"negative notice", func(s *visits.Schedule) { s.MinLeadHours = -1 }, "min_lead_hours", "range"},
			{"no days ahead", func(s *visits.Schedule) { s.MaxAheadDays = 0 }, "max_ahead_days", "range"},
			{"no visits a week", func(s *visits.Schedule) { s.WeeklyLimit = 0 }, "weekly_limit", "range"},
		} {
			s := weekdays(t, w.fsp)
			c.change(&s)
			err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, s)
			p, ok := problem.As(err)
			if !ok || p.Kind != problem.Invalid || p.Code != "invalid_request" || p.Fields[c.field] != c.reason {
				t.Errorf("%s: %v (fields %v), want %s: %s", c.name, err, p, c.field, c.reason)
			}
		}
		// Several faults at once are all named.
		s := weekdays(t, w.fsp)
		s.SlotMinutes, s.WeeklyLimit = 5, 0
		s.Hours = append(s.Hours, mon("08:00", "07:00"))
		var e *visits.ScheduleError
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, s); !errors.As(err, &e) ||
			e.Fields["slot_minutes"] != "slot_length" || e.Fields["weekly_limit"] != "range" || e.Fields["hours[10].end"] != "before_start" {
			t.Errorf("several faults: %v", err)
		}
		// Ranges that touch do not overlap.
		s = weekdays(t, w.fsp)
		s.Hours = []visits.Hours{mon("09:00", "10:00"), mon("10:00", "11:00")}
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, s); err != nil {
			t.Errorf("touching ranges: %v", err)
		}
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, before); err != nil {
			t.Fatal(err)
		}
		if after, _ := w.visits.Schedule(ctx, w.fsp.ID); !reflect.DeepEqual(after, before) {
			t.Errorf("refusals changed the schedule:\n got %+v\nwant %+v", after, before)
		}
		if n := len(entries(t, w, w.fl.ID, "visits.schedule")); n != 3 {
			t.Errorf("%d audit entries, want 3 (refusals write none)", n)
		}
	})
}

// Only the facility's administrators and the agency's may change its schedule; to
// another agency the facility does not exist.
func TestSchedulePermissions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		s := weekdays(t, w.fsp)
		for _, c := range []struct {
			name string
			by   facility.Access
			want error
		}{
			{"another facility's administrator", w.lciAdmin, facility.ErrForbidden},
			{"a visitation officer", w.fspOfficer, facility.ErrForbidden},
			{"another agency's administrator", w.gaAdmin, facility.ErrNotFound},
			{"nobody", facility.Access{AccountID: w.fspAdmin.AccountID}, facility.ErrNotFound},
		} {
			if err := w.visits.SetSchedule(ctx, c.by, w.fsp.ID, s); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
			if _, err := w.visits.ScheduleFor(ctx, c.by, w.fsp.ID); !errors.Is(err, c.want) {
				t.Errorf("%s reads the schedule to change: %v, want %v", c.name, err, c.want)
			}
		}
		if err := w.visits.SetSchedule(ctx, w.gaAdmin, "0123456789abcdef0123456789abcdef", s); !errors.Is(err, facility.ErrNotFound) {
			t.Errorf("no such facility: %v", err)
		}
		if got, _ := w.visits.Schedule(ctx, w.fsp.ID); !reflect.DeepEqual(got, visits.DefaultSchedule()) {
			t.Errorf("a refused change was saved: %+v", got)
		}
		for _, by := range []facility.Access{w.fspAdmin, w.flAdmin} {
			if got, err := w.visits.ScheduleFor(ctx, by, w.fsp.ID); err != nil || !reflect.DeepEqual(got, visits.DefaultSchedule()) {
				t.Errorf("an administrator reads the schedule to change: %+v, %v", got, err)
			}
		}
		if n := len(entries(t, w, w.fl.ID, "visits.")); n != 0 {
			t.Errorf("%d audit entries of refused changes", n)
		}
	})
}

// Closures of past days stay as a record: Schedule lists today's on, saving it back
// keeps the old ones, and listing an old one as it was stored is no fault.
func TestPastClosuresStay(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		s := weekdays(t, w.fsp)
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, s); err != nil {
			t.Fatal(err)
		}
		lastWeek := today(t, w.fsp).AddDays(-7)
		// As if it had been set a week ago.
		if _, err := db.Write().Exec("INSERT INTO visit_closures (facility_id, day, reason) VALUES ($1, $2, $3)", w.fsp.ID, lastWeek.String(), "Storm"); err != nil {
			t.Fatal(err)
		}
		read, _ := w.visits.Schedule(ctx, w.fsp.ID)
		if len(read.Closures) != 2 {
			t.Fatalf("Schedule lists past closures: %+v", read.Closures)
		}
		read.Closures = read.Closures[:1]
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, read); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.Read().QueryRow("SELECT COUNT(*) FROM visit_closures WHERE facility_id = $1 AND day = $2", w.fsp.ID, lastWeek.String()).Scan(&n); err != nil || n != 1 {
			t.Errorf("the past closure after a save: %d, %v", n, err)
		}
		if again, _ := w.visits.Schedule(ctx, w.fsp.ID); len(again.Closures) != 1 {
			t.Errorf("a removed future closure stayed: %+v", again.Closures)
		}
		read.Closures = append(read.Closures, visits.Closure{Date: lastWeek, Reason: "Storm"})
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, read); err != nil {
			t.Errorf("a stored past closure listed as it is: %v", err)
		}
		read.Closures[1].Reason = "Hurricane"
		var e *visits.ScheduleError
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, read); !errors.As(err, &e) || e.Fields["closures[1].date"] != "past" {
			t.Errorf("a stored past closure rewritten: %v", err)
		}
	})
}

// A kiosk becomes a visit station and stops being one; each change is audited;
// a revoked kiosk cannot be one, and another agency's kiosk does not exist.
func TestStations(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		if list, err := w.visits.Stations(ctx, w.fsp.ID); err != nil || len(list) != 0 {
			t.Fatalf("stations before any: %v, %v", list, err)
		}
		if err := w.visits.SetStation(ctx, w.fspAdmin, w.unitB.ID, true, " Housing unit B "); err != nil {
			t.Fatal(err)
		}
		want := []visits.Station{{KioskID: w.unitB.ID, FacilityID: w.fsp.ID, Name: "Unit B", Location: "Housing unit B"}}
		if list, err := w.visits.Stations(ctx, w.fsp.ID); err != nil || !reflect.DeepEqual(list, want) {
			t.Fatalf("stations: %+v, %v", list, err)
		}
		if err := w.visits.SetStation(ctx, w.flAdmin, w.unitB.ID, true, "Visiting room 2"); err != nil {
			t.Fatal(err)
		}
		if list, _ := w.visits.Stations(ctx, w.fsp.ID); len(list) != 1 || list[0].Location != "Visiting room 2" {
			t.Errorf("moved station: %+v", list)
		}
		if list, _ := w.visits.Stations(ctx, w.lci.ID); len(list) != 0 {
			t.Errorf("another facility's stations: %+v", list)
		}

		for _, c := range []struct {
			name  string
			by    facility.Access
			kiosk string
			on    bool
			want  error
		}{
			{"a revoked kiosk", w.fspAdmin, w.old.ID, true, visits.ErrKioskRevoked},
			{"another facility's administrator", w.lciAdmin, w.unitB.ID, false, facility.ErrForbidden},
			{"a visitation officer", w.fspOfficer, w.unitB.ID, false, facility.ErrForbidden},
			{"another agency's administrator", w.gaAdmin, w.unitB.ID, false, facility.ErrNotFound},
			{"no such kiosk", w.fspAdmin, "0123456789abcdef0123456789abcdef", true, facility.ErrNotFound},
			{"not an id", w.fspAdmin, "../kiosks", true, facility.ErrNotFound},
		} {
			if err := w.visits.SetStation(ctx, c.by, c.kiosk, c.on, ""); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
		if err := w.visits.SetStation(ctx, w.fspAdmin, w.unitB.ID, true, "Unit\u202eB"); !errors.Is(err, visits.ErrBadLocation) {
			t.Errorf("a location with a hidden character: %v", err)
		}

		if err := w.visits.SetStation(ctx, w.fspAdmin, w.unitB.ID, false, ""); err != nil {
			t.Fatal(err)
		}
		if err := w.visits.SetStation(ctx, w.fspAdmin, w.unitB.ID, false, ""); err != nil {
			t.Errorf("turning off twice: %v", err)
		}
		if list, _ := w.visits.Stations(ctx, w.fsp.ID); len(list) != 0 {
			t.Errorf("a station turned off is listed: %+v", list)
		}
		var kept int
		if err := db.Read().QueryRow("SELECT COUNT(*) FROM visit_stations WHERE kiosk_id = $1 AND retired_at IS NOT NULL", w.unitB.ID).Scan(&kept); err != nil || kept != 1 {
			t.Errorf("the retired station's record: %d, %v", kept, err)
		}
		on, off := entries(t, w, w.fl.ID, "visits.station.on"), entries(t, w, w.fl.ID, "visits.station.off")
		if len(on) != 2 || len(off) != 1 || off[0].Subject != "kiosk:"+w.unitB.ID || off[0].Actor != "staff:"+w.fspAdmin.AccountID ||
			on[1].Detail != "Unit B — Housing unit B" || on[1].FacilityID != w.fsp.ID {
			t.Errorf("audit: on %+v, off %+v", on, off)
		}

		// A revoked station is no station.
		if err := w.visits.SetStation(ctx, w.fspAdmin, w.unitB.ID, true, ""); err != nil {
			t.Fatal(err)
		}
		if err := w.fac.RevokeKiosk(ctx, facility.Operator, w.flAdmin, w.unitB.ID); err != nil {
			t.Fatal(err)
		}
		if list, _ := w.visits.Stations(ctx, w.fsp.ID); len(list) != 0 {
			t.Errorf("a revoked kiosk is listed as a station: %+v", list)
		}
	})
}

// Free slots come from the saved schedule in the facility's zone, without closed
// days and outside the booking window; a facility without a station has none.
func TestFreeSlots(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		s := weekdays(t, w.fsp)
		if err := w.visits.SetSchedule(ctx, w.fspAdmin, w.fsp.ID, s); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		from := today(t, w.fsp)
		if slots, err := w.visits.FreeSlots(ctx, w.fsp.ID, from, 14, now); err != nil || len(slots) != 0 {
			t.Fatalf("without a station: %d slots, %v", len(slots), err)
		}
		if err := w.visits.SetStation(ctx, w.fspAdmin, w.unitB.ID, true, "B"); err != nil {
			t.Fatal(err)
		}
		slots, err := w.visits.FreeSlots(ctx, w.fsp.ID, from, 21, now)
		if err != nil {
			t.Fatal(err)
		}
		loc, _ := time.LoadLocation("America/New_York")
		perDay := map[visits.Date]int{}
		for _, sl := range slots {
			if sl.Start.Location().String() != "America/New_York" || sl.Minutes != 20 || sl.End.Sub(sl.Start) != 20*time.Minute {
				t.Fatalf("slot %+v", sl)
			}
			if sl.Start.Sub(now) < 24*time.Hour || sl.Start.After(now.In(loc).AddDate(0, 0, 14)) {
				t.Errorf("slot %s is outside the booking window from %s", sl.Start, now)
			}
			perDay[visits.DateOf(sl.Start)]++
		}
		for d, n := range perDay {
			if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
				t.Errorf("%d slots on %s, a %s", n, d, wd)
			}
			if n > 17 { // 09:00–11:40 is 8 slots, 13:00–16:00 is 9
				t.Errorf("%d slots on %s", n, d)
			}
		}
		for _, c := range s.Closures {
			if perDay[c.Date] != 0 {
				t.Errorf("%d slots on %s, closed", perDay[c.Date], c.Date)
			}
		}
		// Every weekday from the day after tomorrow to the 13th day is whole.
		for i := 2; i < 14; i++ {
			d := from.AddDays(i)
			closed := d == s.Closures[0].Date || d == s.Closures[1].Date
			if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday && !closed && perDay[d] != 17 {
				t.Errorf("%d slots on %s, want 17", perDay[d], d)
			}
		}

		for _, days := range []int{0, -1, visits.MaxSlotDays + 1} {
			if _, err := w.visits.FreeSlots(ctx, w.fsp.ID, from, days, now); !errors.Is(err, visits.ErrBadDays) {
				t.Errorf("%d days: %v", days, err)
			}
		}
		if _, err := w.visits.FreeSlots(ctx, w.fsp.ID, visits.Date{Year: 2026, Month: 2, Day: 30}, 1, now); !errors.Is(err, visits.ErrBadFrom) {
			t.Errorf("no such date: %v", err)
		}
		if _, err := w.visits.FreeSlots(ctx, "0123456789abcdef0123456789abcdef", from, 1, now); !errors.Is(err, facility.ErrNotFound) {
			t.Errorf("no such facility: %v", err)
		}
	})
}

// A facility in Chicago time offers its hours on Chicago's clock, across the
// spring-forward Sunday of 2026, with the schedule read from the database.
func TestFreeSlotsOnTheFacilitysClock(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *database.DB) {
		w := setup(t, db)
		kiosk, _, err := w.fac.CreateKiosk(ctx, facility.Operator, w.ga.ID, w.gsp.ID, "Visiting room")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.visits.SetStation(ctx, w.gaAdmin, kiosk.ID, true, "Visiting room"); err != nil {
			t.Fatal(err)
		}
		s := visits.Schedule{SlotMinutes: 60, MinLeadHours: 0, MaxAheadDays: 14, WeeklyLimit: 3}
		for _, d := range []time.Weekday{time.Saturday, time.Sunday, time.Monday} {
			s.Hours = append(s.Hours, visits.Hours{Weekday: d, Start: clock(t, "01:00"), End: clock(t, "04:00")},
				visits.Hours{Weekday: d, Start: clock(t, "09:00"), End: clock(t, "11:00")})
		}
		if err := w.visits.SetSchedule(ctx, w.gaAdmin, w.gsp.ID, s); err != nil {
			t.Fatal(err)
		}
		loc, _ := time.LoadLocation("America/Chicago")
		now := time.Date(2026, 3, 6, 12, 0, 0, 0, loc)
		slots, err := w.visits.FreeSlots(ctx, w.gsp.ID, visits.Date{Year: 2026, Month: 3, Day: 7}, 3, now)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sl := range slots {
			got = append(got, sl.Start.Format("Mon 15:04 MST"))
		}
		want := "Sat 01:00 CST, Sat 02:00 CST, Sat 03:00 CST, Sat 09:00 CST, Sat 10:00 CST, " +
			"Sun 01:00 CST, Sun 03:00 CDT, Sun 09:00 CDT, Sun 10:00 CDT, " +
			"Mon 01:00 CDT, Mon 02:00 CDT, Mon 03:00 CDT, Mon 09:00 CDT, Mon 10:00 CDT"
		if strings.Join(got, ", ") != want {
			t.Errorf("slots:\n got %s\nwant %s", strings.Join(got, ", "), want)
		}
	})
}
