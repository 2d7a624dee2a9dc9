package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/i18n"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/visits"
)

// A family's video visits: the free times with one of their people, the
// confirmation that names the price before anything is held, their visits, and
// one visit with its cancellation. Times are the facility's (visits.js adds the
// reader's own beside them where it differs); every rule is the visits service's.

// visitDays is how many days the booking page lists at once.
const visitDays = 7

// visitRoutes are the family's visit pages, where the server offers visits.
func (s *Site) visitRoutes() []httpx.Route {
	if s.visits == nil {
		return nil
	}
	family := s.requireLogin
	anyoneAt := func(h http.HandlerFunc) http.HandlerFunc { return h }
	return []httpx.Route{
		httpx.On("GET /people/{id}/visits/new", family, s.bookVisitPage),
		httpx.On("GET /people/{id}/visits/confirm", family, s.confirmVisitPage),
		httpx.On("POST /people/{id}/visits", family, s.bookVisit),
		httpx.On("GET /visits", family, s.visitsPage),
		httpx.On("GET /visits/check", family, s.visitCheckPage),
		httpx.On("GET /visits/check/signal", family, s.visitCheckSignal),
		httpx.On("GET /visits/{id}", family, s.visitPage),
		httpx.On("POST /visits/{id}/cancel", family, s.cancelVisit),
		httpx.On("GET /visits/{id}/room", family, s.familyRoomPage),
		httpx.On("GET /visits/{id}/signal", family, s.familySignal),
		httpx.On("GET /kiosk/visits/{id}", anyoneAt, s.kioskRoomPage),        // the kiosk is checked by the handler
		httpx.On("GET /kiosk/visits/{id}/signal", anyoneAt, s.stationSignal), // the kiosk is checked by the handler
	}
}

// SlotChoice is one free time as the booking page offers it.
type SlotChoice struct {
	Value string    // what the form sends back: the start (RFC 3339, the facility's offset) and the minutes
	Start time.Time // for the reader's own time beside the facility's
	Times string    // "10:00–10:20 EST"
	Price string
}

// SlotDay is a day's free times.
type SlotDay struct {
	Day   string // "Tue Dec 15"
	Slots []SlotChoice
}

// BookData is the booking page: the free times of the days from From, or why
// there are none.
type BookData struct {
	Contact contacts.Contact
	Form    *Form
	// Refused is a contact that may not book visits now (Form.Message says why).
	Refused  bool
	Facility string
	Zone     string // the facility's time zone, for visits.js
	Rate     string // a minute's price
	Minutes  int    // the length of the times listed
	Held     string // what such a time holds from the wallet
	Days     []SlotDay
	// Window words the booking window: how soon and how far ahead.
	Window     string
	Empty      string // why no time is listed
	Prev, Next string // the first days of the pages before and after, if any
	From, To   string // the days listed, in words
}

// slotValue is how a form names a slot: its start on the facility's clock and its
// length, "2026-12-15T10:00:00-05:00 20".
func slotValue(sl visits.Slot) string {
	return sl.Start.Format(time.RFC3339) + " " + strconv.Itoa(sl.Minutes)
}

// parseSlot reads a slot a form sent back.
func parseSlot(v string) (start time.Time, minutes int, ok bool) {
	at, n, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found {
		return time.Time{}, 0, false
	}
	start, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return time.Time{}, 0, false
	}
	minutes, err = strconv.Atoi(n)
	return start, minutes, err == nil && minutes > 0 && minutes <= visits.MaxSlotMinutes
}

func (s *Site) bookVisitPage(w http.ResponseWriter, r *http.Request) {
	var from visits.Date
	if q := r.URL.Query().Get("from"); q != "" {
		d, err := visits.ParseDate(q)
		if err != nil || !d.Valid() {
			s.Error(w, r, http.StatusBadRequest)
			return
		}
		from = d
	}
	s.renderBooking(w, r, http.StatusOK, from, emptyForm())
}

