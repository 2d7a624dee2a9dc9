package visits

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// The waiting room opens this long before a visit's start.
const WaitingRoom = 10 * time.Minute

// Refusals of joining a visit.
var (
	// ErrNotOpen is a visit whose waiting room has not opened yet, or that is not
	// approved yet.
	ErrNotOpen = problem.Declare(problem.Conflict, "visit_not_open", "visits: the waiting room is not open").
			Say("visits.live.not_open")
	// ErrOver is a visit whose time has passed or that ended.
	ErrOver = problem.Declare(problem.Conflict, "visit_over", "visits: the visit is over").
		Say("visits.live.over")
	// ErrPrivileged is an officer asking to watch a privileged visit.
	ErrPrivileged = problem.Declare(problem.Forbidden, "privileged", "visits: a privileged visit is never watched").
			Say("visits.live.privileged")
	// ErrNotHere is a resident at a kiosk that is not the visit's station.
	ErrNotHere = problem.Declare(problem.Conflict, "wrong_station", "visits: the visit is at another station").
			Say("visits.live.wrong_station")
	// ErrNoLiveVisits is a server with no media service.
	ErrNoLiveVisits = problem.Declare(problem.Conflict, "live_visits_off", "visits: this server holds no live visits").
			Say("visits.live.off")
	// ErrRoomUnreachable is a join that belongs to the instance holding the
	// visit's room, which could not be reached from here (or that instances
	// disagree about for a moment, as one takes a room over): trying again in a
	// few seconds works.
	ErrRoomUnreachable = problem.Declare(problem.Unavailable, "room_unreachable", "visits: the visit's room is on another server, not reachable now").
				Say("visits.live.unreachable").After(5 * time.Second)
)

// Elsewhere is a join whose visit's room is on another instance that is there:
// the join is passed on to it (its URL), never opened a second time here.
type Elsewhere struct {
	Instance string // the instance's name (visits.room_instance)
	URL      string // where the other instances reach it
}

func (e *Elsewhere) Error() string {
	return fmt.Sprintf("visits: the visit's room is on instance %s (%s)", e.Instance, e.URL)
}

// Directory says where the instances sharing the database are (instances.Registry).
type Directory interface {
	// Where is the named instance's URL, and whether it was seen lately.
	Where(ctx context.Context, name string) (url string, alive bool, err error)
}

// LiveSettings are the live side of visits on this server.
type LiveSettings struct {
	// Instance names this server among several; rooms are pinned to one.
	Instance string
	// Instances says whether the instance a room is pinned to is still there;
	// nil: this server is the only one, and takes every room.
	Instances Directory
	// BitrateKbps caps each side's video.
	BitrateKbps int
	// TURN relays the media of participants whose network lets no UDP through to
	// the SFU; nil: none.
	TURN *rtc.TURN
	Log  *slog.Logger
}

// UseSFU makes the service hold live visits in sfu.
func (s *Service) UseSFU(sfu *rtc.SFU, set LiveSettings) {
	if set.Log == nil {
		set.Log = slog.Default()
	}
	s.sfu, s.live = sfu, set
}

// Seat is a participant's place in a visit's room.
type Seat struct {
	Room  *rtc.Room
	Role  rtc.Role
	Visit Visit
	// ICEServers are the participant's TURN server, with credentials for this
	// visit that expire ten minutes after its end.
	ICEServers []webrtc.ICEServer
}

// Take runs the participant's signalling on conn: the ICE servers first, then the
// room's. It returns when the participant leaves.
func (seat Seat) Take(ctx context.Context, conn rtc.Conn) error {
	if err := conn.Write(ctx, rtc.Message{Type: rtc.TypeConfig, ICEServers: seat.ICEServers}); err != nil {
		return err
	}
	return seat.Room.Join(ctx, seat.Role, conn)
}

// FamilySeat lets a family into their visit's room, from ten minutes before its
// start to its end, once approved.
func (s *Service) FamilySeat(ctx context.Context, accountID, visitID string) (Seat, error) {
	v, err := s.Visit(ctx, accountID, visitID)
	if err != nil {
		return Seat{}, err
	}
	return s.seat(ctx, v, rtc.Family)
}

// StationSeat lets a resident signed in at a kiosk into their visit's room: the
// kiosk must be the visit's station.
func (s *Service) StationSeat(ctx context.Context, residentID, kioskID, visitID string) (Seat, error) {
	if !ids.Valid(visitID) {
		return Seat{}, ErrNotFound
	}
	v, err := visitByID(ctx, s.db.Read(), visitID)
	if err != nil {
		return Seat{}, err
	}
	if v.ResidentID != residentID {
		return Seat{}, ErrNotFound
	}
	if v.StationID != kioskID {
		return Seat{}, ErrNotHere
	}
	list, err := s.inZones(ctx, []Visit{v})
	if err != nil {
		return Seat{}, err
	}
	return s.seat(ctx, list[0], rtc.Resident)
}

