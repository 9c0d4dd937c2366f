package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Requeue makes the finished jobs ids of run pending again, for a retry, in
// one statement: it clears what the finished attempt left (its RequestID,
// the operation seen before it, its error, attempts and times except
// intent_at, which keeps when a reset was first about to be sent for the job,
// for the cross-run checks), so that the next runner sends each as a new job.
// Only a job that is still failed or skipped and leased by no runner
// changes: one that moved on since it was chosen is left alone. It returns
// how many jobs it made pending.
func (s *Store) Requeue(ctx context.Context, run string, ids []int64) (int, error) {
	const requeueSQL = `UPDATE jobs
		SET status = 'pending', request_id = '', prev_request_id = '', error_code = '', error_message = '',
		    attempts = 0, hook_phase = '', submitted_at = NULL, finished_at = NULL, updated_at = now()
		WHERE run = $1 AND id = ANY($2) AND status IN ('failed', 'skipped') AND lease_owner IS NULL`
	if len(ids) == 0 {
		return 0, nil
	}
	// The retry is a rollout of its own: the run's waves, failure count
	// and stop (a budget exceeded, say) start again with the next runner.
	var n int
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, requeueSQL, run, ids)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		if _, err := tx.Exec(ctx, `DELETE FROM rollout_jobs WHERE run = $1`, run); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM run_rollouts WHERE run = $1`, run)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("requeue jobs of run %q: %w", run, interpret(err))
	}
	return n, nil
}

// RunStarted returns when a runner first started work on run (runs.started_at),
// or the zero time if none ever did, or the run has no row yet.
func (s *Store) RunStarted(ctx context.Context, run string) (time.Time, error) {
	const startedSQL = `SELECT started_at FROM runs WHERE name = $1`
	var started *time.Time
	err := s.pool.QueryRow(ctx, startedSQL, run).Scan(&started)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read start of run %q: %w", run, err)
	}
	if started == nil {
		return time.Time{}, nil
	}
	return *started, nil
}
