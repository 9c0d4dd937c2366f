package postgres_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := postgrestest.NewEmptySchema(t)
	s := open(t, url)

	err := s.CheckSchema(ctx)
	if !errors.Is(err, store.ErrSchemaOutdated) {
		t.Fatalf("CheckSchema() on an empty schema = %v, want %v", err, store.ErrSchemaOutdated)
	}
	if !strings.Contains(err.Error(), "version 0") {
		t.Errorf("CheckSchema() = %q, want it to name version 0", err)
	}

	// Runners starting together may all migrate; tern's lock serialises them.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = open(t, url).Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate() #%d = %v, want nil", i, err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate() = %v, want nil", err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema() after Migrate = %v, want nil", err)
	}

	// The version table lives in the test's own schema.
	db := connect(t, url)
	var schema string
	if err := db.QueryRow(ctx, `SELECT table_schema FROM information_schema.tables WHERE table_name = 'schema_version' AND table_schema = current_schema()`).Scan(&schema); err != nil {
		t.Fatalf("find schema_version in the test schema: %v", err)
	}

	// A database migrated by a newer binary is not "outdated".
	if _, err := db.Exec(ctx, `UPDATE schema_version SET version = 999`); err != nil {
		t.Fatal(err)
	}
	err = s.CheckSchema(ctx)
	if err == nil || errors.Is(err, store.ErrSchemaOutdated) {
		t.Errorf("CheckSchema() on a newer schema = %v, want a non-outdated error", err)
	}
}

func TestMigrateNoSchema(t *testing.T) {
	t.Parallel()
	url := postgrestest.NewEmptySchema(t)
	s := open(t, strings.Replace(url, "search_path=", "search_path=does_not_exist_", 1))
	if err := s.Migrate(t.Context()); err == nil {
		t.Fatal("Migrate() with no existing schema on the search_path = nil, want an error")
	}
}

// TestDirectInsert checks that other tools can insert jobs with only the
// columns they know, and that the schema rejects malformed ones.
func TestDirectInsert(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)

	const insert = `INSERT INTO jobs (run, instance_id, blueprint_id, region) VALUES ($1, $2, $3, $4)`
	if _, err := tb.db.Exec(ctx, insert, "direct", "lhins-abc123", "", "ap-beijing"); err != nil {
		t.Fatalf("direct insert: %v", err)
	}
	if _, err := tb.db.Exec(ctx, `INSERT INTO jobs (instance_id, region) VALUES ('lhins-def456', 'ap-beijing')`); err != nil {
		t.Fatalf("direct insert into the default run: %v", err)
	}

	q := tb.store.Queue("direct", "runner-1", time.Minute)
	jobs, _, err := q.Claim(ctx, 10)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Claim() = %d jobs, %v, want 1, nil", len(jobs), err)
	}
	if jobs[0].Status != store.StatusPending || jobs[0].Fence == 0 {
		t.Errorf("Claim() = %+v, want a pending job with a fence", jobs[0])
	}
	if c, err := q.Control(ctx); c != store.ControlRunning || err != nil {
		t.Errorf("Control() of a run without a runs row = %q, %v, want %q, nil", c, err, store.ControlRunning)
	}

	for _, tc := range []struct {
		name, instance, region, status string
	}{
		{"BadInstanceID", "ins-abc", "ap-beijing", "pending"},
		{"UpperCaseInstanceID", "lhins-ABC", "ap-beijing", "pending"},
		{"EmptyRegion", "lhins-abc999", "", "pending"},
		{"BadStatus", "lhins-abc998", "ap-beijing", "done"},
	} {
		_, err := tb.db.Exec(ctx, `INSERT INTO jobs (run, instance_id, region, status) VALUES ('direct', $1, $2, $3)`, tc.instance, tc.region, tc.status)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("%s: insert = %v, want a check violation (23514)", tc.name, err)
		}
	}
	_, err = tb.db.Exec(ctx, insert, "direct", "lhins-abc123", "", "ap-beijing")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Errorf("duplicate insert = %v, want a unique violation (23505)", err)
	}
}
