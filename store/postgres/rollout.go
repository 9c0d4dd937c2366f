package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store"
)

// The shared rollout: the canary, waves and failure budget of a run, kept
// in run_rollouts and rollout_jobs so that every runner of the run applies
// the same ones. These methods satisfy runner.SharedRollout.

// failureStatuses are store.FailureStatuses as a query parameter: what the
// SQL counts as a failure is what the runner counts.
var failureStatuses = func() []string {
	out := make([]string, len(store.FailureStatuses))
	for i, st := range store.FailureStatuses {
		out[i] = string(st)
	}
	return out
}()

// RolloutJoin records plan as the run's rollout unless a runner already
// did, and returns the run's rollout: the first runner's plan holds.
func (q *Queue) RolloutJoin(ctx context.Context, plan store.RolloutPlan) (store.RolloutPlan, error) {
	waves := make([]int32, len(plan.Waves))
	for i, w := range plan.Waves {
		waves[i] = int32(w)
	}
	const joinSQL = `INSERT INTO run_rollouts (run, canary, waves, max_failures, wave_end, on_failure, approve)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (run) DO UPDATE SET run = excluded.run
		RETURNING canary, waves, max_failures, on_failure, approve`
	onFailure := plan.OnFailure
	if onFailure == "" {
		onFailure = "stop"
	}
	var got store.RolloutPlan
	var gotWaves []int32
	if err := q.s.pool.QueryRow(ctx, joinSQL, q.run, plan.Canary, waves, plan.MaxFailures, plan.FirstWave, onFailure, plan.Approve).
		Scan(&got.Canary, &gotWaves, &got.MaxFailures, &got.OnFailure, &got.Approve); err != nil {
		return store.RolloutPlan{}, fmt.Errorf("join the rollout of run %q: %w", q.run, err)
	}
	for _, w := range gotWaves {
		got.Waves = append(got.Waves, int(w))
	}
	q.mu.Lock()
	q.waved = got.Canary > 0 || len(got.Waves) > 0
	q.mu.Unlock()
	return got, nil
}

