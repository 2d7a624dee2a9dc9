-- Video visits (issue 15), owned by internal/visits: when each facility offers
-- visits and its rules for booking them. Times of day are minutes after local
-- midnight on the facility's wall clock (facilities.timezone), dates are the
-- facility's local dates written YYYY-MM-DD: slots are laid out on the wall clock,
-- so a clock change moves none of them.
CREATE TABLE visit_schedules (
	facility_id    TEXT PRIMARY KEY REFERENCES facilities (id),
	slot_minutes   INTEGER NOT NULL DEFAULT 20 CHECK (slot_minutes BETWEEN 15 AND 60),
	min_lead_hours INTEGER NOT NULL DEFAULT 24 CHECK (min_lead_hours >= 0),
	max_ahead_days INTEGER NOT NULL DEFAULT 14 CHECK (max_ahead_days >= 1),
	weekly_limit   INTEGER NOT NULL DEFAULT 3 CHECK (weekly_limit >= 1),
	needs_approval BOOLEAN NOT NULL DEFAULT TRUE,
	updated_by     TEXT NOT NULL,
	updated_at     TIMESTAMPTZ NOT NULL
);

-- The weekly opening hours: weekday 0 is Sunday; a range ends by 24:00 (1440) of
-- its own day.
CREATE TABLE visit_hours (
	facility_id  TEXT NOT NULL REFERENCES facilities (id),
	weekday      INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),
	start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
	end_minute   INTEGER NOT NULL CHECK (end_minute BETWEEN 1 AND 1440),
	CHECK (end_minute > start_minute),
	PRIMARY KEY (facility_id, weekday, start_minute)
);

-- Dates with no visits. Past closures are kept as a record.
CREATE TABLE visit_closures (
	facility_id TEXT NOT NULL REFERENCES facilities (id),
	day         TEXT NOT NULL,
	reason      TEXT NOT NULL,
	PRIMARY KEY (facility_id, day)
);

-- Kiosks marked as visit stations (in a housing unit or a visiting room). A station
-- turned off keeps its row (retired_at), since visits will refer to it.
CREATE TABLE visit_stations (
	kiosk_id    TEXT PRIMARY KEY REFERENCES kiosks (id),
	facility_id TEXT NOT NULL REFERENCES facilities (id),
	location    TEXT NOT NULL DEFAULT '',
	created_at  TIMESTAMPTZ NOT NULL,
	retired_at  TIMESTAMPTZ
);
CREATE INDEX visit_stations_facility ON visit_stations (facility_id);
