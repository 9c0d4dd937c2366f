-- An instance is in flight (submitting or submitted) in at most one run at a
-- time: two runs over the same fleet never both have a call for one instance
-- on its way. A second run's intent fails with a unique violation and waits.
CREATE UNIQUE INDEX jobs_instance_in_flight_key ON jobs (instance_id)
    WHERE status IN ('submitting', 'submitted');

-- The intent's cross-run check looks up an instance's jobs in other runs.
CREATE INDEX jobs_instance_intent_idx ON jobs (instance_id, intent_at);

-- When the run's first runner claimed, on the database's clock: a reset that
-- another run sent for one of its instances after that is not sent again.
ALTER TABLE runs ADD COLUMN started_at timestamptz;
