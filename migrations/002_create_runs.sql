-- runs holds the operator's control for a run. Import creates the row;
-- SetControl upserts it. A run whose jobs were inserted directly by another
-- tool has no row until then, and the store reads that as 'running'.
CREATE TABLE runs (
    name       text        PRIMARY KEY
                           CONSTRAINT runs_name_not_empty CHECK (name <> ''),
    control    text        NOT NULL DEFAULT 'running'
                           CONSTRAINT runs_control_valid CHECK (control IN ('running', 'paused', 'cancelled')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
