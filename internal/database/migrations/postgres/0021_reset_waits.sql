-- Resets without the security answer (issue 13): a family that proved its mailbox
-- but forgot the answer asks for one; it can be finished only after a wait, with the
-- mailbox proved again, while the owner is mailed at once with a link that stops it.
-- Every link token is stored only as its SHA-256 digest. At most one is live per
-- account; ended_at says when it stopped being live, ended_by why.
CREATE TABLE reset_waits (
	id              TEXT PRIMARY KEY,
	account_id      TEXT NOT NULL REFERENCES accounts (id),
	created_at      TIMESTAMPTZ NOT NULL,
	ready_at        TIMESTAMPTZ NOT NULL,
	expires_at      TIMESTAMPTZ NOT NULL,
	stop_hash       TEXT NOT NULL UNIQUE,
	ready_stop_hash TEXT UNIQUE,
	link_hash       TEXT UNIQUE,
	mailed_at       TIMESTAMPTZ,
	ended_at        TIMESTAMPTZ,
	ended_by        TEXT CHECK (ended_by IN ('stop', 'login', 'reset', 'password', 'expired', 'used'))
);
CREATE UNIQUE INDEX reset_waits_live ON reset_waits (account_id) WHERE ended_at IS NULL;
