-- Disputes the card holder loses (internal/deposits, disputeWon).
--
-- What has gone back to a deposit's card so far: a deposit can be refunded twice,
-- when a dispute taken before it posted is won after the rest was refunded, and
-- each refund needs a key of its own and must send back only what is still owed.
-- Deposits refunded before this column are filled in from the ledger: what their
-- one refund (deposit:<id>:refund) gave back to the cards.
ALTER TABLE deposits ADD COLUMN refunded_cents BIGINT NOT NULL DEFAULT 0;
UPDATE deposits SET refunded_cents = COALESCE((SELECT SUM(e.amount) FROM ledger_transactions t
	JOIN ledger_entries e ON e.transaction_id = t.id JOIN ledger_accounts a ON a.id = e.account_id
	WHERE t.idempotency_key = 'deposit:' || deposits.id || ':refund' AND a.kind = 'processor'), 0)
WHERE refund = 'done';
-- What the refund under way asked the processor for, under its key, fixed before
-- the processor is asked: a retry asks for the same under the same key, and the
-- ledger records what was asked, whatever changed meanwhile (a dispute won or
-- taken). 0 when no refund is under way.
ALTER TABLE deposits ADD COLUMN refund_asked_cents BIGINT NOT NULL DEFAULT 0;

-- The trust feed's rows gain a kind: reinstated, what a won dispute gives back to
-- a trust account.
ALTER TABLE deposit_feed DROP CONSTRAINT deposit_feed_kind_check;
ALTER TABLE deposit_feed ADD CONSTRAINT deposit_feed_kind_check
	CHECK (kind IN ('posted', 'reversed', 'reinstated', 'refunded', 'spent', 'spend_refunded'));