// WatchSeat lets a visitation officer or an administrator of the facility watch a
// live visit silently: receive only, unseen by the participants. A privileged
// visit refuses every watcher. Each watch is audited.
func (s *Service) WatchSeat(ctx context.Context, by facility.Access, visitID string) (Seat, error) {
	v, err := s.officer(ctx, by, visitID)
	if err != nil {
		return Seat{}, err
	}
	if v.Privileged {
		return Seat{}, ErrPrivileged
	}
	list, err := s.inZones(ctx, []Visit{v})
	if err != nil {
		return Seat{}, err
	}
	seat, err := s.seat(ctx, list[0], rtc.Watcher)
	if err != nil {
		return seat, err
	}
	err = audit.RecordNow(ctx, s.db, audit.Entry{Actor: "staff:" + by.AccountID, Action: "visit.watch", AgencyID: by.AgencyID,
		FacilityID: v.FacilityID, ResidentID: v.ResidentID, Subject: "visit:" + v.ID})
	return seat, err
}

// ICEServers are the STUN and TURN servers a family's app uses for a visit, with
// credentials that expire ten minutes after its end (none where the server runs
// no TURN: its media port is reached directly).
func (s *Service) ICEServers(ctx context.Context, accountID, visitID string) ([]webrtc.ICEServer, error) {
	v, err := s.Visit(ctx, accountID, visitID)
	if err != nil {
		return nil, err
	}
	if v.State != Scheduled && v.State != Live && v.State != Requested || !s.now().Before(v.End) {
		return nil, ErrOver
	}
	return s.iceServers(v)
}

func (s *Service) iceServers(v Visit) ([]webrtc.ICEServer, error) {
	out := []webrtc.ICEServer{}
	if s.live.TURN != nil {
		server, err := s.live.TURN.Credentials(v.ID, v.End.Add(10*time.Minute))
		if err != nil {
			return nil, err
		}
		out = append(out, server)
	}
	return out, nil
}

// StaffVisit is one visit of a facility as its visitation officers and
// administrators read it (the watch page): who, where and when. Another agency's
// staff are told not found, another facility's forbidden. Like StaffVisits, the
// read names a resident and a visitor, so it is audited.
func (s *Service) StaffVisit(ctx context.Context, by facility.Access, visitID string) (StaffVisit, error) {
	v, err := s.officer(ctx, by, visitID)
	if err != nil {
		return StaffVisit{}, err
	}
	p, err := s.place(ctx, v.FacilityID)
	if err != nil {
		return StaffVisit{}, err
	}
	residents, err := s.fac.StaffResidents(ctx, p.AgencyID, []string{v.ResidentID})
	if err != nil {
		return StaffVisit{}, err
	}
	visitors, err := s.contacts.Visitors(ctx, p.AgencyID, []string{v.ContactID})
	if err != nil {
		return StaffVisit{}, err
	}
	stations, err := s.allStations(ctx, p.ID)
	if err != nil {
		return StaffVisit{}, err
	}
	v.Start, v.End = v.Start.In(p.loc), v.End.In(p.loc)
	err = audit.RecordNow(ctx, s.db, audit.Entry{Actor: "staff:" + by.AccountID, Action: "visits.view", AgencyID: p.AgencyID,
		FacilityID: p.ID, ResidentID: v.ResidentID, Subject: "visit:" + v.ID})
	return StaffVisit{Visit: v, Resident: residents[v.ResidentID], Visitor: visitors[v.ContactID].Name, Station: stations[v.StationID]}, err
}

// seat opens the visit's room if it is not open, when its time has come.
func (s *Service) seat(ctx context.Context, v Visit, role rtc.Role) (Seat, error) {
	if s.sfu == nil {
		return Seat{}, ErrNoLiveVisits
	}
	now := s.now()
	switch {
	case v.State != Scheduled && v.State != Live && v.State != Requested:
		return Seat{}, ErrOver
	case !now.Before(v.End):
		return Seat{}, ErrOver
	case v.State == Requested, now.Before(v.Start.Add(-WaitingRoom)):
		return Seat{}, ErrNotOpen
	}
	room, err := s.room(ctx, v)
	if err != nil {
		return Seat{}, err
	}
	servers, err := s.iceServers(v)
	if err != nil {
		return Seat{}, err
	}
	return Seat{Room: room, Role: role, Visit: v, ICEServers: servers}, nil
}

