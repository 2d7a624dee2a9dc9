package web

import (
	"net/http"
)

// The camera check: before any booking, a family can see that their camera and
// microphone work and that their connection carries a visit, with a short
// loopback call through this server that the page measures and judges in plain
// words.

// visitCheckPage is the camera check.
func (s *Site) visitCheckPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "visit_check", "visits.check.title", nil)
}

// visitCheckSignal is the check's loopback call.
func (s *Site) visitCheckSignal(w http.ResponseWriter, r *http.Request) {
	seat, err := s.visits.CheckSeat(r.Context(), currentAccount(r).ID)
	s.takeSeat(w, r, seat, err)
}
