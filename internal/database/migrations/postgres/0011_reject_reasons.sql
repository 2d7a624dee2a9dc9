-- The reasons an agency's reviewers give when they reject a message. The built-in
-- reasons (worded by the program in every language) need no row: a row with their
-- code only records that the agency retired one. An agency's own reasons are rows
-- with their wording in English and, optionally, Spanish. Rows are never deleted or
-- reworded, so a family always reads a reason as it was given.
CREATE TABLE reject_reasons (
	agency_id  TEXT NOT NULL REFERENCES agencies (id),
	code       TEXT NOT NULL,
	english    TEXT NOT NULL DEFAULT '',
	spanish    TEXT NOT NULL DEFAULT '',
	folded     TEXT NOT NULL DEFAULT '',
	retired    BOOLEAN NOT NULL DEFAULT FALSE,
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (agency_id, code)
);
