-- Fewer indexes written per send (see the SQLite migration of the same number):
-- ledger entries are keyed by (transaction, position), which is also their index by
-- transaction, and an account's history is ordered by time, then transaction; one
-- partial index of delivered messages by conversation replaces messages_visible and
-- messages_delivered.
ALTER TABLE ledger_entries ADD COLUMN position INTEGER;
UPDATE ledger_entries e SET position = n.p
FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY transaction_id ORDER BY id) - 1 AS p FROM ledger_entries) n
WHERE n.id = e.id;
ALTER TABLE ledger_entries ALTER COLUMN position SET NOT NULL;
DROP INDEX ledger_entries_account;
DROP INDEX ledger_entries_transaction;
ALTER TABLE ledger_entries DROP COLUMN id;
ALTER TABLE ledger_entries ADD PRIMARY KEY (transaction_id, position);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, created_at, transaction_id);

DROP INDEX messages_visible;
DROP INDEX messages_delivered;
CREATE INDEX messages_deliveries ON messages (contact_id, delivered_at) WHERE delivered_at IS NOT NULL;
