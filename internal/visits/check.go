package visits

import (
	"context"
	"time"

	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// CheckLength is how long a camera check's loopback call may last.
const CheckLength = 45 * time.Second

// MaxChecks is how many camera checks a server runs at once: each is a call's
// worth of media, and the visits come first.
const MaxChecks = 20

// ErrChecksBusy is a camera check while the server runs as many as it may.
var ErrChecksBusy = problem.Declare(problem.Conflict, "checks_busy", "visits: too many camera checks at once").
	Say("visits.check.busy")

// CheckSeat opens a camera check for a family: a short loopback call through this
// server (their own camera and microphone come back to them), so they know before
// any visit whether their device and connection are good enough. Open to every
// signed-in family, booked or not.
func (s *Service) CheckSeat(ctx context.Context, accountID string) (Seat, error) {
	if s.sfu == nil {
		return Seat{}, ErrNoLiveVisits
	}
	// One check per account: a second one joins (and replaces) the first, so one
	// family cannot hold the server's checks from the others.
	id := "check-" + accountID
	if _, open := s.sfu.Room(id); !open && s.sfu.Checks() >= MaxChecks {
		return Seat{}, ErrChecksBusy
	}
	end := s.now().Add(CheckLength)
	room, _, err := s.sfu.Open(rtc.RoomConfig{ID: id, Ends: end, Echo: true, BitrateKbps: s.live.BitrateKbps})
	if err != nil {
		return Seat{}, err
	}
	seat := Seat{Room: room, Role: rtc.Family, Visit: Visit{ID: id, AccountID: accountID, End: end}}
	if s.live.TURN != nil {
		server, err := s.live.TURN.Credentials(id, end.Add(time.Minute))
		if err != nil {
			return Seat{}, err
		}
		seat.ICEServers = append(seat.ICEServers, server)
	}
	return seat, nil
}
