package runner

import (
	"context"

	"github.com/batchreset/batchreset/store"
)

// Store is where a Runner takes its jobs and records their progress. The CSV
// store (store/csv) serves one process; the Postgres store (store/postgres)
// lets several runners share one run.
type Store interface {
	// Claim takes up to n jobs that are not terminal, are due (NotBefore has
	// passed) and are held by no live runner, and leases them to this runner.
	// Claimed jobs may be pending, or submitting or submitted (taken over from
	// a runner that died, or left by an earlier run): the runner reconciles
	// those before anything is sent. waiting reports that other non-terminal,
	// due jobs exist that are leased elsewhere and may come back if that lease
	// expires.
	Claim(ctx context.Context, n int) (jobs []store.Job, waiting bool, err error)
	// Save durably records j. When it returns nil the write survives a crash
	// of this process. It returns store.ErrLeaseLost, and writes nothing, when
	// j.Fence is no longer the job's lease.
	Save(ctx context.Context, j *store.Job) error
	// Renew extends the leases this runner holds. It is called periodically.
	Renew(ctx context.Context) error
	// Release returns claimed jobs that this runner will not work on, so that
	// another runner may take them at once.
	Release(ctx context.Context, jobs []store.Job) error
	// Control reports the operator's instruction for the run.
	Control(ctx context.Context) (store.Control, error)
}

// Limiter spaces calls of one API action. Wait blocks until one call may be
// sent, or ctx is done. *rate.Limiter satisfies it, and so does the Postgres
// store's shared bucket.
type Limiter interface {
	Wait(ctx context.Context) error
}
