package web

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/visits"
)

// The visit schedule of a facility as a form: its scalar rules, then rows of
// opening hours and of closures. Rows are numbered as the page shows them
// ("hours.3.start"); a page always has a few blank rows, so that ranges and
// closures are added without a script, and a row is removed by its box or by
// emptying it.

// Blank rows a schedule form offers below the stored ones, and the most rows it
// reads (the schedule's own limits are the service's).
const (
	blankHourRows    = 4
	blankClosureRows = 3
	maxHourRows      = visits.MaxRanges + 30
	maxClosureRows   = visits.MaxClosures + 30
)

// VisitScheduleData is the schedule and stations page of a facility.
type VisitScheduleData struct {
	VisitsFrame
	Form        *Form
	HourRows    []int
	ClosureRows []int
	Weekdays    []time.Weekday // in the order the day pickers list them
	// Cap is the most a minute may cost at the facility, in mills; Capped is
	// false where no cap covers it (then visits there are free).
	Cap    int
	Capped bool
	// Stations are the facility's kiosks, each with its own form.
	Stations []StationRow
	Done     string
}

// StationRow is a kiosk of the facility and whether it is a visit station.
type StationRow struct {
	Kiosk facility.Kiosk
	Form  *Form // "on" ("true" or ""), "location"
}

// weekOrder lists the days as US calendars do, Sunday first.
var weekOrder = []time.Weekday{time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday}

func (s *Site) visitSchedulePage(w http.ResponseWriter, r *http.Request) {
	s.renderVisitSchedule(w, r, http.StatusOK, nil, "", nil)
}

