-- Booked video visits (issue 15), owned by internal/visits, and the rules of their
-- price and cancellation per facility.
--
-- A visit holds its price from the family's wallet while it is booked: the money
-- moves to a ledger account of kind 'hold' owned by the visit, and from there to the
-- platform for the minutes that connected, or back to the wallet.
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
	CHECK (kind IN ('wallet', 'resident', 'processor', 'platform', 'hold'));

-- The price per minute in mills (tenths of a cent: caps are set to the tenth of a
-- cent), and how many hours before its start a family may still cancel a visit.
ALTER TABLE visit_schedules ADD COLUMN rate_mills INTEGER NOT NULL DEFAULT 0 CHECK (rate_mills >= 0);
ALTER TABLE visit_schedules ADD COLUMN cancel_hours INTEGER NOT NULL DEFAULT 1 CHECK (cancel_hours >= 0);

-- A visit: one resident, one family contact, one station, one slot. Times are UTC
-- instants. A visit that is requested, scheduled or live holds its station and its
-- resident for its slot (the partial unique indexes are the last word when two
-- bookings race); the others are a record.
CREATE TABLE visits (
	id              TEXT PRIMARY KEY,
	facility_id     TEXT NOT NULL REFERENCES facilities (id),
	station_id      TEXT NOT NULL REFERENCES visit_stations (kiosk_id),
	resident_id     TEXT NOT NULL REFERENCES residents (id),
	contact_id      TEXT NOT NULL REFERENCES contacts (id),
	account_id      TEXT NOT NULL REFERENCES accounts (id),
	starts_at       TIMESTAMPTZ NOT NULL,
	ends_at         TIMESTAMPTZ NOT NULL,
	minutes         INTEGER NOT NULL CHECK (minutes > 0),
	state           TEXT NOT NULL CHECK (state IN ('requested', 'scheduled', 'live', 'completed', 'cancelled', 'rejected', 'missed', 'failed')),
	reason          TEXT NOT NULL DEFAULT '',
	rate_mills      INTEGER NOT NULL,
	held_cents      BIGINT NOT NULL,
	charged_cents   BIGINT NOT NULL DEFAULT 0,
	privileged      BOOLEAN NOT NULL DEFAULT FALSE,
	idempotency_key TEXT NOT NULL UNIQUE,
	created_at      TIMESTAMPTZ NOT NULL,
	decided_by      TEXT NOT NULL DEFAULT '',
	decided_at      TIMESTAMPTZ,
	ended_by        TEXT NOT NULL DEFAULT '',
	ended_at        TIMESTAMPTZ
);
CREATE UNIQUE INDEX visits_station_slot ON visits (station_id, starts_at) WHERE state IN ('requested', 'scheduled', 'live');
CREATE UNIQUE INDEX visits_resident_slot ON visits (resident_id, starts_at) WHERE state IN ('requested', 'scheduled', 'live');
CREATE INDEX visits_facility ON visits (facility_id, starts_at);
CREATE INDEX visits_resident ON visits (resident_id, starts_at);
CREATE INDEX visits_account ON visits (account_id, starts_at);
CREATE INDEX visits_booked ON visits (starts_at) WHERE state IN ('requested', 'scheduled', 'live');
