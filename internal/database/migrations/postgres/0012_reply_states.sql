-- A resident's reply is "sent" until the family opens it, then "read".
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
UPDATE messages SET state = 'sent' WHERE direction = 'from_resident' AND state = 'delivered';
ALTER TABLE messages ADD CONSTRAINT messages_state_check CHECK (state IN ('sent', 'in_review', 'delivered', 'read', 'rejected'));
DROP INDEX messages_visible;
CREATE INDEX messages_visible ON messages (contact_id, created_at) WHERE state IN ('sent', 'delivered', 'read');