// renderVisitSchedule shows a facility's schedule and stations: the stored ones,
// or a form sent back with its faults (schedule), or one station's refused form
// (kioskID, station).
func (s *Site) renderVisitSchedule(w http.ResponseWriter, r *http.Request, status int, schedule *Form, kioskID string, station *Form) {
	u := currentStaff(r)
	fr, err := s.visitsFacility(r, "schedule", adminOf)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	stored, err := s.visits.ScheduleFor(r.Context(), u.Access, fr.Facility.ID)
	if err != nil {
		s.answer(w, r, err)
		return
	}
	d := VisitScheduleData{VisitsFrame: fr, Form: schedule, Weekdays: weekOrder}
	if d.Cap, d.Capped, err = s.visits.Cap(r.Context(), fr.Facility.ID); err != nil {
		s.failed(w, r, err)
		return
	}
	if d.Form == nil {
		d.Form = scheduleForm(stored)
	}
	d.HourRows, d.ClosureRows = rowsOf(d.Form, "hours"), rowsOf(d.Form, "closures")
	if len(d.Form.Errors) > 0 {
		d.Form.Said = s.scheduleWords(s.Lang(r), d.Form, d.Cap, d.Capped)
	}
	kiosks, err := s.fac.Kiosks(r.Context(), u.Access)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	stations, err := s.visits.Stations(r.Context(), fr.Facility.ID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	for _, k := range kiosks {
		if k.FacilityID != fr.Facility.ID || k.Revoked {
			continue
		}
		row := StationRow{Kiosk: k, Form: emptyForm()}
		if i := slices.IndexFunc(stations, func(st visits.Station) bool { return st.KioskID == k.ID }); i >= 0 {
			row.Form.Values["on"], row.Form.Values["location"] = "true", stations[i].Location
		}
		if k.ID == kioskID && station != nil {
			row.Form = station
		}
		d.Stations = append(d.Stations, row)
	}
	slices.SortFunc(d.Stations, func(a, b StationRow) int { return strings.Compare(a.Kiosk.Name, b.Kiosk.Name) })
	if done := r.URL.Query().Get("done"); done == "schedule" || done == "station" {
		d.Done = "portal.visits.done." + done
	}
	s.renderPortal(w, r, status, "portal_visits_schedule", "portal.visits.schedule.title", d)
}

// scheduleForm is a stored schedule as its form, with blank rows to add to it.
func scheduleForm(sch visits.Schedule) *Form {
	f := emptyForm()
	v := f.Values
	v["slot_minutes"] = strconv.Itoa(sch.SlotMinutes)
	v["min_lead_hours"] = strconv.Itoa(sch.MinLeadHours)
	v["max_ahead_days"] = strconv.Itoa(sch.MaxAheadDays)
	v["weekly_limit"] = strconv.Itoa(sch.WeeklyLimit)
	v["cancel_hours"] = strconv.Itoa(sch.CancelHours)
	v["rate"] = strings.TrimPrefix(visits.RateDollars(sch.RateMills), "$")
	v["needs_approval"] = strconv.FormatBool(sch.NeedsApproval)
	for i, h := range sch.Hours {
		v[fmt.Sprintf("hours.%d.weekday", i)] = strconv.Itoa(int(h.Weekday))
		v[fmt.Sprintf("hours.%d.start", i)] = h.Start.String()
		v[fmt.Sprintf("hours.%d.end", i)] = h.End.String()
	}
	v["hours_rows"] = strconv.Itoa(len(sch.Hours) + blankHourRows)
	for i, c := range sch.Closures {
		v[fmt.Sprintf("closures.%d.date", i)] = c.Date.String()
		v[fmt.Sprintf("closures.%d.reason", i)] = c.Reason
	}
	v["closures_rows"] = strconv.Itoa(len(sch.Closures) + blankClosureRows)
	return f
}

// rowsOf numbers the rows of a kind the form shows.
func rowsOf(f *Form, kind string) []int {
	n, _ := strconv.Atoi(f.Values[kind+"_rows"])
	rows := make([]int, max(n, 0))
	for i := range rows {
		rows[i] = i
	}
	return rows
}

// rowCount is how many rows of a kind a sent form says it has, within bounds.
func rowCount(r *http.Request, kind string, most int) int {
	n, err := strconv.Atoi(r.PostFormValue(kind + "_rows"))
	if err != nil || n < 0 {
		return 0
	}
	return min(n, most)
}

// clockOf reads a time of day as people type it: "09:00", and "9:00" too.
func clockOf(s string) (visits.Clock, error) {
	s = strings.TrimSpace(s)
	if len(s) == 4 && s[1] == ':' {
		s = "0" + s
	}
	return visits.ParseClock(s)
}

// saveVisitSchedule reads the schedule form and saves it. What cannot be read
// (a time that is no time, a price that is no price) is given to the service as
// a value it refuses at that same input, so that one answer names every fault
// at once and nothing is saved.
func (s *Site) saveVisitSchedule(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "facility", "slot_minutes", "min_lead_hours", "max_ahead_days", "weekly_limit", "cancel_hours", "rate")
	f.Values["needs_approval"] = strconv.FormatBool(r.PostFormValue("needs_approval") == "on")
	whole := func(k string) int {
		n, err := strconv.Atoi(strings.TrimSpace(f.Values[k]))
		if err != nil {
			return -1 // refused by the service as out of its range
		}
		return n
	}
	sch := visits.Schedule{SlotMinutes: whole("slot_minutes"), MinLeadHours: whole("min_lead_hours"), MaxAheadDays: whole("max_ahead_days"),
		WeeklyLimit: whole("weekly_limit"), CancelHours: whole("cancel_hours"), NeedsApproval: f.Values["needs_approval"] == "true"}
	if mills, err := visits.ParseRate(f.Values["rate"]); err == nil {
		sch.RateMills = mills
	} else {
		sch.RateMills = -1 // refused as invalid
	}

	// The service numbers the ranges and closures it is given; hourRow and
	// closureRow turn its numbers back into the page's rows.
	var hourRow, closureRow []int
	nHours := rowCount(r, "hours", maxHourRows)
	f.Values["hours_rows"] = strconv.Itoa(nHours)
	for i := range nHours {
		p := fmt.Sprintf("hours.%d.", i)
		day, start, end := r.PostFormValue(p+"weekday"), r.PostFormValue(p+"start"), r.PostFormValue(p+"end")
		f.Values[p+"weekday"], f.Values[p+"start"], f.Values[p+"end"] = day, start, end
		if r.PostFormValue(p+"remove") == "on" {
			f.Values[p+"remove"] = "true"
			continue
		}
		if day == "" && strings.TrimSpace(start) == "" && strings.TrimSpace(end) == "" {
			continue
		}
		h := visits.Hours{Weekday: -1, Start: -1, End: -1} // each refused as invalid until read
		if n, err := strconv.Atoi(day); err == nil && n >= 0 && n <= 6 {
			h.Weekday = time.Weekday(n)
		}
		if c, err := clockOf(start); err == nil {
			h.Start = c
		}
		if c, err := clockOf(end); err == nil {
			h.End = c
		}
		sch.Hours, hourRow = append(sch.Hours, h), append(hourRow, i)
	}
	nClosures := rowCount(r, "closures", maxClosureRows)
	f.Values["closures_rows"] = strconv.Itoa(nClosures)
	for i := range nClosures {
		p := fmt.Sprintf("closures.%d.", i)
		date, reason := r.PostFormValue(p+"date"), r.PostFormValue(p+"reason")
		f.Values[p+"date"], f.Values[p+"reason"] = date, reason
		if r.PostFormValue(p+"remove") == "on" {
			f.Values[p+"remove"] = "true"
			continue
		}
		if strings.TrimSpace(date) == "" && strings.TrimSpace(reason) == "" {
			continue
		}
		c := visits.Closure{Reason: reason} // a date that is none stays zero: refused as invalid
		if d, err := visits.ParseDate(strings.TrimSpace(date)); err == nil {
			c.Date = d
		}
		sch.Closures, closureRow = append(sch.Closures, c), append(closureRow, i)
	}

	err := s.visits.SetSchedule(r.Context(), currentStaff(r).Access, f.Values["facility"], sch)
	if err != nil {
		var se *visits.ScheduleError
		if errors.As(err, &se) {
			err = &visits.ScheduleError{Fields: pageFields(se.Fields, hourRow, closureRow)}
			f.Message = s.cat.T(s.Lang(r), "portal.visits.schedule.fix")
		}
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderVisitSchedule(w, r, status, f, "", nil) })
		return
	}
	http.Redirect(w, r, backTo(r, "/facility/visits/schedule", "schedule"), http.StatusSeeOther)
}

