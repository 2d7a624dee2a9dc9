-- Durable background jobs (see internal/jobs). A job is enqueued in the same
-- transaction as the change that causes it.
CREATE TABLE jobs (
	id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind         TEXT NOT NULL,
	payload      TEXT NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('available', 'running', 'succeeded', 'failed')),
	attempts     INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL,
	run_after    TIMESTAMPTZ NOT NULL,
	locked_until TIMESTAMPTZ,
	last_error   TEXT,
	created_at   TIMESTAMPTZ NOT NULL,
	finished_at  TIMESTAMPTZ
);
CREATE INDEX jobs_ready ON jobs (state, run_after);
