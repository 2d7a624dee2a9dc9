-- The trust feed's rows carry their deposit's confirmation, whole amount and sender
-- (name and address), written with the row, so that a page is read from the feed
-- alone: an accounting record that does not change. A page of 500 joined each row
-- to its deposit (two more b-tree seeks a row, through the deposit's id index and
-- then its row), most of a page's SQLite work (bench/deposits).
--
-- The table is also kept WITHOUT ROWID, in (agency_id, seq) order: a page is one
-- walk along one b-tree, where a rowid table is read through its key's index and
-- then each row by its rowid. Rows are filled in from their deposits as the table is
-- rebuilt (SQLite cannot make a table WITHOUT ROWID in place).
CREATE TABLE deposit_feed_new (
	agency_id       TEXT NOT NULL REFERENCES agencies (id),
	seq             BIGINT NOT NULL,
	kind            TEXT NOT NULL CHECK (kind IN ('posted', 'reversed', 'reinstated', 'refunded', 'spent', 'spend_refunded')),
	deposit_id      TEXT NOT NULL DEFAULT '',
	resident_id     TEXT NOT NULL REFERENCES residents (id),
	resident_number TEXT NOT NULL,
	resident_name   TEXT NOT NULL,
	facility_code   TEXT NOT NULL,
	amount_cents    BIGINT NOT NULL,
	fee_cents       BIGINT NOT NULL,
	memo            TEXT NOT NULL DEFAULT '',
	ledger_key      TEXT NOT NULL DEFAULT '',
	at              TIMESTAMP NOT NULL,
	confirmation    TEXT NOT NULL DEFAULT '',
	deposit_cents   BIGINT NOT NULL DEFAULT 0,
	sender_name     TEXT NOT NULL DEFAULT '',
	sender_address  TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (agency_id, seq)
) WITHOUT ROWID;
INSERT INTO deposit_feed_new (agency_id, seq, kind, deposit_id, resident_id, resident_number, resident_name, facility_code,
	amount_cents, fee_cents, memo, ledger_key, at, confirmation, deposit_cents, sender_name, sender_address)
SELECT f.agency_id, f.seq, f.kind, f.deposit_id, f.resident_id, f.resident_number, f.resident_name, f.facility_code,
	f.amount_cents, f.fee_cents, f.memo, f.ledger_key, f.at, COALESCE(d.confirmation, ''), COALESCE(d.amount_cents, 0),
	COALESCE(d.sender_name, ''), COALESCE(d.sender_address, '')
FROM deposit_feed f LEFT JOIN deposits d ON d.id = f.deposit_id AND f.deposit_id <> '';
DROP TABLE deposit_feed;
ALTER TABLE deposit_feed_new RENAME TO deposit_feed;
CREATE INDEX deposit_feed_at ON deposit_feed (agency_id, at);
