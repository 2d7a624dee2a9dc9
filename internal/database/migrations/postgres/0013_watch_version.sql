-- Counts changes of an agency's watch list, so a server can keep the list in memory
-- and still see a change made through any other server at the next message.
ALTER TABLE agencies ADD COLUMN watch_version BIGINT NOT NULL DEFAULT 0;
