-- account names the account a job's instance is in, as the run's settings
-- define it (run --account NAME=profile:P|role:ARN); '' is the run's own
-- credential. Each account's runner claims only that account's jobs.
ALTER TABLE jobs ADD COLUMN account text NOT NULL DEFAULT ''
    CONSTRAINT jobs_account_format CHECK (account = '' OR account ~ '^[a-z][a-z0-9_-]{0,31}$');

-- accounts are the run's account definitions, name -> "profile:P" or
-- "role:ARN", as its first runner recorded them, so that every runner of
-- the run uses the same. Never a secret: profile names and role ARNs only.
ALTER TABLE runs ADD COLUMN accounts jsonb NOT NULL DEFAULT '{}';
