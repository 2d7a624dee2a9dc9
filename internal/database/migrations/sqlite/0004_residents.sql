-- Residents (incarcerated people) of an agency, from its roster (internal/facility).
-- The id is opaque; resident_number is the agency's own ID (DOC or booking number).
CREATE TABLE residents (
	id              TEXT PRIMARY KEY,
	agency_id       TEXT NOT NULL REFERENCES agencies (id),
	resident_number TEXT NOT NULL,
	first_name      TEXT NOT NULL,
	last_name       TEXT NOT NULL,
	facility_id     TEXT NOT NULL REFERENCES facilities (id),
	housing_unit    TEXT NOT NULL DEFAULT '',
	status          TEXT NOT NULL CHECK (status IN ('active', 'transferred', 'released')),
	restrictions    TEXT NOT NULL DEFAULT '',
	search_last     TEXT NOT NULL DEFAULT '', -- names folded for search: lower case, no accents
	search_first    TEXT NOT NULL DEFAULT '',
	pin_hash        TEXT NOT NULL DEFAULT '',    -- argon2id; set first by staff
	pin_must_change BOOLEAN NOT NULL DEFAULT TRUE,
	pin_failures    INTEGER NOT NULL DEFAULT 0,
	pin_locked      BOOLEAN NOT NULL DEFAULT FALSE, -- after 5 wrong PINs, until staff unlock
	created_at      TIMESTAMP NOT NULL,
	updated_at      TIMESTAMP NOT NULL,
	UNIQUE (agency_id, resident_number)
);
CREATE INDEX residents_search ON residents (agency_id, search_last, search_first);
CREATE INDEX residents_facility ON residents (facility_id, status);

-- Roster files uploaded in the portal, kept between the dry run and the apply.
CREATE TABLE roster_uploads (
	id         TEXT PRIMARY KEY,
	agency_id  TEXT NOT NULL REFERENCES agencies (id),
	account_id TEXT NOT NULL REFERENCES accounts (id),
	filename   TEXT NOT NULL,
	content    TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	applied_at TIMESTAMP
);

-- A family account's link to a resident, and its approval (internal/contacts).
CREATE TABLE contacts (
	id          TEXT PRIMARY KEY,
	account_id  TEXT NOT NULL REFERENCES accounts (id),
	resident_id TEXT NOT NULL REFERENCES residents (id),
	status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
	reason      TEXT NOT NULL DEFAULT '',
	decided_by  TEXT NOT NULL DEFAULT '',
	created_at  TIMESTAMP NOT NULL,
	decided_at  TIMESTAMP,
	UNIQUE (account_id, resident_id)
);
CREATE INDEX contacts_resident ON contacts (resident_id, status);

-- Kiosks and tablets enrolled at a facility: a one-time enrolment code becomes a
-- long-lived device credential held by that browser; both stored as hashes.
CREATE TABLE kiosks (
	id               TEXT PRIMARY KEY,
	facility_id      TEXT NOT NULL REFERENCES facilities (id),
	name             TEXT NOT NULL,
	enrol_code_hash  TEXT NOT NULL,
	enrol_expires_at TIMESTAMP NOT NULL,
	credential_hash  TEXT UNIQUE,
	enrolled_at      TIMESTAMP,
	revoked_at       TIMESTAMP,
	created_by       TEXT NOT NULL,
	created_at       TIMESTAMP NOT NULL
);

-- A resident signed in at a kiosk; ends after 15 minutes idle or at logout.
CREATE TABLE kiosk_sessions (
	token_hash   TEXT PRIMARY KEY,
	resident_id  TEXT NOT NULL REFERENCES residents (id),
	kiosk_id     TEXT NOT NULL REFERENCES kiosks (id),
	created_at   TIMESTAMP NOT NULL,
	last_seen_at TIMESTAMP NOT NULL,
	ended_at     TIMESTAMP
);
