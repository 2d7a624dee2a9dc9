package visits

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/ids"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
)

// States of a visit. A booking is requested (waiting for a visitation officer) or
// scheduled at once; a scheduled visit goes live when both sides join and is
// completed when it ends. The rest are ends without a visit: cancelled (by the
// family, by staff or because the resident left), rejected by staff, missed (no
// one connected) or failed (the system could not connect it).
const (
	Requested = "requested"
	Scheduled = "scheduled"
	Live      = "live"
	Completed = "completed"
	Cancelled = "cancelled"
	Rejected  = "rejected"
	Missed    = "missed"
	Failed    = "failed"
)

// booked are the states in which a visit holds its station, its resident and its
// money.
var booked = []string{Requested, Scheduled, Live}

// Refusals of a booking, each with its stable code.
var (
	ErrNotFound = problem.Declare(problem.NotFound, "not_found", "visits: not found")
	// ErrNotApproved is a contact that may not visit: denied, or not yet approved
	// where the agency approves its visitors.
	ErrNotApproved = problem.Declare(problem.Forbidden, "contact_not_approved", "visits: this contact is not on the approved visitor list").
			Say("visits.refused.not_approved")
	ErrNoVideo = problem.Declare(problem.Forbidden, "no_video", "visits: the facility does not allow this person video visits").
			Say("visits.refused.no_video")
	// ErrResidentGone is a resident released, or transferred to a facility that
	// does not offer visits.
	ErrResidentGone = problem.Declare(problem.Conflict, "resident_not_here", "visits: the person is no longer at a facility that offers visits").
			Say("visits.refused.gone")
	ErrWeeklyLimit = problem.Declare(problem.Conflict, "weekly_limit", "visits: the person has as many visits that week as the facility allows").
			Say("visits.refused.weekly_limit")
	// ErrSlotTaken is a slot every station of which is booked: someone else took
	// the last one first.
	ErrSlotTaken = problem.Declare(problem.Conflict, "slot_taken", "visits: the time was just taken").
			Say("visits.refused.slot_taken")
	ErrResidentBusy = problem.Declare(problem.Conflict, "resident_busy", "visits: the person already has a visit at that time").
			Say("visits.refused.resident_busy")
	// ErrNoSlot is a time that is no slot the facility offers now: not on its
	// schedule, closed, or outside the booking window.
	ErrNoSlot = problem.Declare(problem.Invalid, "invalid_request", "visits: the facility offers no visit of that length at that time").
			On("start", "not_offered").Say("visits.refused.no_slot")
	ErrNoFunds = problem.Declare(problem.Payment, "insufficient_balance", "visits: not enough money in the wallet").
			Say("visits.refused.no_funds")
	ErrKeyReused = problem.Declare(problem.Conflict, "idempotency_key_reused", "visits: the idempotency key was used for another booking").
			Say("visits.refused.key_reused")
	ErrBadKey = problem.Declare(problem.Invalid, "invalid_idempotency_key", "visits: the idempotency key is not one we make").
			On("Idempotency-Key", "invalid").Say("visits.refused.key_reused")
)

// Visit is one booked video visit.
type Visit struct {
	ID         string
	FacilityID string
	StationID  string // the kiosk
	ResidentID string
	ContactID  string
	AccountID  string
	// Start and End are in the facility's zone.
	Start, End time.Time
	Minutes    int
	State      string
	// Reason is why a visit ended without one: a staff member's words, or a code
	// of the system's ("resident_released", "not_decided"…).
	Reason       string
	RateMills    int
	HeldCents    int64
	ChargedCents int64
	Privileged   bool
	CreatedAt    time.Time
	// Connected is the time both sides' media flowed (with the short drops
	// between), what the charge is counted from; EndedBy who ended it: family,
	// resident, staff:<id>, system.
	Connected time.Duration
	EndedBy   string
}

