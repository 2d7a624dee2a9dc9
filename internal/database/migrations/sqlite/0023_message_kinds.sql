-- A message is text (with photos) or a VideoGram. A VideoGram is "processing" until
-- its clip is converted, and "failed" (refunded) when the clip cannot be used.
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt, as in
-- 0012.
CREATE TABLE messages_new (
	id              TEXT PRIMARY KEY,
	contact_id      TEXT NOT NULL REFERENCES contacts (id),
	account_id      TEXT NOT NULL REFERENCES accounts (id),
	resident_id     TEXT NOT NULL REFERENCES residents (id),
	agency_id       TEXT NOT NULL REFERENCES agencies (id),
	facility_id     TEXT NOT NULL REFERENCES facilities (id),
	direction       TEXT NOT NULL CHECK (direction IN ('to_resident', 'from_resident')),
	kind            TEXT NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'videogram')),
	body            TEXT NOT NULL,
	state           TEXT NOT NULL CHECK (state IN ('processing', 'sent', 'in_review', 'delivered', 'read', 'rejected', 'failed')),
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
INSERT INTO messages_new (id, contact_id, account_id, resident_id, agency_id, facility_id, direction, kind, body, state, reason, note,
	cost_stamps, cost_cents, prepaid_reply, reply_used, watch_match, idempotency_key, created_at, delivered_at, read_at,
	decided_at, decided_by, request_hash)
SELECT id, contact_id, account_id, resident_id, agency_id, facility_id, direction, 'text', body, state, reason, note,
	cost_stamps, cost_cents, prepaid_reply, reply_used, watch_match, idempotency_key, created_at, delivered_at, read_at,
	decided_at, decided_by, request_hash
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_contact ON messages (contact_id, created_at);
CREATE INDEX messages_unread ON messages (contact_id, direction, state);
CREATE INDEX messages_waiting ON messages (agency_id, created_at) WHERE state = 'in_review';
CREATE INDEX messages_deliveries ON messages (contact_id, delivered_at) WHERE delivered_at IS NOT NULL;

-- What an agency decides for VideoGrams: the price in stamps, whether staff review
-- every clip, and how long clips are kept. The longest clip is the agency's
-- videogram_seconds, now at most 120.
ALTER TABLE message_policies ADD COLUMN videogram_stamps INTEGER NOT NULL DEFAULT 3;
ALTER TABLE message_policies ADD COLUMN review_videograms BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE message_policies ADD COLUMN videogram_retention_days INTEGER NOT NULL DEFAULT 90;
UPDATE agencies SET videogram_seconds = 120 WHERE videogram_seconds > 120;
