package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store"
)

// A run exists when it has jobs or a runs row. Import creates the row; jobs
// inserted directly by other tools create none, and such a run reads as
// running until SetControl writes its row.

// SetControl sets the operator's instruction for run, which every runner
// reads on its next poll: a resume approves the wave a paused run awaited
// and forgives the failures of a run its budget paused (store.RunHold.Set). It returns an error wrapping store.ErrNotFound when
// the run does not exist.
func (s *Store) SetControl(ctx context.Context, run string, c store.Control) error {
	switch c {
	case store.ControlRunning, store.ControlPaused, store.ControlCancelled:
	default:
		return fmt.Errorf("set control of run %q: invalid control %q", run, c)
	}
	// A resume of a run its failure budget paused forgives the failures
	// so far: the budget counts anew ("continue past them"). run_rollouts
	// is locked before runs, as RolloutAdmit does.
	const forgiveSQL = `UPDATE run_rollouts SET forgiven = failures
		WHERE run = $1 AND max_failures >= 0 AND failures - forgiven > max_failures`
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if c == store.ControlRunning {
			if _, err := tx.Exec(ctx, forgiveSQL, run); err != nil {
				return err
			}
		}
		h, err := lockHold(ctx, tx, run)
		if err != nil {
			return err
		}
		h.Set(c)
		if err := writeHold(ctx, tx, run, h); err != nil {
			return err
		}
		if c == store.ControlCancelled {
			_, err = tx.Exec(ctx, skipCancelledSQL, run)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set control of run %q: %w", run, err)
	}
	return nil
}

// skipCancelledSQL skips every pending job of a cancelled run ($1) that no
// runner holds: at the cancel, so that a run cancelled before it started
// sends nothing, and at every claim after it, for the jobs a runner held
// then and handed back unsent (interrupted, or suspended until its lease
// ran out): a cancelled run's pending jobs are never claimed, so nothing
// else would end them. A runner holding pending jobs skips them itself,
// its next intent being refused. A job whose before-hook may have taken
// its instance out of service is left to a runner (Claim still hands it
// out), which restores it first.
const skipCancelledSQL = `UPDATE jobs
	SET status = 'skipped', error_message = 'cancelled by operator',
	    finished_at = now(), updated_at = now()
	WHERE run = $1 AND status = 'pending'
	  AND hook_phase NOT IN ('before', 'drained', 'restore')
	  AND (lease_expires_at IS NULL OR lease_expires_at < now())
	  AND (SELECT control FROM runs WHERE name = $1) = 'cancelled'`

// Run summarises one run for a listing.
type Run struct {
	Name    string
	Control store.Control
	// Jobs counts the run's jobs; Unfinished those not terminal.
	Jobs       int
	Unfinished int
	// CreatedAt is when the run's row or its first job was created.
	CreatedAt time.Time
}

// Runs lists every run, by name.
func (s *Store) Runs(ctx context.Context) ([]Run, error) {
	const runsSQL = `SELECT coalesce(r.name, j.run) AS name,
		       coalesce(r.control, 'running') AS control,
		       coalesce(j.jobs, 0) AS jobs,
		       coalesce(j.unfinished, 0) AS unfinished,
		       coalesce(least(r.created_at, j.created_at), r.created_at, j.created_at) AS created_at
		FROM runs r
		FULL JOIN (
			SELECT run,
			       count(*) AS jobs,
			       count(*) FILTER (WHERE status IN ('pending', 'submitting', 'submitted')) AS unfinished,
			       min(created_at) AS created_at
			FROM jobs
			GROUP BY run
		) j ON j.run = r.name
		ORDER BY 1`
	rows, err := s.pool.Query(ctx, runsSQL)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, pgx.RowToStructByName[Run])
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// Status is a snapshot of one run, for `batchreset status`.
type Status struct {
	Run     string
	Control store.Control
	// Totals counts the jobs by status; every status has an entry.
	Totals store.Totals
	// Jobs counts all jobs; InFlight those submitting or submitted.
	Jobs     int
	InFlight int
	// Leased counts unfinished jobs whose lease is live, and Owners the
	// runners holding them.
	Leased int
	Owners int
	// OldestPending is the earliest NotBefore of a pending job; zero when
	// there is none.
	OldestPending time.Time
	// LastErrors holds the latest recorded errors, newest first: up to ten
	// jobs with an error code or message, whatever their status.
	LastErrors []JobError
	// HookPhases counts the jobs by lifecycle hook phase, those with one;
	// HookFailures holds the latest jobs whose hook failed
	// (store.Job.HookFailed), newest first, up to ten. Both are nil when
	// there are none.
	HookPhases   map[store.HookPhase]int
	HookFailures []JobError
}

