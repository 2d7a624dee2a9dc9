-- Files sent in pieces (tus resumable uploads), kept in DATA_DIR/uploads while they
-- arrive and until a VideoGram is made from them. The bytes and the received
-- offset are the upload store's; this table says whose each upload is, so that
-- only its owner can continue or use it, and how many an account has unfinished.
CREATE TABLE uploads (
	id          TEXT PRIMARY KEY,
	account_id  TEXT NOT NULL REFERENCES accounts (id),
	size        BIGINT NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	finished_at TIMESTAMPTZ,
	used_at     TIMESTAMPTZ
);
CREATE INDEX uploads_account ON uploads (account_id, finished_at);
