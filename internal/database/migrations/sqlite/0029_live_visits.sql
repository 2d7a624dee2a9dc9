-- Live video visits (issue 15): what the room measured, where it runs, and its
-- recording. connected_seconds is kept up to date while the visit is live (every
-- ten seconds), so a server that stops loses at most that much of what was
-- counted, and the visit's next room goes on from it. room_instance names the
-- server holding the room, so that signalling can reach it from any instance.
ALTER TABLE visits ADD COLUMN connected_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visits ADD COLUMN live_at TIMESTAMP;
ALTER TABLE visits ADD COLUMN room_instance TEXT NOT NULL DEFAULT '';

-- A visit's recordings: one per room it had (a server that stopped mid-visit
-- leaves the rest of the visit to a new room), each merged after its room ended
-- into one playable file in the media store. Deleted past the agency's retention,
-- the row staying as a record (deleted_at).
CREATE TABLE visit_recordings (
	visit_id   TEXT NOT NULL REFERENCES visits (id),
	segment    TEXT NOT NULL,
	blob_key   TEXT NOT NULL,
	seconds    INTEGER NOT NULL,
	created_at TIMESTAMP NOT NULL,
	deleted_at TIMESTAMP,
	PRIMARY KEY (visit_id, segment)
);
CREATE INDEX visit_recordings_created ON visit_recordings (created_at) WHERE deleted_at IS NULL;