// renderBooking shows the free times of the days from from (zero: the facility's
// today) with f's message above them, such as why the time chosen could not be
// booked.
func (s *Site) renderBooking(w http.ResponseWriter, r *http.Request, status int, from visits.Date, f *Form) {
	acct, lang := currentAccount(r), s.Lang(r)
	c, err := s.contacts.Get(r.Context(), acct.ID, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	d := BookData{Contact: c, Form: f, Facility: c.Resident.Facility.Name}
	offer, err := s.visits.Offer(r.Context(), acct.ID, c.ID, from, visitDays)
	if err != nil {
		// A contact that may not book: the page says why, in place of the times.
		if p, ok := problem.As(err); ok && p.Kind == problem.NotFound {
			s.answer(w, r, err)
			return
		}
		if st, refused := s.apply(w, r, f, err); refused {
			d.Refused = true
			w.Header().Set("Cache-Control", "no-store")
			s.render(w, r, st, "visits_book", "visits.book.title", d)
			return
		}
		s.failed(w, r, err)
		return
	}
	sch, err := s.visits.Schedule(r.Context(), c.Resident.Facility.ID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	today := visits.DateOf(time.Now().In(offer.TimeZone))
	if from.IsZero() {
		from = today
	}
	if from.Before(today) {
		http.Redirect(w, r, "/people/"+c.ID+"/visits/new", http.StatusSeeOther)
		return
	}
	d.Facility, d.Zone = offer.Facility, offer.TimeZone.String()
	d.Rate, d.Minutes = visits.RateDollars(offer.RateMills), sch.SlotMinutes
	d.Held = ledger.Dollars(visits.PriceCents(offer.RateMills, sch.SlotMinutes))
	d.Window = s.cat.T(lang, "visits.book.window", s.cat.Duration(lang, time.Duration(sch.MinLeadHours)*time.Hour), sch.MaxAheadDays)
	last := from.AddDays(visitDays - 1)
	d.From, d.To = i18n.LocalDay(lang, noonOf(from, offer.TimeZone)), i18n.LocalDay(lang, noonOf(last, offer.TimeZone))
	for _, sl := range offer.Slots {
		day := i18n.LocalDay(lang, sl.Start)
		if len(d.Days) == 0 || d.Days[len(d.Days)-1].Day != day {
			d.Days = append(d.Days, SlotDay{Day: day})
		}
		days := &d.Days[len(d.Days)-1]
		days.Slots = append(days.Slots, SlotChoice{Value: slotValue(sl), Start: sl.Start, Times: i18n.LocalTimes(sl.Start, sl.End),
			Price: ledger.Dollars(offer.Price(sl))})
	}
	// The window ends MaxAheadDays after today: no page after it.
	if next := from.AddDays(visitDays); !today.AddDays(sch.MaxAheadDays).Before(next) {
		d.Next = next.String()
	}
	if today.Before(from) {
		prev := from.AddDays(-visitDays)
		if prev.Before(today) {
			prev = today
		}
		d.Prev = prev.String()
	}
	if len(offer.Slots) == 0 {
		switch {
		case len(sch.Hours) == 0:
			d.Empty = s.cat.T(lang, "visits.book.no_hours")
		case d.Next != "":
			d.Empty = s.cat.T(lang, "visits.book.none_try_later", d.From, d.To)
		default:
			d.Empty = s.cat.T(lang, "visits.book.none", d.From, d.To)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "visits_book", "visits.book.title", d)
}

// noonOf is a date at noon on a clock, to write it as a day.
func noonOf(d visits.Date, loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, loc)
}

// ConfirmData is the step before booking: what, when, and what it costs.
type ConfirmData struct {
	Contact      contacts.Contact
	Facility     string
	When         string // on the facility's clock
	Start        time.Time
	Zone         string
	Minutes      int
	Rate         string
	Held         string
	Balance      string
	After        string // the balance once the visit is held
	Slot         string
	Key          string
	Form         *Form
	NeedsMoney   bool
	Back         string // this page, for the wallet to return to
	NeedsApprove bool
}

func (s *Site) confirmVisitPage(w http.ResponseWriter, r *http.Request) {
	s.renderConfirm(w, r, http.StatusOK, r.URL.Query().Get("slot"), emptyForm())
}

// renderConfirm shows the confirmation of a slot, if the facility still offers it;
// otherwise the free times again, saying so.
func (s *Site) renderConfirm(w http.ResponseWriter, r *http.Request, status int, slot string, f *Form) {
	acct, lang := currentAccount(r), s.Lang(r)
	start, minutes, ok := parseSlot(slot)
	if !ok {
		s.refuse(w, r, emptyForm(), visits.ErrNoSlot, func(status int, f *Form) { s.renderBooking(w, r, status, visits.Date{}, f) })
		return
	}
	c, err := s.contacts.Get(r.Context(), acct.ID, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	day := visits.DateOf(start) // the start carries the facility's offset
	again := func(status int, f *Form) { s.renderBooking(w, r, status, visits.Date{}, f) }
	offer, err := s.visits.Offer(r.Context(), acct.ID, c.ID, day, 1)
	if err != nil {
		s.refuse(w, r, emptyForm(), err, again)
		return
	}
	i := slices.IndexFunc(offer.Slots, func(sl visits.Slot) bool { return sl.Start.Equal(start) && sl.Minutes == minutes })
	if i < 0 {
		// Taken since the list was shown, or never offered.
		s.refuse(w, r, emptyForm(), visits.ErrNoSlot, again)
		return
	}
	sl := offer.Slots[i]
	balance, err := s.wallets.Balance(r.Context(), acct.ID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	sch, err := s.visits.Schedule(r.Context(), c.Resident.Facility.ID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	held := offer.Price(sl)
	d := ConfirmData{Contact: c, Facility: offer.Facility, When: i18n.LocalSpan(lang, sl.Start, sl.End), Start: sl.Start, Zone: offer.TimeZone.String(),
		Minutes: sl.Minutes, Rate: visits.RateDollars(offer.RateMills), Held: ledger.Dollars(held), Balance: ledger.Dollars(balance),
		After: ledger.Dollars(balance - held), Slot: slotValue(sl), Key: formKey(f), Form: f, NeedsMoney: balance < held || status == http.StatusPaymentRequired,
		Back: "/people/" + c.ID + "/visits/confirm?" + url.Values{"slot": {slotValue(sl)}}.Encode(), NeedsApprove: sch.NeedsApproval}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "visits_confirm", "visits.confirm.title", d)
}

func (s *Site) bookVisit(w http.ResponseWriter, r *http.Request) {
	acct, contact := currentAccount(r), r.PathValue("id")
	slot := r.PostFormValue("slot")
	start, minutes, ok := parseSlot(slot)
	if !ok {
		s.refuse(w, r, emptyForm(), visits.ErrNoSlot, func(status int, f *Form) { s.renderBooking(w, r, status, visits.Date{}, f) })
		return
	}
	v, err := s.visits.Book(r.Context(), acct.ID, visits.Booking{ContactID: contact, Start: start, Minutes: minutes, Key: r.PostFormValue("key")})
	if err == nil {
		http.Redirect(w, r, "/visits/"+v.ID+"?booked=1", http.StatusSeeOther)
		return
	}
	if errors.Is(err, visits.ErrNoFunds) {
		// The confirmation again, with the wallet to add money and come back.
		f := emptyForm()
		f.Values["key"] = r.PostFormValue("key")
		s.refuse(w, r, f, err, func(status int, f *Form) { s.renderConfirm(w, r, status, slot, f) })
		return
	}
	// Any other refusal (the time just taken, the week full…): the free times of
	// that week again, with the words.
	s.refuse(w, r, emptyForm(), err, func(status int, f *Form) { s.renderBooking(w, r, status, visits.DateOf(start), f) })
}

// VisitView is a visit as a family reads it.
type VisitView struct {
	visits.Visit
	Person   string
	Facility string
	When     string // on the facility's clock
	Zone     string
	State    string // in words
	Why      string // why it ended without a visit, in words
	Money    string // what is held, charged or given back, in words
	Rate     string // a minute's price
	Coming   bool
}

// visitView words a visit for its family.
func (s *Site) visitView(lang string, v visits.Visit, person, facilityName string, now time.Time) VisitView {
	vv := VisitView{Visit: v, Person: person, Facility: facilityName, When: i18n.LocalSpan(lang, v.Start, v.End), Zone: v.Start.Location().String(),
		State: s.cat.T(lang, "visits.state."+v.State), Rate: visits.RateDollars(v.RateMills)}
	booked := v.State == visits.Requested || v.State == visits.Scheduled || v.State == visits.Live
	vv.Coming = booked && v.End.After(now)
	switch v.State {
	case visits.Cancelled:
		switch {
		case v.Reason == "":
			vv.Why = s.cat.T(lang, "visits.why.family")
		case systemReason(v.Reason):
			vv.Why = s.cat.T(lang, "visits.why."+v.Reason)
		default:
			vv.Why = s.cat.T(lang, "visits.why.staff", v.Reason)
		}
	case visits.Rejected:
		vv.Why = s.cat.T(lang, "visits.why.rejected", v.Reason)
	case visits.Missed, visits.Failed:
		if systemReason(v.Reason) {
			vv.Why = s.cat.T(lang, "visits.why."+v.Reason)
		}
	}
	switch {
	case v.HeldCents == 0:
		vv.Money = s.cat.T(lang, "visits.money.free")
	case booked:
		vv.Money = s.cat.T(lang, "visits.money.held", ledger.Dollars(v.HeldCents))
	case v.ChargedCents > 0:
		vv.Money = s.cat.T(lang, "visits.money.charged", ledger.Dollars(v.ChargedCents), ledger.Dollars(v.HeldCents-v.ChargedCents))
	default:
		vv.Money = s.cat.T(lang, "visits.money.released", ledger.Dollars(v.HeldCents))
	}
	return vv
}

// systemReason reports whether a reason is one of the system's codes, which the
// pages word, rather than a staff member's own words.
func systemReason(reason string) bool {
	switch reason {
	case visits.ReasonReleased, visits.ReasonTransferred, visits.ReasonRestricted, visits.ReasonNotDecided, visits.ReasonNoOneJoined:
		return true
	}
	return false
}

// VisitsData is the family's visits: the coming ones first, then the past.
type VisitsData struct {
	Coming, Past []VisitView
}

func (s *Site) visitsPage(w http.ResponseWriter, r *http.Request) {
	acct, lang := currentAccount(r), s.Lang(r)
	list, err := s.visits.FamilyVisits(r.Context(), acct.ID)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	var d VisitsData
	now := time.Now()
	for _, v := range list {
		vv := s.visitView(lang, v.Visit, v.Person, v.Facility, now)
		if vv.Coming {
			d.Coming = append(d.Coming, vv)
		} else {
			d.Past = append(d.Past, vv)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "visits", "visits.title", d)
}

// VisitData is one visit's page.
type VisitData struct {
	Visit  VisitView
	Form   *Form
	Booked bool // just booked
	Done   bool // just cancelled
	// CanCancel offers the cancellation until Until; Closed says it could be
	// cancelled only until then.
	CanCancel, Closed bool
	Until             string
	// Join links the visit's room while its waiting room is open; Opens says when
	// it opens, for a visit approved and still to come.
	Join  bool
	Opens string
}

func (s *Site) visitPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.renderVisit(w, r, http.StatusOK, emptyForm(), q.Get("booked") == "1", q.Get("cancelled") == "1")
}

func (s *Site) renderVisit(w http.ResponseWriter, r *http.Request, status int, f *Form, booked, cancelled bool) {
	acct, lang := currentAccount(r), s.Lang(r)
	fv, err := s.visits.FamilyVisit(r.Context(), acct.ID, r.PathValue("id"))
	if err != nil {
		s.answer(w, r, err)
		return
	}
	v, now := fv.Visit, time.Now()
	d := VisitData{Visit: s.visitView(lang, v, fv.Person, fv.Facility, now), Form: f, Booked: booked, Done: cancelled}
	d.Join = waitingRoomOpen(v, now)
	if v.State == visits.Scheduled && now.Before(v.Start.Add(-visits.WaitingRoom)) {
		d.Opens = i18n.Local(lang, v.Start.Add(-visits.WaitingRoom))
	}
	if !fv.CancelUntil.IsZero() {
		d.Until = i18n.Local(lang, fv.CancelUntil)
		d.CanCancel = now.Before(fv.CancelUntil)
		d.Closed = !d.CanCancel
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, "visit", "visits.visit.title", d)
}

func (s *Site) cancelVisit(w http.ResponseWriter, r *http.Request) {
	v, err := s.visits.Cancel(r.Context(), currentAccount(r).ID, r.PathValue("id"))
	if err != nil {
		s.refuse(w, r, emptyForm(), err, func(status int, f *Form) { s.renderVisit(w, r, status, f, false, false) })
		return
	}
	http.Redirect(w, r, "/visits/"+v.ID+"?cancelled=1", http.StatusSeeOther)
}
