-- The servers sharing this database (issue 15, several instances): each one that
-- serves keeps its row fresh (seen_at, every ten seconds), so another can tell
-- whether the instance a visit's room is pinned to (visits.room_instance) is
-- still there, reach it at url to pass a participant's signalling on, and check
-- that a request it forwarded was signed with its hop_key. An instance not seen
-- for 30 seconds is gone: its rooms are taken over by the next join elsewhere.
CREATE TABLE instances (
	name       TEXT PRIMARY KEY,
	url        TEXT NOT NULL,
	hop_key    TEXT NOT NULL,
	started_at TIMESTAMPTZ NOT NULL,
	seen_at    TIMESTAMPTZ NOT NULL
);
