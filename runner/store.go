package runner

import (
	"context"
	"time"

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
	// expires. A store should hand out one region's jobs per claim, staying
	// in a region while it has jobs: the runner describes a claim's
	// instances in one call per region, and polls each region it has
	// resets in.
	Claim(ctx context.Context, n int) (jobs []store.Job, waiting bool, err error)
	// Save durably records j. When it returns nil the write survives a crash
	// of this process. It returns store.ErrLeaseLost, and writes nothing, when
	// j.Fence is no longer the job's lease, and store.ErrInstanceBusy, writing
	// nothing, when j is saved submitting while another run has the same
	// instance in flight.
	Save(ctx context.Context, j *store.Job) error
	// Renew extends the leases this runner holds. It is called periodically.
	Renew(ctx context.Context) error
	// Release returns claimed jobs that this runner will not work on, so that
	// another runner may take them at once.
	Release(ctx context.Context, jobs []store.Job) error
	// Control reports the operator's instruction for the run.
	Control(ctx context.Context) (store.Control, error)
}

// Pauser is implemented by a store that keeps the run's pauses in the
// run's record (the CSV control file beside the journal, the Postgres runs
// row), for every process of the run and past a restart: the pause of an
// exceeded failure budget (Rollout.OnFailure) and the pauses for approval
// between waves (Rollout.Approve). Without it those pauses last as long as
// the process.
type Pauser interface {
	// Pause pauses the run, unless it is cancelled or the wave approved,
	// saying why (see store.RunHold.Pause); awaiting > 0 names the wave,
	// from 1, whose approval the pause waits for. It returns the run's
	// hold after it.
	Pause(ctx context.Context, why string, awaiting int) (store.RunHold, error)
	// Hold returns the run's control and what a pause waits for.
	Hold(ctx context.Context) (store.RunHold, error)
}

// Holds is a record, shared with other processes, of which run holds which
// instance: store/csv.Holds for the runs of one host. A run holds its
// instances from its start to its end; Check is called before each save of
// a job: it refuses an intent (a save to submitting) for an instance
// another run holds with an error wrapping store.ErrHeld that names the
// holder, and records the instance as in flight, or out of it again.
// Held reports, changing nothing, whether another run holds j's instance
// (store.ErrHeld, naming it).
type Holds interface {
	Check(j *store.Job) error
	Held(j *store.Job) error
}

// HoldingStore is implemented by a store that holds instances for its runs
// itself (the Postgres store, for the runs of one database): Held reports,
// changing nothing, whether another run holds j's instance (store.ErrHeld,
// naming it). Its Save refuses an intent for such an instance in any case.
type HoldingStore interface {
	Held(ctx context.Context, j *store.Job) error
}

// Leaser is implemented by a store that leases jobs to one runner at a time
// (the Postgres store). LeaseDeadline returns when j's lease ends, on this
// process's clocks, by the most cautious reckoning: a runner sends no call
// that could outlive it, because after it another runner may take the job
// over. A runner that has lost the lease gets a time in the past.
type Leaser interface {
	LeaseDeadline(j store.Job) time.Time
}
