-- The trust feed's rows carry their deposit's confirmation, whole amount and sender
-- (name and address), written with the row, so that a page is read from the feed
-- alone: an accounting record that does not change. A page of 500 joined each row
-- to its deposit, most of a page's database work (bench/deposits). Rows already
-- written are filled in from their deposits.
ALTER TABLE deposit_feed ADD COLUMN confirmation TEXT NOT NULL DEFAULT '';
ALTER TABLE deposit_feed ADD COLUMN deposit_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deposit_feed ADD COLUMN sender_name TEXT NOT NULL DEFAULT '';
ALTER TABLE deposit_feed ADD COLUMN sender_address TEXT NOT NULL DEFAULT '';
UPDATE deposit_feed f SET confirmation = d.confirmation, deposit_cents = d.amount_cents,
	sender_name = d.sender_name, sender_address = d.sender_address
FROM deposits d WHERE d.id = f.deposit_id AND f.deposit_id <> '';