// room returns the visit's open room, or opens it, going on from the connected
// time an earlier room counted. A room pinned to another instance that is there
// is not opened here: the join is *Elsewhere.
func (s *Service) room(ctx context.Context, v Visit) (*rtc.Room, error) {
	if err := s.pin(ctx, v.ID); err != nil {
		return nil, err
	}
	if r, ok := s.sfu.Room(v.ID); ok {
		return r, nil
	}
	kbps, err := s.videoKbps(ctx, v.FacilityID)
	if err != nil {
		return nil, err
	}
	var sink rtc.Sink
	if s.rec != nil && !v.Privileged {
		if sink, err = s.recorder(v.ID); err != nil {
			return nil, fmt.Errorf("visits: recorder: %w", err)
		}
	}
	id := v.ID
	bg := context.WithoutCancel(ctx)
	r, opened, err := s.sfu.Open(rtc.RoomConfig{ID: id, Ends: v.End, Privileged: v.Privileged, BitrateKbps: kbps,
		Connected: v.Connected, Live: v.State == Live, Sink: sink, Now: s.now,
		OnLive:     func() { s.wentLive(bg, id) },
		OnProgress: func(c time.Duration) { s.progress(bg, id, c) },
		OnEnd:      func(e rtc.End) { s.finish(bg, id, e) }})
	if err != nil {
		return nil, err
	}
	if !opened && sink != nil {
		sink.Close() // another join opened the room first: an empty recording, merged to nothing
	}
	return r, nil
}

// videoKbps is the cap on a side's video at a facility: its agency's, or the
// server's where the agency set none.
func (s *Service) videoKbps(ctx context.Context, facilityID string) (int, error) {
	p, err := s.place(ctx, facilityID)
	if err != nil {
		return 0, err
	}
	a, err := s.fac.Agency(ctx, p.AgencyID)
	if err != nil {
		return 0, err
	}
	if a.VideoKbps > 0 {
		return a.VideoKbps, nil
	}
	return s.live.BitrateKbps, nil
}

