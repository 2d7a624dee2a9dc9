-- Reconciliation with the payment processor (SECURITY.md 41; internal/ledger,
-- reconcile.go). Every ledger transaction that moves money on the processor's
-- account names what it mirrors at the processor:
--
-- * card_kind: charge, refund, chargeback or chargeback_reversed ('' for a
--   transaction that does not touch the processor's account);
-- * card_object: the processor's own object (the charge, the refund) where the
--   ledger learns it; '' for a chargeback, whose dispute only the processor names;
-- * card_charge: the payment (charge) it belongs to.
ALTER TABLE ledger_transactions ADD COLUMN card_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger_transactions ADD COLUMN card_object TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger_transactions ADD COLUMN card_charge TEXT NOT NULL DEFAULT '';

-- Transactions posted before: each kind that touches the processor's account says
-- where its processor's object is. Top-ups and their disputes keep the charge as
-- their reference; a wallet refund's part keeps its refund, whose charge is the
-- part's; a deposit's transactions keep the deposit, whose charge the deposit
-- keeps. A deposit's refund is left without its refund's id (a deposit refunded
-- twice keeps only the last): the reconciliation finds it by its key, which the
-- processor keeps in the refund's metadata.
UPDATE ledger_transactions SET card_kind = 'charge', card_object = reference, card_charge = reference WHERE kind = 'topup';
UPDATE ledger_transactions SET card_kind = 'chargeback', card_charge = reference WHERE kind = 'topup.chargeback';
UPDATE ledger_transactions SET card_kind = 'chargeback_reversed', card_charge = reference WHERE kind = 'topup.dispute_won';
UPDATE ledger_transactions SET card_kind = 'refund', card_object = reference,
	card_charge = COALESCE((SELECT MIN(p.charge_id) FROM wallet_refund_parts p WHERE p.processor_refund_id = ledger_transactions.reference), '')
WHERE kind = 'card_refund';
UPDATE ledger_transactions SET card_charge = COALESCE((SELECT d.charge_id FROM deposits d WHERE d.id = ledger_transactions.reference), '')
WHERE kind IN ('deposit.charge', 'deposit.refund', 'deposit.chargeback', 'deposit.dispute_won');
UPDATE ledger_transactions SET card_kind = 'charge', card_object = card_charge WHERE kind = 'deposit.charge';
UPDATE ledger_transactions SET card_kind = 'refund' WHERE kind = 'deposit.refund';
UPDATE ledger_transactions SET card_kind = 'chargeback' WHERE kind = 'deposit.chargeback';
UPDATE ledger_transactions SET card_kind = 'chargeback_reversed' WHERE kind = 'deposit.dispute_won';

-- A day's card movements, and every movement of one charge. Partial: the sends and
-- spends that make most transactions write neither.
CREATE INDEX ledger_transactions_card_day ON ledger_transactions (created_at) WHERE card_kind <> '';
CREATE INDEX ledger_transactions_card_charge ON ledger_transactions (card_charge) WHERE card_kind <> '';

-- The server's daily reconciliations, one per UTC day: what it found, for an
-- operator (and the metrics) to read.
CREATE TABLE ledger_reconciliations (
	day             TEXT PRIMARY KEY,
	processor       TEXT NOT NULL,
	matched         INTEGER NOT NULL,
	differences     INTEGER NOT NULL,
	ledger_cents    BIGINT NOT NULL,
	processor_cents BIGINT NOT NULL,
	report          TEXT NOT NULL,
	checked_at      TIMESTAMPTZ NOT NULL
);
