-- Double-entry ledger (internal/ledger). Every movement of money is a transaction
-- whose entries sum to zero; each account's balance is the sum of its entries and is
-- kept up to date in the same database transaction.
CREATE TABLE ledger_accounts (
	id             TEXT PRIMARY KEY,
	kind           TEXT NOT NULL CHECK (kind IN ('wallet', 'resident', 'processor', 'platform')),
	owner_id       TEXT NOT NULL DEFAULT '',
	currency       TEXT NOT NULL,
	balance        BIGINT NOT NULL DEFAULT 0,
	allow_negative BOOLEAN NOT NULL DEFAULT FALSE,
	created_at     TIMESTAMP NOT NULL,
	UNIQUE (kind, owner_id, currency),
	CHECK (allow_negative OR balance >= 0)
);

CREATE TABLE ledger_transactions (
	id              TEXT PRIMARY KEY,
	kind            TEXT NOT NULL,
	idempotency_key TEXT NOT NULL UNIQUE,
	description     TEXT NOT NULL DEFAULT '',
	reference       TEXT NOT NULL DEFAULT '',
	created_at      TIMESTAMP NOT NULL
);

CREATE TABLE ledger_entries (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
	account_id     TEXT NOT NULL REFERENCES ledger_accounts (id),
	amount         BIGINT NOT NULL,
	created_at     TIMESTAMP NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);
