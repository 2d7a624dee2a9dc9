// Package visits owns video visits: a facility's visit schedule (opening hours on
// its wall clock, slot length, closures, the booking window and the weekly limit),
// which kiosks are visit stations, and the free slots a family may book. Its tables
// are visit_schedules, visit_hours, visit_closures and visit_stations; it reaches
// facilities and kiosks only through internal/facility's functions.
package visits

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kinlink/kinlink/internal/audit"
	"github.com/kinlink/kinlink/internal/contacts"
	"github.com/kinlink/kinlink/internal/database"
	"github.com/kinlink/kinlink/internal/facility"
	"github.com/kinlink/kinlink/internal/ledger"
	"github.com/kinlink/kinlink/internal/problem"
	"github.com/kinlink/kinlink/internal/textsafe"
	"github.com/kinlink/kinlink/internal/visits/rtc"
)

// Refusals, each with its stable code. Who may not see a facility or kiosk at all
// is told facility.ErrNotFound; who sees it but may not change it,
// facility.ErrForbidden.
var (
	// ErrKioskRevoked is a revoked kiosk made a visit station.
	ErrKioskRevoked = problem.Declare(problem.Conflict, "kiosk_revoked", "visits: the kiosk is revoked")
	ErrBadLocation  = problem.Declare(problem.Invalid, "invalid_request", "visits: a station's location is up to 100 characters of plain text").
			On("location", "invalid")
	// ErrBadDays is a request for slots of too many days, or none.
	ErrBadDays = problem.Declare(problem.Invalid, "invalid_request", "visits: slots are listed for 1 to 62 days").
			On("days", "range")
	ErrBadFrom = problem.Declare(problem.Invalid, "invalid_request", "visits: the first day is not a date").
			On("from", "invalid")
)

// MaxSlotDays is the most days FreeSlots lists at once.
const MaxSlotDays = 62

// Service is the visits use cases.
type Service struct {
	db       *database.DB
	fac      *facility.Service
	contacts *contacts.Service
	ledger   *ledger.Ledger
	caps     RateCaps
	wake     func() // tells job workers that mail was queued
	now      func() time.Time

	sfu  *rtc.SFU // nil: no live visits on this server
	live LiveSettings
	rec  *recordings // nil: nothing recorded
}

// NewService returns the service; caps are the price caps in force, wake tells
// job workers that mail was queued.
func NewService(db *database.DB, fac *facility.Service, c *contacts.Service, l *ledger.Ledger, caps RateCaps, wake func()) *Service {
	if wake == nil {
		wake = func() {}
	}
	return &Service{db: db, fac: fac, contacts: c, ledger: l, caps: caps, wake: wake, now: time.Now}
}

// SetClock makes the service read the time from now instead of the system clock:
// tests and the demo live on a day of their choosing.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Cap is the most a minute of video may cost at a facility, in mills; ok is
// false where no cap covers it (then visits there are free).
func (s *Service) Cap(ctx context.Context, facilityID string) (mills int, ok bool, err error) {
	p, err := s.place(ctx, facilityID)
	if err != nil {
		return 0, false, err
	}
	mills, ok = s.caps.For(p.Kind, p.Population)
	return mills, ok, nil
}

// place is a facility with its clock.
type place struct {
	facility.Facility
	loc *time.Location
}

func (p place) today(now time.Time) Date { return DateOf(now.In(p.loc)) }

func (s *Service) place(ctx context.Context, facilityID string) (place, error) {
	f, err := s.fac.Facility(ctx, facilityID)
	if err != nil {
		return place{}, err
	}
	loc, err := time.LoadLocation(f.TimeZone)
	if err != nil {
		return place{}, fmt.Errorf("visits: facility %s: time zone %q: %w", f.Code, f.TimeZone, err)
	}
	return place{Facility: f, loc: loc}, nil
}

