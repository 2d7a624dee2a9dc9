package visits

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"
)

// Schedule is when a facility offers video visits, and its rules for booking them.
type Schedule struct {
	// Hours are the opening hours of a week, on the facility's wall clock; a day
	// may have several ranges (09:00–11:40 and 13:00–16:00), which may not overlap.
	Hours []Hours
	// SlotMinutes is the length of every slot, 15 to 60 minutes.
	SlotMinutes int
	// Closures are dates with no visits (a holiday, a count day). Schedule lists
	// those from today on; past ones stay stored, as a record.
	Closures []Closure
	// The booking window: a visit is booked at least MinLeadHours before it
	// starts and at most MaxAheadDays ahead.
	MinLeadHours int
	MaxAheadDays int
	// WeeklyLimit is how many visits a resident may have in a week.
	WeeklyLimit int
	// NeedsApproval sends each booking to a visitation officer; without it a
	// booking is scheduled at once.
	NeedsApproval bool
	// RateMills is the price of a minute, in mills (tenths of a cent); 0 is free.
	// It may not pass the cap of the facility's kind and size (RateCaps).
	RateMills int
	// CancelHours is how long before its start a family may still cancel a visit,
	// with everything released.
	CancelHours int
}

// Hours is one range of opening hours on a day of the week, in the facility's
// local time; a range ends by 24:00 of its own day.
type Hours struct {
	Weekday    time.Weekday
	Start, End Clock
}

// Closure is a date the facility offers no visits, and why.
type Closure struct {
	Date   Date
	Reason string
}

// The defaults of a facility that has set nothing: no opening hours (so no slots)
// and the usual rules of the trade.
const (
	DefaultSlotMinutes  = 20
	DefaultMinLeadHours = 24
	DefaultMaxAheadDays = 14
	DefaultWeeklyLimit  = 3
	DefaultCancelHours  = 1
)

// Bounds of a schedule.
const (
	MinSlotMinutes  = 15
	MaxSlotMinutes  = 60
	MaxLeadHours    = 14 * 24
	MaxAheadDays    = 90
	MaxWeeklyLimit  = 21
	MaxRanges       = 70
	MaxClosures     = 400
	MaxReasonLength = 200
	MaxCancelHours  = 72
)

// DefaultSchedule is the schedule of a facility that has set none.
func DefaultSchedule() Schedule {
	return Schedule{SlotMinutes: DefaultSlotMinutes, MinLeadHours: DefaultMinLeadHours, MaxAheadDays: DefaultMaxAheadDays,
		WeeklyLimit: DefaultWeeklyLimit, NeedsApproval: true, CancelHours: DefaultCancelHours}
}

var errInvalid = problem.Declare(problem.Invalid, "invalid_request", "visits: the schedule is not valid")

// ScheduleError lists what is wrong with a schedule, input by input: "slot_minutes",
// "hours[2].end", "closures[0].date", … (indexes in the order given).
type ScheduleError struct{ Fields map[string]string }

func (e *ScheduleError) Error() string {
	keys := slices.Sorted(maps.Keys(e.Fields))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return "visits: invalid schedule: " + strings.Join(parts, ", ")
}

// Problem is the refusal, naming the inputs.
func (e *ScheduleError) Problem() *problem.Error { return errInvalid.WithFields(e.Fields) }

func (e *ScheduleError) add(field, reason string) {
	if e.Fields == nil {
		e.Fields = map[string]string{}
	}
	if _, ok := e.Fields[field]; !ok {
		e.Fields[field] = reason
	}
}

// check refuses a schedule that cannot be offered. today is the facility's date
// now; a closure before it is refused unless kept is true of it (it is stored
// already, with that reason: a schedule read and saved back the day after keeps
// its closures of yesterday). capMills is the most a minute may cost at the
// facility, capped whether a cap covers it at all (with none, only free visits).
func check(s *Schedule, today Date, kept func(Closure) bool, capMills int, capped bool) error {
	var e ScheduleError
	switch {
	case s.RateMills < 0:
		e.add("rate", "invalid")
	case s.RateMills > 0 && !capped:
		e.add("rate", "no_cap")
	case s.RateMills > capMills:
		e.add("rate", "above_cap")
	}
	if s.CancelHours < 0 || s.CancelHours > MaxCancelHours || s.CancelHours >= s.MaxAheadDays*24 {
		e.add("cancel_hours", "range")
	}
	if s.SlotMinutes < MinSlotMinutes || s.SlotMinutes > MaxSlotMinutes {
		e.add("slot_minutes", "slot_length")
	}
	if s.MinLeadHours < 0 || s.MinLeadHours > MaxLeadHours {
		e.add("min_lead_hours", "range")
	}
	if s.MaxAheadDays < 1 || s.MaxAheadDays > MaxAheadDays {
		e.add("max_ahead_days", "range")
	}
	if e.Fields["min_lead_hours"] == "" && e.Fields["max_ahead_days"] == "" && s.MinLeadHours >= s.MaxAheadDays*24 {
		e.add("min_lead_hours", "window")
	}
	if s.WeeklyLimit < 1 || s.WeeklyLimit > MaxWeeklyLimit {
		e.add("weekly_limit", "range")
	}

	if len(s.Hours) > MaxRanges {
		e.add("hours", "too_many")
	}
	for i, h := range s.Hours {
		field := fmt.Sprintf("hours[%d]", i)
		switch {
		case h.Weekday < time.Sunday || h.Weekday > time.Saturday:
			e.add(field+".weekday", "invalid")
		case h.Start < 0 || h.Start >= EndOfDay:
			e.add(field+".start", "invalid")
		case h.End <= 0 || h.End > EndOfDay:
			e.add(field+".end", "invalid")
		case h.End <= h.Start:
			e.add(field+".end", "before_start")
		case e.Fields["slot_minutes"] == "" && int(h.End-h.Start) < s.SlotMinutes:
			e.add(field, "shorter_than_slot")
		default:
			for _, o := range s.Hours[:i] {
				if o.Weekday == h.Weekday && o.Start < h.End && h.Start < o.End {
					e.add(field, "overlap")
					break
				}
			}
		}
	}

	if len(s.Closures) > MaxClosures {
		e.add("closures", "too_many")
	}
	seen := map[Date]bool{}
	for i := range s.Closures {
		c := &s.Closures[i]
		field := fmt.Sprintf("closures[%d]", i)
		c.Reason = strings.TrimSpace(c.Reason)
		switch {
		case !c.Date.Valid():
			e.add(field+".date", "invalid")
		case seen[c.Date]:
			e.add(field+".date", "duplicate")
		case c.Date.Before(today) && (kept == nil || !kept(*c)):
			e.add(field+".date", "past")
		}
		seen[c.Date] = true
		switch {
		case c.Reason == "":
			e.add(field+".reason", "required")
		case utf8.RuneCountInString(c.Reason) > MaxReasonLength || !utf8.ValidString(c.Reason) || textsafe.HasHidden(c.Reason):
			e.add(field+".reason", "invalid")
		}
	}
	if len(e.Fields) > 0 {
		return &e
	}
	slices.SortFunc(s.Hours, func(a, b Hours) int {
		if a.Weekday != b.Weekday {
			return int(a.Weekday - b.Weekday)
		}
		return int(a.Start - b.Start)
	})
	slices.SortFunc(s.Closures, func(a, b Closure) int { return strings.Compare(a.Date.String(), b.Date.String()) })
	return nil
}