// JobError is the error recorded on one job.
type JobError struct {
	JobID      int64
	InstanceID string
	Status     store.Status
	Code       string
	Message    string
	// At is when the job was last saved.
	At time.Time
}

// lastErrors is how many errors Status reports.
const lastErrors = 10

// Status reports the state of run, read in one snapshot. It returns an error
// wrapping store.ErrNotFound when the run does not exist.
func (s *Store) Status(ctx context.Context, run string) (Status, error) {
	st := Status{Run: run, Totals: store.Totals{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return status(ctx, tx, run, &st)
	})
	if err != nil {
		return Status{}, fmt.Errorf("status of run %q: %w", run, err)
	}
	return st, nil
}

func status(ctx context.Context, tx pgx.Tx, run string, st *Status) error {
	const countSQL = `SELECT status, count(*),
		       count(*) FILTER (WHERE lease_expires_at > now()),
		       min(not_before)
		FROM jobs
		WHERE run = $1
		GROUP BY status`
	rows, err := tx.Query(ctx, countSQL, run)
	if err != nil {
		return err
	}
	for _, s := range []store.Status{
		store.StatusPending, store.StatusSubmitting, store.StatusSubmitted,
		store.StatusSucceeded, store.StatusFailed, store.StatusSkipped, store.StatusUnknown, store.StatusUnhealthy,
	} {
		st.Totals[s] = 0
	}
	var (
		status        store.Status
		count, leased int
		oldest        time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&status, &count, &leased, &oldest}, func() error {
		st.Totals[status] = count
		st.Jobs += count
		if status == store.StatusSubmitting || status == store.StatusSubmitted {
			st.InFlight += count
		}
		if !status.Terminal() {
			st.Leased += leased
		}
		if status == store.StatusPending {
			st.OldestPending = oldest
		}
		return nil
	})
	if err != nil {
		return err
	}

	c, err := control(ctx, tx, run)
	switch {
	case errors.Is(err, store.ErrNotFound) && st.Jobs == 0:
		return store.ErrNotFound
	case errors.Is(err, store.ErrNotFound):
		c = store.ControlRunning
	case err != nil:
		return err
	}
	st.Control = c

	const ownersSQL = `SELECT count(DISTINCT lease_owner)
		FROM jobs
		WHERE run = $1
		  AND status IN ('pending', 'submitting', 'submitted')
		  AND lease_expires_at > now()`
	if err := tx.QueryRow(ctx, ownersSQL, run).Scan(&st.Owners); err != nil {
		return err
	}

	const errorsSQL = `SELECT id AS job_id, instance_id, status,
		       error_code AS code, error_message AS message, updated_at AS at
		FROM jobs
		WHERE run = $1 AND (error_code <> '' OR error_message <> '')
		ORDER BY updated_at DESC, id DESC
		LIMIT $2`
	rows, err = tx.Query(ctx, errorsSQL, run, lastErrors)
	if err != nil {
		return err
	}
	if st.LastErrors, err = pgx.CollectRows(rows, pgx.RowToStructByName[JobError]); err != nil {
		return err
	}

	const phasesSQL = `SELECT hook_phase, count(*) FROM jobs WHERE run = $1 AND hook_phase <> '' GROUP BY 1`
	rows, err = tx.Query(ctx, phasesSQL, run)
	if err != nil {
		return err
	}
	var phase store.HookPhase
	if _, err = pgx.ForEachRow(rows, []any{&phase, &count}, func() error {
		if st.HookPhases == nil {
			st.HookPhases = map[store.HookPhase]int{}
		}
		st.HookPhases[phase] = count
		return nil
	}); err != nil {
		return err
	}
	const hookErrorsSQL = `SELECT id AS job_id, instance_id, status,
		       error_code AS code, error_message AS message, updated_at AS at
		FROM jobs
		WHERE run = $1 AND error_code = ANY ($2::text[])
		ORDER BY updated_at DESC, id DESC
		LIMIT $3`
	rows, err = tx.Query(ctx, hookErrorsSQL, run, store.HookFailureCodes, lastErrors)
	if err != nil {
		return err
	}
	failures, err := pgx.CollectRows(rows, pgx.RowToStructByName[JobError])
	if len(failures) > 0 {
		st.HookFailures = failures
	}
	return err
}

