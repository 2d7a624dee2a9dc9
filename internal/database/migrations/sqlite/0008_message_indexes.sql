-- Indexes for the kiosk: a conversation's unread count counts only its unread
-- messages, and the news fingerprint is the newest delivery, not a count of all.
CREATE INDEX messages_unread ON messages (contact_id, direction, state);
CREATE INDEX messages_delivered ON messages (resident_id, direction, delivered_at);
