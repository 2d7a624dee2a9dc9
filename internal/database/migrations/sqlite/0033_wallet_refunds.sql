-- Refunds of a family's unused wallet balance to its cards (internal/ledger,
-- wallet_refund.go). Money in a communications account stays the holder's and is
-- refunded on request (47 CFR 64.6100-64.6130): in full, with no fee.
--
-- A refund takes the whole balance out of the wallet into a hold in one transaction
-- with these rows and the job that asks the processor; each part is what goes back
-- to one card charge (a top-up), newest charge first. A part is done once the
-- processor confirmed it (processor_refund_id) and the ledger moved its money from
-- the hold to the processor's account; the refund is 'refunded' when every part is.
-- The ledger's own tables say where the money is; these say what was asked of the
-- processor, so a job run again after a crash asks for nothing twice.
CREATE TABLE wallet_refunds (
	id              TEXT PRIMARY KEY,
	account_id      TEXT NOT NULL,
	idempotency_key TEXT NOT NULL UNIQUE,
	amount_cents    BIGINT NOT NULL CHECK (amount_cents > 0),
	state           TEXT NOT NULL CHECK (state IN ('pending', 'refunded')),
	created_at      TIMESTAMP NOT NULL,
	finished_at     TIMESTAMP
);
CREATE INDEX wallet_refunds_account ON wallet_refunds (account_id, created_at);

CREATE TABLE wallet_refund_parts (
	refund_id           TEXT NOT NULL REFERENCES wallet_refunds (id),
	position            INTEGER NOT NULL CHECK (position > 0),
	charge_id           TEXT NOT NULL,
	amount_cents        BIGINT NOT NULL CHECK (amount_cents > 0),
	processor_refund_id TEXT NOT NULL DEFAULT '',
	refunded_at         TIMESTAMP,
	PRIMARY KEY (refund_id, position)
);
-- What a charge has given back already: a later refund places at most the rest on it.
CREATE INDEX wallet_refund_parts_charge ON wallet_refund_parts (charge_id);
