-- Deposits to residents' trust accounts (issue 16), owned by internal/deposits.
--
-- A new kind of ledger account, 'owed': what a resident owes after a chargeback of
-- money already spent, where the agency's policy has the resident repay it from
-- later deposits. Like the processor's account it may go below zero (it holds minus
-- what is owed) and keeps no stored balance.
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
	CHECK (kind IN ('wallet', 'resident', 'processor', 'platform', 'hold', 'owed'));

-- A staff role for money: the finance office holds, releases and rejects deposits and
-- reads the agency's trust-accounting reports.
ALTER TABLE staff_roles DROP CONSTRAINT staff_roles_role_check;
ALTER TABLE staff_roles ADD CONSTRAINT staff_roles_role_check
	CHECK (role IN ('agency_admin', 'facility_admin', 'mail_reviewer', 'visitation_officer', 'investigator', 'finance'));

-- An agency's rules for deposits. Money in cents; a limit of 0 is no limit. The fee
-- is tiers by amount ("up to 2000: 0, up to 10000: 195", as up_to:fee pairs) or a
-- percentage in basis points with a cap; no tiers and no percentage is no fee.
CREATE TABLE deposit_policies (
	agency_id            TEXT PRIMARY KEY REFERENCES agencies (id),
	from_anyone          BOOLEAN NOT NULL DEFAULT FALSE,
	post_at_once         BOOLEAN NOT NULL DEFAULT TRUE,
	show_sender          BOOLEAN NOT NULL DEFAULT TRUE,
	max_deposit_cents    BIGINT NOT NULL DEFAULT 30000 CHECK (max_deposit_cents > 0),
	sender_day_cents     BIGINT NOT NULL DEFAULT 0 CHECK (sender_day_cents >= 0),
	sender_month_cents   BIGINT NOT NULL DEFAULT 0 CHECK (sender_month_cents >= 0),
	resident_month_cents BIGINT NOT NULL DEFAULT 0 CHECK (resident_month_cents >= 0),
	max_balance_cents    BIGINT NOT NULL DEFAULT 0 CHECK (max_balance_cents >= 0),
	fee_tiers            TEXT NOT NULL DEFAULT '',
	fee_basis_points     INTEGER NOT NULL DEFAULT 0 CHECK (fee_basis_points >= 0),
	fee_cap_cents        BIGINT NOT NULL DEFAULT 0 CHECK (fee_cap_cents >= 0),
	chargebacks          TEXT NOT NULL DEFAULT 'platform' CHECK (chargebacks IN ('platform', 'resident')),
	finance_email        TEXT NOT NULL DEFAULT '',
	updated_at           TIMESTAMPTZ NOT NULL
);

