-- A run's rollout (canary, waves, failure budget), shared by every runner of
-- the run. wave is the current wave, from 0; wave_end the admissions allowed
-- before it must drain; stopped why new resets stopped for every runner.
CREATE TABLE run_rollouts (
    run          text    PRIMARY KEY,
    canary       integer NOT NULL,
    waves        integer[] NOT NULL,
    max_failures integer NOT NULL,
    wave         integer NOT NULL DEFAULT 0,
    wave_end     bigint  NOT NULL,
    admitted     bigint  NOT NULL DEFAULT 0,
    failures     integer NOT NULL DEFAULT 0,
    stopped      text    NOT NULL DEFAULT ''
);

-- The wave each admitted job belongs to. A job is admitted once, whichever
-- runner sends it; a wave has drained when all its jobs are terminal.
CREATE TABLE rollout_jobs (
    job_id bigint  PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    run    text    NOT NULL,
    wave   integer NOT NULL
);
CREATE INDEX rollout_jobs_wave_idx ON rollout_jobs (run, wave);