// administered is a facility that by may change, as a facility administrator of it
// or an agency administrator. Another agency's facility does not exist for them.
func (s *Service) administered(ctx context.Context, by facility.Access, facilityID string) (place, error) {
	p, err := s.place(ctx, facilityID)
	if err != nil {
		return p, err
	}
	if p.AgencyID != by.AgencyID {
		return place{}, facility.ErrNotFound
	}
	if !by.Has(facility.FacilityAdmin, p.ID) {
		return place{}, facility.ErrForbidden
	}
	return p, nil
}

// Schedule returns a facility's visit schedule, with its closures from today on.
func (s *Service) Schedule(ctx context.Context, facilityID string) (Schedule, error) {
	p, err := s.place(ctx, facilityID)
	if err != nil {
		return Schedule{}, err
	}
	return loadSchedule(ctx, s.db.Read(), p.ID, p.today(s.now()))
}

// ScheduleFor returns a facility's visit schedule to one who may change it (its
// facility administrators and the agency's administrators), as SetSchedule's
// form shows it: others are told what SetSchedule would tell them.
func (s *Service) ScheduleFor(ctx context.Context, by facility.Access, facilityID string) (Schedule, error) {
	p, err := s.administered(ctx, by, facilityID)
	if err != nil {
		return Schedule{}, err
	}
	return loadSchedule(ctx, s.db.Read(), p.ID, p.today(s.now()))
}

// SetSchedule replaces a facility's visit schedule; its facility administrators and
// the agency's administrators may. Every input at fault is named (ScheduleError)
// and nothing changes. Closures of past days are a record: they cannot be added,
// and the ones stored stay whether or not the new schedule lists them.
func (s *Service) SetSchedule(ctx context.Context, by facility.Access, facilityID string, sch Schedule) error {
	p, err := s.administered(ctx, by, facilityID)
	if err != nil {
		return err
	}
	now := s.now()
	today := p.today(now)
	sch.Hours, sch.Closures = slices.Clone(sch.Hours), slices.Clone(sch.Closures)
	stored := map[Date]string{} // past closures, kept as a record
	if slices.ContainsFunc(sch.Closures, func(c Closure) bool { return c.Date.Before(today) }) {
		past, err := loadClosures(ctx, s.db.Read(), p.ID, "0000-01-01", today.AddDays(-1).String())
		if err != nil {
			return err
		}
		for _, c := range past {
			stored[c.Date] = c.Reason
		}
	}
	capMills, capped := s.caps.For(p.Kind, p.Population)
	if err := check(&sch, today, func(c Closure) bool {
		reason, ok := stored[c.Date]
		return ok && reason == c.Reason
	}, capMills, capped); err != nil {
		return err
	}
	actor := "staff:" + by.AccountID
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := saveSchedule(ctx, tx, p.ID, sch, actor, today, now.UTC()); err != nil {
			return err
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: actor, Action: "visits.schedule", AgencyID: p.AgencyID, FacilityID: p.ID,
			Subject: p.Code, Detail: describe(sch)})
	})
}

