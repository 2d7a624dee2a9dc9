package visits_test

import (
	"testing"

	"github.com/kinlink/kinlink/internal/visits"
)

// A rate is read as a person types dollars, to the tenth of a cent, and nothing
// else is taken for one.
func TestParseRate(t *testing.T) {
	for in, want := range map[string]int{"0.12": 120, "$0.125": 125, ".16": 160, "0": 0, " 0.1 ": 100, "0,12": 120, "1": 1000, "10": 10000} {
		if got, err := visits.ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "$", ".", "abc", "0.1234", "-0.10", "+0.10", "1e-1", "0.1.2", "0x10", "11", "0.12 cents", "1,000.00", "0,1,2", "١"} {
		if got, err := visits.ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %d, want an error", in, got)
		}
	}
}
