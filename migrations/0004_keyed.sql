-- The keyed path (common/keyed.h): merge sinks, deletes, version_column.
--
-- A tombstone per key deleted from a sink with a version_column: the
-- highest sequence of a delete that key met. A write whose sequence is not
-- above it is older than the delete and is not applied, even when it lands
-- after the delete (another flusher's batch, a retried one). Tombstones
-- are pruned with the ledger, after [flusher] ledger_retention_s: a write
-- older than a delete that lands later than that could bring the row back.
-- A key is the text of its columns' values, in the sink's key order.
CREATE TABLE spillway.tombstones (
    sink text NOT NULL,
    key text[] NOT NULL,
    version bigint NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, key)
);
CREATE INDEX tombstones_deleted_at ON spillway.tombstones USING brin (deleted_at);

-- Isolation for the keyed path: like apply_each, but each job runs a list
-- of statements ($1 = the job) in one subtransaction.
CREATE FUNCTION spillway.apply_each_all(stmts text[], jobs integer[])
RETURNS TABLE (failed_job integer, failed_state text, failed_message text)
LANGUAGE plpgsql AS $$
DECLARE
    j integer;
    s text;
BEGIN
    FOREACH j IN ARRAY jobs LOOP
        BEGIN
            FOREACH s IN ARRAY stmts LOOP
                EXECUTE s USING j;
            END LOOP;
        EXCEPTION
            WHEN assert_failure OR others THEN
                failed_job := j;
                failed_state := SQLSTATE;
                failed_message := SQLERRM;
                RETURN NEXT;
        END;
    END LOOP;
END
$$;
