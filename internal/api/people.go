package api

import (
	"net/http"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/facility"
)

// Families find the people they write to and add them as contacts.

type refJSON struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

type residentJSON struct {
	ID         string  `json:"id"`
	ResidentID string  `json:"resident_id"`
	FirstName  string  `json:"first_name"`
	LastName   string  `json:"last_name"`
	Agency     refJSON `json:"agency"`
	Facility   refJSON `json:"facility"`
}

func residentOf(r facility.Resident) residentJSON {
	return residentJSON{ID: r.ID, ResidentID: r.Number, FirstName: r.FirstName, LastName: r.LastName,
		Agency: refJSON{r.Agency.Code, r.Agency.Name}, Facility: refJSON{r.Facility.Code, r.Facility.Name}}
}

type contactJSON struct {
	ID       string       `json:"id"`
	Status   string       `json:"status"`
	Reason   string       `json:"reason"`
	Resident residentJSON `json:"resident"`
}

func contactOf(c contacts.Contact) contactJSON {
	return contactJSON{ID: c.ID, Status: c.Status, Reason: c.Reason, Resident: residentOf(c.Resident)}
}

func (a *API) agencies(w http.ResponseWriter, r *http.Request) {
	list, err := a.facility.Agencies(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	type agencyJSON struct {
		Code  string `json:"code"`
		Name  string `json:"name"`
		State string `json:"state"`
	}
	out := make([]agencyJSON, 0, len(list))
	for _, ag := range list {
		out = append(out, agencyJSON{ag.Code, ag.Name, ag.State})
	}
	writeJSON(w, http.StatusOK, map[string]any{"agencies": out})
}

func (a *API) residents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	found, err := a.facility.SearchResidents(r.Context(), facility.ResidentSearch{AgencyCode: q.Get("agency"),
		Number: q.Get("resident_id"), LastName: q.Get("last_name"), FirstName: q.Get("first_name")})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]residentJSON, 0, len(found))
	for _, res := range found {
		out = append(out, residentOf(res))
	}
	writeJSON(w, http.StatusOK, map[string]any{"residents": out})
}

func (a *API) addContact(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Resident string `json:"resident"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	c, err := a.contacts.Request(r.Context(), auth(r).account.ID, req.Resident)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, contactOf(c))
}

func (a *API) listContacts(w http.ResponseWriter, r *http.Request) {
	list, err := a.contacts.OfAccount(r.Context(), auth(r).account.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]contactJSON, 0, len(list))
	for _, c := range list {
		out = append(out, contactOf(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"contacts": out})
}