// describe is a schedule in a line of the audit log.
func describe(s Schedule) string {
	var hours []string
	for _, h := range s.Hours {
		hours = append(hours, fmt.Sprintf("%s %s-%s", h.Weekday.String()[:3], h.Start, h.End))
	}
	var closed []string
	for _, c := range s.Closures {
		closed = append(closed, c.Date.String())
	}
	return fmt.Sprintf("%d-minute slots; hours: %s; closed: %s; booked %d h to %d days ahead; %d a week; approval %t; %s a minute; cancel until %d h before",
		s.SlotMinutes, orNone(strings.Join(hours, ", ")), orNone(strings.Join(closed, ", ")), s.MinLeadHours, s.MaxAheadDays, s.WeeklyLimit, s.NeedsApproval,
		RateDollars(s.RateMills), s.CancelHours)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Station is a kiosk where residents have video visits.
type Station struct {
	KioskID, FacilityID string
	Name                string // the kiosk's
	Location            string // a housing unit or a visiting room, as staff wrote it
}

// Stations lists a facility's visit stations, by name. A revoked kiosk is no
// station.
func (s *Service) Stations(ctx context.Context, facilityID string) ([]Station, error) {
	rows, err := activeStations(ctx, s.db.Read(), facilityID)
	if err != nil {
		return nil, err
	}
	var out []Station
	for _, r := range rows {
		k, err := s.fac.Kiosk(ctx, r.kioskID)
		if err != nil {
			return nil, fmt.Errorf("visits: station %s: %w", r.kioskID, err)
		}
		if k.Revoked {
			continue
		}
		out = append(out, Station{KioskID: k.ID, FacilityID: r.facilityID, Name: k.Name, Location: r.location})
	}
	slices.SortFunc(out, func(a, b Station) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// SetStation makes a kiosk a visit station at location (a housing unit or a
// visiting room, which officers read to bring the resident there), or stops it
// being one; the kiosk's facility administrators and the agency's administrators
// may. A station turned off stays on record.
func (s *Service) SetStation(ctx context.Context, by facility.Access, kioskID string, on bool, location string) error {
	k, err := s.fac.Kiosk(ctx, kioskID)
	if err != nil {
		return err
	}
	p, err := s.administered(ctx, by, k.FacilityID)
	if err != nil {
		return err
	}
	location = strings.TrimSpace(location)
	if utf8.RuneCountInString(location) > 100 || !utf8.ValidString(location) || textsafe.HasHidden(location) {
		return ErrBadLocation
	}
	if on && k.Revoked {
		return ErrKioskRevoked
	}
	actor, now := "staff:"+by.AccountID, s.now().UTC()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		action := "visits.station.on"
		if on {
			if err := turnStationOn(ctx, tx, stationRow{kioskID: k.ID, facilityID: p.ID, location: location}, now); err != nil {
				return err
			}
		} else {
			action = "visits.station.off"
			if was, err := turnStationOff(ctx, tx, k.ID, now); err != nil || !was {
				return err
			}
		}
		return audit.Record(ctx, s.db, tx, audit.Entry{Actor: actor, Action: action, AgencyID: p.AgencyID, FacilityID: p.ID,
			Subject: "kiosk:" + k.ID, Detail: strings.TrimSuffix(k.Name+" — "+location, " — ")})
	})
}

// FreeSlots lists the slots of a facility a family may book on days local dates
// from from, as the booking window stands at now. A facility with no visit
// station offers none.
func (s *Service) FreeSlots(ctx context.Context, facilityID string, from Date, days int, now time.Time) ([]Slot, error) {
	if days < 1 || days > MaxSlotDays {
		return nil, ErrBadDays
	}
	if !from.Valid() {
		return nil, ErrBadFrom
	}
	p, err := s.place(ctx, facilityID)
	if err != nil {
		return nil, err
	}
	sch, err := loadSchedule(ctx, s.db.Read(), p.ID, from)
	if err != nil {
		return nil, err
	}
	stations, err := s.Stations(ctx, p.ID)
	if err != nil || len(stations) == 0 {
		return nil, err
	}
	return s.unbooked(ctx, p.ID, stations, Slots(sch, p.loc, from, days, now))
}

// unbooked keeps the slots in which at least one station is free: it reads the
// facility's booked visits from the first slot's start to the last one's end,
// once, and drops a slot when every station has a visit overlapping it.
func (s *Service) unbooked(ctx context.Context, facilityID string, stations []Station, slots []Slot) ([]Slot, error) {
	if len(slots) == 0 {
		return slots, nil
	}
	taken, err := bookedBetween(ctx, s.db.Read(), facilityID, slots[0].Start, slots[len(slots)-1].End)
	if err != nil {
		return nil, err
	}
	out := slots[:0]
	for _, sl := range slots {
		free := false
		for _, st := range stations {
			if !slices.ContainsFunc(taken, func(v Visit) bool {
				return v.StationID == st.KioskID && v.Start.Before(sl.End) && v.End.After(sl.Start)
			}) {
				free = true
				break
			}
		}
		if free {
			out = append(out, sl)
		}
	}
	return out, nil
}
