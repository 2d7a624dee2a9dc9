-- Photos of eMessages (internal/messaging); the re-encoded bytes are in the media
-- store under the photo's id.
CREATE TABLE message_photos (
	id         TEXT PRIMARY KEY,
	message_id TEXT NOT NULL REFERENCES messages (id),
	position   INTEGER NOT NULL,
	width      INTEGER NOT NULL,
	height     INTEGER NOT NULL,
	bytes      INTEGER NOT NULL,
	UNIQUE (message_id, position)
);
