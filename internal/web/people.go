package web

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/facility"
)

// "My people": a family's contacts, and finding a person to add.

// PeopleData is the my-people page with its search.
type PeopleData struct {
	Contacts []contacts.Contact
	Agencies []facility.Agency
	Form     *Form
	Results  []facility.Resident
	Searched bool
	Added    string // the name of the person just added
	// NewReplies counts each contact's replies the family has not seen yet.
	NewReplies map[string]int
	// SendMoney are the contacts (by id) the family may send money to, and
	// SendMoneyFound the residents found whose agency takes deposits from anyone.
	SendMoney, SendMoneyFound map[string]bool
}

func (s *Site) peopleData(r *http.Request, f *Form) (PeopleData, error) {
	acct := currentAccount(r)
	list, err := s.contacts.OfAccount(r.Context(), acct.ID)
	if err != nil {
		return PeopleData{}, err
	}
	agencies, err := s.fac.Agencies(r.Context())
	if err != nil {
		return PeopleData{}, err
	}
	contactIDs := make([]string, len(list))
	for i, c := range list {
		contactIDs[i] = c.ID
	}
	replies, err := s.messages.NewReplies(r.Context(), acct.ID, contactIDs)
	if err != nil {
		return PeopleData{}, err
	}
	// Whoever answered comes first, the rest in the order they were added.
	slices.SortStableFunc(list, func(a, b contacts.Contact) int { return min(replies[b.ID], 1) - min(replies[a.ID], 1) })
	d := PeopleData{Contacts: list, Agencies: agencies, Form: f, NewReplies: replies, SendMoney: map[string]bool{}, SendMoneyFound: map[string]bool{}}
	if s.deposits != nil {
		money := s.moneyRules()
		for _, c := range list {
			if d.SendMoney[c.ID], err = money.toContact(r.Context(), c); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}

// moneyRules reads the agencies' deposit policies for one page.
func (s *Site) moneyRules() *moneyRules { return &moneyRules{s: s, anyoneAt: map[string]bool{}} }

func (s *Site) peoplePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := emptyForm()
	for _, k := range []string{"agency", "resident_id", "last_name", "first_name"} {
		f.Values[k] = q.Get(k)
	}
	d, err := s.peopleData(r, f)
	if err != nil {
		s.log.Error("web: people", "err", err)
		s.Error(w, r, http.StatusInternalServerError)
		return
	}
	status := http.StatusOK
	if f.Values["agency"] != "" {
		d.Searched = true
		d.Results, err = s.fac.SearchResidents(r.Context(), facility.ResidentSearch{AgencyCode: f.Values["agency"],
			Number: f.Values["resident_id"], LastName: f.Values["last_name"], FirstName: f.Values["first_name"]})
		if st, refused := s.apply(w, r, f, err); refused {
			d.Searched, status = false, st
			err = nil
		}
		// Where the agency takes deposits from anyone, a person found can be sent
		// money without being added first.
		if s.deposits != nil {
			money := s.moneyRules()
			for _, res := range d.Results {
				if err == nil && res.Status == "active" {
					d.SendMoneyFound[res.ID], err = money.fromAnyone(r.Context(), res.Agency.ID)
				}
			}
		}
		switch {
		case err != nil:
			s.log.Error("web: people search", "err", err)
			s.Error(w, r, http.StatusInternalServerError)
			return
		}
	}
	// The name comes from the family's own contact, not from the URL.
	if added := q.Get("added"); added != "" {
		for _, c := range d.Contacts {
			if c.ID == added {
				d.Added = c.Resident.FirstName + " " + c.Resident.LastName
			}
		}
	}
	s.render(w, r, status, "people", "people.title", d)
}

// renderPeople shows the family's people with a form's refusal, without a search.
func (s *Site) renderPeople(w http.ResponseWriter, r *http.Request, status int, f *Form) {
	d, err := s.peopleData(r, f)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "people", "people.title", d)
}

func (s *Site) addPerson(w http.ResponseWriter, r *http.Request) {
	c, err := s.contacts.Request(r.Context(), currentAccount(r).ID, r.PostFormValue("resident"))
	if err != nil {
		s.refuse(w, r, emptyForm(), err, func(status int, f *Form) { s.renderPeople(w, r, status, f) })
		return
	}
	http.Redirect(w, r, "/people?added="+url.QueryEscape(c.ID), http.StatusSeeOther)
}