// Booking is what a family asks for: a slot of a contact's facility.
type Booking struct {
	ContactID string
	Start     time.Time
	Minutes   int
	// Key makes a retry of the same booking return the first one (an app's
	// Idempotency-Key, a form's token).
	Key string
}

// Offer is what a family may book with a contact: the facility's free slots and
// their price, in the facility's zone.
type Offer struct {
	Facility  string // its name
	TimeZone  *time.Location
	RateMills int
	Slots     []Slot
}

// Price is what a slot costs.
func (o Offer) Price(sl Slot) int64 { return PriceCents(o.RateMills, sl.Minutes) }

// bookable is a contact a family may book visits with, and where.
type bookable struct {
	contact contacts.Contact
	place   place
}

// bookable checks that a family's contact may have visits: approved (or pending
// where the agency does not approve visitors), the resident active at a facility
// and not restricted from video.
func (s *Service) bookable(ctx context.Context, accountID, contactID string) (bookable, error) {
	if !ids.Valid(contactID) {
		return bookable{}, ErrNotFound
	}
	c, err := s.contacts.Get(ctx, accountID, contactID)
	if errors.Is(err, contacts.ErrNotFound) {
		return bookable{}, ErrNotFound
	}
	if err != nil {
		return bookable{}, err
	}
	agency, err := s.fac.Agency(ctx, c.Resident.Agency.ID)
	if err != nil {
		return bookable{}, err
	}
	switch {
	case c.Status == contacts.Denied, c.Status != contacts.Approved && agency.ApprovalForVisits:
		return bookable{}, ErrNotApproved
	case c.Resident.Status != "active":
		return bookable{}, ErrResidentGone
	case slices.Contains(c.Resident.Restrictions, "no_video"):
		return bookable{}, ErrNoVideo
	}
	p, err := s.place(ctx, c.Resident.Facility.ID)
	if err != nil {
		return bookable{}, err
	}
	return bookable{contact: c, place: p}, nil
}

// Offer lists the free slots of a contact's facility on days local dates from
// from, with their price; the first day defaults to the facility's today.
func (s *Service) Offer(ctx context.Context, accountID, contactID string, from Date, days int) (Offer, error) {
	b, err := s.bookable(ctx, accountID, contactID)
	if err != nil {
		return Offer{}, err
	}
	now := s.now()
	if from.IsZero() {
		from = b.place.today(now)
	}
	sch, err := loadSchedule(ctx, s.db.Read(), b.place.ID, from)
	if err != nil {
		return Offer{}, err
	}
	slots, err := s.FreeSlots(ctx, b.place.ID, from, days, now)
	if err != nil {
		return Offer{}, err
	}
	return Offer{Facility: b.place.Name, TimeZone: b.place.loc, RateMills: sch.RateMills, Slots: slots}, nil
}

