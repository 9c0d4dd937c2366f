-- Login settings per job, and the outcome of a health check after a reset.
--
-- key_ids lists the key pairs the reset binds, ';'-separated as in the jobs
-- CSV ('' leaves it to the run-wide setting). A password is never stored: it
-- comes only from the runner's environment or a file, run-wide.
ALTER TABLE jobs ADD COLUMN key_ids text NOT NULL DEFAULT ''
    CONSTRAINT jobs_key_ids_format CHECK (key_ids ~ '^(lhkp-[a-z0-9]+(;lhkp-[a-z0-9]+){0,4})?$');

-- auto_generate_password asks the reset to generate a password for the
-- default user (ResetInstance's LoginConfiguration.AutoGeneratePassword).
ALTER TABLE jobs ADD COLUMN auto_generate_password boolean NOT NULL DEFAULT false;

-- unhealthy: the reset happened (it ended SUCCESS) but the health check
-- after it did not pass. Terminal, and never sent again as if the reset had
-- not happened. While its health is checked a job stays submitted: it is
-- still in flight, and a runner that takes it over checks again.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_valid;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_valid CHECK (status IN (
    'pending', 'submitting', 'submitted',
    'succeeded', 'failed', 'skipped', 'unknown', 'unhealthy'));
