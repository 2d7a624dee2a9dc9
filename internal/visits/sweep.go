package visits

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// SweepEvery is how often the server runs Sweep.
const SweepEvery = time.Minute

// SweepGrace is how long after a visit's end the sweep leaves it to its room,
// which ends it at the end itself.
const SweepGrace = 2 * time.Minute

// Sweep ends the visits that can no longer happen, releasing their holds in full:
//   - coming visits of a resident released, transferred to another facility or
//     restricted from video since the booking are cancelled, and the family is
//     mailed why;
//   - requests no officer decided before their start are cancelled, and the family
//     is mailed;
//   - scheduled visits whose slot passed without anyone joining are missed.
//
// It reports how many visits it ended. Each visit ends in a transaction of its
// own that changes it only from the state it was read in, so a family's or an
// officer's action meanwhile wins and nothing is released twice.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.now().UTC()
	list, err := allBooked(ctx, s.db.Read())
	if err != nil {
		return 0, err
	}
	ended := 0
	for _, v := range list {
		to, reason, err := s.fate(ctx, v, now)
		if err != nil {
			return ended, err
		}
		if to == "" {
			continue
		}
		if to == Completed {
			// A live visit whose room is gone: finished from the connected time kept.
			err := s.finishVisit(ctx, v.ID, rtc.End{By: "system", Reason: "time_up", Connected: v.Connected, Live: true,
				Joined: map[rtc.Role]bool{rtc.Family: true, rtc.Resident: true}})
			if err != nil && !errors.Is(err, ErrDecided) {
				return ended, err
			}
			if err == nil {
				ended++
			}
			continue
		}
		p, err := s.place(ctx, v.FacilityID)
		if err != nil {
			return ended, err
		}
		err = s.db.InTx(ctx, func(tx *sql.Tx) error {
			if err := changeState(ctx, tx, v.ID, v.State, to, reason, "system", now); err != nil {
				return err
			}
			if err := s.settle(ctx, tx, v, 0); err != nil {
				return err
			}
			if err := audit.Record(ctx, s.db, tx, audit.Entry{Actor: "system", Action: "visit." + to, AgencyID: p.AgencyID, FacilityID: v.FacilityID,
				ResidentID: v.ResidentID, Subject: "visit:" + v.ID, Detail: reason}); err != nil {
				return err
			}
			if to == Missed {
				return nil
			}
			v.State, v.Reason = to, reason
			return s.tellFamily(ctx, tx, v)
		})
		switch {
		case errors.Is(err, ErrDecided):
			continue // changed meanwhile
		case err != nil:
			return ended, err
		}
		ended++
	}
	if ended > 0 {
		s.wake()
	}
	return ended, nil
}

// fate is what the sweep does with a booked visit: the state to end it in and why,
// or "" to leave it.
func (s *Service) fate(ctx context.Context, v Visit, now time.Time) (string, string, error) {
	switch {
	case v.State == Live && !now.Before(v.End.Add(SweepGrace)):
		return Completed, "", nil // its room is gone (a server that stopped): charged what was counted
	case v.State == Live:
		return "", "", nil // the room decides its own end
	case !now.Before(v.End.Add(SweepGrace)) && v.State == Scheduled:
		return Missed, ReasonNoOneJoined, nil
	case !now.Before(v.Start) && v.State == Requested:
		return Cancelled, ReasonNotDecided, nil
	}
	r, err := s.fac.Resident(ctx, v.ResidentID)
	if err != nil {
		return "", "", err
	}
	switch {
	case r.Status == "released":
		return Cancelled, ReasonReleased, nil
	case r.Status != "active" || r.Facility.ID != v.FacilityID:
		return Cancelled, ReasonTransferred, nil
	case slices.Contains(r.Restrictions, "no_video"):
		return Cancelled, ReasonRestricted, nil
	}
	return "", "", nil
}
