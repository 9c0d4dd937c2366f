-- How far a job's lifecycle hooks (run --before-reset, --after-reset) have
-- come: '' none started, 'before' the before-hook may be running, 'drained'
-- it ended and the instance is out of service, 'after' or 'restore' the
-- after-hook may be running, 'done' it ended. A phase is written before the
-- hook it names runs, so a runner that takes the job over (or a rerun)
-- runs it again.
ALTER TABLE jobs ADD COLUMN hook_phase text NOT NULL DEFAULT ''
    CONSTRAINT jobs_hook_phase_valid CHECK (hook_phase IN ('', 'before', 'drained', 'after', 'restore', 'done'));
