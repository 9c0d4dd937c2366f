package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

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
	return s.ImportSeq(ctx, run, withoutErrors(slices.Values(jobs)), notBefore)
}

// ImportSeq is Import for jobs that come one at a time: each is checked and
// copied as it comes, and none is held, so a fleet of any size is imported
// in constant memory. An error from jobs (a problem of the file being
// read) ends the import, nothing imported, and is returned as it is.
func (s *Store) ImportSeq(ctx context.Context, run string, jobs iter.Seq2[store.Job, error], notBefore time.Time) (n int, err error) {
	if run == "" {
		return 0, errors.New("import: empty run name")
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

// checkImported returns why job j, the i-th (from 1), cannot be imported.
func checkImported(run string, i int, j *store.Job) error {
	// Named before anything is sent, by the check every input has, which
	// is stricter than the jobs_instance_id_format constraint.
	if err := lighthouse.CheckInstanceID(j.InstanceID); err != nil {
		return fmt.Errorf("import run %q: job %d: instance_id: %w", run, i, err)
	}
	switch {
	case j.Region == "":
		return fmt.Errorf("import run %q: job %d (%s): empty region", run, i, j.InstanceID)
	case len(j.KeyIDs) > store.MaxKeyIDs:
		return fmt.Errorf("import run %q: job %d (%s): %d key pairs, at most %d", run, i, j.InstanceID, len(j.KeyIDs), store.MaxKeyIDs)
	}
	if j.Account != "" {
		if err := store.CheckAccount(j.Account); err != nil {
			return fmt.Errorf("import run %q: job %d (%s): account: %w", run, i, j.InstanceID, err)
		}
	}
	for _, k := range j.KeyIDs {
		if !keyIDFormat.MatchString(k) {
			return fmt.Errorf("import run %q: job %d (%s): key pair ID %q does not match lhkp-[a-z0-9]+", run, i, j.InstanceID, k)
		}
	}
	return nil
}

// withoutErrors is jobs with no error.
func withoutErrors(jobs iter.Seq[store.Job]) iter.Seq2[store.Job, error] {
	return func(yield func(store.Job, error) bool) {
		for j := range jobs {
			if !yield(j, nil) {
				return
			}
		}
	}
}

func importTx(ctx context.Context, tx pgx.Tx, run string, jobs iter.Seq2[store.Job, error], notBefore time.Time) (int, error) {
	// Rows go through a temporary table so that instances given twice, or
	// already in the run, can be named, and nothing imported, before the
	// real insert.
	const createSQL = `CREATE TEMPORARY TABLE batchreset_import (
		ord integer NOT NULL,
		instance_id text NOT NULL,
		blueprint_id text NOT NULL,
		region text NOT NULL,
		account text NOT NULL,
		key_ids text NOT NULL,
		auto_generate_password boolean NOT NULL,
		not_before timestamptz
	) ON COMMIT DROP`
	if _, err := tx.Exec(ctx, createSQL); err != nil {
		return 0, fmt.Errorf("import run %q: %w", run, err)
	}
	next, stop := iter.Pull2(jobs)
	defer stop()
	i := 0
	var bad error
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"batchreset_import"},
		[]string{"ord", "instance_id", "blueprint_id", "region", "account", "key_ids", "auto_generate_password", "not_before"},
		pgx.CopyFromFunc(func() ([]any, error) {
			j, readErr, ok := next()
			if !ok {
				return nil, nil
			}
			if readErr != nil {
				bad = readErr
				return nil, bad
			}
			i++
			if bad = checkImported(run, i, &j); bad != nil {
				return nil, bad
			}
			nb := j.NotBefore
			if nb.IsZero() {
				nb = notBefore
			}
			return []any{int32(i), j.InstanceID, j.BlueprintID, j.Region, j.Account, strings.Join(j.KeyIDs, store.KeyIDSeparator), j.AutoGeneratePassword, nullTime(nb)}, nil
		}))
	if bad != nil {
		return 0, bad
	}
	if err != nil {
		return 0, fmt.Errorf("import run %q: copy: %w", run, err)
	}

	const twiceSQL = `SELECT instance_id, min(ord), max(ord)
		FROM batchreset_import
		GROUP BY instance_id
		HAVING count(*) > 1
		ORDER BY min(ord)
		LIMIT 1`
	var (
		twice         string
		first, second int
	)
	switch err := tx.QueryRow(ctx, twiceSQL).Scan(&twice, &first, &second); {
	case err == nil:
		return 0, fmt.Errorf("import run %q: instance %s appears twice (jobs %d and %d)", run, twice, first, second)
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("import run %q: check duplicates: %w", run, err)
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

	const insertSQL = `INSERT INTO jobs (run, instance_id, blueprint_id, region, account, key_ids, auto_generate_password, not_before)
		SELECT $1, instance_id, blueprint_id, region, account, key_ids, auto_generate_password, coalesce(not_before, now())
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

// ImportRollback creates run, the rollback of parent, with jobs, unless it
// exists: several runners of parent may reach its rollback at once, and the
// first one's plan holds (created reports whether it was this call's). The
// rollback run takes parent's holds on its instances (see takeHoldsSQL).
func (s *Store) ImportRollback(ctx context.Context, parent, run string, jobs []store.Job) (created bool, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// A second importer waits here for the first to commit, then
		// finds the row.
		const createSQL = `INSERT INTO runs (name, parent) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`
		tag, err := tx.Exec(ctx, createSQL, run, parent)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var was string
			if err := tx.QueryRow(ctx, `SELECT parent FROM runs WHERE name = $1`, run).Scan(&was); err != nil {
				return err
			}
			if was != parent {
				return fmt.Errorf("run %q exists and is not the rollback of run %q", run, parent)
			}
			return nil
		}
		created = true
		_, err = importTx(ctx, tx, run, withoutErrors(slices.Values(jobs)), time.Time{})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("import rollback run %q: %w", run, err)
	}
	return created, nil
}

// Parent returns the run that run rolls back, "" for none.
func (s *Store) Parent(ctx context.Context, run string) (string, error) {
	var parent *string
	err := s.pool.QueryRow(ctx, `SELECT parent FROM runs WHERE name = $1`, run).Scan(&parent)
	if errors.Is(err, pgx.ErrNoRows) || parent == nil {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("parent of run %q: %w", run, err)
	}
	return *parent, nil
}
