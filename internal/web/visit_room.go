package web

import (
	"net/http"
	"net/url"
	"time"

	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/visits"
	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// The live visit's pages: the family's room, the station's room at the kiosk, and
// the officers' live visits with a silent watch and the end of a visit. Each page
// is the room's frame only: static/visit-room.js does the call over the visit's
// signalling WebSocket (visit_signal.go), with the page's words from its data
// attributes. Who may enter is the visits service's to say; the pages say when the
// waiting room opens, or that the visit is over, instead of a room that would refuse.

// RoomView is what the shared room template ("visitRoom") needs.
type RoomView struct {
	Lang   string
	Role   rtc.Role
	Signal string    // the WebSocket's path
	EndsAt time.Time // the slot's end
	// Other is the side a family or a resident sees; Family and Resident are
	// both, for a watcher.
	Other, Family, Resident string
	Kiosk                   bool
	// Open: the room may be entered now. Otherwise Requested (not approved yet),
	// Opens (when the waiting room opens, in words) or Over says why not.
	Open, Requested, Over bool
	Opens                 string
	Back                  string // where the page leads away to
}

// waitingRoomOpen reports whether a visit's room may be entered at now: approved
// and not ended, from visits.WaitingRoom before its start until its end.
func waitingRoomOpen(v visits.Visit, now time.Time) bool {
	return (v.State == visits.Scheduled || v.State == visits.Live) &&
		!now.Before(v.Start.Add(-visits.WaitingRoom)) && now.Before(v.End)
}

// roomView is a visit's room as role sees it at now.
func roomView(lang string, v visits.Visit, role rtc.Role, signal string, now time.Time) RoomView {
	rv := RoomView{Lang: lang, Role: role, Signal: signal, EndsAt: v.End}
	booked := v.State == visits.Requested || v.State == visits.Scheduled || v.State == visits.Live
	switch {
	case !booked || !now.Before(v.End):
		rv.Over = true
	case v.State == visits.Requested:
		rv.Requested = true
	case waitingRoomOpen(v, now):
		rv.Open = true
	default:
		rv.Opens = i18n.Local(lang, v.Start.Add(-visits.WaitingRoom))
	}
	return rv
}

// VisitRoomData is the family's room page.
type VisitRoomData struct {
	Visit VisitView
	Room  RoomView
}

// familyRoomPage is a family's visit room: "Join the visit".
func (s *Site) familyRoomPage(w http.ResponseWriter, r *http.Request) {
	acct, lang := currentAccount(r), s.Lang(r)
	fv, err := s.visits.FamilyVisit(r.Context(), acct.ID, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	v, person, now := fv.Visit, fv.Person, time.Now()
	d := VisitRoomData{Visit: s.visitView(lang, v, person, fv.Facility, now),
		Room: roomView(lang, v, rtc.Family, "/visits/"+v.ID+"/signal", now)}
	d.Room.Other, d.Room.Back = person, "/visits/"+v.ID
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "visit_room", "visits.room.title", d)
}

// KioskVisit is a coming visit on the kiosk's home: Join when its waiting room is
// open at this kiosk.
type KioskVisit struct {
	visits.ResidentVisit
	Join bool
}

// kioskVisits are a resident's coming visits as the kiosk they signed in at
// shows them.
func kioskVisits(list []visits.ResidentVisit, kioskID string, now time.Time) []KioskVisit {
	out := make([]KioskVisit, len(list))
	for i, v := range list {
		out[i] = KioskVisit{ResidentVisit: v, Join: v.StationID == kioskID && waitingRoomOpen(v.Visit, now)}
	}
	return out
}

// kioskRoomPage is a resident's visit room at its station.
func (s *Site) kioskRoomPage(w http.ResponseWriter, r *http.Request) {
	d, ok := s.kioskSession(w, r)
	if !ok {
		return
	}
	list, err := s.visits.Coming(r.Context(), d.Session.Resident.ID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	id := r.PathValue("id")
	for _, v := range list {
		if v.ID != id {
			continue
		}
		if v.StationID != d.Device.ID {
			s.answer(w, r, visits.ErrNotHere)
			return
		}
		room := roomView(s.Lang(r), v.Visit, rtc.Resident, "/kiosk/visits/"+v.ID+"/signal", time.Now())
		room.Other, room.Kiosk, room.Back = v.Visitor, true, "/kiosk"
		d.Room = &room
		s.renderKiosk(w, r, http.StatusOK, "kiosk_room", d)
		return
	}
	// Not the resident's, or no longer coming (it ended).
	s.answer(w, r, visits.ErrNotFound)
}

// LiveVisitsData is a facility's visits whose time is now.
type LiveVisitsData struct {
	VisitsFrame
	Visits []visits.StaffVisit
}

func (s *Site) liveVisitsPage(w http.ResponseWriter, r *http.Request) {
	fr, err := s.visitsFacility(r, "live", officerOf)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	list, err := s.visits.LiveNow(r.Context(), currentStaff(r).Access, fr.Facility.ID)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	s.renderPortal(w, r, http.StatusOK, "portal_visits_live", "portal.visits.live.title", LiveVisitsData{VisitsFrame: fr, Visits: list})
}

// WatchData is an officer watching one visit, with the form that ends it.
type WatchData struct {
	Visit visits.StaffVisit
	Room  RoomView
	Form  *Form
	Ended bool // just ended by this officer
	Back  string
}

func (s *Site) watchPage(w http.ResponseWriter, r *http.Request) {
	s.renderWatch(w, r, http.StatusOK, emptyForm())
}

// renderWatch shows a visit to watch, with f, the end form (and why it was
// refused). A privileged visit is refused in words: no one watches it.
func (s *Site) renderWatch(w http.ResponseWriter, r *http.Request, status int, f *Form) {
	v, err := s.visits.StaffVisit(r.Context(), currentStaff(r).Access, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	if v.Privileged {
		s.answer(w, r, visits.ErrPrivileged)
		return
	}
	d := WatchData{Visit: v, Form: f, Ended: r.URL.Query().Get("done") == "ended",
		Room: roomView(s.Lang(r), v.Visit, rtc.Watcher, "/facility/visits/"+v.ID+"/watch/signal", time.Now()),
		Back: "/facility/visits/live?" + url.Values{"facility": {v.FacilityID}}.Encode()}
	d.Room.Family, d.Room.Resident, d.Room.Back = v.Visitor, v.Resident.FirstName+" "+v.Resident.LastName, d.Back
	if d.Ended {
		// The room has ended; the visit's record may be a moment behind it.
		d.Room.Open, d.Room.Opens, d.Room.Requested, d.Room.Over = false, "", false, true
	}
	s.renderPortal(w, r, status, "portal_visits_watch", "portal.visits.live.watch_title", d)
}

// endVisitByStaff ends a visit for the reason both sides read.
func (s *Site) endVisitByStaff(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "reason")
	id := r.PathValue("id")
	if err := s.visits.EndByStaff(r.Context(), currentStaff(r).Access, id, f.Values["reason"]); err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderWatch(w, r, status, f) })
		return
	}
	http.Redirect(w, r, "/facility/visits/"+id+"/watch?done=ended", http.StatusSeeOther)
}
