-- The newest message a resident can see in a conversation, straight from an index
-- (the kiosk inbox asks for it per conversation).
CREATE INDEX messages_visible ON messages (contact_id, created_at) WHERE state IN ('delivered', 'read');
