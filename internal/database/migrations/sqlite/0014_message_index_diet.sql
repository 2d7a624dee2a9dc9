-- Every index of messages is written on every message sent. messages_resident was
-- read by nothing; the review queue reads by agency, and only messages waiting in
-- review need to be found that way, so a partial index of those replaces
-- messages_review and a delivered message no longer touches it.
DROP INDEX messages_resident;
DROP INDEX messages_review;
CREATE INDEX messages_waiting ON messages (agency_id, created_at) WHERE state = 'in_review';
