-- An agency's message policy moves out of the agencies table (which the facility
-- package owns) into a table of the messaging package's own. An agency without a row
-- has the defaults: nothing reviewed beyond the watch list and photos, free replies.
CREATE TABLE message_policies (
	agency_id          TEXT PRIMARY KEY REFERENCES agencies (id),
	review_all         BOOLEAN NOT NULL DEFAULT FALSE,
	reply_price_stamps INTEGER NOT NULL DEFAULT 0,
	-- Counts changes of the watch list, so a server can keep the list in memory and
	-- still see a change made through any other server at the next message.
	watch_version      BIGINT NOT NULL DEFAULT 0
);

INSERT INTO message_policies (agency_id, review_all, reply_price_stamps, watch_version)
	SELECT id, review_all, reply_price_stamps, watch_version FROM agencies;

ALTER TABLE agencies DROP COLUMN review_all;
ALTER TABLE agencies DROP COLUMN reply_price_stamps;
ALTER TABLE agencies DROP COLUMN watch_version;
