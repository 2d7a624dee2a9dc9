-- Devices that have signed in to an account (OWASP device cookies): a login that
-- brings one is counted against the device, not against the account's email, so
-- nobody else's failures lock the owner out of a device they have used before.
CREATE TABLE devices (
	id           TEXT PRIMARY KEY,
	account_id   TEXT NOT NULL REFERENCES accounts (id),
	token_hash   TEXT NOT NULL UNIQUE,
	created_at   TIMESTAMPTZ NOT NULL,
	last_used_at TIMESTAMPTZ NOT NULL,
	expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX devices_account ON devices (account_id);

-- Wrong guesses of a typed code are counted per code: the fifth stops that code
-- (its link still works), and never the owner's next reset.
ALTER TABLE email_codes ADD COLUMN code_failures INTEGER NOT NULL DEFAULT 0;
