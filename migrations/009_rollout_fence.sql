-- An admission into a wave belongs to its job under the lease it was
-- admitted with (fence: the job's lease_token then). While the job is
-- pending and has never been sent, the admission holds only as long as that
-- lease does: a job handed back unsent, or left by a runner that died,
-- gives its place in the wave back, so that the wave can drain.
ALTER TABLE rollout_jobs ADD COLUMN fence bigint NOT NULL DEFAULT 0;
