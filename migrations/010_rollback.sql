-- What a rollback needs, and what pauses a run for a person.
--
-- jobs.prev_blueprint_id: the instance's blueprint before the run's first
-- reset of it, recorded with prev_request_id: the image a rollback puts
-- back ('' when not recorded).
ALTER TABLE jobs ADD COLUMN prev_blueprint_id text NOT NULL DEFAULT '';

-- What a paused run waits for, in its record, for every runner and past a
-- restart: pause_reason ("approval of wave 2", the failure budget it
-- exceeded, "paused by operator"), awaiting_wave the wave (from 1) whose
-- approval the pause waits for (0: none), approved_wave the highest wave a
-- resume approved. A resume approves the awaited wave (store.RunHold.Set).
ALTER TABLE runs
    ADD COLUMN pause_reason  text    NOT NULL DEFAULT '',
    ADD COLUMN awaiting_wave integer NOT NULL DEFAULT 0,
    ADD COLUMN approved_wave integer NOT NULL DEFAULT 0;

-- on_failure: what an exceeded budget does ('stop', 'pause', 'rollback');
-- approve: which waves wait for a person ('', 'canary', 'each-wave');
-- forgiven: the failures a resume of a run paused by its budget forgave
-- (the budget counts failures - forgiven).
ALTER TABLE run_rollouts
    ADD COLUMN on_failure text    NOT NULL DEFAULT 'stop'
        CONSTRAINT run_rollouts_on_failure_valid CHECK (on_failure IN ('stop', 'pause', 'rollback')),
    ADD COLUMN approve    text    NOT NULL DEFAULT ''
        CONSTRAINT run_rollouts_approve_valid CHECK (approve IN ('', 'canary', 'each-wave')),
    ADD COLUMN forgiven   integer NOT NULL DEFAULT 0;

-- parent: the run a rollback run rolls back. A rollback run takes the
-- holds of its parent's instances even while the parent still has a live
-- runner (one that has not yet left it), never one with a reset in doubt.
ALTER TABLE runs ADD COLUMN parent text NOT NULL DEFAULT '';