// Book books a visit with a family's contact in a free slot of the resident's
// facility, and holds its price from the family's wallet until the visit ends:
// the minutes that connected are charged then, and the rest comes back. Where the
// facility approves visits it waits for a visitation officer; otherwise it is
// scheduled at once.
//
// Two families asking for the last station of a slot at once: one gets it, the
// other is told ErrSlotTaken and keeps their money. Bookings at a facility are
// taken one at a time (a lock per facility on PostgreSQL; SQLite has one writer),
// and the unique indexes on a station's and a resident's booked slots are the last
// word.
func (s *Service) Book(ctx context.Context, accountID string, req Booking) (Visit, error) {
	if !ids.ValidKey(req.Key) {
		return Visit{}, ErrBadKey
	}
	key := bookingKey(accountID, req.Key)
	if v, err := s.byKey(ctx, key); err == nil {
		return sameBooking(v, req)
	} else if !errors.Is(err, ErrNotFound) {
		return Visit{}, err
	}
	b, err := s.bookable(ctx, accountID, req.ContactID)
	if err != nil {
		return Visit{}, err
	}
	now := s.now()
	start := req.Start.In(b.place.loc)
	sch, err := loadSchedule(ctx, s.db.Read(), b.place.ID, DateOf(start))
	if err != nil {
		return Visit{}, err
	}
	slot, ok := offered(sch, b.place.loc, start, req.Minutes, now)
	if !ok {
		return Visit{}, ErrNoSlot
	}
	v := Visit{ID: ids.New(), FacilityID: b.place.ID, ResidentID: b.contact.Resident.ID, ContactID: b.contact.ID, AccountID: accountID,
		Start: slot.Start, End: slot.End, Minutes: slot.Minutes, State: Scheduled, RateMills: sch.RateMills,
		HeldCents: PriceCents(sch.RateMills, slot.Minutes), CreatedAt: now.UTC().Truncate(time.Microsecond)}
	if sch.NeedsApproval {
		v.State = Requested
	}
	stations, err := s.Stations(ctx, b.place.ID)
	if err != nil {
		return Visit{}, err
	}
	week := weekOf(start, b.place.loc)
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.LockChain(ctx, tx, bookingLock(b.place.ID)); err != nil {
			return err
		}
		busy, err := overlapping(ctx, tx, "resident_id", v.ResidentID, v.Start, v.End)
		if err != nil {
			return err
		}
		if busy > 0 {
			return ErrResidentBusy
		}
		n, err := countInWeek(ctx, tx, v.ResidentID, week[0], week[1])
		if err != nil {
			return err
		}
		if n >= sch.WeeklyLimit {
			return ErrWeeklyLimit
		}
		for _, st := range stations {
			taken, err := overlapping(ctx, tx, "station_id", st.KioskID, v.Start, v.End)
			if err != nil {
				return err
			}
			if taken == 0 {
				v.StationID = st.KioskID
				break
			}
		}
		if v.StationID == "" {
			return ErrSlotTaken
		}
		if err := insertVisit(ctx, tx, v, key); err != nil {
			return err
		}
		if err := s.hold(ctx, tx, v); err != nil {
			return err
		}
		if err := s.queueReminders(ctx, tx, v, now); err != nil {
			return err
		}
		return s.mailFamily(ctx, tx, v, mailOf(v, true))
	})
	switch {
	case errors.Is(err, errDuplicate):
		// A retry raced its first try, or another booking took the station or the
		// resident's slot between the read and the write.
		if v, err := s.byKey(ctx, key); err == nil {
			return sameBooking(v, req)
		}
		return Visit{}, ErrSlotTaken
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return Visit{}, ErrNoFunds
	case err != nil:
		return Visit{}, err
	}
	s.wake()
	v.Start, v.End = v.Start.In(b.place.loc), v.End.In(b.place.loc)
	return v, nil
}

// offered finds the slot of a schedule that starts at start and lasts minutes, as
// the booking window stands at now.
func offered(sch Schedule, loc *time.Location, start time.Time, minutes int, now time.Time) (Slot, bool) {
	for _, sl := range Slots(sch, loc, DateOf(start), 1, now) {
		if sl.Start.Equal(start) && sl.Minutes == minutes {
			return sl, true
		}
	}
	return Slot{}, false
}

// weekOf is the facility's week (Sunday 00:00 to the next Sunday 00:00 on its
// wall clock) that t falls in, as instants.
func weekOf(t time.Time, loc *time.Location) [2]time.Time {
	day := DateOf(t.In(loc))
	sunday := day.AddDays(-int(day.Weekday()))
	return [2]time.Time{midnight(sunday, loc), midnight(sunday.AddDays(7), loc)}
}

