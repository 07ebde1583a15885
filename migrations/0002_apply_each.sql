-- Isolation of bad jobs (common/commit.c): run `stmt`, an INSERT that
-- reads one job's rows from a staging table by its number ($1), once per
-- job in `jobs`, each in a subtransaction of its own. A job whose rows
-- PostgreSQL refuses, for whatever reason, is rolled back alone and
-- returned with its SQLSTATE and message; the others stay written. One
-- call isolates every bad job of a batch, in one round trip.
-- QUERY_CANCELED (statement_timeout) is not caught: it cancels the whole
-- call, and the flusher retries the batch.
CREATE FUNCTION spillway.apply_each(stmt text, jobs integer[])
RETURNS TABLE (failed_job integer, failed_state text, failed_message text)
LANGUAGE plpgsql AS $$
DECLARE
    j integer;
BEGIN
    FOREACH j IN ARRAY jobs LOOP
        BEGIN
            EXECUTE stmt USING j;
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
