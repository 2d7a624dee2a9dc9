-- Every b-tree a send writes is a page in the write-ahead log at its commit (a send
-- wrote sixteen; see bench/README.md). This takes four away:
--
-- * Ledger transactions are keyed by their id alone (WITHOUT ROWID), so the id needs
--   no index of its own.
-- * Ledger entries are keyed by (transaction, position): the table is its own index
--   by transaction, and without AUTOINCREMENT no sqlite_sequence row changes per
--   post. An account's history is ordered by time, then transaction.
-- * A message reaches the resident when delivered_at is set (delivered at once,
--   approved, or a reply), so one partial index by conversation and delivery time
--   serves both the kiosk inbox (newest per conversation) and its check for news
--   (newest per resident), instead of messages_visible and messages_delivered.
--
-- SQLite cannot re-key a table in place; both are rebuilt as its documentation
-- describes (the migrator turns foreign keys off around a migration and checks them
-- before committing).
CREATE TABLE ledger_transactions_new (
	id              TEXT PRIMARY KEY,
	kind            TEXT NOT NULL,
	idempotency_key TEXT NOT NULL UNIQUE,
	description     TEXT NOT NULL DEFAULT '',
	reference       TEXT NOT NULL DEFAULT '',
	created_at      TIMESTAMP NOT NULL
) WITHOUT ROWID;
INSERT INTO ledger_transactions_new (id, kind, idempotency_key, description, reference, created_at)
SELECT id, kind, idempotency_key, description, reference, created_at FROM ledger_transactions;

CREATE TABLE ledger_entries_new (
	transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
	position       INTEGER NOT NULL,
	account_id     TEXT NOT NULL REFERENCES ledger_accounts (id),
	amount         BIGINT NOT NULL,
	created_at     TIMESTAMP NOT NULL,
	PRIMARY KEY (transaction_id, position)
) WITHOUT ROWID;
INSERT INTO ledger_entries_new (transaction_id, position, account_id, amount, created_at)
SELECT transaction_id, ROW_NUMBER() OVER (PARTITION BY transaction_id ORDER BY id) - 1, account_id, amount, created_at
FROM ledger_entries;

DROP TABLE ledger_entries;
DROP TABLE ledger_transactions;
ALTER TABLE ledger_transactions_new RENAME TO ledger_transactions;
ALTER TABLE ledger_entries_new RENAME TO ledger_entries;
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, created_at, transaction_id);

DROP INDEX messages_visible;
DROP INDEX messages_delivered;
CREATE INDEX messages_deliveries ON messages (contact_id, delivered_at) WHERE delivered_at IS NOT NULL;
