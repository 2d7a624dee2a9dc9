-- Residents record VideoGram replies at the kiosk, where their agency allows it.
--
-- An upload now belongs to an owner: a family's account (its id, as before) or a
-- resident at a kiosk ("resident:" and the resident's id).
ALTER TABLE uploads DROP CONSTRAINT uploads_account_id_fkey;
ALTER TABLE uploads RENAME COLUMN account_id TO owner;
ALTER INDEX uploads_account RENAME TO uploads_owner;

-- Whether residents may record VideoGram replies (off unless the agency turns it on).
ALTER TABLE message_policies ADD COLUMN videogram_replies BOOLEAN NOT NULL DEFAULT FALSE;

-- The message whose prepaid reply paid for a resident's reply, so that a reply
-- that is never delivered (a rejected or unusable clip) gives it back.
ALTER TABLE messages ADD COLUMN reply_paid_by TEXT NOT NULL DEFAULT '';

-- One upload makes one clip, whatever reaches the database at once.
CREATE UNIQUE INDEX videograms_upload ON videograms (upload_id);
