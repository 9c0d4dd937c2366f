package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store"
)

// Queue is one runner's view of a run: it claims the run's jobs under
// leases, records their progress under fencing tokens, and renews and
// releases its leases. It satisfies runner.Store. Get one from Store.Queue;
// it is safe for concurrent use by the runner's feeder and workers.
//
// # Leases and fencing
//
// Claiming a job gives it a new token from the jobs_lease_token_seq sequence
// (returned as store.Job.Fence), sets lease_owner, and sets lease_expires_at
// to the database's now() plus the lease TTL. Every write carries the token:
// a job claimed by another runner has a new token, so the old holder's writes
// match no row and fail with store.ErrLeaseLost. A lease that has expired but
// that nobody has claimed yet still accepts its holder's writes (the token is
// unchanged), except the one that matters most: see Save.
//
// The Queue remembers the (job, token) pairs it holds; Renew extends those,
// and a job leaves the set when it is saved terminal, released, or found lost.
type Queue struct {
	s     *Store
	run   string
	owner string
	ttl   time.Duration
	// account, if set, is the account whose jobs alone the Queue claims
	// (see AccountQueue); nil claims every job of the run.
	account *string

	group saveGroup // concurrent Saves, written together

	mu      sync.Mutex
	held    map[int64]lease // by job ID
	region  string          // of the last claim: the next claims stay in it while they can
	waved   bool            // the run's rollout has a canary or waves (RolloutJoin)
	started bool            // the run's started_at is recorded
}

// lease is one job's lease as this Queue knows it: its fencing token, and
// when it ends at the latest on this host's clocks, reckoned from before the
// statement that set it left (the database's expiry is later still).
type lease struct {
	fence int64
	until time.Time // monotonic
	wall  time.Time // the same end on the wall clock, which runs on in a suspend
}

// newLease returns the lease fence, taken by a statement sent at asked.
func (q *Queue) newLease(fence int64, asked time.Time) lease {
	return lease{fence: fence, until: asked.Add(q.ttl), wall: asked.Round(0).Add(q.ttl)}
}

// LeaseDeadline returns when j's lease ends at the latest, on this host's
// clocks: the earlier of the monotonic and the wall-clock reckoning, so that
// neither a stepped clock nor a suspended host (whose monotonic clock stops)
// makes a lease look longer than it is. A job this Queue no longer holds
// under j.Fence gets a time in the past. It satisfies runner.Leaser.
func (q *Queue) LeaseDeadline(j store.Job) time.Time {
	q.mu.Lock()
	l, ok := q.held[j.ID]
	q.mu.Unlock()
	now := time.Now()
	if !ok || l.fence != j.Fence {
		return now.Add(-time.Second)
	}
	left := min(l.until.Sub(now), l.wall.Sub(now.Round(0)))
	return now.Add(left)
}

// Queue returns the queue of run for the runner named owner, which must be
// unique among the runners alive at once (host name, process ID and a random
// suffix, say). Leases last leaseTTL from each claim, renewal or save; pick it
// well above the longest API call plus the renewal period, because a runner
// that stops renewing loses its jobs to others after leaseTTL.
func (s *Store) Queue(run, owner string, leaseTTL time.Duration) *Queue {
	if run == "" || owner == "" || leaseTTL <= 0 {
		panic(fmt.Sprintf("postgres: Queue(%q, %q, %v): need a run, an owner and a positive lease TTL", run, owner, leaseTTL))
	}
	return &Queue{s: s, run: run, owner: owner, ttl: leaseTTL, held: make(map[int64]lease)}
}

// AccountQueue is Queue for the runner of one account of a run over
// several: it claims only the jobs of account (store.Job.Account, "" for
// those that name none), and waiting speaks of those alone. Everything
// else (the run's control, pauses, rollout, holds) is the run's, shared
// with every other Queue of it.
func (s *Store) AccountQueue(run, account, owner string, leaseTTL time.Duration) *Queue {
	q := s.Queue(run, owner, leaseTTL)
	q.account = &account
	return q
}

