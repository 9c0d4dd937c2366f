-- rate_buckets holds the shared limiters' state: tat is the theoretical
-- arrival time of the next free slot (GCRA), on the database's clock.
CREATE TABLE rate_buckets (
    name text        PRIMARY KEY,
    tat  timestamptz NOT NULL
);