// midnight is the first instant of a local date (a zone that skips midnight
// starts the day at the first time it shows).
func midnight(d Date, loc *time.Location) time.Time {
	for m := Clock(0); m < EndOfDay; m += 15 {
		if t, ok := wallTime(d, m, loc); ok {
			return t
		}
	}
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// hold moves a visit's price from the family's wallet to the visit's hold.
func (s *Service) hold(ctx context.Context, tx *sql.Tx, v Visit) error {
	if v.HeldCents == 0 {
		return nil
	}
	_, _, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "visit_hold", IdempotencyKey: "visit-hold:" + v.ID,
		Description: "Video visit held", Reference: v.ID, Entries: []ledger.Entry{
			{Account: ledger.WalletOf(v.AccountID), Amount: -v.HeldCents},
			{Account: ledger.HoldFor("visit:" + v.ID), Amount: v.HeldCents},
		}})
	return err
}

// settle ends a visit's hold: charged cents go to the platform (the minutes that
// connected), the rest back to the family's wallet.
func (s *Service) settle(ctx context.Context, tx *sql.Tx, v Visit, charged int64) error {
	if v.HeldCents == 0 {
		return nil
	}
	charged = min(max(charged, 0), v.HeldCents)
	entries := []ledger.Entry{{Account: ledger.HoldFor("visit:" + v.ID), Amount: -v.HeldCents}}
	if rest := v.HeldCents - charged; rest > 0 {
		entries = append(entries, ledger.Entry{Account: ledger.WalletOf(v.AccountID), Amount: rest})
	}
	if charged > 0 {
		entries = append(entries, ledger.Entry{Account: ledger.Ref{Kind: ledger.Platform}, Amount: charged})
	}
	description := "Video visit: hold released"
	if charged > 0 {
		description = "Video visit: connected minutes charged, the rest released"
	}
	_, _, err := s.ledger.Post(ctx, tx, ledger.Transaction{Kind: "visit_settle", IdempotencyKey: "visit-settle:" + v.ID,
		Description: description, Reference: v.ID, Entries: entries})
	return err
}

// bookingLock is the lock that takes a facility's bookings one at a time.
func bookingLock(facilityID string) int64 {
	sum := sha256.Sum256([]byte("visits:" + facilityID))
	return int64(binary.BigEndian.Uint64(sum[:8]) >> 1)
}

// bookingKey scopes a family's key to its account, so two families choosing the
// same key never meet.
func bookingKey(accountID, key string) string {
	if key == "" {
		key = ids.New() // a booking without a key is never a retry
	}
	return "visit:" + accountID + ":" + key
}

// sameBooking answers a retry with the visit its key made, unless the retry asks
// for something else.
func sameBooking(v Visit, req Booking) (Visit, error) {
	if v.ContactID != req.ContactID || !v.Start.Equal(req.Start) || v.Minutes != req.Minutes {
		return Visit{}, ErrKeyReused
	}
	return v, nil
}

