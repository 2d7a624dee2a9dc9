-- Disputes the card holder loses (internal/deposits, disputeWon).
--
-- What has gone back to a deposit's card so far: a deposit can be refunded twice,
-- when a dispute taken before it posted is won after the rest was refunded, and
-- each refund needs a key of its own and must send back only what is still owed.
-- Deposits refunded before this column are filled in: their one refund sent back
-- the total less what a dispute took.
ALTER TABLE deposits ADD COLUMN refunded_cents BIGINT NOT NULL DEFAULT 0;
UPDATE deposits SET refunded_cents = amount_cents + fee_cents - disputed_cents WHERE refund = 'done' AND amount_cents + fee_cents > disputed_cents;

-- The trust feed's rows gain a kind: reinstated, what a won dispute gives back to
-- a trust account.
ALTER TABLE deposit_feed DROP CONSTRAINT deposit_feed_kind_check;
ALTER TABLE deposit_feed ADD CONSTRAINT deposit_feed_kind_check
	CHECK (kind IN ('posted', 'reversed', 'reinstated', 'refunded', 'spent', 'spend_refunded'));
