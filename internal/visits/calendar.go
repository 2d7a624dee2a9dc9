package visits

import (
	"fmt"
	"time"
)

// Date is a day on a facility's calendar, with no time and no zone: closures and the
// days a family asks slots for are local dates, not instants.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate reads a date written YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("visits: date %q: %w", s, err)
	}
	return DateOf(t), nil
}

// DateOf is the date t shows in its own location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// IsZero reports whether d is no date at all.
func (d Date) IsZero() bool { return d == Date{} }

// noon is d at noon UTC: calendar arithmetic on it never meets a clock change.
func (d Date) noon() time.Time { return time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC) }

// AddDays is the date n days later (earlier when n is negative).
func (d Date) AddDays(n int) Date { return DateOf(d.noon().AddDate(0, 0, n)) }

// Weekday is the day of the week of d.
func (d Date) Weekday() time.Weekday { return d.noon().Weekday() }

// Before reports whether d is an earlier day than e.
func (d Date) Before(e Date) bool { return d.noon().Before(e.noon()) }

// Valid reports whether d is a real date (not 2026-02-30).
func (d Date) Valid() bool { return d.Year >= 1 && d.Year <= 9999 && DateOf(d.noon()) == d }

// Clock is a time of day on a facility's wall clock, in minutes after midnight;
// 24:00 (1440) is the end of the day.
type Clock int

// EndOfDay is 24:00, the latest a range may end.
const EndOfDay Clock = 24 * 60

// ParseClock reads a time of day written HH:MM, from 00:00 to 24:00.
func ParseClock(s string) (Clock, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("visits: time of day %q: not HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("visits: time of day %q: not HH:MM", s)
	}
	return Clock(h*60 + m), nil
}

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// Hour and Minute of the clock.
func (c Clock) Hour() int   { return int(c) / 60 }
func (c Clock) Minute() int { return int(c) % 60 }
