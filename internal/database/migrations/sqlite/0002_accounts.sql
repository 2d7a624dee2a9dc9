-- Attempt limits (internal/throttle).
CREATE TABLE throttles (
	key          TEXT PRIMARY KEY,
	failures     INTEGER NOT NULL,
	window_start TIMESTAMP NOT NULL,
	locked_until TIMESTAMP
);

-- Family accounts and their credentials (internal/identity).
CREATE TABLE accounts (
	id                   TEXT PRIMARY KEY,
	email                TEXT NOT NULL UNIQUE,
	full_name            TEXT NOT NULL,
	locale               TEXT NOT NULL,
	password_hash        TEXT NOT NULL,
	security_question    TEXT NOT NULL,
	security_answer_hash TEXT NOT NULL,
	kind                 TEXT NOT NULL DEFAULT 'family' CHECK (kind IN ('family', 'staff')),
	status               TEXT NOT NULL CHECK (status IN ('pending', 'active', 'disabled')),
	totp_secret          TEXT,
	totp_enabled         BOOLEAN NOT NULL DEFAULT FALSE,
	totp_last_step       INTEGER NOT NULL DEFAULT 0,
	created_at           TIMESTAMP NOT NULL,
	activated_at         TIMESTAMP,
	password_changed_at  TIMESTAMP NOT NULL
);

-- One-time codes sent by email: sign-up verification, password resets and staff
-- enrolment. A code and a link token reach the same row; both are stored only as
-- hashes. A sign-up code carries the details of its own sign-up, so that a second
-- sign-up for an unverified address cannot change what the first one's code activates.
CREATE TABLE email_codes (
	id               TEXT PRIMARY KEY,
	account_id       TEXT NOT NULL REFERENCES accounts (id),
	purpose          TEXT NOT NULL CHECK (purpose IN ('signup', 'reset', 'enrol')),
	code_hash        TEXT NOT NULL,
	link_hash        TEXT NOT NULL UNIQUE,
	created_at       TIMESTAMP NOT NULL,
	expires_at       TIMESTAMP NOT NULL,
	verified_at      TIMESTAMP,
	step_token_hash  TEXT UNIQUE,
	answered_at      TIMESTAMP,
	answer_failures  INTEGER NOT NULL DEFAULT 0,
	used_at          TIMESTAMP,
	voided_at        TIMESTAMP,
	full_name            TEXT,
	locale               TEXT,
	password_hash        TEXT,
	security_question    TEXT,
	security_answer_hash TEXT
);
CREATE INDEX email_codes_account ON email_codes (account_id, purpose);

-- Web sessions, API tokens, staff portal sessions and pending second-factor logins;
-- tokens stored as hashes.
CREATE TABLE sessions (
	id           TEXT PRIMARY KEY,
	token_hash   TEXT NOT NULL UNIQUE,
	account_id   TEXT NOT NULL REFERENCES accounts (id),
	kind         TEXT NOT NULL CHECK (kind IN ('web', 'api', 'second_factor', 'staff', 'staff_api')),
	created_at   TIMESTAMP NOT NULL,
	last_seen_at TIMESTAMP NOT NULL,
	expires_at   TIMESTAMP NOT NULL,
	idle_seconds INTEGER NOT NULL,
	ip           TEXT NOT NULL,
	user_agent   TEXT NOT NULL,
	revoked_at   TIMESTAMP
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE recovery_codes (
	account_id TEXT NOT NULL REFERENCES accounts (id),
	code_hash  TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	used_at    TIMESTAMP,
	PRIMARY KEY (account_id, code_hash)
);

-- Security events shown to the account holder; never holds secrets.
CREATE TABLE security_events (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id TEXT NOT NULL REFERENCES accounts (id),
	kind       TEXT NOT NULL,
	at         TIMESTAMP NOT NULL,
	ip         TEXT NOT NULL,
	user_agent TEXT NOT NULL
);
CREATE INDEX security_events_account ON security_events (account_id, at);