-- A deposit from a family's card to a resident's trust account. It is written
-- before the card is charged (state pending, not charged), so a server that stops
-- between the charge and the posting finds it again and finishes it. The resident's
-- number, name and facility are kept as they were at the deposit: what the trust
-- system is told.
CREATE TABLE deposits (
	id              TEXT PRIMARY KEY,
	confirmation    TEXT NOT NULL UNIQUE,
	agency_id       TEXT NOT NULL REFERENCES agencies (id),
	facility_id     TEXT NOT NULL REFERENCES facilities (id),
	resident_id     TEXT NOT NULL REFERENCES residents (id),
	resident_number TEXT NOT NULL,
	resident_name   TEXT NOT NULL,
	facility_code   TEXT NOT NULL,
	facility_name   TEXT NOT NULL DEFAULT '',
	account_id      TEXT NOT NULL REFERENCES accounts (id),
	contact_id      TEXT NOT NULL DEFAULT '',
	amount_cents    BIGINT NOT NULL CHECK (amount_cents > 0),
	fee_cents       BIGINT NOT NULL CHECK (fee_cents >= 0),
	state           TEXT NOT NULL CHECK (state IN ('pending', 'held', 'posted', 'rejected', 'cancelled', 'refunded', 'failed', 'reversed')),
	reason          TEXT NOT NULL DEFAULT '',
	sender_name     TEXT NOT NULL,
	sender_address  TEXT NOT NULL,
	email           TEXT NOT NULL,
	locale          TEXT NOT NULL,
	processor       TEXT NOT NULL,
	payment_token   TEXT NOT NULL DEFAULT '',
	charge_id       TEXT NOT NULL DEFAULT '',
	charged         BOOLEAN NOT NULL DEFAULT FALSE,
	refund          TEXT NOT NULL DEFAULT '' CHECK (refund IN ('', 'due', 'done')),
	disputed_cents  BIGINT NOT NULL DEFAULT 0 CHECK (disputed_cents >= 0),
	refund_id       TEXT NOT NULL DEFAULT '',
	idempotency_key TEXT NOT NULL UNIQUE,
	created_at      TIMESTAMPTZ NOT NULL,
	decided_by      TEXT NOT NULL DEFAULT '',
	posted_at       TIMESTAMPTZ,
	ended_at        TIMESTAMPTZ
);
CREATE INDEX deposits_account ON deposits (account_id, created_at);
CREATE INDEX deposits_resident ON deposits (resident_id, created_at);
CREATE INDEX deposits_agency ON deposits (agency_id, created_at);
CREATE INDEX deposits_charge ON deposits (charge_id) WHERE charge_id <> '';
CREATE INDEX deposits_open ON deposits (created_at) WHERE state = 'pending' OR refund = 'due';

-- What a payment processor reported (webhooks, the sandbox's disputes), once per
-- event id; applied_at stays empty while the event waits for its deposit (an
-- event can come before the charge it is about is known here).
CREATE TABLE payment_events (
	id          TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	charge_id   TEXT NOT NULL,
	charge_key  TEXT NOT NULL DEFAULT '',
	amount      BIGINT NOT NULL,
	received_at TIMESTAMPTZ NOT NULL,
	applied_at  TIMESTAMPTZ
);
CREATE INDEX payment_events_charge ON payment_events (charge_id);

-- The trust-accounting feed: what changed a resident's trust money, in the order
-- it committed, per agency: deposits posted, reversed by a chargeback or refunded
-- before posting, and what residents spent of it here (stamps). seq is given under
-- a lock per agency, so an agency's system that polls with the last seq it saw
-- never misses a row. The resident is kept as they were at the time; ledger_key
-- is the key of the row's ledger transaction, which the daily report checks the
-- row against.
CREATE TABLE deposit_feed (
	agency_id       TEXT NOT NULL REFERENCES agencies (id),
	seq             BIGINT NOT NULL,
	kind            TEXT NOT NULL CHECK (kind IN ('posted', 'reversed', 'refunded', 'spent', 'spend_refunded')),
	deposit_id      TEXT NOT NULL DEFAULT '',
	resident_id     TEXT NOT NULL REFERENCES residents (id),
	resident_number TEXT NOT NULL,
	resident_name   TEXT NOT NULL,
	facility_code   TEXT NOT NULL,
	amount_cents    BIGINT NOT NULL,
	fee_cents       BIGINT NOT NULL,
	memo            TEXT NOT NULL DEFAULT '',
	ledger_key      TEXT NOT NULL DEFAULT '',
	at              TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (agency_id, seq)
);
CREATE INDEX deposit_feed_at ON deposit_feed (agency_id, at);

-- Keys an agency's trust-accounting system reads the feed with: shown once, kept as
-- a SHA-256 hash.
CREATE TABLE deposit_feed_keys (
	id          TEXT PRIMARY KEY,
	agency_id   TEXT NOT NULL REFERENCES agencies (id),
	name        TEXT NOT NULL,
	key_hash    TEXT NOT NULL UNIQUE,
	created_by  TEXT NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	last_used   TIMESTAMPTZ,
	revoked_at  TIMESTAMPTZ
);

-- Daily reconciliation reports sent, one per agency and day.
CREATE TABLE deposit_reports (
	agency_id TEXT NOT NULL REFERENCES agencies (id),
	day       TEXT NOT NULL,
	sent_at   TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (agency_id, day)
);
