-- Residents record VideoGram replies at the kiosk, where their agency allows it.
--
-- An upload now belongs to an owner: a family's account (its id, as before) or a
-- resident at a kiosk ("resident:" and the resident's id). SQLite cannot drop the
-- account reference in place, so the table is rebuilt, as in 0012.
CREATE TABLE uploads_new (
	id          TEXT PRIMARY KEY,
	owner       TEXT NOT NULL,
	size        INTEGER NOT NULL,
	created_at  TIMESTAMP NOT NULL,
	finished_at TIMESTAMP,
	used_at     TIMESTAMP
);
INSERT INTO uploads_new (id, owner, size, created_at, finished_at, used_at)
SELECT id, account_id, size, created_at, finished_at, used_at FROM uploads;
DROP TABLE uploads;
ALTER TABLE uploads_new RENAME TO uploads;
CREATE INDEX uploads_owner ON uploads (owner, finished_at);

-- Whether residents may record VideoGram replies (off unless the agency turns it on).
ALTER TABLE message_policies ADD COLUMN videogram_replies BOOLEAN NOT NULL DEFAULT FALSE;

-- The message whose prepaid reply paid for a resident's reply, so that a reply
-- that is never delivered (a rejected or unusable clip) gives it back.
ALTER TABLE messages ADD COLUMN reply_paid_by TEXT NOT NULL DEFAULT '';

-- One upload makes one clip, whatever reaches the database at once.
CREATE UNIQUE INDEX videograms_upload ON videograms (upload_id);
