-- jobs holds one row per instance to reset in a run. Other tools may insert
-- rows directly with only (run, instance_id, blueprint_id, region[,
-- not_before]): every other column has a default that means "not started".
CREATE TABLE jobs (
    id               bigserial PRIMARY KEY,
    run              text        NOT NULL DEFAULT 'default'
                                 CONSTRAINT jobs_run_not_empty CHECK (run <> ''),
    instance_id      text        NOT NULL
                                 CONSTRAINT jobs_instance_id_format CHECK (instance_id ~ '^lhins-[a-z0-9]+$'),
    -- '' reinstalls the instance's current image.
    blueprint_id     text        NOT NULL DEFAULT '',
    region           text        NOT NULL
                                 CONSTRAINT jobs_region_not_empty CHECK (region <> ''),
    not_before       timestamptz NOT NULL DEFAULT now(),
    status           text        NOT NULL DEFAULT 'pending'
                                 CONSTRAINT jobs_status_valid CHECK (status IN (
                                     'pending', 'submitting', 'submitted',
                                     'succeeded', 'failed', 'skipped', 'unknown')),
    request_id       text        NOT NULL DEFAULT '',
    prev_request_id  text        NOT NULL DEFAULT '',
    error_code       text        NOT NULL DEFAULT '',
    error_message    text        NOT NULL DEFAULT '',
    attempts         integer     NOT NULL DEFAULT 0
                                 CONSTRAINT jobs_attempts_not_negative CHECK (attempts >= 0),
    intent_at        timestamptz,
    submitted_at     timestamptz,
    finished_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- The lease: which runner holds the job, under which fencing token, and
    -- until when. A write must carry the current token (store.Job.Fence).
    lease_owner      text,
    lease_token      bigint      NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    CONSTRAINT jobs_run_instance_id_key UNIQUE (run, instance_id)
);

-- The claim query walks this index in (not_before, id) order and stops after
-- n rows: terminal jobs, which become the bulk of a run, are not in it.
CREATE INDEX jobs_claimable_idx ON jobs (run, not_before, id)
    WHERE status IN ('pending', 'submitting', 'submitted');

-- Fencing tokens handed out by each claim; never reused, so a token names one
-- lease of one job.
CREATE SEQUENCE jobs_lease_token_seq;
