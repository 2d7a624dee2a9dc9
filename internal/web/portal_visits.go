package web

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/visits"
)

// The portal's video visit pages, where the server offers visits: a facility's
// day of visits by housing unit (printable), the requests to decide, and its
// schedule and stations. Each is about one facility; staff who reach several pick
// it. The rules (who may see and decide what) are the visits service's.

// portalVisitRoutes are the portal's video visit pages, where the server offers visits;
// elsewhere their paths are not found.
func (s *Site) portalVisitRoutes() []httpx.Route {
	if s.visits == nil {
		return nil
	}
	staff := s.requireStaff
	return []httpx.Route{
		httpx.On("GET /facility/visits", staff, s.visitDayPage),
		httpx.On("GET /facility/visits/requests", staff, s.visitRequestsPage),
		httpx.On("POST /facility/visits/{id}/approve", staff, s.approveVisit),
		httpx.On("POST /facility/visits/{id}/reject", staff, s.rejectVisit),
		httpx.On("POST /facility/visits/{id}/cancel", staff, s.cancelVisitByStaff),
		httpx.On("GET /facility/visits/schedule", staff, s.visitSchedulePage),
		httpx.On("POST /facility/visits/schedule", staff, s.saveVisitSchedule),
		httpx.On("POST /facility/visit-stations/{kiosk}", staff, s.saveVisitStation),
		httpx.On("GET /facility/visits/live", staff, s.liveVisitsPage),
		httpx.On("GET /facility/visits/{id}/watch", staff, s.watchPage),
		httpx.On("POST /facility/visits/{id}/end", staff, s.endVisitByStaff),
		httpx.On("GET /facility/visits/{id}/watch/signal", staff, s.watchSignal),
	}
}

// VisitsFrame is what every visits page shows above its own content: the
// facility, the others the staff member may pick instead, and the visits pages
// their role opens there.
type VisitsFrame struct {
	Facility facility.Facility
	// Facilities are those the page's role reaches; a picker shows when there
	// are several.
	Facilities []facility.Facility
	Page       string // "day", "requests", "live" or "schedule": the page shown
	// Officer and Admin say which pages the staff member may open at the
	// facility: the day and the requests, the schedule and stations.
	Officer, Admin bool
	Query          string // "?facility=…", for the links between the pages
}

// PagePath is where the page shown lives, for the facility picker.
func (f VisitsFrame) PagePath() string {
	switch f.Page {
	case "requests":
		return "/facility/visits/requests"
	case "schedule":
		return "/facility/visits/schedule"
	case "live":
		return "/facility/visits/live"
	}
	return "/facility/visits"
}

// officerOf reports whether staff may see and decide a facility's visits: its
// visitation officers and its administrators (an agency administrator is both).
func officerOf(a facility.Access, facilityID string) bool {
	return a.Has(facility.VisitationOfficer, facilityID) || a.Has(facility.FacilityAdmin, facilityID)
}

// adminOf reports whether staff may change a facility's schedule and stations.
func adminOf(a facility.Access, facilityID string) bool {
	return a.Has(facility.FacilityAdmin, facilityID)
}

// visitsFacility is the facility a visits page is about: the one asked for, else
// the first the page's role reaches. Another agency's is not found; whether the
// staff member may see it is the visits service's to say.
func (s *Site) visitsFacility(r *http.Request, page string, may func(facility.Access, string) bool) (VisitsFrame, error) {
	u := currentStaff(r)
	all, err := s.fac.Facilities(r.Context(), u.Access.AgencyID)
	if err != nil {
		return VisitsFrame{}, err
	}
	fr := VisitsFrame{Page: page}
	for _, f := range all {
		if may(u.Access, f.ID) {
			fr.Facilities = append(fr.Facilities, f)
		}
	}
	id := r.FormValue("facility")
	if id == "" {
		if len(fr.Facilities) == 0 {
			return fr, facility.ErrForbidden
		}
		id = fr.Facilities[0].ID
	}
	f, err := s.fac.Facility(r.Context(), id)
	if err != nil {
		return fr, err
	}
	if f.AgencyID != u.Access.AgencyID {
		return fr, facility.ErrNotFound
	}
	fr.Facility = f
	fr.Officer, fr.Admin = officerOf(u.Access, f.ID), adminOf(u.Access, f.ID)
	fr.Query = "?" + url.Values{"facility": {f.ID}}.Encode()
	return fr, nil
}

// VisitDayData is a facility's visits of one day, by housing unit, for the
// officers who bring each resident to their station.
type VisitDayData struct {
	VisitsFrame
	Day      string // YYYY-MM-DD, on the facility's calendar
	Today    bool
	Units    []HousingUnitVisits
	Off      []visits.StaffVisit // cancelled or rejected: no one to bring
	Form     *Form               // a cancellation refused
	CancelID string              // the visit the refused cancellation was about
	Done     string
}

// HousingUnitVisits are the visits of a day of the residents of one housing unit,
// by start.
type HousingUnitVisits struct {
	Unit   string // "" when the roster gives none
	Visits []visits.StaffVisit
}

func (s *Site) visitDayPage(w http.ResponseWriter, r *http.Request) {
	s.renderVisitDay(w, r, http.StatusOK, emptyForm(), "")
}