// pin makes sure the visit's room is this instance's (visits.room_instance) before
// it is opened here. A room pinned to no instance, or to one that is gone (not
// seen for instances.Stale), is taken with a conditional update on the name read,
// so that of several instances taking it at once one wins; the others then find
// it pinned to the winner, which is there, and send their joins to it. A room
// pinned to another instance that is there is *Elsewhere.
func (s *Service) pin(ctx context.Context, visitID string) error {
	for range 3 {
		var owner string
		if err := s.db.Write().QueryRowContext(ctx, "SELECT room_instance FROM visits WHERE id = $1", visitID).Scan(&owner); err != nil {
			return fmtErr("read the room's instance", err)
		}
		if owner == s.live.Instance {
			return nil
		}
		if owner != "" && s.live.Instances != nil {
			url, alive, err := s.live.Instances.Where(ctx, owner)
			if err != nil {
				return err
			}
			if alive {
				return &Elsewhere{Instance: owner, URL: url}
			}
		}
		res, err := s.db.Write().ExecContext(ctx, "UPDATE visits SET room_instance = $2 WHERE id = $1 AND room_instance = $3", visitID, s.live.Instance, owner)
		if err != nil {
			return fmtErr("pin the room", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if owner != "" {
				s.live.Log.Info("visits: room taken over from an instance that is gone", "visit", visitID, "from", owner, "to", s.live.Instance)
			}
			return nil
		}
		// Another instance took the room between the read and the update: read again.
	}
	return ErrRoomUnreachable
}

// wentLive marks a visit live when both sides' media first flow.
func (s *Service) wentLive(ctx context.Context, visitID string) {
	_, err := s.db.Write().ExecContext(ctx, "UPDATE visits SET state = $2, live_at = $3 WHERE id = $1 AND state = $4",
		visitID, Live, s.now().UTC(), Scheduled)
	if err != nil {
		s.live.Log.Error("visits: mark live", "visit", visitID, "err", err)
	}
}

// progress keeps the connected time counted so far.
func (s *Service) progress(ctx context.Context, visitID string, connected time.Duration) {
	_, err := s.db.Write().ExecContext(ctx, "UPDATE visits SET connected_seconds = $2 WHERE id = $1 AND state IN ('scheduled', 'live')",
		visitID, int64(connected/time.Second))
	if err != nil {
		s.live.Log.Error("visits: keep connected time", "visit", visitID, "err", err)
	}
}

// Reasons a visit that did not happen as booked gives, besides the room's own
// (hung_up, time_up, staff's words).
const (
	ReasonResidentAbsent = "resident_absent" // the family waited; the resident never came
	ReasonFamilyAbsent   = "family_absent"
	ReasonNoMedia        = "no_media" // both came, but their media never flowed: the system's fault
)

// finish ends a visit with what its room measured, and charges the minutes both
// sides were connected, rounded up, at most the slot's; the rest of the hold comes
// back. A visit that never connected is charged nothing: missed when a side never
// came, failed when both came and no media flowed.
func (s *Service) finish(ctx context.Context, visitID string, e rtc.End) {
	if err := s.finishVisit(ctx, visitID, e); err != nil && !errors.Is(err, ErrDecided) {
		s.live.Log.Error("visits: finish", "visit", visitID, "err", err)
	}
	s.wake()
}

func (s *Service) finishVisit(ctx context.Context, visitID string, e rtc.End) error {
	v, err := visitByID(ctx, s.db.Read(), visitID)
	if err != nil {
		return err
	}
	state, reason, charged := Completed, e.Reason, int64(0)
	switch {
	case e.Live:
		minutes := min(int((e.Connected+time.Minute-1)/time.Minute), v.Minutes)
		charged = PriceCents(v.RateMills, minutes)
	case e.Joined[rtc.Family] && e.Joined[rtc.Resident]:
		state, reason = Failed, ReasonNoMedia
	case e.Joined[rtc.Family]:
		state, reason = Missed, ReasonResidentAbsent
	case e.Joined[rtc.Resident]:
		state, reason = Missed, ReasonFamilyAbsent
	default:
		state, reason = Missed, ReasonNoOneJoined
	}
	if e.By == "staff" && e.Live {
		reason = e.Reason // the officer's words
	}
	now := s.now().UTC()
	p, err := s.place(ctx, v.FacilityID)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE visits SET state = $2, reason = $3, charged_cents = $4, connected_seconds = $5, ended_by = $6, ended_at = $7
			WHERE id = $1 AND state IN ('scheduled', 'live')`, v.ID, state, reason, charged, int64(e.Connected/time.Second), e.By, now)
		if err != nil {
			return fmtErr("finish", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrDecided
		}
		if err := s.settle(ctx, tx, v, charged); err != nil {
			return err
		}
		if err := audit.Record(ctx, s.db, tx, audit.Entry{Actor: "system", Action: "visit." + state, AgencyID: p.AgencyID, FacilityID: v.FacilityID,
			ResidentID: v.ResidentID, Subject: "visit:" + v.ID, Detail: fmt.Sprintf("%s by %s; connected %s; charged %d¢", reason, e.By, e.Connected.Round(time.Second), charged)}); err != nil {
			return err
		}
		v.State, v.Reason, v.ChargedCents, v.Connected, v.EndedBy = state, reason, charged, e.Connected, e.By
		return s.mailFamily(ctx, tx, v, "visit_ended")
	})
}

// EndByStaff ends a live visit for a reason both sides see: a visitation officer
// or an administrator of the facility may. It is audited.
func (s *Service) EndByStaff(ctx context.Context, by facility.Access, visitID, reason string) error {
	reason, err := checkReason(reason, true)
	if err != nil {
		return err
	}
	v, err := s.officer(ctx, by, visitID)
	if err != nil {
		return err
	}
	if v.State != Live && v.State != Scheduled {
		return ErrOver
	}
	if s.sfu == nil {
		return ErrNoLiveVisits
	}
	room, ok := s.sfu.Room(v.ID)
	if !ok {
		return ErrOver
	}
	if err := audit.RecordNow(ctx, s.db, audit.Entry{Actor: "staff:" + by.AccountID, Action: "visit.end", AgencyID: by.AgencyID,
		FacilityID: v.FacilityID, ResidentID: v.ResidentID, Subject: "visit:" + v.ID, Detail: reason}); err != nil {
		return err
	}
	room.End("staff", reason)
	return nil
}

// LiveNow lists a facility's visits whose room is open or whose time is now, for
// the officers' live visits page (a StaffVisits read of today's, audited).
func (s *Service) LiveNow(ctx context.Context, by facility.Access, facilityID string) ([]StaffVisit, error) {
	p, err := s.place(ctx, facilityID)
	if err != nil {
		return nil, err
	}
	today, err := s.StaffVisits(ctx, by, StaffQuery{FacilityID: facilityID, Day: p.today(s.now())})
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []StaffVisit
	for _, v := range today {
		if (v.State == Live || v.State == Scheduled) && !now.Before(v.Start.Add(-WaitingRoom)) && now.Before(v.End) {
			out = append(out, v)
		}
	}
	return out, nil
}
