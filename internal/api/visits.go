package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/kinlink/kinlink/internal/httpx"
	"github.com/kinlink/kinlink/internal/visits"
	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// Video visits: a family lists a contact's free slots with their price, books one
// (its price is held from the wallet), reads its visits and cancels one. Times are
// on the facility's clock: RFC 3339 with the facility's offset, and its zone's name
// beside them, so an app shows the time the facility keeps.

// slotJSON is a free slot as the app sees it.
type slotJSON struct {
	Start      string `json:"start"`
	End        string `json:"end"`
	Minutes    int    `json:"minutes"`
	PriceCents int64  `json:"price_cents"`
}

// visitJSON is a visit as the app sees it.
type visitJSON struct {
	ID           string `json:"id"`
	ContactID    string `json:"contact_id"`
	Start        string `json:"start"`
	End          string `json:"end"`
	TimeZone     string `json:"time_zone"`
	Minutes      int    `json:"minutes"`
	State        string `json:"state"`
	HeldCents    int64  `json:"held_cents"`
	ChargedCents int64  `json:"charged_cents"`
	Reason       string `json:"reason"`
}

// onClock writes an instant as RFC 3339 with the offset of the location it is in
// (the facility's: the domain gives visits and slots in its zone).
func onClock(t time.Time) string { return t.Format(time.RFC3339) }

func visitOf(v visits.Visit) visitJSON {
	return visitJSON{ID: v.ID, ContactID: v.ContactID, Start: onClock(v.Start), End: onClock(v.End), TimeZone: v.Start.Location().String(),
		Minutes: v.Minutes, State: v.State, HeldCents: v.HeldCents, ChargedCents: v.ChargedCents, Reason: v.Reason}
}

// visitSlots lists the free slots of a contact's facility with their price:
// ?from=YYYY-MM-DD (the facility's today when absent) and ?days=N (7 when absent).
func (a *API) visitSlots(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var from visits.Date
	if s := q.Get("from"); s != "" {
		d, err := visits.ParseDate(s)
		if err != nil {
			a.fail(w, r, visits.ErrBadFrom)
			return
		}
		from = d
	}
	days := 7
	if s := q.Get("days"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			a.fail(w, r, visits.ErrBadDays)
			return
		}
		days = n
	}
	offer, err := a.visits.Offer(r.Context(), auth(r).account.ID, r.PathValue("id"), from, days)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	slots := make([]slotJSON, 0, len(offer.Slots))
	for _, sl := range offer.Slots {
		slots = append(slots, slotJSON{Start: onClock(sl.Start), End: onClock(sl.End), Minutes: sl.Minutes, PriceCents: offer.Price(sl)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"facility": offer.Facility, "time_zone": offer.TimeZone.String(),
		"rate_mills": offer.RateMills, "slots": slots})
}

// bookVisit books a slot with a contact; a retry with the same Idempotency-Key and
// body answers the same visit (201, as a message's send does).
func (a *API) bookVisit(w http.ResponseWriter, r *http.Request) {
	key, ok := a.idempotencyKey(w, r)
	if !ok {
		return
	}
	var req struct {
		ContactID string `json:"contact_id"`
		Start     string `json:"start"`
		Minutes   int    `json:"minutes"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	fields := map[string]string{}
	if req.ContactID == "" {
		fields["contact_id"] = "required"
	}
	start, err := time.Parse(time.RFC3339, req.Start)
	switch {
	case req.Start == "":
		fields["start"] = "required"
	case err != nil:
		fields["start"] = "invalid"
	}
	if req.Minutes <= 0 {
		fields["minutes"] = "required"
	}
	if len(fields) > 0 {
		a.errorWith(w, r, http.StatusBadRequest, ErrorDetail{Code: "invalid_request", Fields: fields})
		return
	}
	v, err := a.visits.Book(r.Context(), auth(r).account.ID, visits.Booking{ContactID: req.ContactID, Start: start, Minutes: req.Minutes, Key: key})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, visitOf(v))
}

// listVisits lists the family's visits, the coming ones first; ?contact_id= keeps
// those with one contact.
func (a *API) listVisits(w http.ResponseWriter, r *http.Request) {
	list, err := a.visits.Visits(r.Context(), auth(r).account.ID, r.URL.Query().Get("contact_id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]visitJSON, 0, len(list))
	for _, v := range list {
		out = append(out, visitOf(v))
	}
	writeJSON(w, http.StatusOK, map[string]any{"visits": out})
}

// getVisit is one of the family's visits; another family's is not found.
func (a *API) getVisit(w http.ResponseWriter, r *http.Request) {
	v, err := a.visits.Visit(r.Context(), auth(r).account.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, visitOf(v))
}

// cancelVisit is the family cancelling a coming visit, up to the facility's cutoff:
// its hold comes back to the wallet.
func (a *API) cancelVisit(w http.ResponseWriter, r *http.Request) {
	v, err := a.visits.Cancel(r.Context(), auth(r).account.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, visitOf(v))
}

// visitSignal is the WebSocket of a family's visit: JSON signalling messages
// (offer, answer, candidate, state, restart, end; docs/visits.md). The visit is
// checked before the upgrade, so a refusal is a plain JSON answer. A visit whose
// room is on another instance has the request passed on to it as it came: that
// instance authenticates the app again, from the same token.
func (a *API) visitSignal(w http.ResponseWriter, r *http.Request) {
	seat, err := a.visits.FamilySeat(r.Context(), auth(r).account.ID, r.PathValue("id"))
	if away, ok := errors.AsType[*visits.Elsewhere](err); ok {
		a.passOn(w, r, away)
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := httpx.AcceptSocket(w, r)
	if err != nil {
		return // answered by the upgrade
	}
	conn := rtc.NewSocketConn(c)
	if err := seat.Take(r.Context(), conn); err != nil {
		a.log.Info("api: visit signalling", "visit", seat.Visit.ID, "err", err)
		_ = conn.Close("refused")
	}
}

// passOn sends an app's signalling to the instance holding the visit's room,
// which answers it (see instances.Forward).
func (a *API) passOn(w http.ResponseWriter, r *http.Request, away *visits.Elsewhere) {
	if a.instances == nil {
		a.fail(w, r, visits.ErrRoomUnreachable)
		return
	}
	a.instances.Forward(w, r, away.URL, func(w http.ResponseWriter, r *http.Request, err error) {
		a.log.Warn("api: visit signalling not passed on", "visit", r.PathValue("id"), "instance", away.Instance, "url", away.URL, "err", err)
		a.fail(w, r, visits.ErrRoomUnreachable)
	})
}

// iceServerJSON is a STUN or TURN server as WebRTC's RTCIceServer takes it.
type iceServerJSON struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// visitICEServers gives an app the TURN server of a visit with its short-lived
// credentials (an empty list where the server runs none).
func (a *API) visitICEServers(w http.ResponseWriter, r *http.Request) {
	servers, err := a.visits.ICEServers(r.Context(), auth(r).account.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]iceServerJSON, 0, len(servers))
	for _, s := range servers {
		cred, _ := s.Credential.(string)
		out = append(out, iceServerJSON{URLs: s.URLs, Username: s.Username, Credential: cred})
	}
	writeJSON(w, http.StatusOK, map[string]any{"ice_servers": out})
}
