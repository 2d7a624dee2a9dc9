-- Each sign-up code carries the details of its own sign-up, so that a second
-- sign-up for an unverified address cannot change what the first one's code
-- activates.
ALTER TABLE email_codes ADD COLUMN full_name TEXT;
ALTER TABLE email_codes ADD COLUMN locale TEXT;
ALTER TABLE email_codes ADD COLUMN password_hash TEXT;
ALTER TABLE email_codes ADD COLUMN security_question TEXT;
ALTER TABLE email_codes ADD COLUMN security_answer_hash TEXT;

-- A sensitive job (mail carrying a one-time code or link) has its payload cleared
-- when it ends, failed or not, and cannot be retried by an operator.
ALTER TABLE jobs ADD COLUMN sensitive BOOLEAN NOT NULL DEFAULT FALSE;
