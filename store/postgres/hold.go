package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store"
)

// A run's hold (its control, what a pause waits for, the waves approved)
// is its runs row, changed only in a transaction that locks the row and
// applies store.RunHold's rules, so that the CSV store and this one agree
// on what a resume approves. A transaction that also locks the run's
// run_rollouts row locks it first.

// lockHold reads run's hold under a lock on its runs row, creating the row
// for a run whose jobs another tool inserted. It returns store.ErrNotFound
// when the run does not exist.
func lockHold(ctx context.Context, tx pgx.Tx, run string) (store.RunHold, error) {
	const ensureSQL = `INSERT INTO runs (name) SELECT $1
		WHERE EXISTS (SELECT 1 FROM jobs WHERE run = $1)
		ON CONFLICT (name) DO NOTHING`
	if _, err := tx.Exec(ctx, ensureSQL, run); err != nil {
		return store.RunHold{}, err
	}
	const lockSQL = `SELECT control, pause_reason, awaiting_wave, approved_wave FROM runs WHERE name = $1 FOR UPDATE`
	var h store.RunHold
	err := tx.QueryRow(ctx, lockSQL, run).Scan(&h.Control, &h.Reason, &h.Awaiting, &h.Approved)
	return h, interpret(err)
}

// writeHold writes run's hold, locked by lockHold.
func writeHold(ctx context.Context, tx pgx.Tx, run string, h store.RunHold) error {
	const writeSQL = `UPDATE runs SET control = $2, pause_reason = $3, awaiting_wave = $4, approved_wave = $5, updated_at = now()
		WHERE name = $1`
	_, err := tx.Exec(ctx, writeSQL, run, string(h.Control), h.Reason, h.Awaiting, h.Approved)
	return err
}

// pauseRun pauses run for why (store.RunHold.Pause) in tx.
func pauseRun(ctx context.Context, tx pgx.Tx, run, why string, awaiting int) (store.RunHold, error) {
	h, err := lockHold(ctx, tx, run)
	if err != nil {
		return h, err
	}
	if h.Pause(why, awaiting) {
		err = writeHold(ctx, tx, run, h)
	}
	return h, err
}

// Hold returns the run's control and what a pause waits for: running when
// the run has no row.
func (q *Queue) Hold(ctx context.Context) (store.RunHold, error) {
	h, err := q.s.Hold(ctx, q.run)
	if errors.Is(err, store.ErrNotFound) {
		return store.RunHold{Control: store.ControlRunning}, nil
	}
	return h, err
}

// Hold returns run's control and what a pause waits for, or an error
// wrapping store.ErrNotFound when the run has no row.
func (s *Store) Hold(ctx context.Context, run string) (store.RunHold, error) {
	const readSQL = `SELECT control, pause_reason, awaiting_wave, approved_wave FROM runs WHERE name = $1`
	var h store.RunHold
	if err := s.pool.QueryRow(ctx, readSQL, run).Scan(&h.Control, &h.Reason, &h.Awaiting, &h.Approved); err != nil {
		return store.RunHold{}, fmt.Errorf("read control of run %q: %w", run, interpret(err))
	}
	return h, nil
}

// Pause pauses the run, for every runner of it, for a rule of the run: its
// failure budget, an approval between waves (see store.RunHold.Pause).
func (q *Queue) Pause(ctx context.Context, why string, awaiting int) (store.RunHold, error) {
	var h store.RunHold
	err := pgx.BeginTxFunc(ctx, q.s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		h, err = pauseRun(ctx, tx, q.run, why, awaiting)
		return err
	})
	if err != nil {
		return store.RunHold{}, fmt.Errorf("pause run %q: %w", q.run, err)
	}
	return h, nil
}
