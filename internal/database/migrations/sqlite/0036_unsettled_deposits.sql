-- A deposit whose request never learned its charge's outcome (a server stopped, a
-- processor that did not answer) is found by a sweep (internal/deposits,
-- SweepUnsettled), which queues its settle job once. Until now every deposit
-- queued that job with itself, and the request that charged it withdrew it: two
-- writes to the jobs table per deposit, on the one writer of SQLite, for the rare
-- deposit that needs one.
--
-- A deposit still holds its card's token until its charge is known (charged,
-- failed, or ended uncharged); settle_queued says its settle job was queued.
ALTER TABLE deposits ADD COLUMN settle_queued BOOLEAN NOT NULL DEFAULT FALSE;
-- Deposits of the earlier version that still wait have their settle job already.
UPDATE deposits SET settle_queued = TRUE WHERE payment_token <> '';
CREATE INDEX deposits_unsettled ON deposits (created_at) WHERE payment_token <> '' AND NOT settle_queued;
-- Read by no query: its upkeep only cost a write on each deposit's posting.
DROP INDEX deposits_open;
