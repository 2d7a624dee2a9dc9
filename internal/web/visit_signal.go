package web

import (
	"errors"
	"net/http"

	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/visits"
	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// A visit's signalling: one WebSocket per participant, authenticated as each
// surface is (the family's session, the kiosk and the resident signed in at it, a
// staff session), checked before the upgrade, so a refusal is a plain answer. A
// visit whose room is on another instance has the request passed on to it as it
// came: that instance authenticates the participant again, from the same cookies.

// familySignal is a family joining their visit.
func (s *Site) familySignal(w http.ResponseWriter, r *http.Request) {
	seat, err := s.visits.FamilySeat(r.Context(), currentAccount(r).ID, r.PathValue("id"))
	s.takeSeat(w, r, seat, err)
}

// stationSignal is a resident joining their visit at its station.
func (s *Site) stationSignal(w http.ResponseWriter, r *http.Request) {
	d, ok := s.kioskSession(w, r)
	if !ok {
		return
	}
	seat, err := s.visits.StationSeat(r.Context(), d.Session.Resident.ID, d.Device.ID, r.PathValue("id"))
	s.takeSeat(w, r, seat, err)
}

// watchSignal is an officer watching a visit.
func (s *Site) watchSignal(w http.ResponseWriter, r *http.Request) {
	seat, err := s.visits.WatchSeat(r.Context(), currentStaff(r).Access, r.PathValue("id"))
	s.takeSeat(w, r, seat, err)
}

// takeSeat upgrades to the WebSocket and runs the participant's signalling until
// they leave.
func (s *Site) takeSeat(w http.ResponseWriter, r *http.Request, seat visits.Seat, err error) {
	if away, ok := errors.AsType[*visits.Elsewhere](err); ok {
		s.passOn(w, r, away)
		return
	}
	if err != nil {
		s.answer(w, r, err)
		return
	}
	c, err := httpx.AcceptSocket(w, r)
	if err != nil {
		return // answered by the upgrade
	}
	conn := rtc.NewSocketConn(c)
	if err := seat.Take(r.Context(), conn); err != nil {
		s.log.Info("web: visit signalling", "visit", seat.Visit.ID, "role", seat.Role, "err", err)
		_ = conn.Close("refused")
	}
}

// passOn sends a participant's signalling to the instance holding the visit's
// room, which answers it (see instances.Forward).
func (s *Site) passOn(w http.ResponseWriter, r *http.Request, away *visits.Elsewhere) {
	if s.instances == nil {
		s.answer(w, r, visits.ErrRoomUnreachable)
		return
	}
	s.instances.Forward(w, r, away.URL, func(w http.ResponseWriter, r *http.Request, err error) {
		s.log.Warn("web: visit signalling not passed on", "visit", r.PathValue("id"), "instance", away.Instance, "url", away.URL, "err", err)
		s.answer(w, r, visits.ErrRoomUnreachable)
	})
}
