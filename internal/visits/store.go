package visits

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The SQL of the visits package: its tables and nothing else (migration 0027).

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// loadSchedule reads a facility's schedule, with its closures from today on; a
// facility that has saved none has the default one.
func loadSchedule(ctx context.Context, q querier, facilityID string, today Date) (Schedule, error) {
	s := DefaultSchedule()
	err := q.QueryRowContext(ctx, `SELECT slot_minutes, min_lead_hours, max_ahead_days, weekly_limit, needs_approval, rate_mills, cancel_hours
		FROM visit_schedules WHERE facility_id = $1`, facilityID).
		Scan(&s.SlotMinutes, &s.MinLeadHours, &s.MaxAheadDays, &s.WeeklyLimit, &s.NeedsApproval, &s.RateMills, &s.CancelHours)
	if errors.Is(err, sql.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("visits: read schedule: %w", err)
	}
	rows, err := q.QueryContext(ctx, `SELECT weekday, start_minute, end_minute FROM visit_hours WHERE facility_id = $1
		ORDER BY weekday, start_minute`, facilityID)
	if err != nil {
		return s, fmt.Errorf("visits: read hours: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h Hours
		if err := rows.Scan(&h.Weekday, &h.Start, &h.End); err != nil {
			return s, fmt.Errorf("visits: read hours: %w", err)
		}
		s.Hours = append(s.Hours, h)
	}
	if err := rows.Err(); err != nil {
		return s, err
	}
	s.Closures, err = loadClosures(ctx, q, facilityID, today.String(), "9999-12-31")
	return s, err
}

// loadClosures reads a facility's closures on dates from first to last.
func loadClosures(ctx context.Context, q querier, facilityID, first, last string) ([]Closure, error) {
	rows, err := q.QueryContext(ctx, "SELECT day, reason FROM visit_closures WHERE facility_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
		facilityID, first, last)
	if err != nil {
		return nil, fmt.Errorf("visits: read closures: %w", err)
	}
	defer rows.Close()
	var out []Closure
	for rows.Next() {
		var day string
		var c Closure
		if err := rows.Scan(&day, &c.Reason); err != nil {
			return nil, fmt.Errorf("visits: read closures: %w", err)
		}
		if c.Date, err = ParseDate(day); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// saveSchedule replaces a facility's schedule: its rules, its hours, and its
// closures from today on (closures of past days stay as they were).
func saveSchedule(ctx context.Context, tx *sql.Tx, facilityID string, s Schedule, by string, today Date, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO visit_schedules (facility_id, slot_minutes, min_lead_hours, max_ahead_days, weekly_limit,
		needs_approval, updated_by, updated_at, rate_mills, cancel_hours) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (facility_id) DO UPDATE SET slot_minutes = $2, min_lead_hours = $3, max_ahead_days = $4, weekly_limit = $5,
		needs_approval = $6, updated_by = $7, updated_at = $8, rate_mills = $9, cancel_hours = $10`,
		facilityID, s.SlotMinutes, s.MinLeadHours, s.MaxAheadDays, s.WeeklyLimit, s.NeedsApproval, by, now, s.RateMills, s.CancelHours); err != nil {
		return fmt.Errorf("visits: save schedule: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM visit_hours WHERE facility_id = $1", facilityID); err != nil {
		return fmt.Errorf("visits: save hours: %w", err)
	}
	for _, h := range s.Hours {
		if _, err := tx.ExecContext(ctx, "INSERT INTO visit_hours (facility_id, weekday, start_minute, end_minute) VALUES ($1, $2, $3, $4)",
			facilityID, int(h.Weekday), int(h.Start), int(h.End)); err != nil {
			return fmt.Errorf("visits: save hours: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM visit_closures WHERE facility_id = $1 AND day >= $2", facilityID, today.String()); err != nil {
		return fmt.Errorf("visits: save closures: %w", err)
	}
	for _, c := range s.Closures {
		if c.Date.Before(today) {
			continue // stored already: check let it through only as it is
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO visit_closures (facility_id, day, reason) VALUES ($1, $2, $3)",
			facilityID, c.Date.String(), c.Reason); err != nil {
			return fmt.Errorf("visits: save closures: %w", err)
		}
	}
	return nil
}

// stationRow is a visit_stations row.
type stationRow struct {
	kioskID, facilityID, location string
}

// activeStations reads the stations of a facility that are on.
func activeStations(ctx context.Context, q querier, facilityID string) ([]stationRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT kiosk_id, facility_id, location FROM visit_stations
		WHERE facility_id = $1 AND retired_at IS NULL ORDER BY created_at, kiosk_id`, facilityID)
	if err != nil {
		return nil, fmt.Errorf("visits: stations: %w", err)
	}
	defer rows.Close()
	var out []stationRow
	for rows.Next() {
		var r stationRow
		if err := rows.Scan(&r.kioskID, &r.facilityID, &r.location); err != nil {
			return nil, fmt.Errorf("visits: stations: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// turnStationOn makes a kiosk a station, or changes where an active one is, or
// brings back a retired one.
func turnStationOn(ctx context.Context, tx *sql.Tx, r stationRow, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO visit_stations (kiosk_id, facility_id, location, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (kiosk_id) DO UPDATE SET location = $3, retired_at = NULL`, r.kioskID, r.facilityID, r.location, now)
	if err != nil {
		return fmt.Errorf("visits: station on: %w", err)
	}
	return nil
}

// turnStationOff retires a station; it reports whether it was on.
func turnStationOff(ctx context.Context, tx *sql.Tx, kioskID string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, "UPDATE visit_stations SET retired_at = $2 WHERE kiosk_id = $1 AND retired_at IS NULL", kioskID, now)
	if err != nil {
		return false, fmt.Errorf("visits: station off: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// visitColumns are what scanVisit reads.
const visitColumns = `id, facility_id, station_id, resident_id, contact_id, account_id, starts_at, ends_at, minutes, state, reason,
	rate_mills, held_cents, charged_cents, privileged, created_at, connected_seconds, ended_by`

func scanVisit(row interface{ Scan(...any) error }) (Visit, error) {
	var v Visit
	var connected int64
	err := row.Scan(&v.ID, &v.FacilityID, &v.StationID, &v.ResidentID, &v.ContactID, &v.AccountID, &v.Start, &v.End, &v.Minutes, &v.State,
		&v.Reason, &v.RateMills, &v.HeldCents, &v.ChargedCents, &v.Privileged, &v.CreatedAt, &connected, &v.EndedBy)
	v.Connected = time.Duration(connected) * time.Second
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrNotFound
	}
	if err != nil {
		return v, fmtErr("read visit", err)
	}
	v.Start, v.End, v.CreatedAt = v.Start.UTC(), v.End.UTC(), v.CreatedAt.UTC()
	return v, nil
}

func scanVisits(rows *sql.Rows, err error) ([]Visit, error) {
	if err != nil {
		return nil, fmtErr("read visits", err)
	}
	defer rows.Close()
	var out []Visit
	for rows.Next() {
		v, err := scanVisit(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func visitByID(ctx context.Context, q querier, id string) (Visit, error) {
	return scanVisit(q.QueryRowContext(ctx, "SELECT "+visitColumns+" FROM visits WHERE id = $1", id))
}

func visitByKey(ctx context.Context, q querier, key string) (Visit, error) {
	return scanVisit(q.QueryRowContext(ctx, "SELECT "+visitColumns+" FROM visits WHERE idempotency_key = $1", key))
}

// familyVisits reads a family's visits, with one contact or (contactID "") all.
func familyVisits(ctx context.Context, q querier, accountID, contactID string) ([]Visit, error) {
	return scanVisits(q.QueryContext(ctx, "SELECT "+visitColumns+` FROM visits WHERE account_id = $1 AND ($2 = '' OR contact_id = $2)
		ORDER BY starts_at DESC, id LIMIT 500`, accountID, contactID))
}

// bookedStates is the SQL list of the states that hold a station and a resident.
const bookedStates = "('requested', 'scheduled', 'live')"

// overlapping counts the booked visits of a station or a resident (column) that
// overlap [start, end).
func overlapping(ctx context.Context, tx *sql.Tx, column, id string, start, end time.Time) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM visits WHERE "+column+" = $1 AND state IN "+bookedStates+
		" AND starts_at < $3 AND ends_at > $2", id, start.UTC(), end.UTC()).Scan(&n)
	if err != nil {
		return 0, fmtErr("read bookings", err)
	}
	return n, nil
}

// countInWeek counts a resident's visits that start in [from, to) and count
// against the weekly limit: booked, or had.
func countInWeek(ctx context.Context, tx *sql.Tx, residentID string, from, to time.Time) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM visits WHERE resident_id = $1
		AND state IN ('requested', 'scheduled', 'live', 'completed') AND starts_at >= $2 AND starts_at < $3`,
		residentID, from.UTC(), to.UTC()).Scan(&n)
	if err != nil {
		return 0, fmtErr("count visits", err)
	}
	return n, nil
}

// insertVisit writes a new visit, or reports errDuplicate when its key, its
// station's slot or its resident's slot is taken.
func insertVisit(ctx context.Context, tx *sql.Tx, v Visit, key string) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO visits (id, facility_id, station_id, resident_id, contact_id, account_id, starts_at, ends_at,
		minutes, state, rate_mills, held_cents, privileged, idempotency_key, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING`,
		v.ID, v.FacilityID, v.StationID, v.ResidentID, v.ContactID, v.AccountID, v.Start.UTC(), v.End.UTC(), v.Minutes, v.State,
		v.RateMills, v.HeldCents, v.Privileged, key, v.CreatedAt)
	if err != nil {
		return fmtErr("book", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errDuplicate
	}
	return nil
}

// facilityVisits reads a facility's visits in one state ("" for any) that start in
// [from, to), by start.
func facilityVisits(ctx context.Context, q querier, facilityID, state string, from, to time.Time) ([]Visit, error) {
	return scanVisits(q.QueryContext(ctx, "SELECT "+visitColumns+` FROM visits WHERE facility_id = $1 AND ($2 = '' OR state = $2)
		AND starts_at >= $3 AND starts_at < $4 ORDER BY starts_at, id LIMIT 2000`, facilityID, state, from.UTC(), to.UTC()))
}

// stationsEver reads every station a facility has had, retired ones too.
func stationsEver(ctx context.Context, q querier, facilityID string) ([]stationRow, error) {
	rows, err := q.QueryContext(ctx, "SELECT kiosk_id, facility_id, location FROM visit_stations WHERE facility_id = $1", facilityID)
	if err != nil {
		return nil, fmtErr("stations", err)
	}
	defer rows.Close()
	var out []stationRow
	for rows.Next() {
		var r stationRow
		if err := rows.Scan(&r.kioskID, &r.facilityID, &r.location); err != nil {
			return nil, fmtErr("stations", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// bookedBetween reads a facility's booked visits that overlap [from, to).
func bookedBetween(ctx context.Context, q querier, facilityID string, from, to time.Time) ([]Visit, error) {
	return scanVisits(q.QueryContext(ctx, "SELECT "+visitColumns+" FROM visits WHERE facility_id = $1 AND state IN "+bookedStates+
		" AND starts_at < $3 AND ends_at > $2", facilityID, from.UTC(), to.UTC()))
}

// allBooked reads every visit that still holds a station and money.
func allBooked(ctx context.Context, q querier) ([]Visit, error) {
	return scanVisits(q.QueryContext(ctx, "SELECT "+visitColumns+" FROM visits WHERE state IN "+bookedStates+" ORDER BY starts_at, id"))
}
