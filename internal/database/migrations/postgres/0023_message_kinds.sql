-- A message is text (with photos) or a VideoGram. A VideoGram is "processing" until
-- its clip is converted, and "failed" (refunded) when the clip cannot be used.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'videogram'));
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
	CHECK (state IN ('processing', 'sent', 'in_review', 'delivered', 'read', 'rejected', 'failed'));

-- What an agency decides for VideoGrams: the price in stamps, whether staff review
-- every clip, and how long clips are kept. The longest clip is the agency's
-- videogram_seconds, now at most 120.
ALTER TABLE message_policies ADD COLUMN videogram_stamps INTEGER NOT NULL DEFAULT 3;
ALTER TABLE message_policies ADD COLUMN review_videograms BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE message_policies ADD COLUMN videogram_retention_days INTEGER NOT NULL DEFAULT 90;
UPDATE agencies SET videogram_seconds = 120 WHERE videogram_seconds > 120;
