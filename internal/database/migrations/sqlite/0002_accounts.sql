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
	status               TEXT NOT NULL CHECK (status IN ('pending', 'active', 'disabled')),
	totp_secret          TEXT,
	totp_enabled         BOOLEAN NOT NULL DEFAULT FALSE,
	totp_last_step       INTEGER NOT NULL DEFAULT 0,
	created_at           TIMESTAMP NOT NULL,
	activated_at         TIMESTAMP,
	password_changed_at  TIMESTAMP NOT NULL
);

-- One-time codes sent by email: sign-up verification and password resets. A code and
-- a link token reach the same row; both are stored only as hashes.
CREATE TABLE email_codes (
	id               TEXT PRIMARY KEY,
	account_id       TEXT NOT NULL REFERENCES accounts (id),
	purpose          TEXT NOT NULL CHECK (purpose IN ('signup', 'reset')),
	code_hash        TEXT NOT NULL,
	link_hash        TEXT NOT NULL UNIQUE,
	created_at       TIMESTAMP NOT NULL,
	expires_at       TIMESTAMP NOT NULL,
	verified_at      TIMESTAMP,
	step_token_hash  TEXT UNIQUE,
	answered_at      TIMESTAMP,
	answer_failures  INTEGER NOT NULL DEFAULT 0,
	used_at          TIMESTAMP,
	voided_at        TIMESTAMP
);
CREATE INDEX email_codes_account ON email_codes (account_id, purpose);

-- Web sessions, API tokens and pending second-factor logins; tokens stored as hashes.
CREATE TABLE sessions (
	id           TEXT PRIMARY KEY,
	token_hash   TEXT NOT NULL UNIQUE,
	account_id   TEXT NOT NULL REFERENCES accounts (id),
	kind         TEXT NOT NULL CHECK (kind IN ('web', 'api', 'second_factor')),
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
