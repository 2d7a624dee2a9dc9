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
	created_at      TIMESTAMP NOT NULL,
	updated_at      TIMESTAMP NOT NULL,
	UNIQUE (agency_id, resident_number)
);
CREATE INDEX residents_name ON residents (agency_id, last_name, first_name);
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
