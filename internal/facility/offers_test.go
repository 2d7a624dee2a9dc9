package facility_test

import (
	"slices"
	"testing"

	"github.com/kinlink/kinlink/internal/facility"
)

// Today a server offers eMessages and deposits. A service that an agency turns on or off is
// listed for the agency only when it is on there.
func TestOfferedServices(t *testing.T) {
	if got := facility.Offered().Offerings(); !slices.Equal(got, []facility.Offering{facility.Messages, facility.Deposits}) {
		t.Errorf("offered today: %v", got)
	}
	for _, s := range []facility.Offering{facility.VideoGrams, facility.Visits} {
		if facility.Offered().Has(s) {
			t.Errorf("%s is offered before it exists", s)
		}
	}

	// A server with VideoGrams, which each agency turns on by its own choice.
	on := map[string]bool{"TXDOC": true}
	offers := append(facility.Offered(), facility.Offer{Offering: facility.VideoGrams, On: func(a facility.Agency) bool { return on[a.Code] }})
	if !offers.Has(facility.VideoGrams) {
		t.Error("the server's offers lack VideoGrams")
	}
	if got := offers.At(facility.Agency{Code: "TXDOC"}).Offerings(); !slices.Equal(got, []facility.Offering{facility.Messages, facility.Deposits, facility.VideoGrams}) {
		t.Errorf("at an agency with VideoGrams on: %v", got)
	}
	if got := offers.At(facility.Agency{Code: "FLDOC"}).Offerings(); !slices.Equal(got, []facility.Offering{facility.Messages, facility.Deposits}) {
		t.Errorf("at an agency with VideoGrams off: %v", got)
	}
}
