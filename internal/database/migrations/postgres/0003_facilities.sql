-- Agencies (a state department of corrections or a county sheriff) and the policies
-- they set for their facilities (internal/facility).
CREATE TABLE agencies (
	id                       TEXT PRIMARY KEY,
	code                     TEXT NOT NULL UNIQUE,
	name                     TEXT NOT NULL,
	state                    TEXT NOT NULL,
	stamp_price_cents        INTEGER NOT NULL DEFAULT 10 CHECK (stamp_price_cents >= 0),
	message_max_chars        INTEGER NOT NULL DEFAULT 6000 CHECK (message_max_chars BETWEEN 500 AND 20000),
	videogram_seconds        INTEGER NOT NULL DEFAULT 30 CHECK (videogram_seconds BETWEEN 10 AND 300),
	message_retention_days   INTEGER NOT NULL DEFAULT 730 CHECK (message_retention_days >= 30),
	recording_retention_days INTEGER NOT NULL DEFAULT 365 CHECK (recording_retention_days >= 30),
	approval_for_messages    BOOLEAN NOT NULL DEFAULT FALSE,
	approval_for_visits      BOOLEAN NOT NULL DEFAULT TRUE,
	created_at               TIMESTAMPTZ NOT NULL
);

CREATE TABLE facilities (
	id         TEXT PRIMARY KEY,
	agency_id  TEXT NOT NULL REFERENCES agencies (id),
	code       TEXT NOT NULL,
	name       TEXT NOT NULL,
	kind       TEXT NOT NULL CHECK (kind IN ('prison', 'jail')),
	timezone   TEXT NOT NULL,
	address    TEXT NOT NULL DEFAULT '',
	population INTEGER NOT NULL CHECK (population >= 0),
	created_at TIMESTAMPTZ NOT NULL,
	UNIQUE (agency_id, code)
);

-- Staff are accounts of kind 'staff' (internal/identity); their roles belong to
-- internal/facility. Agency-wide roles have facility_id ''.
CREATE TABLE staff_roles (
	account_id  TEXT NOT NULL REFERENCES accounts (id),
	agency_id   TEXT NOT NULL REFERENCES agencies (id),
	role        TEXT NOT NULL CHECK (role IN ('agency_admin', 'facility_admin', 'mail_reviewer', 'visitation_officer', 'investigator')),
	facility_id TEXT NOT NULL DEFAULT '',
	created_at  TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (account_id, role, facility_id)
);
CREATE INDEX staff_roles_agency ON staff_roles (agency_id);

-- The append-only audit log (internal/audit): every row is chained to the one before
-- by a hash, so a changed, removed or inserted row is detected by kinlink audit verify.
CREATE TABLE audit_log (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at          TIMESTAMPTZ NOT NULL,
	actor       TEXT NOT NULL,
	action      TEXT NOT NULL,
	agency_id   TEXT NOT NULL DEFAULT '',
	facility_id TEXT NOT NULL DEFAULT '',
	resident_id TEXT NOT NULL DEFAULT '',
	subject     TEXT NOT NULL DEFAULT '',
	detail      TEXT NOT NULL DEFAULT '',
	prev_hash   TEXT NOT NULL,
	hash        TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_log_agency ON audit_log (agency_id, at);
-- The chain's head: how many rows and the last hash, kept with every append, so that
-- removing the newest rows (which leaves a valid shorter chain) is detected too.
CREATE TABLE audit_head (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	row_count BIGINT NOT NULL,
	last_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, row_count, last_hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