// Claim leases up to n jobs of the run that are not terminal, are due
// (not_before has passed on the database's clock) and whose lease is free or
// expired, oldest not_before first, then in import order. It is one
// statement: candidates are locked with FOR UPDATE SKIP LOCKED and leased in
// the same UPDATE, so two runners never get the same job. Jobs this Queue
// already holds are never claimed again, even when their lease has expired.
//
// When fewer than n jobs were claimed, waiting reports whether the run has
// any other job that is due, not terminal and not held by this Queue: leased
// by another runner (it comes back if that runner dies), or being claimed by
// another runner at this moment. A runner that gets no jobs and waiting ==
// false has nothing left to do now: every due job of the run is terminal or
// its own, and jobs not yet due are left for a later run (cron). When all n
// were claimed, waiting is false without being looked for: claim again.
// owesRestoreSQL is true for a pending job of a cancelled run that its
// before-hook may have taken out of service: it is still handed out, so
// that a runner puts the instance back (restore) before it skips the job.
const owesRestoreSQL = `(hook_phase IN ('before', 'drained', 'restore')
		       AND (SELECT control FROM runs WHERE name = $1) = 'cancelled')`

func (q *Queue) Claim(ctx context.Context, n int) (jobs []store.Job, waiting bool, err error) {
	if n < 1 {
		return nil, false, fmt.Errorf("claim jobs: n = %d, want at least 1", n)
	}
	if err := q.begin(ctx); err != nil {
		return nil, false, err
	}
	if _, err := q.s.pool.Exec(ctx, skipCancelledSQL, q.run); err != nil {
		return nil, false, fmt.Errorf("claim jobs: skip the jobs of a cancelled run: %w", err)
	}
	// The candidates are locked by an InitPlan and the UPDATE looks them up
	// by primary key: unlike a join, this plan stays cheap even when pgx's
	// prepared statement gets a generic plan, which cannot see n. A paused
	// or cancelled run hands out no pending job: the control is part of the
	// claim, so it holds from the first one. The batch is of one region, so
	// that the runner describes it in one call: the last claim's ($7) while
	// it has claimable jobs, then the first claimable job's. When concurrent
	// claims hold all of that region's first jobs, the claim is made again
	// over every region.
	const claimable = `run = $1
			  AND ($8::text IS NULL OR account = $8)
			  AND status IN ('pending', 'submitting', 'submitted')
			  AND not_before <= now()
			  AND (lease_expires_at IS NULL OR lease_expires_at < now())
			  AND id <> ALL ($4::bigint[])
			  AND (status <> 'pending'
			       OR coalesce((SELECT control FROM runs WHERE name = $1), 'running') = 'running'
			       OR ` + owesRestoreSQL + `)`
	const claimSQL = `UPDATE jobs
		SET lease_owner = $2,
		    lease_token = nextval('jobs_lease_token_seq'),
		    lease_expires_at = now() + $5 * interval '1 microsecond'
		WHERE id = ANY (ARRAY(
			SELECT id
			FROM jobs
			WHERE ` + claimable + `
			  AND (NOT $6 OR region = coalesce($7, (SELECT region FROM jobs WHERE ` + claimable + ` ORDER BY not_before, id LIMIT 1)))
			ORDER BY not_before, id
			LIMIT $3
			FOR UPDATE SKIP LOCKED))
		RETURNING ` + jobColumns
	type attempt struct {
		oneRegion bool
		region    *string
	}
	attempts := []attempt{{true, nil}, {false, nil}}
	q.mu.Lock()
	if last := q.region; last != "" {
		attempts = append([]attempt{{true, &last}}, attempts...)
	}
	q.mu.Unlock()
	asked := time.Now()
	var claimed []jobRow
	for _, a := range attempts {
		rows, err := q.s.pool.Query(ctx, claimSQL, q.run, q.owner, n, q.heldIDs(), micros(q.ttl), a.oneRegion, a.region, q.account)
		if err != nil {
			return nil, false, fmt.Errorf("claim jobs: %w", err)
		}
		if claimed, err = pgx.CollectRows(rows, pgx.RowToStructByName[jobRow]); err != nil {
			return nil, false, fmt.Errorf("claim jobs: %w", err)
		}
		if len(claimed) > 0 {
			break
		}
	}
	jobs = make([]store.Job, len(claimed))
	q.mu.Lock()
	if len(claimed) > 0 {
		q.region = claimed[0].Region
	}
	for i, r := range claimed {
		jobs[i] = r.job()
		q.held[r.ID] = q.newLease(r.LeaseToken, asked)
	}
	q.mu.Unlock()
	slices.SortFunc(jobs, func(a, b store.Job) int {
		if c := a.NotBefore.Compare(b.NotBefore); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(jobs) == n {
		return jobs, false, nil
	}

	// ORDER BY … LIMIT 1 rather than EXISTS: it makes the planner walk
	// jobs_claimable_idx, which holds only unfinished jobs, instead of
	// scanning a mostly finished run.
	const waitingSQL = `SELECT id
		FROM jobs
		WHERE run = $1
		  AND ($3::text IS NULL OR account = $3)
		  AND status IN ('pending', 'submitting', 'submitted')
		  AND not_before <= now()
		  AND id <> ALL ($2::bigint[])
		  AND (status <> 'pending'
		       OR coalesce((SELECT control FROM runs WHERE name = $1), 'running') = 'running'
		       OR ` + owesRestoreSQL + `)
		ORDER BY not_before, id
		LIMIT 1`
	var other int64
	switch err := q.s.pool.QueryRow(ctx, waitingSQL, q.run, q.heldIDs(), q.account).Scan(&other); {
	case errors.Is(err, pgx.ErrNoRows):
		return jobs, false, nil
	case err != nil && len(jobs) > 0:
		// The jobs are leased to this Queue: hand them over rather than
		// strand them, and say "maybe more" so that the runner polls again.
		return jobs, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("claim jobs: look for jobs held elsewhere: %w", err)
	}
	return jobs, true, nil
}

// Save records j's status, request IDs, error, attempts, NotBefore (unless
// zero) and timestamps, provided j.Fence is still the job's lease held by
// this Queue; otherwise it writes nothing and returns an error wrapping
// store.ErrLeaseLost. When Save returns nil the write is committed.
//
// A non-terminal save also extends the lease by the TTL. A save to
// submitting (the intent to send ResetInstance) additionally requires the
// lease to be live, not merely unclaimed, so a runner never sends a reset on a
// lease another runner may be about to take, and the run to be neither
// paused nor cancelled (store.ErrStopped), and the instance to be held by
// the run (store.ErrHeld names the run that holds it instead; see begin);
// the unique index on instances in flight is a last guard
// (store.ErrInstanceBusy). A terminal save ends the lease;
// saving the same terminal outcome again under the same fence (a retry after
// an ambiguous error) succeeds, but nothing can be saved after it.
//
// Concurrent Saves of one Queue share one statement (group commit, as the
// CSV store shares one fsync): the first Save sends its own job and every
// one that arrived meanwhile waits for the next statement, which takes them
// all; each row is checked on its own, so one job's refusal is not
// another's. A Save still returns only once its row is committed, and the
// intent is still durable before the call it announces. A batch that the
// database refuses as a whole (an instance in flight in another run, a
// deadlock between runs) is retried one job per statement, so every job
// gets its own answer.
func (q *Queue) Save(ctx context.Context, j *store.Job) error {
	if !j.Status.Valid() {
		return fmt.Errorf("save job %d: invalid status %q", j.ID, j.Status)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save job %d (%s): %w", j.ID, j.InstanceID, err)
	}
	return q.group.save(ctx, q, j)
}

func (q *Queue) saveOne(ctx context.Context, j *store.Job) error {
	const saveSQL = `UPDATE jobs
		SET status = $4,
		    request_id = $5,
		    prev_request_id = $6,
		    error_code = $7,
		    error_message = $8,
		    attempts = $9,
		    not_before = coalesce($10, not_before),
		    intent_at = $11,
		    submitted_at = $12,
		    finished_at = $13,
		    prev_blueprint_id = $17,
		    hook_phase = $18,
		    updated_at = now(),
		    lease_owner = CASE WHEN $15 THEN NULL ELSE lease_owner END,
		    lease_expires_at = CASE WHEN $15 THEN NULL ELSE now() + $14 * interval '1 microsecond' END
		WHERE id = $1
		  AND lease_token = $2
		  AND lease_owner = $3
		  AND run = $16
		  AND ($4 <> 'submitting' OR (lease_expires_at > now()
		       AND coalesce((SELECT control FROM runs WHERE name = $16), 'running') = 'running'
		       AND EXISTS (` + heldSQL + `)))`
	terminal := j.Status.Terminal()
	asked := time.Now()
	tag, err := q.s.pool.Exec(ctx, saveSQL,
		j.ID, j.Fence, q.owner,
		string(j.Status), j.RequestID, j.PrevRequestID, j.ErrorCode, j.ErrorMessage, j.Attempts,
		nullTime(j.NotBefore), nullTime(j.IntentAt), nullTime(j.SubmittedAt), nullTime(j.FinishedAt),
		micros(q.ttl), terminal, q.run, j.PrevBlueprintID, string(j.HookPhase))
	if pgCode(err) == codeUniqueViolation {
		return fmt.Errorf("save job %d (%s): %w", j.ID, j.InstanceID, store.ErrInstanceBusy)
	}
	if err != nil {
		return fmt.Errorf("save job %d (%s): %w", j.ID, j.InstanceID, err)
	}
	if tag.RowsAffected() == 0 {
		return q.unsaved(ctx, j)
	}
	q.saved(j, asked)
	return nil
}

// unsaved explains a save that matched no row: the intent was refused
// (paused, cancelled, reset elsewhere), the same terminal outcome was already
// recorded (nil), or the lease is lost.
func (q *Queue) unsaved(ctx context.Context, j *store.Job) error {
	if j.Status == store.StatusSubmitting {
		retry, err := q.refusal(ctx, j)
		if err != nil {
			return err
		}
		if retry {
			return q.saveOne(ctx, j)
		}
	}
	if j.Status.Terminal() {
		saved, err := q.savedTerminal(ctx, j)
		if err != nil {
			return fmt.Errorf("save job %d (%s): %w", j.ID, j.InstanceID, err)
		}
		if saved {
			q.drop(j.ID, j.Fence)
			return nil
		}
	}
	q.drop(j.ID, j.Fence)
	return fmt.Errorf("save job %d (%s) with fence %d: %w", j.ID, j.InstanceID, j.Fence, store.ErrLeaseLost)
}

// saved updates the held set after j was written by a statement sent at
// asked.
func (q *Queue) saved(j *store.Job, asked time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if j.Status.Terminal() {
		delete(q.held, j.ID)
	} else {
		q.held[j.ID] = q.newLease(j.Fence, asked)
	}
}

// heldSQL finds the hold of the saved row's instance (the row is jobs; its
// run is $16) by its own run: an intent is saved only for an instance the
// run holds.
const heldSQL = `SELECT 1 FROM instance_holds h
	WHERE h.instance_id = jobs.instance_id AND h.run = $16`

// liveRunSQL is true when the run named by the expression %s has a runner
// whose row in run_holders has not expired.
const liveRunSQL = `EXISTS (SELECT 1 FROM run_holders rh WHERE rh.run = %s AND rh.expires_at > now())`

// inDoubtSQL is true when the run %[1]s has a job for the instance %[2]s
// that may have a call on its way or landed unseen.
const inDoubtSQL = `EXISTS (SELECT 1 FROM jobs d WHERE d.run = %[1]s AND d.instance_id = %[2]s AND d.status IN ('submitting', 'submitted'))`

// takeHoldsSQL takes, for the run $1, the instances of its jobs (those of
// $2, or all when $2 is null) that no run holds, or whose holder has ended
// with nothing of the instance in doubt and sent no reset for it since this
// run began (a run resumed after another one reset its instances does not
// reset them again). Unless $3 (the run's first runner, beginning it), the
// holder must also have taken the instance after the run began: one it
// held then, the first runner found live and left alone, and it stays so
// for every runner of the run. Rows are taken in instance order, so that
// two runs taking overlapping sets at once wait for each other rather than
// deadlock. A rollback run (runs.parent) takes its parent's holds even
// while the parent has a live runner, which sends nothing more: its
// rollout stopped.
var takeHoldsSQL = `INSERT INTO instance_holds AS h (instance_id, run)
	SELECT j.instance_id, j.run FROM jobs j
	WHERE j.run = $1
	  AND ($2::text IS NULL OR j.instance_id = $2)
	  AND NOT EXISTS (SELECT 1 FROM instance_holds m WHERE m.instance_id = j.instance_id AND m.run = $1)
	ORDER BY j.instance_id
	ON CONFLICT (instance_id) DO UPDATE SET run = excluded.run, held_at = now()
	WHERE h.run <> excluded.run
	  AND ($3 OR h.held_at > (SELECT r.started_at FROM runs r WHERE r.name = excluded.run))
	  AND (NOT ` + fmt.Sprintf(liveRunSQL, "h.run") + `
	       OR h.run = (SELECT r.parent FROM runs r WHERE r.name = excluded.run))
	  AND NOT ` + fmt.Sprintf(inDoubtSQL, "h.run", "h.instance_id") + `
	  AND NOT EXISTS (SELECT 1 FROM jobs o
	                  WHERE o.run = h.run AND o.instance_id = h.instance_id
	                    AND o.intent_at >= (SELECT r.started_at FROM runs r WHERE r.name = excluded.run))`

// refusal explains an intent that matched no row when the lease was not the
// cause: another run holds the instance, or the run is paused or cancelled.
// An instance that no run holds (a job added to the run after its runners
// began) is taken, and retry says to save again. It returns false, nil when
// nothing explains it.
func (q *Queue) refusal(ctx context.Context, j *store.Job) (retry bool, err error) {
	whySQL := `SELECT coalesce((SELECT control FROM runs WHERE name = $1), 'running'),
		       coalesce(h.run, ''),
		       coalesce(` + fmt.Sprintf(liveRunSQL, "h.run") + `, false),
		       coalesce(` + fmt.Sprintf(inDoubtSQL, "h.run", "h.instance_id") + `, false)
		FROM (SELECT 1) one
		LEFT JOIN instance_holds h ON h.instance_id = $2`
	var (
		c                   store.Control
		holder              string
		holderLive, inDoubt bool
	)
	if err := q.s.pool.QueryRow(ctx, whySQL, q.run, j.InstanceID).Scan(&c, &holder, &holderLive, &inDoubt); err != nil {
		return false, fmt.Errorf("save job %d (%s): %w", j.ID, j.InstanceID, err)
	}
	held := func(why string) error {
		return fmt.Errorf("save job %d (%s): %w: run %q %s", j.ID, j.InstanceID, store.ErrHeld, holder, why)
	}
	switch {
	case holder == "":
		tag, err := q.s.pool.Exec(ctx, takeHoldsSQL, q.run, j.InstanceID, false)
		if err != nil {
			return false, fmt.Errorf("save job %d (%s): hold the instance: %w", j.ID, j.InstanceID, err)
		}
		if tag.RowsAffected() == 0 {
			return q.refusal(ctx, j) // another run took it first
		}
		return true, nil
	case holder != q.run && holderLive:
		return false, held("holds it")
	case holder != q.run && inDoubt:
		return false, held("ended with a reset of it in doubt; resume that run to settle it")
	case holder != q.run:
		return false, held("held it when this run began, or reset it since")
	case c != store.ControlRunning:
		return false, fmt.Errorf("save job %d (%s): run is %s: %w", j.ID, j.InstanceID, c, store.ErrStopped)
	}
	return false, nil
}

// Held reports, without changing anything, whether another run holds the
// instance of j: an error wrapping store.ErrHeld that names the holder, or
// nil when this run holds it or no run does.
func (q *Queue) Held(ctx context.Context, j *store.Job) error {
	heldSQL := `SELECT h.run, ` + fmt.Sprintf(liveRunSQL, "h.run") + `
		FROM instance_holds h WHERE h.instance_id = $1 AND h.run <> $2`
	var holder string
	var live bool
	switch err := q.s.pool.QueryRow(ctx, heldSQL, j.InstanceID, q.run).Scan(&holder, &live); {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("job %d (%s): who holds it: %w", j.ID, j.InstanceID, err)
	case live:
		return fmt.Errorf("job %d (%s): %w: run %q holds it", j.ID, j.InstanceID, store.ErrHeld, holder)
	}
	return fmt.Errorf("job %d (%s): %w: run %q held it when this run began, or reset it since", j.ID, j.InstanceID, store.ErrHeld, holder)
}

// begin makes this Queue one of the run's live runners, once, at its first
// claim: it records when the run's first runner began (runs.started_at),
// adds this runner to run_holders, and takes the run's instances that no
// live run holds (takeHoldsSQL).
func (q *Queue) begin(ctx context.Context) error {
	q.mu.Lock()
	done := q.started
	q.mu.Unlock()
	if done {
		return nil
	}
	// first: this runner began the run (its started_at was unset).
	const startSQL = `WITH before AS (SELECT started_at FROM runs WHERE name = $1)
		INSERT INTO runs (name, started_at) VALUES ($1, now())
		ON CONFLICT (name) DO UPDATE SET started_at = coalesce(runs.started_at, now())
		RETURNING NOT EXISTS (SELECT 1 FROM before WHERE started_at IS NOT NULL)`
	var first bool
	if err := q.s.pool.QueryRow(ctx, startSQL, q.run).Scan(&first); err != nil {
		return fmt.Errorf("claim jobs: record the run's start: %w", err)
	}
	if err := q.heartbeat(ctx); err != nil {
		return fmt.Errorf("claim jobs: %w", err)
	}
	if _, err := q.s.pool.Exec(ctx, takeHoldsSQL, q.run, nil, first); err != nil {
		return fmt.Errorf("claim jobs: hold the run's instances: %w", err)
	}
	q.mu.Lock()
	q.started = true
	q.mu.Unlock()
	return nil
}

// heartbeat says, until now plus the lease TTL, that this runner of the
// run is alive, so that the run holds its instances.
func (q *Queue) heartbeat(ctx context.Context) error {
	const beatSQL = `INSERT INTO run_holders (run, owner, expires_at)
		VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		ON CONFLICT (run, owner) DO UPDATE SET expires_at = excluded.expires_at`
	if _, err := q.s.pool.Exec(ctx, beatSQL, q.run, q.owner, micros(q.ttl)); err != nil {
		return fmt.Errorf("renew the run's holds: %w", err)
	}
	return nil
}

// Leave ends this runner's part in holding the run's instances: once no
// runner of the run is left, another run may take them. A runner that dies
// without it stops holding them when its TTL has passed.
func (q *Queue) Leave(ctx context.Context) error {
	if _, err := q.s.pool.Exec(ctx, `DELETE FROM run_holders WHERE run = $1 AND owner = $2`, q.run, q.owner); err != nil {
		return fmt.Errorf("leave run %s: %w", q.run, err)
	}
	return nil
}

// savedTerminal reports whether j's terminal outcome is already recorded
// under j.Fence, as after a Save whose reply was lost.
func (q *Queue) savedTerminal(ctx context.Context, j *store.Job) (bool, error) {
	const sql = `SELECT EXISTS (
		SELECT 1 FROM jobs
		WHERE id = $1 AND lease_token = $2 AND lease_owner IS NULL AND run = $3
		  AND status = $4 AND request_id = $5 AND error_code = $6
		  AND error_message = $7 AND attempts = $8)`
	var ok bool
	err := q.s.pool.QueryRow(ctx, sql, j.ID, j.Fence, q.run,
		string(j.Status), j.RequestID, j.ErrorCode, j.ErrorMessage, j.Attempts).Scan(&ok)
	return ok, err
}

// Renew says that this runner is still alive (see begin) and extends, to
// now plus the TTL, every lease this Queue holds that is still its own. Leases found taken over or finished leave the held set; the
// runner learns of them when its next Save returns store.ErrLeaseLost.
func (q *Queue) Renew(ctx context.Context) error {
	q.mu.Lock()
	begun := q.started
	q.mu.Unlock()
	if begun {
		if err := q.heartbeat(ctx); err != nil {
			return err
		}
	}
	ids, fences := q.heldPairs()
	if len(ids) == 0 {
		return nil
	}
	const renewSQL = `UPDATE jobs
		SET lease_expires_at = now() + $4 * interval '1 microsecond'
		FROM unnest($1::bigint[], $2::bigint[]) AS held(held_id, held_token)
		WHERE id = held.held_id
		  AND lease_token = held.held_token
		  AND lease_owner = $3
		  AND status IN ('pending', 'submitting', 'submitted')
		RETURNING id`
	q.group.multi.Lock()
	asked := time.Now()
	rows, err := q.s.pool.Query(ctx, renewSQL, ids, fences, q.owner, micros(q.ttl))
	if err != nil {
		q.group.multi.Unlock()
		return fmt.Errorf("renew leases: %w", err)
	}
	renewed, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	q.group.multi.Unlock()
	if err != nil {
		return fmt.Errorf("renew leases: %w", err)
	}
	ok := make(map[int64]bool, len(renewed))
	for _, id := range renewed {
		ok[id] = true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, id := range ids {
		l, held := q.held[id]
		switch {
		case !held || l.fence != fences[i]:
		case ok[id]:
			q.held[id] = q.newLease(l.fence, asked)
		default:
			delete(q.held, id)
		}
	}
	return nil
}

// Release ends the leases of jobs (those still held under their Fence by this
// Queue) so that any runner may claim them at once. It leaves the jobs'
// records as they are. When it fails, the jobs are no longer renewed and
// become claimable when their lease expires.
func (q *Queue) Release(ctx context.Context, jobs []store.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	ids := make([]int64, len(jobs))
	fences := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i], fences[i] = j.ID, j.Fence
	}
	const releaseSQL = `UPDATE jobs
		SET lease_owner = NULL, lease_expires_at = NULL
		FROM unnest($1::bigint[], $2::bigint[]) AS released(released_id, released_token)
		WHERE id = released.released_id
		  AND lease_token = released.released_token
		  AND lease_owner = $3`
	// The jobs leave the held set whether or not the update lands: if it
	// does not, Renew must stop renewing them, so that their lease expires
	// and any runner, this one included, can claim them again. Kept, they
	// would stay leased for as long as this runner lives.
	for i, id := range ids {
		q.drop(id, fences[i])
	}
	q.group.multi.Lock()
	_, err := q.s.pool.Exec(ctx, releaseSQL, ids, fences, q.owner)
	q.group.multi.Unlock()
	if err != nil {
		return fmt.Errorf("release jobs: %w", err)
	}
	return nil
}

// Control reports the operator's instruction for the run: the run's control
// row, or store.ControlRunning when it has none (jobs inserted by another
// tool, never paused).
func (q *Queue) Control(ctx context.Context) (store.Control, error) {
	c, err := control(ctx, q.s.pool, q.run)
	if errors.Is(err, store.ErrNotFound) {
		return store.ControlRunning, nil
	}
	if err != nil {
		return "", fmt.Errorf("read control of run %q: %w", q.run, err)
	}
	return c, nil
}

func control(ctx context.Context, db querier, run string) (store.Control, error) {
	var c store.Control
	err := db.QueryRow(ctx, `SELECT control FROM runs WHERE name = $1`, run).Scan(&c)
	return c, interpret(err)
}

// heldIDs returns the IDs of the jobs the Queue holds.
func (q *Queue) heldIDs() []int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := make([]int64, 0, len(q.held))
	for id := range q.held {
		ids = append(ids, id)
	}
	return ids
}

// heldPairs returns the jobs the Queue holds and their tokens.
func (q *Queue) heldPairs() (ids, fences []int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids = make([]int64, 0, len(q.held))
	fences = make([]int64, 0, len(q.held))
	for id, l := range q.held {
		ids = append(ids, id)
		fences = append(fences, l.fence)
	}
	return ids, fences
}

// drop forgets job id if it is still held under fence.
func (q *Queue) drop(id, fence int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held[id].fence == fence {
		delete(q.held, id)
	}
}
