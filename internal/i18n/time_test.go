package i18n_test

import (
	"testing"
	"time"

	"github.com/kinlink/kinlink/internal/i18n"
)

// A visit reads on the facility's clock in the reader's language; a visit across a
// clock change names both abbreviations.
func TestVisitTimesOnTheFacilityClock(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	start := time.Date(2026, time.December, 15, 10, 0, 0, 0, ny)
	end := start.Add(20 * time.Minute)
	for _, c := range []struct{ got, want string }{
		{i18n.LocalSpan("en", start, end.UTC()), "Tue Dec 15, 2026 10:00–10:20 EST"},
		{i18n.LocalSpan("es", start, end), "mar 15/12/2026 10:00–10:20 EST"},
		{i18n.LocalDay("en", start), "Tue Dec 15"},
		{i18n.LocalDay("es", start), "mar 15/12"},
		{i18n.LocalTimes(start, end), "10:00–10:20 EST"},
		// 01:40 EST lasts 20 minutes and ends when the clock shows 03:00 EDT.
		{i18n.LocalTimes(time.Date(2026, time.March, 8, 1, 40, 0, 0, ny), time.Date(2026, time.March, 8, 1, 40, 0, 0, ny).Add(20*time.Minute)), "01:40 EST–03:00 EDT"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
