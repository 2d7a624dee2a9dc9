package i18n

import (
	"fmt"
	"time"
)

// Time writes a moment in UTC the way lang writes dates: "Jan 2, 2006 15:04 UTC",
// "2/01/2006 15:04 UTC". Pages and mail show the same words for the same moment.
func Time(lang string, t time.Time) string {
	t = t.UTC()
	if lang == "es" {
		return fmt.Sprintf("%d/%02d/%d %02d:%02d UTC", t.Day(), t.Month(), t.Year(), t.Hour(), t.Minute())
	}
	return t.Format("Jan 2, 2006 15:04 UTC")
}

// Duration says a length of time in words, rounded up to the minute, the way a
// person plans a wait: "23 hours and 40 minutes", "1 hour", "5 minutes".
func (c *Catalog) Duration(lang string, d time.Duration) string {
	minutes := int((d + time.Minute - 1) / time.Minute)
	hours, minutes := minutes/60, minutes%60
	count := func(n int, one, many string) string {
		if n == 1 {
			return c.T(lang, one)
		}
		return c.T(lang, many, n)
	}
	switch {
	case hours == 0:
		return count(max(minutes, 1), "duration.minute", "duration.minutes")
	case minutes == 0:
		return count(hours, "duration.hour", "duration.hours")
	}
	return c.T(lang, "duration.and", count(hours, "duration.hour", "duration.hours"), count(minutes, "duration.minute", "duration.minutes"))
}

// weekdaysES are the days of the week as Spanish writes them in a date.
var weekdaysES = [7]string{"dom", "lun", "mar", "mié", "jue", "vie", "sáb"}

// Local writes a moment on its own location's clock, with the day of the week
// and the zone's abbreviation, the way lang writes dates: "Tue Dec 15, 2026 10:00
// EST", "mar 15/12/2026 10:00 EST". A visit is shown on its facility's clock.
func Local(lang string, t time.Time) string {
	zone, _ := t.Zone()
	if lang == "es" {
		return fmt.Sprintf("%s %d/%02d/%d %02d:%02d %s", weekdaysES[t.Weekday()], t.Day(), t.Month(), t.Year(), t.Hour(), t.Minute(), zone)
	}
	return t.Format("Mon Jan 2, 2006 15:04 MST")
}

// LocalDay writes the date a moment shows on its own location's clock, short, with
// the day of the week: "Tue Dec 15", "mar 15/12".
func LocalDay(lang string, t time.Time) string {
	if lang == "es" {
		return fmt.Sprintf("%s %d/%02d", weekdaysES[t.Weekday()], t.Day(), t.Month())
	}
	return t.Format("Mon Jan 2")
}

// LocalTimes writes a start and an end on the start's clock, with the zone's
// abbreviation: "10:00–10:20 EST". An end on another abbreviation (the clock
// changed within) names both: "01:40 EST–03:00 EDT".
func LocalTimes(start, end time.Time) string {
	end = end.In(start.Location())
	startZone, _ := start.Zone()
	endZone, _ := end.Zone()
	if startZone != endZone {
		return start.Format("15:04 MST") + "–" + end.Format("15:04 MST")
	}
	return start.Format("15:04") + "–" + end.Format("15:04 MST")
}

// LocalSpan writes a visit's date, start and end on its own location's clock:
// "Tue Dec 15, 2026 10:00–10:20 EST", "mar 15/12/2026 10:00–10:20 EST".
func LocalSpan(lang string, start, end time.Time) string {
	if lang == "es" {
		return fmt.Sprintf("%s/%d %s", LocalDay(lang, start), start.Year(), LocalTimes(start, end))
	}
	return start.Format("Mon Jan 2, 2006 ") + LocalTimes(start, end)
}
