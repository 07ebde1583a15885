-- The batch ledger: one row per job committed to PostgreSQL, written in the
-- same transaction as the job's rows. A job re-run after a crash (between
-- COMMIT and the Redis clean-up) or by a second flusher finds its id here
-- and is not applied twice.
CREATE TABLE spillway.ledger (
    job_id       uuid PRIMARY KEY,
    flusher      text NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ledger_committed_at ON spillway.ledger (committed_at);