// renderVisitDay shows a day's visits (today at the facility unless the date
// picker says another), with a refused cancellation's form when there is one.
func (s *Site) renderVisitDay(w http.ResponseWriter, r *http.Request, status int, f *Form, cancelID string) {
	fr, err := s.visitsFacility(r, "day", officerOf)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	loc, err := time.LoadLocation(fr.Facility.TimeZone)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	today := visits.DateOf(time.Now().In(loc))
	day := today
	if d := r.FormValue("day"); d != "" {
		if day, err = visits.ParseDate(d); err != nil || !day.Valid() {
			day = today // a date the picker cannot give: today, said as such
		}
	}
	list, err := s.visits.StaffVisits(r.Context(), currentStaff(r).Access, visits.StaffQuery{FacilityID: fr.Facility.ID, Day: day})
	if err != nil {
		s.answer(w, r, err)
		return
	}
	d := VisitDayData{VisitsFrame: fr, Day: day.String(), Today: day == today, Form: f, CancelID: cancelID}
	units := map[string][]visits.StaffVisit{}
	for _, v := range list {
		if v.State == visits.Cancelled || v.State == visits.Rejected {
			d.Off = append(d.Off, v)
			continue
		}
		units[v.Resident.HousingUnit] = append(units[v.Resident.HousingUnit], v)
	}
	for unit, vs := range units {
		d.Units = append(d.Units, HousingUnitVisits{Unit: unit, Visits: vs})
	}
	// By unit name, the residents with no unit last; each unit's visits are by
	// start already.
	slices.SortFunc(d.Units, func(a, b HousingUnitVisits) int {
		if (a.Unit == "") != (b.Unit == "") {
			if a.Unit == "" {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Unit, b.Unit)
	})
	if done := r.URL.Query().Get("done"); done == "cancelled" {
		d.Done = "portal.visits.done.cancelled"
	}
	s.renderPortal(w, r, status, "portal_visits_day", "portal.visits.day.title", d)
}

// VisitRequestsData is a facility's visits waiting for a decision.
type VisitRequestsData struct {
	VisitsFrame
	Requests []visits.StaffVisit
	Form     *Form  // a decision refused
	RejectID string // the visit whose rejection was refused (its reason is kept)
	Done     string
}

func (s *Site) visitRequestsPage(w http.ResponseWriter, r *http.Request) {
	s.renderVisitRequests(w, r, http.StatusOK, emptyForm(), "")
}

func (s *Site) renderVisitRequests(w http.ResponseWriter, r *http.Request, status int, f *Form, rejectID string) {
	fr, err := s.visitsFacility(r, "requests", officerOf)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	list, err := s.visits.StaffVisits(r.Context(), currentStaff(r).Access, visits.StaffQuery{FacilityID: fr.Facility.ID, State: visits.Requested})
	if err != nil {
		s.answer(w, r, err)
		return
	}
	d := VisitRequestsData{VisitsFrame: fr, Requests: list, Form: f, RejectID: rejectID}
	if done := r.URL.Query().Get("done"); done == "approved" || done == "rejected" {
		d.Done = "portal.visits.done." + done
	}
	s.renderPortal(w, r, status, "portal_visits_requests", "portal.visits.requests.title", d)
}

// backTo is a visits page of the facility a form came from.
func backTo(r *http.Request, page, done string) string {
	q := url.Values{"done": {done}}
	if id := r.PostFormValue("facility"); id != "" {
		q.Set("facility", id)
	}
	if day := r.PostFormValue("day"); day != "" {
		q.Set("day", day)
	}
	return page + "?" + q.Encode()
}

func (s *Site) approveVisit(w http.ResponseWriter, r *http.Request) {
	err := s.visits.Decide(r.Context(), currentStaff(r).Access, r.PathValue("id"), true, "")
	if err != nil {
		s.refuse(w, r, emptyForm(), err, func(status int, f *Form) { s.renderVisitRequests(w, r, status, f, "") })
		return
	}
	http.Redirect(w, r, backTo(r, "/facility/visits/requests", "approved"), http.StatusSeeOther)
}

// rejectVisit rejects a request with the reason the family reads. It is a form of
// its own, apart from the approval, so that Enter in the reason never approves.
func (s *Site) rejectVisit(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "reason")
	id := r.PathValue("id")
	err := s.visits.Decide(r.Context(), currentStaff(r).Access, id, false, f.Values["reason"])
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderVisitRequests(w, r, status, f, id) })
		return
	}
	http.Redirect(w, r, backTo(r, "/facility/visits/requests", "rejected"), http.StatusSeeOther)
}

// cancelVisitByStaff cancels a coming visit for the reason the family reads (a
// lockdown, a count), from the day's list.
func (s *Site) cancelVisitByStaff(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "reason")
	id := r.PathValue("id")
	err := s.visits.CancelByStaff(r.Context(), currentStaff(r).Access, id, f.Values["reason"])
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderVisitDay(w, r, status, f, id) })
		return
	}
	http.Redirect(w, r, backTo(r, "/facility/visits", "cancelled"), http.StatusSeeOther)
}
