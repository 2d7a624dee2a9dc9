-- What a send asked for (contact, text, prepaid reply, photos), hashed: a retry
-- with the same idempotency key but other content is refused instead of answered
-- with the first message.
ALTER TABLE messages ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';
