-- The clip of each VideoGram (a message of kind videogram). The message, its price
-- and its review are the messaging package's; this is the clip's own life: made
-- from an upload by a background job, then kept in the media store until the
-- agency's retention deletes it.
CREATE TABLE videograms (
	message_id   TEXT PRIMARY KEY REFERENCES messages (id),
	upload_id    TEXT NOT NULL,
	limit_ms     INTEGER NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('processing', 'ready', 'failed', 'deleted')),
	fault        TEXT NOT NULL DEFAULT '',
	duration_ms  INTEGER NOT NULL DEFAULT 0,
	width        INTEGER NOT NULL DEFAULT 0,
	height       INTEGER NOT NULL DEFAULT 0,
	video_bytes  BIGINT NOT NULL DEFAULT 0,
	created_at   TIMESTAMPTZ NOT NULL,
	processed_at TIMESTAMPTZ,
	deleted_at   TIMESTAMPTZ
);
CREATE INDEX videograms_state ON videograms (state, created_at);
