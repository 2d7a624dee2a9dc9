-- eMessages (internal/messaging).
ALTER TABLE agencies ADD COLUMN review_all BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE agencies ADD COLUMN reply_price_stamps INTEGER NOT NULL DEFAULT 0;

-- The agency's watch list: words and phrases that send a message to review.
CREATE TABLE watch_words (
	agency_id  TEXT NOT NULL REFERENCES agencies (id),
	phrase     TEXT NOT NULL,
	folded     TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (agency_id, folded)
);

CREATE TABLE messages (
	id              TEXT PRIMARY KEY,
	contact_id      TEXT NOT NULL REFERENCES contacts (id),
	account_id      TEXT NOT NULL REFERENCES accounts (id),
	resident_id     TEXT NOT NULL REFERENCES residents (id),
	agency_id       TEXT NOT NULL REFERENCES agencies (id),
	facility_id     TEXT NOT NULL REFERENCES facilities (id),
	direction       TEXT NOT NULL CHECK (direction IN ('to_resident', 'from_resident')),
	body            TEXT NOT NULL,
	state           TEXT NOT NULL CHECK (state IN ('in_review', 'delivered', 'read', 'rejected')),
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
	decided_by      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX messages_contact ON messages (contact_id, created_at);
CREATE INDEX messages_resident ON messages (resident_id, created_at);
CREATE INDEX messages_review ON messages (facility_id, state, created_at);
