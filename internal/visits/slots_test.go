package visits

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func date(t *testing.T, s string) Date {
	t.Helper()
	d, err := ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// open is a schedule with the given ranges on every day of the week and a booking
// window that lets every slot of the test through.
func open(minutes int, ranges ...[2]Clock) Schedule {
	s := Schedule{SlotMinutes: minutes, MinLeadHours: 0, MaxAheadDays: 366, WeeklyLimit: 3}
	for d := time.Sunday; d <= time.Saturday; d++ {
		for _, r := range ranges {
			s.Hours = append(s.Hours, Hours{Weekday: d, Start: r[0], End: r[1]})
		}
	}
	return s
}

func hm(h, m int) Clock { return Clock(h*60 + m) }

// longAgo lets the booking window take every slot of 2026.
var longAgo = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// labels are slots as "15:04 MST" in their zone, with their length in real time.
func labels(slots []Slot) []string {
	var out []string
	for _, s := range slots {
		out = append(out, fmt.Sprintf("%s-%s/%s", s.Start.Format("15:04 MST"), s.End.Format("15:04 MST"), s.End.Sub(s.Start)))
	}
	return out
}

// checkSane asserts what must hold of any day's slots: each has its exact length in
// real time, starts at a time the facility's clock really shows, none overlaps
// another, and no local start is offered twice.
func checkSane(t *testing.T, slots []Slot, minutes int, loc *time.Location) {
	t.Helper()
	seen := map[string]bool{}
	for i, s := range slots {
		if s.End.Sub(s.Start) != time.Duration(minutes)*time.Minute || s.Minutes != minutes {
			t.Errorf("slot %s lasts %s", s.Start, s.End.Sub(s.Start))
		}
		if s.Start.Location() != loc || s.End.Location() != loc {
			t.Errorf("slot %s is not in the facility's zone", s.Start)
		}
		local := s.Start.Format("2006-01-02 15:04")
		if seen[local] {
			t.Errorf("the local time %s is offered twice", local)
		}
		seen[local] = true
		if i > 0 && s.Start.Before(slots[i-1].End) {
			t.Errorf("slot %s begins before the one before it ends (%s)", s.Start, slots[i-1].End)
		}
	}
}

// Spring forward (8 March 2026 in the United States): the clock goes from 01:59 to
// 03:00. No slot starts in the hour that does not exist; the slot before it lasts
// its 20 minutes and ends when the clock shows 03:00; the rest follow unchanged.
func TestSpringForwardSkipsTheMissingHour(t *testing.T) {
	for _, c := range []struct{ zone, want string }{
		{"America/New_York", "01:00 EST-01:20 EST/20m0s 01:20 EST-01:40 EST/20m0s 01:40 EST-03:00 EDT/20m0s 03:00 EDT-03:20 EDT/20m0s 03:20 EDT-03:40 EDT/20m0s 03:40 EDT-04:00 EDT/20m0s"},
		{"America/Chicago", "01:00 CST-01:20 CST/20m0s 01:20 CST-01:40 CST/20m0s 01:40 CST-03:00 CDT/20m0s 03:00 CDT-03:20 CDT/20m0s 03:20 CDT-03:40 CDT/20m0s 03:40 CDT-04:00 CDT/20m0s"},
	} {
		loc := zone(t, c.zone)
		slots := Slots(open(20, [2]Clock{hm(1, 0), hm(4, 0)}), loc, date(t, "2026-03-08"), 1, longAgo)
		if got := strings.Join(labels(slots), " "); got != c.want {
			t.Errorf("%s, spring forward:\n got %s\nwant %s", c.zone, got, c.want)
		}
		checkSane(t, slots, 20, loc)
	}
}

// A length that does not divide the missing hour: 01:30 + 45 minutes ends at 03:15
// on the clock, so the 03:00 slot would overlap it and is not offered.
func TestSpringForwardNeverOverlaps(t *testing.T) {
	loc := zone(t, "America/New_York")
	slots := Slots(open(45, [2]Clock{hm(0, 45), hm(5, 15)}), loc, date(t, "2026-03-08"), 1, longAgo)
	want := "00:45 EST-01:30 EST/45m0s 01:30 EST-03:15 EDT/45m0s 03:45 EDT-04:30 EDT/45m0s 04:30 EDT-05:15 EDT/45m0s"
	if got := strings.Join(labels(slots), " "); got != want {
		t.Errorf("45-minute slots, spring forward:\n got %s\nwant %s", got, want)
	}
	checkSane(t, slots, 45, loc)
}

// Fall back (1 November 2026): the clock shows 01:00–01:59 twice. Each local slot is
// offered once, in the second showing (standard time), so every slot ends at the
// time its start plus its length shows; the first showing of the hour has no slots.
func TestFallBackOffersEachLocalSlotOnce(t *testing.T) {
	for _, c := range []struct{ zone, want string }{
		{"America/New_York", "00:20 EDT-00:40 EDT/20m0s 00:40 EDT-01:00 EDT/20m0s 01:00 EST-01:20 EST/20m0s 01:20 EST-01:40 EST/20m0s 01:40 EST-02:00 EST/20m0s 02:00 EST-02:20 EST/20m0s 02:20 EST-02:40 EST/20m0s 02:40 EST-03:00 EST/20m0s"},
		{"America/Chicago", "00:20 CDT-00:40 CDT/20m0s 00:40 CDT-01:00 CDT/20m0s 01:00 CST-01:20 CST/20m0s 01:20 CST-01:40 CST/20m0s 01:40 CST-02:00 CST/20m0s 02:00 CST-02:20 CST/20m0s 02:20 CST-02:40 CST/20m0s 02:40 CST-03:00 CST/20m0s"},
	} {
		loc := zone(t, c.zone)
		slots := Slots(open(20, [2]Clock{hm(0, 20), hm(3, 0)}), loc, date(t, "2026-11-01"), 1, longAgo)
		if got := strings.Join(labels(slots), " "); got != c.want {
			t.Errorf("%s, fall back:\n got %s\nwant %s", c.zone, got, c.want)
		}
		checkSane(t, slots, 20, loc)
		if len(slots) < 3 {
			continue
		}
		// The second showing: 01:00 EST is 06:00 UTC in New York, 07:00 UTC in Chicago.
		offset := map[string]int{"America/New_York": 5, "America/Chicago": 6}[c.zone]
		if want := time.Date(2026, 11, 1, 1+offset, 0, 0, 0, time.UTC); !slots[2].Start.Equal(want) {
			t.Errorf("%s: 01:00 is %s, want %s", c.zone, slots[2].Start.UTC(), want)
		}
	}
}

// A normal day's hours give the same local slots before, on and after both changes;
// only the offset from UTC differs.
func TestClockChangesDoNotMoveDaytimeSlots(t *testing.T) {
	for _, name := range []string{"America/New_York", "America/Chicago"} {
		loc := zone(t, name)
		for _, sunday := range []string{"2026-03-08", "2026-11-01"} {
			from := date(t, sunday).AddDays(-1)
			slots := Slots(open(20, [2]Clock{hm(9, 0), hm(17, 0)}), loc, from, 3, longAgo)
			checkSane(t, slots, 20, loc)
			perDay := map[Date][]string{}
			for _, s := range slots {
				perDay[DateOf(s.Start)] = append(perDay[DateOf(s.Start)], s.Start.Format("15:04")+"-"+s.End.Format("15:04"))
			}
			if len(perDay) != 3 {
				t.Fatalf("%s around %s: slots on %d days", name, sunday, len(perDay))
			}
			first := strings.Join(perDay[from], " ")
			if n := len(perDay[from]); n != 24 || perDay[from][0] != "09:00-09:20" || perDay[from][23] != "16:40-17:00" {
				t.Errorf("%s %s: %d slots: %s", name, from, n, first)
			}
			for i := 1; i < 3; i++ {
				if got := strings.Join(perDay[from.AddDays(i)], " "); got != first {
					t.Errorf("%s %s: %s, want the same local slots as %s", name, from.AddDays(i), got, from)
				}
			}
			if before, after := slots[0].Start.UTC().Hour(), slots[len(slots)-1].Start.UTC().Hour(); before == after {
				t.Errorf("%s around %s: the offset did not change (%d, %d): is this the right day?", name, sunday, before, after)
			}
		}
	}
}

// Two ranges in a day, with a break; a closure removes its date only.
func TestRangesAndClosures(t *testing.T) {
	loc := zone(t, "America/New_York")
	s := Schedule{SlotMinutes: 20, MaxAheadDays: 366, Hours: []Hours{
		{Weekday: time.Monday, Start: hm(13, 0), End: hm(14, 10)}, // the last 10 minutes make no slot
		{Weekday: time.Monday, Start: hm(9, 0), End: hm(9, 40)},
		{Weekday: time.Tuesday, Start: hm(9, 0), End: hm(9, 20)},
	}}
	s.Closures = []Closure{{Date: date(t, "2026-06-16"), Reason: "count day"}}
	got := strings.Join(labels(Slots(s, loc, date(t, "2026-06-14"), 10, longAgo)), " ")
	want := "09:00 EDT-09:20 EDT/20m0s 09:20 EDT-09:40 EDT/20m0s 13:00 EDT-13:20 EDT/20m0s 13:20 EDT-13:40 EDT/20m0s 13:40 EDT-14:00 EDT/20m0s " + // Mon 15
		"09:00 EDT-09:20 EDT/20m0s 09:20 EDT-09:40 EDT/20m0s 13:00 EDT-13:20 EDT/20m0s 13:20 EDT-13:40 EDT/20m0s 13:40 EDT-14:00 EDT/20m0s " + // Mon 22
		"09:00 EDT-09:20 EDT/20m0s" // Tue 23 (Tue 16 closed)
	if got != want {
		t.Errorf("slots:\n got %s\nwant %s", got, want)
	}
}

// The booking window: nothing sooner than the lead (24 h) from now, nothing later
// than the furthest day (the same time of day, MaxAheadDays later on the facility's
// calendar, even across a clock change).
func TestBookingWindowCuts(t *testing.T) {
	loc := zone(t, "America/Chicago")
	s := open(30, [2]Clock{hm(9, 0), hm(11, 0)})
	s.MinLeadHours, s.MaxAheadDays = 24, 14
	now := time.Date(2026, 2, 27, 10, 0, 0, 0, loc) // a Friday, 10:00 CST; the 14th day after is past spring forward
	slots := Slots(s, loc, date(t, "2026-02-26"), 20, now)
	first, last := slots[0].Start, slots[len(slots)-1].Start
	if want := time.Date(2026, 2, 28, 10, 0, 0, 0, loc); !first.Equal(want) {
		t.Errorf("first slot %s, want %s (24 hours from now)", first, want)
	}
	if want := time.Date(2026, 3, 13, 10, 0, 0, 0, loc); !last.Equal(want) {
		t.Errorf("last slot %s, want %s (14 days from now on the clock)", last, want)
	}
	for _, sl := range slots {
		if sl.Start.Sub(now) < 24*time.Hour {
			t.Errorf("slot %s is less than 24 hours ahead", sl.Start)
		}
	}
	// 28 February 10:00 and 10:30; 1–12 March, four a day; 13 March 09:00, 09:30, 10:00.
	if n := len(slots); n != 2+12*4+3 {
		t.Errorf("%d slots in the window: %v", n, labels(slots))
	}
}

func TestSlotsOfNothing(t *testing.T) {
	loc := zone(t, "America/New_York")
	if got := Slots(DefaultSchedule(), loc, date(t, "2026-06-01"), 14, longAgo); len(got) != 0 {
		t.Errorf("a facility with no hours offers %d slots", len(got))
	}
	if got := Slots(open(20, [2]Clock{hm(9, 0), hm(10, 0)}), loc, date(t, "2026-06-01"), 0, longAgo); len(got) != 0 {
		t.Errorf("zero days offer %d slots", len(got))
	}
}

func TestDatesAndClocks(t *testing.T) {
	d := date(t, "2026-02-28")
	if d.AddDays(1).String() != "2026-03-01" || d.AddDays(-59).String() != "2025-12-31" || d.Weekday() != time.Saturday {
		t.Errorf("date arithmetic: %s %s %s", d.AddDays(1), d.AddDays(-59), d.Weekday())
	}
	if (Date{2026, 2, 30}).Valid() || !d.Valid() {
		t.Error("validity of dates")
	}
	for in, want := range map[string]Clock{"00:00": 0, "09:05": 545, "24:00": EndOfDay} {
		if c, err := ParseClock(in); err != nil || c != want || c.String() != in {
			t.Errorf("ParseClock(%q) = %d, %v", in, c, err)
		}
	}
	for _, bad := range []string{"24:01", "9:00", "09:60", "ab:cd", "-1:00", "09:00:00"} {
		if _, err := ParseClock(bad); err == nil {
			t.Errorf("ParseClock(%q) took it", bad)
		}
	}
}
