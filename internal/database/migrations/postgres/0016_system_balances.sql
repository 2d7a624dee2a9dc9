-- The system accounts (processor, platform) keep no stored balance: theirs is the sum
-- of their entries, so that no row is locked by every purchase in turn. Databases from
-- before that change still hold the last balance stored in the column; it is cleared
-- so that the column never shows a figure nobody keeps up to date, and `kinlink ledger
-- verify` checks that it stays empty.
UPDATE ledger_accounts SET balance = 0 WHERE kind NOT IN ('wallet', 'resident');
