package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// The runner consumes these interfaces; postgres must not import runner.
var (
	_ runner.Store           = (*postgres.Queue)(nil)
	_ runner.Leaser          = (*postgres.Queue)(nil)
	_ runner.SharedLimits    = postgres.Limits{}
	_ runner.LaterSlotSource = (*postgres.Bucket)(nil)
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testBundle is what most tests start from: a store on a fresh schema, and a
// plain connection to the same schema for looking behind the store's back.
type testBundle struct {
	url   string
	store *postgres.Store
	db    *pgx.Conn
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	url := postgrestest.NewSchema(t)
	return &testBundle{url: url, store: open(t, url), db: connect(t, url)}
}

// open opens a Store on url, closed when the test ends.
func open(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("pgx.Connect() = %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// makeJobs returns n jobs for distinct instances, numbered from first.
func makeJobs(first, n int) []store.Job {
	jobs := make([]store.Job, n)
	for i := range jobs {
		jobs[i] = store.Job{
			InstanceID:  fmt.Sprintf("lhins-%08d", first+i),
			BlueprintID: "lhbp-2u5ha3ob",
			Region:      "ap-guangzhou",
		}
	}
	return jobs
}

// importJobs imports n jobs into run, due at once.
func (tb *testBundle) importJobs(t testing.TB, run string, n int) {
	t.Helper()
	got, err := tb.store.Import(context.Background(), run, makeJobs(0, n), time.Time{})
	if err != nil || got != n {
		t.Fatalf("Import(%q, %d jobs) = %d, %v, want %d, nil", run, n, got, err, n)
	}
}

// waitFor polls cond until it holds, failing the test after timeout. It is
// for conditions that only the passage of time brings about, such as a lease
// expiring on the database's clock.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
