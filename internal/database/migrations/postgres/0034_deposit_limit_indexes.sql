-- Indexes for the sums of the deposit limits (internal/deposits, left), which run on
-- every deposit inside its write transaction: on SQLite every other write waits
-- for them. Each holds the columns its sums read (state, amount_cents), so that a
-- sum reads the index alone, not each deposit's row.
--
-- A sender's sums ask for account_id = ? AND agency_id = ? AND created_at > ?: with
-- deposits_account (account_id, created_at) and deposits_agency (agency_id,
-- created_at) to choose from, SQLite took deposits_agency and read every deposit of
-- the whole agency in the last 30 days for each new one (bench/deposits: deposits
-- through the API fell from 148 to 96 a second within 15 seconds as the agency's
-- deposits grew). deposits_sender finds the sender's own deposits at the agency.
CREATE INDEX deposits_sender ON deposits (account_id, agency_id, created_at, state, amount_cents);

-- A resident's sums: the month's deposits, and what is on its way (pending or held)
-- for the most a trust account may hold, which read every deposit the resident
-- ever had. With the state second, each reads only the states it sums.
DROP INDEX deposits_resident;
CREATE INDEX deposits_resident ON deposits (resident_id, state, created_at, amount_cents);
