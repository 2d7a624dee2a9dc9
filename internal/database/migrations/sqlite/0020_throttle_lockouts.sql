-- Locks of a key in a row (internal/throttle): a rule with a MaxLockout makes each
-- lock that follows another while attempts keep coming twice as long (a kiosk's
-- pause after wrong sign-ins: 1 minute, then 2, 4... up to 15).
ALTER TABLE throttles ADD COLUMN lockouts INTEGER NOT NULL DEFAULT 0;
