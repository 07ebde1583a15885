-- The ledger's committed_at index serves only pruning, which reads the
-- oldest rows; rows arrive in committed_at order, so a BRIN index (a few
-- pages, nearly free to keep) finds them as well as a B-tree that costs
-- an insertion per job.
DROP INDEX IF EXISTS spillway.ledger_committed_at;
CREATE INDEX ledger_committed_at ON spillway.ledger USING brin (committed_at);
