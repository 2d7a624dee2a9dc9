package web

import (
	"math"
	"net/http"
	"net/url"

	"github.com/kinlink/kinlink/internal/facility"
)

// KiosksData is the portal's list of kiosks with the enrolment form.
type KiosksData struct {
	Kiosks     []facility.Kiosk
	Facilities []facility.Facility
	Names      map[string]string // facility names by id
	Form       *Form
	NewCode    string // the one-time code just made, shown once
	NewName    string
	// Paused is how many minutes (rounded up) each kiosk paused after too many wrong
	// PINs still refuses sign-ins, by kiosk id; staff may end the pause.
	Paused  map[string]int
	Cleared string // the kiosk whose pause was just ended
}

func (s *Site) kiosksData(r *http.Request, f *Form) (KiosksData, error) {
	u := currentStaff(r)
	all, err := s.fac.Facilities(r.Context(), u.Access.AgencyID)
	if err != nil {
		return KiosksData{}, err
	}
	d := KiosksData{Form: f, Names: map[string]string{}}
	for _, fac := range all {
		d.Names[fac.ID] = fac.Name
		if u.Access.Has(facility.FacilityAdmin, fac.ID) {
			d.Facilities = append(d.Facilities, fac)
		}
	}
	if d.Kiosks, err = s.fac.Kiosks(r.Context(), u.Access); err != nil {
		return d, err
	}
	d.Paused = map[string]int{}
	for _, k := range d.Kiosks {
		if !k.Enrolled || k.Revoked {
			continue
		}
		if p, err := s.fac.KioskPaused(r.Context(), k.ID); err != nil {
			return d, err
		} else if p > 0 {
			d.Paused[k.ID] = int(math.Ceil(p.Minutes()))
		}
	}
	return d, nil
}

func (s *Site) kiosksPage(w http.ResponseWriter, r *http.Request) {
	if !currentStaff(r).Access.Has(facility.FacilityAdmin, "") {
		s.Error(w, r, http.StatusForbidden)
		return
	}
	d, err := s.kiosksData(r, emptyForm())
	if err != nil {
		s.log.Error("web: kiosks", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	if c := r.URL.Query().Get("cleared"); c != "" {
		for _, k := range d.Kiosks {
			if k.ID == c {
				d.Cleared = k.Name
			}
		}
	}
	s.renderPortal(w, r, http.StatusOK, "portal_kiosks", "portal.kiosks.title", d)
}

func (s *Site) createKiosk(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	f := newForm(r, "name", "facility")
	k, code, err := s.fac.CreateKiosk(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access.AgencyID, f.Values["facility"], f.Values["name"])
	show := func(status int, f *Form) {
		d, err := s.kiosksData(r, f)
		if err != nil {
			s.failed(w, r, err)
			return
		}
		if status == http.StatusOK {
			d.NewCode, d.NewName, d.Form = code, k.Name, emptyForm()
		}
		s.renderPortal(w, r, status, "portal_kiosks", "portal.kiosks.title", d)
	}
	if err != nil {
		s.refuse(w, r, f, err, show)
		return
	}
	show(http.StatusOK, f)
}

func (s *Site) revokeKiosk(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	err := s.fac.RevokeKiosk(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	http.Redirect(w, r, "/facility/kiosks", http.StatusSeeOther)
}

// unpauseKiosk ends a kiosk's pause after wrong PINs at once (audited), so that the
// residents waiting can sign in.
func (s *Site) unpauseKiosk(w http.ResponseWriter, r *http.Request) {
	u := currentStaff(r)
	id := r.PathValue("id")
	if _, err := s.fac.ClearKioskPause(r.Context(), facility.Actor{AccountID: u.Account.ID}, u.Access, id); err != nil {
		s.answer(w, r, err)
		return
	}
	http.Redirect(w, r, "/facility/kiosks?cleared="+url.QueryEscape(id), http.StatusSeeOther)
}
