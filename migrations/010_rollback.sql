-- What a rollback needs, and what pauses a run for a person.
--
-- jobs.prev_blueprint_id: the instance's blueprint before the run's first
-- reset of it, recorded with prev_request_id: the image a rollback puts
-- back ('' when not recorded).
ALTER TABLE jobs ADD COLUMN prev_blueprint_id text NOT NULL DEFAULT '';
