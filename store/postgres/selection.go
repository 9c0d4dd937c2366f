package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store"
)

// ErrRunHasJobs reports an ImportSelected into a run that already has
// jobs: a selection is frozen once, and a rerun works on the jobs saved.
var ErrRunHasJobs = errors.New("run already has jobs")

// ImportSelected makes run of jobs chosen by a selector and records
// selector, the description of how they were chosen, in the run's row, all
// in one transaction. The run must have no jobs: otherwise nothing is
// imported and the error wraps ErrRunHasJobs, so that of two runners
// selecting for one run at once, the second works on the first one's list.
// Jobs are imported as Import does (at once: no not-before time).
func (s *Store) ImportSelected(ctx context.Context, run, selector string, jobs []store.Job) (n int, err error) {
	if run == "" {
		return 0, errors.New("import selection: empty run name")
	}
	// The runs row, locked, serializes imports of one run: the second
	// waits here and then sees the first one's jobs.
	const lockSQL = `INSERT INTO runs (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`
	const lockRowSQL = `SELECT EXISTS (SELECT 1 FROM jobs WHERE run = $1)
		FROM runs WHERE name = $1 FOR UPDATE`
	const recordSQL = `UPDATE runs SET selector = $2, updated_at = now() WHERE name = $1`
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSQL, run); err != nil {
			return err
		}
		var has bool
		if err := tx.QueryRow(ctx, lockRowSQL, run).Scan(&has); err != nil {
			return err
		}
		if has {
			return ErrRunHasJobs
		}
		if n, err = importTx(ctx, tx, run, withoutErrors(slices.Values(jobs)), time.Time{}); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, recordSQL, run, selector)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("import selection into run %q: %w", run, err)
	}
	return n, nil
}

// Selector returns the description of how run's jobs were selected, "" for
// a run imported from a file or inserted by another tool. It returns an
// error wrapping store.ErrNotFound when the run has no row.
func (s *Store) Selector(ctx context.Context, run string) (string, error) {
	const selectorSQL = `SELECT selector FROM runs WHERE name = $1`
	var sel string
	switch err := s.pool.QueryRow(ctx, selectorSQL, run).Scan(&sel); {
	case errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("selector of run %q: %w", run, store.ErrNotFound)
	case err != nil:
		return "", fmt.Errorf("selector of run %q: %w", run, err)
	}
	return sel, nil
}