// RolloutAdmit admits j into the run's current wave if the wave has room,
// the run's budget holds and nothing stopped the run, all in one
// transaction under the run's rollout row. A rollout without a canary or
// waves (a failure budget alone) has one wave that takes every job: its
// admission records nothing and takes no lock, so that runners do not queue
// on the row, and reads the latest failure count and stop as the
// transaction would.
//
// An admission belongs to the job under the lease it was made with
// (j.Fence). A job admitted before keeps its wave, and whoever holds it now
// holds its admission. While a job is pending and no call of it may have
// reached the cloud (attempts = 0), its admission lasts only as long as
// that lease: when the wave is full, the admissions of such jobs that were
// handed back (released, or claimed since by another runner) or whose
// lease has expired (their runner died) are given up, and their places go
// to the jobs asking now. Without that, a wave whose admitted jobs left
// with a runner could never drain. A job that was given up is admitted
// anew when it is sent.
func (q *Queue) RolloutAdmit(ctx context.Context, j *store.Job) (store.Admission, error) {
	q.mu.Lock()
	waved := q.waved
	q.mu.Unlock()
	if !waved {
		return q.admitUnwaved(ctx, j)
	}
	var a store.Admission
	err := pgx.BeginTxFunc(ctx, q.s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var waveEnd, admitted, maxFailures int
		var onFailure string
		const lockSQL = `SELECT wave, wave_end, admitted, failures - forgiven, max_failures, stopped, on_failure
			FROM run_rollouts WHERE run = $1 FOR UPDATE`
		if err := tx.QueryRow(ctx, lockSQL, q.run).Scan(&a.Wave, &waveEnd, &admitted, &a.Failures, &maxFailures, &a.Stopped, &onFailure); err != nil {
			return err
		}
		var wave int
		const heldSQL = `UPDATE rollout_jobs SET fence = $2 WHERE job_id = $1 RETURNING wave`
		switch err := tx.QueryRow(ctx, heldSQL, j.ID, j.Fence).Scan(&wave); {
		case err == nil:
			a.Admitted, a.Wave = true, wave
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		switch {
		case a.Stopped != "":
			return nil
		case maxFailures >= 0 && a.Failures > maxFailures:
			return q.overBudget(ctx, tx, &a, maxFailures, onFailure)
		case admitted >= waveEnd:
			const giveUpSQL = `WITH given AS (
				DELETE FROM rollout_jobs w USING jobs j
				WHERE w.run = $1 AND w.wave = $2 AND j.id = w.job_id
				  AND j.status = 'pending' AND j.attempts = 0
				  AND NOT (j.lease_token = w.fence AND j.lease_owner IS NOT NULL AND j.lease_expires_at > now())
				RETURNING 1)
				UPDATE run_rollouts SET admitted = admitted - (SELECT count(*) FROM given)
				WHERE run = $1 RETURNING admitted`
			if err := tx.QueryRow(ctx, giveUpSQL, q.run, a.Wave).Scan(&admitted); err != nil {
				return err
			}
			if admitted >= waveEnd {
				a.Full = true
				return nil
			}
		}
		const insertSQL = `INSERT INTO rollout_jobs (job_id, run, wave, fence) VALUES ($1, $2, $3, $4)`
		if _, err := tx.Exec(ctx, insertSQL, j.ID, q.run, a.Wave, j.Fence); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE run_rollouts SET admitted = admitted + 1 WHERE run = $1`, q.run)
		a.Admitted = err == nil
		return err
	})
	if err != nil {
		return store.Admission{}, fmt.Errorf("admit job %d into the rollout of run %q: %w", j.ID, q.run, err)
	}
	return a, nil
}

// overBudget applies the run's on_failure to its exceeded budget, in tx:
// it stops the run for every runner (a.Stopped), or pauses it in its record
// (a.Paused) until a person resumes it.
func (q *Queue) overBudget(ctx context.Context, tx pgx.Tx, a *store.Admission, maxFailures int, onFailure string) error {
	why := fmt.Sprintf("failure budget exceeded (%d failed, budget %d)", a.Failures, maxFailures)
	switch onFailure {
	case "pause":
		h, err := pauseRun(ctx, tx, q.run, why, 0)
		if err == nil && h.Control == store.ControlPaused {
			a.Paused = h.Reason
		}
		return err
	case "rollback":
		why += "; rolling back"
	}
	a.Stopped = why
	_, err := tx.Exec(ctx, `UPDATE run_rollouts SET stopped = $2 WHERE run = $1 AND stopped = ''`, q.run, why)
	return err
}

// admitUnwaved is RolloutAdmit for a rollout of one wave: it takes no lock
// unless the budget is exceeded.
func (q *Queue) admitUnwaved(ctx context.Context, j *store.Job) (store.Admission, error) {
	var a store.Admission
	var maxFailures int
	const readSQL = `SELECT wave, failures - forgiven, max_failures, stopped FROM run_rollouts WHERE run = $1`
	if err := q.s.pool.QueryRow(ctx, readSQL, q.run).Scan(&a.Wave, &a.Failures, &maxFailures, &a.Stopped); err != nil {
		return store.Admission{}, fmt.Errorf("admit job %d into the rollout of run %q: %w", j.ID, q.run, err)
	}
	switch {
	case a.Stopped != "":
	case maxFailures >= 0 && a.Failures > maxFailures:
		err := pgx.BeginTxFunc(ctx, q.s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var onFailure string
			const lockSQL = `SELECT failures - forgiven, stopped, on_failure FROM run_rollouts WHERE run = $1 FOR UPDATE`
			if err := tx.QueryRow(ctx, lockSQL, q.run).Scan(&a.Failures, &a.Stopped, &onFailure); err != nil {
				return err
			}
			if a.Stopped != "" || a.Failures <= maxFailures {
				// Stopped, or resumed and forgiven, meanwhile.
				a.Admitted = a.Stopped == ""
				return nil
			}
			return q.overBudget(ctx, tx, &a, maxFailures, onFailure)
		})
		if err != nil {
			return store.Admission{}, fmt.Errorf("admit job %d into the rollout of run %q: %w", j.ID, q.run, err)
		}
	default:
		a.Admitted = true
	}
	return a, nil
}

// RolloutWave reports the run's current wave and how far wave has come.
func (q *Queue) RolloutWave(ctx context.Context, wave int) (store.WaveState, error) {
	const waveSQL = `SELECT (SELECT r.wave FROM run_rollouts r WHERE r.run = $1),
		       count(*) FILTER (WHERE j.status IN ('pending', 'submitting', 'submitted')),
		       count(*) FILTER (WHERE j.status = ANY($3)
		                          OR j.status = 'skipped' AND j.error_code = 'BeforeHookFailed')
		FROM rollout_jobs w JOIN jobs j ON j.id = w.job_id
		WHERE w.run = $1 AND w.wave = $2`
	var st store.WaveState
	if err := q.s.pool.QueryRow(ctx, waveSQL, q.run, wave, failureStatuses).Scan(&st.Current, &st.Pending, &st.Failures); err != nil {
		return store.WaveState{}, fmt.Errorf("wave %d of run %q: %w", wave, q.run, err)
	}
	return st, nil
}

// RolloutAdvance opens wave+1, taking size more jobs, if wave is still the
// run's current one (several runners may find it drained at once).
func (q *Queue) RolloutAdvance(ctx context.Context, wave, size int) error {
	const advanceSQL = `UPDATE run_rollouts SET wave = wave + 1, wave_end = wave_end + $3
		WHERE run = $1 AND wave = $2 AND stopped = ''`
	if _, err := q.s.pool.Exec(ctx, advanceSQL, q.run, wave, size); err != nil {
		return fmt.Errorf("open wave %d of run %q: %w", wave+2, q.run, err)
	}
	return nil
}

// RolloutFailed counts one more failure of the run against its budget and
// returns the count the budget holds: those a resume forgave left out.
func (q *Queue) RolloutFailed(ctx context.Context) (int, error) {
	var n int
	err := q.s.pool.QueryRow(ctx, `UPDATE run_rollouts SET failures = failures + 1 WHERE run = $1 RETURNING failures - forgiven`, q.run).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count a failure of run %q: %w", q.run, err)
	}
	return n, nil
}

// RolloutStop stops new resets of the run for every runner, with why,
// unless it was stopped already.
func (q *Queue) RolloutStop(ctx context.Context, why string) error {
	if _, err := q.s.pool.Exec(ctx, `UPDATE run_rollouts SET stopped = $2 WHERE run = $1 AND stopped = ''`, q.run, why); err != nil {
		return fmt.Errorf("stop run %q: %w", q.run, err)
	}
	return nil
}

// Waves returns the wave, from 0, of every job of run admitted under a
// shared rollout, by job ID.
func (s *Store) Waves(ctx context.Context, run string) (map[int64]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT job_id, wave FROM rollout_jobs WHERE run = $1`, run)
	if err != nil {
		return nil, fmt.Errorf("waves of run %q: %w", run, err)
	}
	out := map[int64]int{}
	var id int64
	var w int
	_, err = pgx.ForEachRow(rows, []any{&id, &w}, func() error {
		out[id] = w
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("waves of run %q: %w", run, err)
	}
	return out, nil
}

// RunRollout is a run's rollout as its runners recorded it: the plan the
// first runner joined with and how far the run has come.
type RunRollout struct {
	Plan     store.RolloutPlan
	Wave     int    // the current wave, from 0
	Failures int    // the failures counted against the budget
	Stopped  string // why new resets stopped for every runner; "" if they did not
}

// Rollout returns the rollout recorded for run, or store.ErrNotFound when
// no runner has recorded one (the run never started, or had no canary,
// waves or budget).
func (s *Store) Rollout(ctx context.Context, run string) (RunRollout, error) {
	const readSQL = `SELECT canary, waves, max_failures, on_failure, approve, wave, failures, stopped FROM run_rollouts WHERE run = $1`
	var r RunRollout
	var waves []int32
	err := s.pool.QueryRow(ctx, readSQL, run).Scan(&r.Plan.Canary, &waves, &r.Plan.MaxFailures, &r.Plan.OnFailure, &r.Plan.Approve, &r.Wave, &r.Failures, &r.Stopped)
	if errors.Is(err, pgx.ErrNoRows) {
		return RunRollout{}, store.ErrNotFound
	}
	if err != nil {
		return RunRollout{}, fmt.Errorf("rollout of run %q: %w", run, err)
	}
	for _, w := range waves {
		r.Plan.Waves = append(r.Plan.Waves, int(w))
	}
	return r, nil
}
