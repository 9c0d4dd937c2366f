package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store"
)

// Count is what a command needs to know of a run before it starts on it,
// counted by the database rather than by loading the run.
type Count struct {
	// Totals counts the jobs by status; Jobs is their sum.
	Totals store.Totals
	Jobs   int
	// Unfinished counts the jobs not terminal, Regions lists their regions
	// in order, and Sample holds the first few of their instances in import
	// order (up to countSample).
	Unfinished int
	Regions    []string
	Sample     []string
}

// countSample is how many unfinished instances Count names.
const countSample = 3

// Count counts the jobs of run with SQL aggregates, in one read-only
// snapshot. It returns an error wrapping store.ErrNotFound when the run
// does not exist.
func (s *Store) Count(ctx context.Context, run string) (Count, error) {
	c := Count{Totals: store.Totals{}}
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
		rows, err = tx.Query(ctx, sampleSQL, run, open, countSample)
		if err != nil {
			return err
		}
		c.Sample, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err == nil && c.Jobs == 0 {
		err = s.runExists(ctx, run)
	}
	if err != nil {
		return Count{}, fmt.Errorf("count jobs of run %q: %w", run, err)
	}
	return c, nil
}