// Visits lists a family's visits with one contact (or with all, contactID ""),
// the coming ones first by start, then the past ones newest first.
func (s *Service) Visits(ctx context.Context, accountID, contactID string) ([]Visit, error) {
	list, err := familyVisits(ctx, s.db.Read(), accountID, contactID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	slices.SortStableFunc(list, func(a, b Visit) int {
		ac, bc := a.End.After(now) && slices.Contains(booked, a.State), b.End.After(now) && slices.Contains(booked, b.State)
		switch {
		case ac && !bc:
			return -1
		case bc && !ac:
			return 1
		case ac:
			return a.Start.Compare(b.Start)
		}
		return b.Start.Compare(a.Start)
	})
	return s.inZones(ctx, list)
}

// Visit returns one of a family's visits; another family's is ErrNotFound.
func (s *Service) Visit(ctx context.Context, accountID, visitID string) (Visit, error) {
	if !ids.Valid(visitID) {
		return Visit{}, ErrNotFound
	}
	v, err := visitByID(ctx, s.db.Read(), visitID)
	if err != nil {
		return Visit{}, err
	}
	if v.AccountID != accountID {
		return Visit{}, ErrNotFound
	}
	list, err := s.inZones(ctx, []Visit{v})
	if err != nil {
		return Visit{}, err
	}
	return list[0], nil
}

func (s *Service) byKey(ctx context.Context, key string) (Visit, error) {
	v, err := visitByKey(ctx, s.db.Read(), key)
	if err != nil {
		return v, err
	}
	list, err := s.inZones(ctx, []Visit{v})
	if err != nil {
		return Visit{}, err
	}
	return list[0], nil
}

// inZones shows each visit's times in its facility's zone.
func (s *Service) inZones(ctx context.Context, list []Visit) ([]Visit, error) {
	zones := map[string]*time.Location{}
	for i, v := range list {
		loc, ok := zones[v.FacilityID]
		if !ok {
			p, err := s.place(ctx, v.FacilityID)
			if err != nil {
				return nil, err
			}
			loc, zones[v.FacilityID] = p.loc, p.loc
		}
		list[i].Start, list[i].End = v.Start.In(loc), v.End.In(loc)
	}
	return list, nil
}

// errDuplicate is an insert that met a unique index.
var errDuplicate = errors.New("visits: duplicate")

// fmtErr wraps a store error.
func fmtErr(what string, err error) error { return fmt.Errorf("visits: %s: %w", what, err) }

// FamilyVisit is a visit as its family reads it: with the person visited, the
// facility, and until when they may still cancel it (zero once it is not booked).
type FamilyVisit struct {
	Visit
	Person, Facility string
	CancelUntil      time.Time
}

// FamilyVisits lists a family's visits (Visits) as they read them.
func (s *Service) FamilyVisits(ctx context.Context, accountID string) ([]FamilyVisit, error) {
	list, err := s.Visits(ctx, accountID, "")
	if err != nil {
		return nil, err
	}
	people, err := s.contacts.OfAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, c := range people {
		names[c.ID] = c.Resident.FirstName + " " + c.Resident.LastName
	}
	out := make([]FamilyVisit, 0, len(list))
	places := map[string]place{}
	for _, v := range list {
		p, ok := places[v.FacilityID]
		if !ok {
			if p, err = s.place(ctx, v.FacilityID); err != nil {
				return nil, err
			}
			places[v.FacilityID] = p
		}
		fv, err := s.familyVisit(ctx, p, v, names[v.ContactID])
		if err != nil {
			return nil, err
		}
		out = append(out, fv)
	}
	return out, nil
}

// FamilyVisit returns one of a family's visits as they read it; another family's
// is ErrNotFound.
func (s *Service) FamilyVisit(ctx context.Context, accountID, visitID string) (FamilyVisit, error) {
	v, err := s.Visit(ctx, accountID, visitID)
	if err != nil {
		return FamilyVisit{}, err
	}
	c, err := s.contacts.Get(ctx, accountID, v.ContactID)
	if err != nil {
		return FamilyVisit{}, err
	}
	p, err := s.place(ctx, v.FacilityID)
	if err != nil {
		return FamilyVisit{}, err
	}
	return s.familyVisit(ctx, p, v, c.Resident.FirstName+" "+c.Resident.LastName)
}

// familyVisit adds the facility's name and the cancellation cutoff (Cancel's rule).
func (s *Service) familyVisit(ctx context.Context, p place, v Visit, person string) (FamilyVisit, error) {
	fv := FamilyVisit{Visit: v, Person: person, Facility: p.Name}
	if v.State == Requested || v.State == Scheduled {
		sch, err := loadSchedule(ctx, s.db.Read(), v.FacilityID, DateOf(v.Start))
		if err != nil {
			return FamilyVisit{}, err
		}
		fv.CancelUntil = cancelUntil(v, sch)
	}
	return fv, nil
}

// cancelUntil is when a family's cancellation of a booked visit stops being taken.
func cancelUntil(v Visit, sch Schedule) time.Time {
	return v.Start.Add(-time.Duration(sch.CancelHours) * time.Hour)
}
