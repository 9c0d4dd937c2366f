-- A run holds its instances from its start to its end, not only while a
-- call is in flight: another run that wants an instance a live run holds
-- does not reset it, and says which run holds it.
--
-- run_holders: the runners of a run that are alive, each renewing its row
-- as it renews its leases (on the database's clock, which every runner
-- shares). A run is live while one of its rows has not expired; a runner
-- that ends cleanly deletes its own.
CREATE TABLE run_holders (
    run        text        NOT NULL,
    owner      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (run, owner)
);

-- instance_holds: which run holds each instance. A run's first runner takes
-- every instance of the run that no live run holds; an intent is saved only
-- for an instance its run holds. A row is taken over, never deleted: the
-- holder is whichever run took it last, live or not.
CREATE TABLE instance_holds (
    instance_id text        PRIMARY KEY,
    run         text        NOT NULL,
    held_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_holds_run_idx ON instance_holds (run);
