package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store"
)

// Count counts the jobs of run with SQL aggregates, in one read-only
// snapshot. It returns an error wrapping store.ErrNotFound when the run
// does not exist.
func (s *Store) Count(ctx context.Context, run string) (store.Count, error) {
	c := store.Count{Totals: store.Totals{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT status, count(*) FROM jobs WHERE run = $1 GROUP BY status`, run)
		if err != nil {
			return err
		}
		var (
			st   store.Status
			n    int
			open []string
		)
		if _, err := pgx.ForEachRow(rows, []any{&st, &n}, func() error {
			c.Totals[st] = n
			c.Jobs += n
			if !st.Terminal() {
				c.Unfinished += n
				open = append(open, string(st))
			}
			return nil
		}); err != nil {
			return err
		}
		const accountsSQL = `SELECT account, count(*), count(*) FILTER (WHERE status = ANY ($2::text[])),
			       coalesce(array_agg(DISTINCT region ORDER BY region) FILTER (WHERE status = ANY ($2::text[])), '{}')
			FROM jobs WHERE run = $1 GROUP BY account ORDER BY min(id)`
		rows, err = tx.Query(ctx, accountsSQL, run, open)
		if err != nil {
			return err
		}
		var a store.AccountCount
		if _, err := pgx.ForEachRow(rows, []any{&a.Account, &a.Jobs, &a.Unfinished, &a.Regions}, func() error {
			a.Totals = store.Totals{}
			c.Accounts = append(c.Accounts, a)
			return nil
		}); err != nil {
			return err
		}
		if len(c.Accounts) == 1 && c.Accounts[0].Account == "" {
			c.Accounts = nil
		}
		if c.Accounts != nil {
			rows, err = tx.Query(ctx, `SELECT account, status, count(*) FROM jobs WHERE run = $1 GROUP BY 1, 2`, run)
			if err != nil {
				return err
			}
			var account string
			if _, err := pgx.ForEachRow(rows, []any{&account, &st, &n}, func() error {
				// The same snapshot: every account is listed.
				k := slices.IndexFunc(c.Accounts, func(a store.AccountCount) bool { return a.Account == account })
				c.Accounts[k].Totals[st] = n
				return nil
			}); err != nil {
				return err
			}
		}
		if c.Unfinished == 0 {
			return nil
		}
		const regionsSQL = `SELECT DISTINCT region FROM jobs WHERE run = $1 AND status = ANY ($2::text[])`
		rows, err = tx.Query(ctx, regionsSQL, run, open)
		if err != nil {
			return err
		}
		if c.Regions, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		slices.Sort(c.Regions)
		const sampleSQL = `SELECT instance_id FROM jobs WHERE run = $1 AND status = ANY ($2::text[]) ORDER BY id LIMIT $3`
		rows, err = tx.Query(ctx, sampleSQL, run, open, store.CountSample)
		if err != nil {
			return err
		}
		c.Sample, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err == nil && c.Jobs == 0 {
		err = s.RunExists(ctx, run)
	}
	if err != nil {
		return store.Count{}, fmt.Errorf("count jobs of run %q: %w", run, err)
	}
	return c, nil
}

// Outcomes is how a run's jobs ended, counted by the database: the jobs by
// status and error code, the durations of the resets that ended, and the
// first few jobs in some statuses. It holds nothing per job beyond those
// few, whatever the run's size.
type Outcomes struct {
	Groups []OutcomeGroup
	// Ended counts the jobs that succeeded or failed with both a submit and
	// a finish time; Longest is the longest of their durations, and
	// Percentiles their percentiles as asked (nearest rank, as
	// runner.Percentile).
	Ended       int
	Longest     time.Duration
	Percentiles []time.Duration
	// Listed are the first jobs (in import order) whose status is one of
	// those asked for; HookFailed the first whose lifecycle hook failed
	// (store.Job.HookFailed), as many.
	Listed     []store.Job
	HookFailed []store.Job
}

// OutcomeGroup counts the jobs of one status, error code and hook phase.
type OutcomeGroup struct {
	Status    store.Status
	ErrorCode string
	HookPhase store.HookPhase
	Jobs      int
}

// Outcomes counts the jobs of run in one read-only snapshot, listing up to
// listMax jobs whose status is one of list, and, unless pcts is empty, the
// percentiles pcts (0..100) of the durations of the resets that ended: the
// only part that sorts the run's finished jobs. It returns an error
// wrapping store.ErrNotFound when the run does not exist.
func (s *Store) Outcomes(ctx context.Context, run string, list []store.Status, listMax int, pcts []float64) (Outcomes, error) {
	var o Outcomes
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		const groupsSQL = `SELECT status, error_code, hook_phase, count(*) FROM jobs WHERE run = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`
		rows, err := tx.Query(ctx, groupsSQL, run)
		if err != nil {
			return err
		}
		if o.Groups, err = pgx.CollectRows(rows, pgx.RowToStructByPos[OutcomeGroup]); err != nil {
			return err
		}
		if len(pcts) == 0 {
			return o.list(ctx, tx, run, list, listMax)
		}
		fractions := make([]float64, len(pcts))
		for i, p := range pcts {
			fractions[i] = p / 100
		}
		// Ordered as intervals, which sort faster than the numeric epochs
		// extract gives; only the answers are converted.
		const durationsSQL = `SELECT count(*),
			       coalesce((extract(epoch FROM max(d)) * 1000000)::bigint, 0),
			       coalesce((SELECT array_agg((extract(epoch FROM p) * 1000000)::bigint)
			                 FROM unnest(percentile_disc($2::float8[]) WITHIN GROUP (ORDER BY d)) p), '{}')
			FROM (SELECT finished_at - submitted_at AS d
			      FROM jobs
			      WHERE run = $1 AND status IN ('succeeded', 'failed')
			        AND submitted_at IS NOT NULL AND finished_at IS NOT NULL) d`
		var longest int64
		var ps []int64
		if err := tx.QueryRow(ctx, durationsSQL, run, fractions).Scan(&o.Ended, &longest, &ps); err != nil {
			return err
		}
		o.Longest = time.Duration(longest) * time.Microsecond
		for _, us := range ps {
			o.Percentiles = append(o.Percentiles, time.Duration(us)*time.Microsecond)
		}
		return o.list(ctx, tx, run, list, listMax)
	})
	if err == nil && len(o.Groups) == 0 {
		err = s.RunExists(ctx, run)
	}
	if err != nil {
		return Outcomes{}, fmt.Errorf("count outcomes of run %q: %w", run, err)
	}
	return o, nil
}

// list sets o.Listed, the first listMax jobs of run whose status is one of
// list, and o.HookFailed, the first listMax whose hook failed.
func (o *Outcomes) list(ctx context.Context, tx pgx.Tx, run string, list []store.Status, listMax int) error {
	if listMax <= 0 {
		return nil
	}
	statuses := make([]string, len(list))
	for i, st := range list {
		statuses[i] = string(st)
	}
	const listSQL = `SELECT ` + jobColumns + ` FROM jobs WHERE run = $1 AND status = ANY ($2::text[]) ORDER BY id LIMIT $3`
	var err error
	if len(list) > 0 {
		if o.Listed, err = listJobs(ctx, tx, listSQL, run, statuses, listMax); err != nil {
			return err
		}
	}
	const hookSQL = `SELECT ` + jobColumns + ` FROM jobs WHERE run = $1 AND error_code = ANY ($2::text[]) ORDER BY id LIMIT $3`
	o.HookFailed, err = listJobs(ctx, tx, hookSQL, run, store.HookFailureCodes, listMax)
	return err
}

// listJobs runs a query of jobColumns and returns its jobs.
func listJobs(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]store.Job, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	found, err := pgx.CollectRows(rows, pgx.RowToStructByName[jobRow])
	jobs := make([]store.Job, len(found))
	for i, r := range found {
		jobs[i] = r.job()
	}
	return jobs, err
}