// Jobs returns the jobs of run in import order, all of them or only those in
// one of statuses (store.StatusSubmitting and store.StatusUnknown, say, for
// the jobs whose outcome is in doubt). It returns an error wrapping
// store.ErrNotFound when the run does not exist.
func (s *Store) Jobs(ctx context.Context, run string, statuses ...store.Status) ([]store.Job, error) {
	filter := make([]string, len(statuses))
	for i, st := range statuses {
		filter[i] = string(st)
	}
	const jobsSQL = `SELECT ` + jobColumns + `
		FROM jobs
		WHERE run = $1 AND (cardinality($2::text[]) = 0 OR status = ANY ($2::text[]))
		ORDER BY id`
	rows, err := s.pool.Query(ctx, jobsSQL, run, filter)
	if err != nil {
		return nil, fmt.Errorf("list jobs of run %q: %w", run, err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowToStructByName[jobRow])
	if err != nil {
		return nil, fmt.Errorf("list jobs of run %q: %w", run, err)
	}
	if len(found) == 0 {
		if err := s.RunExists(ctx, run); err != nil {
			return nil, fmt.Errorf("list jobs of run %q: %w", run, err)
		}
	}
	jobs := make([]store.Job, len(found))
	for i, r := range found {
		jobs[i] = r.job()
	}
	return jobs, nil
}

// RunExists returns an error wrapping store.ErrNotFound unless run has jobs
// or a runs row.
func (s *Store) RunExists(ctx context.Context, run string) error {
	const existsSQL = `SELECT EXISTS (SELECT 1 FROM jobs WHERE run = $1)
		OR EXISTS (SELECT 1 FROM runs WHERE name = $1)`
	var ok bool
	if err := s.pool.QueryRow(ctx, existsSQL, run).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return store.ErrNotFound
	}
	return nil
}

// Settle records a later-established outcome for a job that a run left
// unknown (see runner.Reconcile). It writes only a job that is still unknown
// and leased by no runner, and returns store.ErrNotFound otherwise.
func (s *Store) Settle(ctx context.Context, j *store.Job) error {
	const settleSQL = `UPDATE jobs
		SET status = $2, request_id = $3, error_code = $4, error_message = $5,
		    submitted_at = $6, finished_at = $7, updated_at = now()
		WHERE id = $1 AND status = 'unknown' AND lease_owner IS NULL`
	tag, err := s.pool.Exec(ctx, settleSQL, j.ID, string(j.Status), j.RequestID, j.ErrorCode, j.ErrorMessage,
		nullTime(j.SubmittedAt), nullTime(j.FinishedAt))
	if err != nil {
		return fmt.Errorf("settle job %d (%s): %w", j.ID, j.InstanceID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("settle job %d (%s): not an unknown, unleased job: %w", j.ID, j.InstanceID, store.ErrNotFound)
	}
	return nil
}

// EachJob calls fn with every job of run in import order, as Jobs returns
// them, reading the rows as they come rather than loading the run: a run of
// any size is visited in constant memory. fn must not call the Store (the
// rows hold a connection until the last one). It stops at fn's first error
// and returns it.
func (s *Store) EachJob(ctx context.Context, run string, fn func(*store.Job) error) error {
	const eachSQL = `SELECT ` + jobColumns + ` FROM jobs WHERE run = $1 ORDER BY id`
	rows, err := s.pool.Query(ctx, eachSQL, run)
	if err != nil {
		return fmt.Errorf("list jobs of run %q: %w", run, err)
	}
	defer rows.Close()
	scan := pgx.RowToStructByName[jobRow]
	found := false
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return fmt.Errorf("list jobs of run %q: %w", run, err)
		}
		found = true
		j := r.job()
		if err := fn(&j); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list jobs of run %q: %w", run, err)
	}
	if !found {
		rows.Close()
		if err := s.RunExists(ctx, run); err != nil {
			return fmt.Errorf("list jobs of run %q: %w", run, err)
		}
	}
	return nil
}

// RecordAccounts records defs, the run's account definitions (name ->
// "profile:P" or "role:ARN", never a secret), unless a runner recorded some
// before, and returns the run's: the first runner's hold for every runner of
// the run, as its rollout does. A run without accounts records none.
func (s *Store) RecordAccounts(ctx context.Context, run string, defs map[string]string) (map[string]string, error) {
	const recordSQL = `INSERT INTO runs (name, accounts) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE
		SET accounts = CASE WHEN runs.accounts = '{}' THEN excluded.accounts ELSE runs.accounts END
		RETURNING accounts`
	if defs == nil {
		defs = map[string]string{}
	}
	var got map[string]string
	if err := s.pool.QueryRow(ctx, recordSQL, run, defs).Scan(&got); err != nil {
		return nil, fmt.Errorf("record the accounts of run %q: %w", run, err)
	}
	return got, nil
}

// Accounts returns the account definitions recorded for run (see
// RecordAccounts); empty when it has none.
func (s *Store) Accounts(ctx context.Context, run string) (map[string]string, error) {
	var got map[string]string
	err := s.pool.QueryRow(ctx, `SELECT accounts FROM runs WHERE name = $1`, run).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("accounts of run %q: %w", run, err)
	}
	return got, nil
}
