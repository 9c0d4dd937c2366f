package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/batchreset/batchreset/store"
)

// instanceIDFormat mirrors the jobs_instance_id_format check constraint, so
// that a bad row is named before anything is sent to the database.
var instanceIDFormat = regexp.MustCompile(`^lhins-[a-z0-9]+$`)

// keyIDFormat mirrors the jobs_key_ids_format check constraint for one ID.
var keyIDFormat = regexp.MustCompile(`^lhkp-[a-z0-9]+$`)

// Import adds jobs to run as pending jobs, all or none, in one transaction,
// and creates the run's control row (running) if it has none. Only
// InstanceID, BlueprintID, Region, KeyIDs, AutoGeneratePassword and
// NotBefore are read from each job; a zero NotBefore takes notBefore, and a
// zero notBefore means now. An instance that
// appears twice in jobs, or is already in the run, fails the whole import
// with an error naming it. Import may add jobs to an existing run.
func (s *Store) Import(ctx context.Context, run string, jobs []store.Job, notBefore time.Time) (n int, err error) {
	if run == "" {
		return 0, errors.New("import: empty run name")
	}
	seen := make(map[string]int, len(jobs))
	for i, j := range jobs {
		switch {
		case !instanceIDFormat.MatchString(j.InstanceID):
			return 0, fmt.Errorf("import run %q: job %d: instance ID %q does not match lhins-[a-z0-9]+", run, i+1, j.InstanceID)
		case j.Region == "":
			return 0, fmt.Errorf("import run %q: job %d (%s): empty region", run, i+1, j.InstanceID)
		case len(j.KeyIDs) > store.MaxKeyIDs:
			return 0, fmt.Errorf("import run %q: job %d (%s): %d key pairs, at most %d", run, i+1, j.InstanceID, len(j.KeyIDs), store.MaxKeyIDs)
		}
		for _, k := range j.KeyIDs {
			if !keyIDFormat.MatchString(k) {
				return 0, fmt.Errorf("import run %q: job %d (%s): key pair ID %q does not match lhkp-[a-z0-9]+", run, i+1, j.InstanceID, k)
			}
		}
		if first, dup := seen[j.InstanceID]; dup {
			return 0, fmt.Errorf("import run %q: instance %s appears twice (jobs %d and %d)", run, j.InstanceID, first, i+1)
		}
		seen[j.InstanceID] = i + 1
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("import run %q: %w", run, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // a no-op after Commit
	n, err = importTx(ctx, tx, run, jobs, notBefore)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("import run %q: commit: %w", run, err)
	}
	return n, nil
}

func importTx(ctx context.Context, tx pgx.Tx, run string, jobs []store.Job, notBefore time.Time) (int, error) {
	// Rows go through a temporary table so that instances already in the run
	// can be named, and nothing imported, before the real insert.
	const createSQL = `CREATE TEMPORARY TABLE batchreset_import (
		ord integer NOT NULL,
		instance_id text NOT NULL,
		blueprint_id text NOT NULL,
		region text NOT NULL,
		key_ids text NOT NULL,
		auto_generate_password boolean NOT NULL,
		not_before timestamptz
	) ON COMMIT DROP`
	if _, err := tx.Exec(ctx, createSQL); err != nil {
		return 0, fmt.Errorf("import run %q: %w", run, err)
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"batchreset_import"},
		[]string{"ord", "instance_id", "blueprint_id", "region", "key_ids", "auto_generate_password", "not_before"},
		pgx.CopyFromSlice(len(jobs), func(i int) ([]any, error) {
			j := &jobs[i]
			nb := j.NotBefore
			if nb.IsZero() {
				nb = notBefore
			}
			return []any{int32(i), j.InstanceID, j.BlueprintID, j.Region, strings.Join(j.KeyIDs, store.KeyIDSeparator), j.AutoGeneratePassword, nullTime(nb)}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("import run %q: copy: %w", run, err)
	}

	const dupSQL = `SELECT i.instance_id, count(*) OVER ()
		FROM batchreset_import i
		JOIN jobs j ON j.run = $1 AND j.instance_id = i.instance_id
		ORDER BY i.ord
		LIMIT 1`
	var (
		dup   string
		ndups int
	)
	switch err := tx.QueryRow(ctx, dupSQL, run).Scan(&dup, &ndups); {
	case err == nil:
		if ndups > 1 {
			return 0, fmt.Errorf("import run %q: instance %s and %d more are already in the run: nothing imported", run, dup, ndups-1)
		}
		return 0, fmt.Errorf("import run %q: instance %s is already in the run: nothing imported", run, dup)
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("import run %q: check duplicates: %w", run, err)
	}

	const insertSQL = `INSERT INTO jobs (run, instance_id, blueprint_id, region, key_ids, auto_generate_password, not_before)
		SELECT $1, instance_id, blueprint_id, region, key_ids, auto_generate_password, coalesce(not_before, now())
		FROM batchreset_import
		ORDER BY ord`
	tag, err := tx.Exec(ctx, insertSQL, run)
	if err != nil {
		var pgErr *pgconn.PgError
		if pgCode(err) == codeUniqueViolation && errors.As(err, &pgErr) {
			// Another import into the same run committed meanwhile.
			return 0, fmt.Errorf("import run %q: %s: nothing imported: %w", run, pgErr.Detail, err)
		}
		return 0, fmt.Errorf("import run %q: insert: %w", run, err)
	}

	const runSQL = `INSERT INTO runs (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`
	if _, err := tx.Exec(ctx, runSQL, run); err != nil {
		return 0, fmt.Errorf("import run %q: create run: %w", run, err)
	}
	return int(tag.RowsAffected()), nil
}
