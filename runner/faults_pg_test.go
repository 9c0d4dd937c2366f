package runner_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// watchedStore records what a runner's store refused and handed over.
type watchedStore struct {
	runner.Store
	leaseLost atomic.Int64 // Saves refused with store.ErrLeaseLost
	tookOver  atomic.Int64 // jobs claimed already submitting or submitted
	sending   chan struct{}
	once      sync.Once
}

func newWatchedStore(st runner.Store) *watchedStore {
	return &watchedStore{Store: st, sending: make(chan struct{})}
}

// slowReads delays every DescribeInstances answer but the first.
type slowReads struct {
	runner.API
	delay time.Duration
	calls atomic.Int64
}

func (s *slowReads) DescribeInstances(ctx context.Context, region string, ids []string) ([]lighthouse.Instance, error) {
	insts, err := s.API.DescribeInstances(ctx, region, ids)
	if s.calls.Add(1) > 1 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
		}
	}
	return insts, err
}

// The runner finds the Queue's lease deadlines through the wrapper.
func (s *watchedStore) LeaseDeadline(j store.Job) time.Time {
	return s.Store.(runner.Leaser).LeaseDeadline(j)
}

func (s *watchedStore) Claim(ctx context.Context, n int) ([]store.Job, bool, error) {
	jobs, waiting, err := s.Store.Claim(ctx, n)
	for _, j := range jobs {
		if j.Status == store.StatusSubmitting || j.Status == store.StatusSubmitted {
			s.tookOver.Add(1)
		}
	}
	return jobs, waiting, err
}

func (s *watchedStore) Save(ctx context.Context, j *store.Job) error {
	err := s.Store.Save(ctx, j)
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		s.leaseLost.Add(1)
	case err == nil && j.Status == store.StatusSubmitting:
		s.once.Do(func() { close(s.sending) })
	}
	return err
}

// Scenario 9. Two runners share one Postgres run. Runner A stops renewing
// its leases (its renewal interval is far above the lease TTL) while its
// calls are slow (1.5s, three lease TTLs); runner B takes its jobs over,
// reconciling those whose call is still in flight. A's late writes are
// refused, no instance is reset twice, and every job ends with one
// outcome.
func TestFaultLeaseLostDuringCall(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 16, limit: 50, timeout: 3 * time.Second, emu: func(c *emulator.Config) {
		c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultLatency, Latency: 1500 * time.Millisecond}}
	}})
	pg := b.importPG(t, "race")
	edit := func(renew time.Duration) func(*runner.Config) {
		return func(c *runner.Config) {
			relaxed(c)
			c.LeaseRenewInterval = renew
			// Above the call timeout: a call B reconciles may still be on
			// the wire for that long.
			c.SettleTime = 3500 * time.Millisecond
		}
	}
	cfgA := b.configPG(t, pg.st, pg.run, "runner-a", 600*time.Millisecond, edit(time.Hour))
	// A cuts each call at the end of its lease, and would record what the
	// cloud shows at once: its reads after the first are slow too, so that
	// its leases lapse before it can.
	cfgA.API = &slowReads{API: cfgA.API, delay: 1500 * time.Millisecond}
	stA := newWatchedStore(cfgA.Store)
	cfgA.Store = stA
	cfgB := b.configPG(t, openPG(t, pg.url), pg.run, "runner-b", 5*time.Second, edit(300*time.Millisecond))
	stB := newWatchedStore(cfgB.Store)
	cfgB.Store = stB

	var wg sync.WaitGroup
	run := func(name string, cfg runner.Config) {
		wg.Go(func() {
			r, err := runner.New(cfg)
			if err != nil {
				t.Error(err)
				return
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			if _, err := r.Run(ctx); err != nil {
				t.Errorf("runner %s: Run() error = %v", name, err)
			}
		})
	}
	run("A", cfgA)
	// B starts once A is sending, so that A holds the jobs first.
	select {
	case <-stA.sending:
	case <-time.After(30 * time.Second):
		t.Fatal("runner A never recorded an intent to send")
	}
	run("B", cfgB)
	wg.Wait()

	jobs := pg.jobs(t)
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusSucceeded] != len(b.jobs) {
		t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
	}
	if n := stA.leaseLost.Load(); n == 0 {
		t.Error("runner A had no write refused: its leases never lapsed")
	}
	if n := stB.tookOver.Load(); n == 0 {
		t.Error("runner B took over no job with a call in flight")
	}
	if n := stB.leaseLost.Load(); n != 0 {
		t.Errorf("runner B, which renews, had %d writes refused", n)
	}
	t.Logf("A: %d writes refused; B: took over %d jobs in flight", stA.leaseLost.Load(), stB.tookOver.Load())
}
