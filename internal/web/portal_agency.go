package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/kinlink/kinlink/internal/facility"
)

// AgencyData is the agency page: policies and facilities.
type AgencyData struct {
	Agency     facility.Agency
	Facilities []facility.Facility
	Policies   *Form
	Facility   *Form
	Done       string
	// Offers are the server's services: the policies of one it does not offer are
	// not shown (and keep their stored values) until it exists.
	Offers facility.Offers
}

func (s *Site) renderAgency(w http.ResponseWriter, r *http.Request, status int, policies, fac *Form) {
	u := currentStaff(r)
	if !u.Access.Has(facility.AgencyAdmin, "") {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	agency, err := s.fac.Agency(r.Context(), u.Access.AgencyID)
	facilities, ferr := s.fac.Facilities(r.Context(), u.Access.AgencyID)
	if err != nil || ferr != nil {
		s.log.Error("web: agency page", "err", errors.Join(err, ferr))
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	if len(policies.Values) == 0 {
		policies.Values = map[string]string{
			"stamp_price_cents": strconv.Itoa(agency.StampPriceCents), "message_max_chars": strconv.Itoa(agency.MessageMaxChars),
			"videogram_seconds": strconv.Itoa(agency.VideoGramSeconds), "message_retention_days": strconv.Itoa(agency.MessageRetentionDays),
			"recording_retention_days": strconv.Itoa(agency.RecordingRetentionDays), "video_kbps": kbpsField(agency.VideoKbps),
			"approval_for_messages": strconv.FormatBool(agency.ApprovalForMessages), "approval_for_visits": strconv.FormatBool(agency.ApprovalForVisits),
		}
	}
	d := AgencyData{Agency: agency, Facilities: facilities, Policies: policies, Facility: fac, Offers: s.offers}
	if done := r.URL.Query().Get("done"); done == "policies" || done == "facility" {
		d.Done = "portal.agency.done." + done
	}
	s.renderPortal(w, r, status, "portal_agency", "portal.agency.title", d)
}

func (s *Site) agencyPage(w http.ResponseWriter, r *http.Request) {
	s.renderAgency(w, r, http.StatusOK, emptyForm(), emptyForm())
}

func (s *Site) savePolicies(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "stamp_price_cents", "message_max_chars", "videogram_seconds", "message_retention_days", "recording_retention_days", "video_kbps")
	// The policies of a service this server does not offer are not on the form: they
	// keep what is stored, for the day the service exists.
	if !s.offers.Has(facility.VideoGrams) || !s.offers.Has(facility.Visits) {
		agency, err := s.fac.Agency(r.Context(), currentStaff(r).Access.AgencyID)
		if err != nil {
			s.answer(w, r, err)
			return
		}
		if !s.offers.Has(facility.VideoGrams) {
			f.Values["videogram_seconds"] = strconv.Itoa(agency.VideoGramSeconds)
		}
		if !s.offers.Has(facility.Visits) {
			f.Values["recording_retention_days"] = strconv.Itoa(agency.RecordingRetentionDays)
			f.Values["video_kbps"] = kbpsField(agency.VideoKbps)
		}
	}
	f.Values["approval_for_messages"] = strconv.FormatBool(r.PostFormValue("approval_for_messages") == "on")
	f.Values["approval_for_visits"] = strconv.FormatBool(r.PostFormValue("approval_for_visits") == "on")
	num := func(k string) int {
		n, err := strconv.Atoi(f.Values[k])
		if err != nil {
			f.Errors[k] = "range"
			return -1
		}
		return n
	}
	p := facility.Policies{StampPriceCents: num("stamp_price_cents"), MessageMaxChars: num("message_max_chars"), VideoGramSeconds: num("videogram_seconds"),
		MessageRetentionDays: num("message_retention_days"), RecordingRetentionDays: num("recording_retention_days"),
		ApprovalForMessages: f.Values["approval_for_messages"] == "true", ApprovalForVisits: f.Values["approval_for_visits"] == "true"}
	if f.Values["video_kbps"] != "" { // empty: the server's setting
		p.VideoKbps = num("video_kbps")
	}
	err := s.fac.UpdatePolicies(r.Context(), s.actor(r), currentStaff(r).Access.AgencyID, p)
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderAgency(w, r, status, f, emptyForm()) })
		return
	}
	http.Redirect(w, r, "/facility/agency?done=policies", http.StatusSeeOther)
}

func (s *Site) addFacility(w http.ResponseWriter, r *http.Request) {
	f := newForm(r, "code", "name", "type", "timezone", "address", "population")
	population, perr := strconv.Atoi(f.Values["population"])
	if perr != nil {
		population = -1
	}
	_, err := s.fac.CreateFacility(r.Context(), s.actor(r), currentStaff(r).Access.AgencyID, facility.FacilityInput{
		Code: f.Values["code"], Name: f.Values["name"], Kind: f.Values["type"], TimeZone: f.Values["timezone"],
		Address: f.Values["address"], Population: population})
	if err != nil {
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderAgency(w, r, status, emptyForm(), f) })
		return
	}
	http.Redirect(w, r, "/facility/agency?done=facility", http.StatusSeeOther)
}

// kbpsField is an agency's video cap as its field shows it: empty for the
// server's setting.
func kbpsField(kbps int) string {
	if kbps == 0 {
		return ""
	}
	return strconv.Itoa(kbps)
}
