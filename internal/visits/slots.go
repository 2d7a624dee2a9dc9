package visits

import (
	"slices"
	"time"
)

// Slot is a time a visit may take at a facility: its start and end in the
// facility's zone, and its length.
type Slot struct {
	Start, End time.Time
	Minutes    int
}

// Slots lays out the slots of days local dates from from, at a facility whose clock
// is loc, as offered at now: the schedule's opening hours cut into slots of its
// length, without closed dates and without what the booking window leaves out
// (starts sooner than MinLeadHours from now, or later than MaxAheadDays from now
// on the facility's calendar). It reads nothing and knows nothing of bookings.
//
// Slots are laid out on the wall clock, day by day, so that a clock change neither
// moves, adds nor removes a slot on the other days, and on the day itself (see
// docs/decisions.md, "Visits (issue 15)"):
//   - a slot never starts at a time the clock skips (02:00–02:59 on a spring-forward
//     Sunday in the United States): those slots are not offered;
//   - a time the clock shows twice (01:00–01:59 on a fall-back Sunday) means its
//     second showing, after the change, for every slot alike: each slot once;
//   - every slot lasts exactly its length in real time (End = Start + Minutes), and
//     a slot that would begin before the one before it ends (possible only after
//     the skipped hour, with lengths that do not divide it) is not offered.
func Slots(s Schedule, loc *time.Location, from Date, days int, now time.Time) []Slot {
	if s.SlotMinutes <= 0 || days <= 0 || loc == nil {
		return nil
	}
	length := time.Duration(s.SlotMinutes) * time.Minute
	earliest := now.Add(time.Duration(s.MinLeadHours) * time.Hour)
	latest := now.In(loc).AddDate(0, 0, s.MaxAheadDays)
	closed := map[Date]bool{}
	for _, c := range s.Closures {
		closed[c.Date] = true
	}
	byDay := map[time.Weekday][]Hours{}
	for _, h := range s.Hours {
		byDay[h.Weekday] = append(byDay[h.Weekday], h)
	}
	var out []Slot
	var prevEnd time.Time
	for i := range days {
		day := from.AddDays(i)
		if closed[day] {
			continue
		}
		ranges := byDay[day.Weekday()]
		slices.SortFunc(ranges, func(a, b Hours) int { return int(a.Start - b.Start) })
		for _, r := range ranges {
			for at := r.Start; at+Clock(s.SlotMinutes) <= r.End; at += Clock(s.SlotMinutes) {
				start, ok := wallTime(day, at, loc)
				if !ok || start.Before(prevEnd) {
					continue
				}
				end := start.Add(length)
				prevEnd = end
				if start.Before(earliest) || start.After(latest) {
					continue
				}
				out = append(out, Slot{Start: start, End: end, Minutes: s.SlotMinutes})
			}
		}
	}
	return out
}

// wallTime is the instant the facility's clock shows at on day, in loc. It is false
// when the clock skips that time. When the clock shows it twice, it is the later
// showing, after the clock went back.
//
// time.Date leaves both cases unspecified ("the choice of time zone, and therefore
// the time, is not guaranteed"), so the offsets are tried one by one: an offset in
// force a day before or a day after (no zone changes its clock twice within two
// days) gives a candidate instant, which is a showing of the wall time when loc
// really has that offset then.
func wallTime(day Date, at Clock, loc *time.Location) (time.Time, bool) {
	wall := time.Date(day.Year, day.Month, day.Day, at.Hour(), at.Minute(), 0, 0, time.UTC)
	var found time.Time
	for _, probe := range []time.Time{wall.Add(-24 * time.Hour), wall.Add(24 * time.Hour)} {
		_, offset := probe.In(loc).Zone()
		t := wall.Add(-time.Duration(offset) * time.Second).In(loc)
		if _, actual := t.Zone(); actual != offset {
			continue
		}
		if found.IsZero() || t.After(found) {
			found = t
		}
	}
	return found, !found.IsZero()
}
