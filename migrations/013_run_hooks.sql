-- A run's lifecycle hooks (run --before-reset, --after-reset, --hook-*), as
-- the first runner that joined the run recorded them: every runner of the
-- run must give the same ones, and status and plan show them. A hook is
-- its spec (exec:FILE or tat:FILE), never the file's contents.
-- hooks_recorded is false until a runner recorded them; hook_timeout_ms,
-- hook_failure and hook_concurrency are 0 and '' for a run without hooks.
ALTER TABLE runs
    ADD COLUMN hooks_recorded   boolean NOT NULL DEFAULT false,
    ADD COLUMN before_reset     text    NOT NULL DEFAULT '',
    ADD COLUMN after_reset      text    NOT NULL DEFAULT '',
    ADD COLUMN hook_timeout_ms  bigint  NOT NULL DEFAULT 0,
    ADD COLUMN hook_failure     text    NOT NULL DEFAULT '',
    ADD COLUMN hook_concurrency integer NOT NULL DEFAULT 0;
