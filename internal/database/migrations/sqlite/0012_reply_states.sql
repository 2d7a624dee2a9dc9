-- A resident's reply is "sent" until the family opens it, then "read". SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt as its documentation
-- describes (the migrator turns foreign keys off around a migration and checks them
-- before committing).
CREATE TABLE messages_new (
	id              TEXT PRIMARY KEY,
	contact_id      TEXT NOT NULL REFERENCES contacts (id),
	account_id      TEXT NOT NULL REFERENCES accounts (id),
	resident_id     TEXT NOT NULL REFERENCES residents (id),
	agency_id       TEXT NOT NULL REFERENCES agencies (id),
	facility_id     TEXT NOT NULL REFERENCES facilities (id),
	direction       TEXT NOT NULL CHECK (direction IN ('to_resident', 'from_resident')),
	body            TEXT NOT NULL,
	state           TEXT NOT NULL CHECK (state IN ('sent', 'in_review', 'delivered', 'read', 'rejected')),
	reason          TEXT NOT NULL DEFAULT '',
	note            TEXT NOT NULL DEFAULT '',
	cost_stamps     INTEGER NOT NULL DEFAULT 0,
	cost_cents      BIGINT NOT NULL DEFAULT 0,
	prepaid_reply   BOOLEAN NOT NULL DEFAULT FALSE,
	reply_used      BOOLEAN NOT NULL DEFAULT FALSE,
	watch_match     TEXT NOT NULL DEFAULT '',
	idempotency_key TEXT UNIQUE,
	created_at      TIMESTAMP NOT NULL,
	delivered_at    TIMESTAMP,
	read_at         TIMESTAMP,
	decided_at      TIMESTAMP,
	decided_by      TEXT NOT NULL DEFAULT '',
	request_hash    TEXT NOT NULL DEFAULT ''
);
INSERT INTO messages_new (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, body, state, reason, note,
	cost_stamps, cost_cents, prepaid_reply, reply_used, watch_match, idempotency_key, created_at, delivered_at, read_at,
	decided_at, decided_by, request_hash)
SELECT id, contact_id, account_id, resident_id, agency_id, facility_id, direction, body,
	CASE WHEN direction = 'from_resident' AND state = 'delivered' THEN 'sent' ELSE state END, reason, note,
	cost_stamps, cost_cents, prepaid_reply, reply_used, watch_match, idempotency_key, created_at, delivered_at, read_at,
	decided_at, decided_by, request_hash
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_contact ON messages (contact_id, created_at);
CREATE INDEX messages_resident ON messages (resident_id, created_at);
CREATE INDEX messages_review ON messages (facility_id, state, created_at);
CREATE INDEX messages_unread ON messages (contact_id, direction, state);
CREATE INDEX messages_delivered ON messages (resident_id, direction, delivered_at);
CREATE INDEX messages_visible ON messages (contact_id, created_at) WHERE state IN ('sent', 'delivered', 'read');
