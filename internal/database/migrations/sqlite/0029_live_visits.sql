-- Live video visits (issue 15): what the room measured, where it runs, and its
-- recording. connected_seconds is kept up to date while the visit is live (every
-- ten seconds), so a server that stops loses at most that much of what was
-- counted, and the visit's next room goes on from it. room_instance names the
-- server holding the room, so that signalling can reach it from any instance.
ALTER TABLE visits ADD COLUMN connected_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visits ADD COLUMN live_at TIMESTAMP;
ALTER TABLE visits ADD COLUMN room_instance TEXT NOT NULL DEFAULT '';
-- The recording: '' (none: privileged, or never live), recording, merging, ready,
-- failed, or deleted (past the agency's retention).
ALTER TABLE visits ADD COLUMN recording_state TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN recording_key TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN recording_seconds INTEGER NOT NULL DEFAULT 0;
