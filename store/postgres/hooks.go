package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store"
)

// JoinHooks records h as run's lifecycle hooks unless a runner already
// did, and returns the run's: the first runner's hooks hold, and the
// caller refuses to run with others. It returns an error wrapping
// store.ErrNotFound when the run does not exist.
func (s *Store) JoinHooks(ctx context.Context, run string, h store.HookSettings) (store.HookSettings, error) {
	var got store.HookSettings
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := lockHold(ctx, tx, run); err != nil {
			return err
		}
		const joinSQL = `UPDATE runs SET hooks_recorded = true, before_reset = $2, after_reset = $3,
			       hook_timeout_ms = $4, hook_failure = $5, hook_concurrency = $6
			WHERE name = $1 AND NOT hooks_recorded`
		if _, err := tx.Exec(ctx, joinSQL, run, h.Before, h.After, h.Timeout.Milliseconds(), h.Failure, h.Concurrency); err != nil {
			return err
		}
		var recorded bool
		return scanHooks(tx.QueryRow(ctx, hooksSQL, run), &got, &recorded)
	})
	if err != nil {
		return store.HookSettings{}, fmt.Errorf("join the hooks of run %q: %w", run, err)
	}
	return got, nil
}

// Hooks returns run's lifecycle hooks as its record keeps them; recorded
// is false when no runner has recorded any (the run never started, or
// started before runs recorded them).
func (s *Store) Hooks(ctx context.Context, run string) (h store.HookSettings, recorded bool, err error) {
	err = scanHooks(s.pool.QueryRow(ctx, hooksSQL, run), &h, &recorded)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.HookSettings{}, false, nil // a run whose jobs another tool inserted
	}
	if err != nil {
		return store.HookSettings{}, false, fmt.Errorf("hooks of run %q: %w", run, err)
	}
	return h, recorded, nil
}

const hooksSQL = `SELECT hooks_recorded, before_reset, after_reset, hook_timeout_ms, hook_failure, hook_concurrency
	FROM runs WHERE name = $1`

func scanHooks(row pgx.Row, h *store.HookSettings, recorded *bool) error {
	var ms int64
	if err := row.Scan(recorded, &h.Before, &h.After, &ms, &h.Failure, &h.Concurrency); err != nil {
		return err
	}
	h.Timeout = time.Duration(ms) * time.Millisecond
	return nil
}