// rowField is an input of the service's schedule: "hours[2].end", "closures[0]".
var rowField = regexp.MustCompile(`^(hours|closures)\[(\d+)\](?:\.(\w+))?$`)

// pageRow is an input of a row of the page: "hours.5.end", "closures.2".
var pageRow = regexp.MustCompile(`^(hours|closures)\.\d+(\.\w+)?$`)

// pageFields names the service's faults by the page's inputs: "hours[2].end" of
// the third range given is "hours.5.end" when that range is the page's sixth row.
func pageFields(fields map[string]string, hourRow, closureRow []int) map[string]string {
	out := map[string]string{}
	for field, code := range fields {
		m := rowField.FindStringSubmatch(field)
		if m == nil {
			out[field] = code
			continue
		}
		rows := hourRow
		if m[1] == "closures" {
			rows = closureRow
		}
		i, _ := strconv.Atoi(m[2])
		if i >= len(rows) {
			out[m[1]] = code
			continue
		}
		name := fmt.Sprintf("%s.%d", m[1], rows[i])
		if m[3] != "" {
			name += "." + m[3]
		}
		out[name] = code
	}
	return out
}

// scheduleWords words the faults of a schedule form whose words quote the
// input's limits: a price above the cap says the cap, a number out of range says
// the range. The others are worded by their code.
func (s *Site) scheduleWords(lang string, f *Form, capMills int, capped bool) map[string]string {
	said := map[string]string{}
	for field, code := range f.Errors {
		kind := field
		if m := pageRow.FindStringSubmatch(field); m != nil {
			kind = m[1] + m[2] // "hours.end", "closures.date", or "hours" for a whole range
		}
		var text string
		switch kind + ":" + code {
		case "rate:above_cap":
			text = s.cat.T(lang, "portal.visits.error.rate_above_cap", visits.RateDollars(capMills))
		case "rate:no_cap":
			text = s.cat.T(lang, "portal.visits.error.rate_no_cap")
		case "rate:invalid":
			text = s.cat.T(lang, "portal.visits.error.rate_invalid")
		case "min_lead_hours:range":
			text = s.cat.T(lang, "portal.visits.error.hours_range", 0, visits.MaxLeadHours)
		case "max_ahead_days:range":
			text = s.cat.T(lang, "portal.visits.error.days_range", 1, visits.MaxAheadDays)
		case "weekly_limit:range":
			text = s.cat.T(lang, "portal.visits.error.weekly_range", 1, visits.MaxWeeklyLimit)
		case "cancel_hours:range":
			text = s.cat.T(lang, "portal.visits.error.cancel_range", visits.MaxCancelHours)
		case "hours.weekday:invalid":
			text = s.cat.T(lang, "portal.visits.error.weekday")
		case "hours.start:invalid", "hours.end:invalid":
			text = s.cat.T(lang, "portal.visits.error.clock")
		case "hours:too_many":
			text = s.cat.T(lang, "portal.visits.error.too_many_hours", visits.MaxRanges)
		case "closures.date:invalid":
			text = s.cat.T(lang, "portal.visits.error.date")
		case "closures.reason:invalid":
			text = s.cat.T(lang, "portal.visits.error.closure_reason", visits.MaxReasonLength)
		case "closures:too_many":
			text = s.cat.T(lang, "portal.visits.error.too_many_closures", visits.MaxClosures)
		default:
			continue
		}
		said[field] = text
	}
	return said
}

// saveVisitStation makes a kiosk of the facility a visit station at a location,
// or stops it being one.
func (s *Site) saveVisitStation(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "location")
	on := r.PostFormValue("on") == "on"
	f.Values["on"] = ""
	if on {
		f.Values["on"] = "true"
	}
	kioskID := r.PathValue("kiosk")
	err := s.visits.SetStation(r.Context(), currentStaff(r).Access, kioskID, on, f.Values["location"])
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderVisitSchedule(w, r, status, nil, kioskID, f) })
		return
	}
	http.Redirect(w, r, backTo(r, "/facility/visits/schedule", "station")+"#stations-title", http.StatusSeeOther)
}
