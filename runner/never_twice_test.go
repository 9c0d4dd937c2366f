package runner_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// The cases below break the first promise outside the fault matrix: the
// cloud's clock not ours, a runner suspended past its lease, two runs over
// the same fleet, and controls set before a runner starts. Each is judged
// by the emulator's ledger.

// TestFaultClockSkew runs with the cloud's clock up to 290s behind or ahead
// of ours (inside the 300s signature window, which the signature's whole
// seconds narrow) while 30% of the answers are lost after the reset
// applied: no decision compares the cloud's timestamps with ours, so every
// lost answer is adopted, nothing is sent twice, and every instance
// succeeds.
func TestFaultClockSkew(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{-290 * time.Second, -90 * time.Second, 90 * time.Second, 290 * time.Second} {
		for _, be := range backends {
			t.Run(fmt.Sprintf("%s/%s", be, skew), func(t *testing.T) {
				t.Parallel()
				b := setup(t, scenario{n: 30, limit: 50, emu: func(c *emulator.Config) {
					c.Now = func() time.Time { return time.Now().Add(skew) }
					c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultDropAfterApply, Probability: 0.3}}
				}})
				_, jobs := b.runOn(t, be, relaxed)
				rs := resetCalls(b)
				totals := b.verify(t, jobs, verdict{})
				if totals[store.StatusSucceeded] != len(b.jobs) {
					t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
				}
				if rs.Faults == 0 {
					t.Error("no answer was lost")
				}
				if rs.Calls != len(b.jobs) {
					t.Errorf("emulator saw %d ResetInstance calls, want exactly %d (one per instance)", rs.Calls, len(b.jobs))
				}
			})
		}
	}
}

// stallingStore is a Postgres queue whose runner is "suspended" (as by
// SIGSTOP, a paused VM, a sleeping laptop) while it waits for its first
// rate slots (stallingLimits): Reserve blocks until release is closed.
// Everything else is the queue's own.
type stallingStore struct {
	*watchedStore
	release chan struct{}
	stalled chan struct{}
	once    sync.Once
}

// stallingLimits are the runner's shared limits, whose ResetInstance slots
// stall with s.
type stallingLimits struct {
	runner.SharedLimits
	s *stallingStore
}

type stallingSlots struct {
	src store.SlotSource
	s   *stallingStore
}

func (l stallingLimits) SlotSource(action string, interval time.Duration) store.SlotSource {
	src := l.SharedLimits.SlotSource(action, interval)
	if action != lighthouse.ActionResetInstance {
		return src
	}
	return stallingSlots{src: src, s: l.s}
}

func (s stallingSlots) Reserve(ctx context.Context) (time.Duration, error) {
	s.s.once.Do(func() { close(s.s.stalled) })
	select {
	case <-s.s.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return s.src.Reserve(ctx)
}

// TestFaultSuspendedRunner: runner A holds committed intents for its jobs
// and is suspended before their rate slots come; its leases lapse, runner B
// takes the jobs over, proves A's calls absent and resets the instances.
// When A resumes it sends nothing: a call leaves only under a lease known to
// outlive it. Every instance is reset exactly once, by B.
func TestFaultSuspendedRunner(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 12, limit: 50})
	pg := b.importPG(t, "suspend")
	cfgA := b.configPG(t, pg.st, pg.run, "runner-a", time.Second, func(c *runner.Config) {
		relaxed(c)
		c.LeaseRenewInterval = time.Hour // suspended: no renewal either
		c.Workers = len(b.jobs)          // every job's intent is committed before the stall
	})
	stA := &stallingStore{watchedStore: newWatchedStore(cfgA.Store), release: make(chan struct{}), stalled: make(chan struct{})}
	cfgA.Store, cfgA.Shared = stA, stallingLimits{SharedLimits: cfgA.Shared, s: stA}
	cfgB := b.configPG(t, openPG(t, pg.url), pg.run, "runner-b", 5*time.Second, func(c *runner.Config) {
		relaxed(c)
		c.LeaseRenewInterval = 500 * time.Millisecond
	})
	stB := newWatchedStore(cfgB.Store)
	cfgB.Store = stB

	rA, err := runner.New(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	doneA := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		_, err := rA.Run(ctx)
		doneA <- err
	}()
	select {
	case <-stA.stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("runner A never waited for a rate slot")
	}
	eventually(t, 10*time.Second, "A's intents", func() bool {
		return len(byStatus(pg.jobs(t), store.StatusSubmitting)) == len(b.jobs)
	})
	b.runWith(t, cfgB) // B finishes every job
	close(stA.release) // A resumes
	if err := <-doneA; err != nil {
		t.Errorf("runner A: Run() error = %v", err)
	}
	calls := resetCalls(b).Calls
	jobs := pg.jobs(t)
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusSucceeded] != len(b.jobs) {
		t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
	}
	if stB.tookOver.Load() != int64(len(b.jobs)) {
		t.Errorf("runner B took over %d jobs in flight, want all %d", stB.tookOver.Load(), len(b.jobs))
	}
	if calls != len(b.jobs) {
		t.Errorf("emulator saw %d ResetInstance calls, want %d: the resumed runner sent some", calls, len(b.jobs))
	}
}

// TestFaultTwoRuns runs two runs over the same instances at once, as two
// copies of one jobs file (CSV, two journals, one host registry) or one CSV
// imported as two Postgres runs. Each instance is reset once in all; the
// other run's job for it ends skipped, naming the run that held it (or the
// other run's reset, when the cloud showed it first);
// both runs end on their own.
func TestFaultTwoRuns(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 24, limit: 50})
			var cfgs [2]runner.Config
			var results [2]func() []store.Job
			switch be {
			case csvBackend:
				reg, err := csvstore.OpenRegistry(t.TempDir(), nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { reg.Close() })
				for i := range cfgs {
					st := openCSV(t, filepath.Join(t.TempDir(), "results.csv.state"), b.jobs)
					t.Cleanup(func() { st.Close() })
					h, err := reg.Begin(st.RunKey(), fmt.Sprintf("run %d", i), st.Started())
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(h.End)
					for _, j := range b.jobs {
						if err := h.Hold(j.InstanceID); err != nil && !errors.Is(err, store.ErrHeld) {
							t.Fatal(err)
						}
					}
					cfgs[i] = b.config(t, st)
					cfgs[i].Holds = h
					relaxed(&cfgs[i])
					results[i] = st.Jobs
				}
			case pgBackend:
				pg := b.importPG(t, "first")
				if _, err := pg.st.Import(t.Context(), "second", b.jobs, time.Time{}); err != nil {
					t.Fatal(err)
				}
				for i, run := range []string{"first", "second"} {
					cfgs[i] = b.configPG(t, openPG(t, pg.url), run, "runner-"+run, 30*time.Second, relaxed)
					results[i] = func() []store.Job {
						jobs, err := pg.st.Jobs(context.Background(), run)
						if err != nil {
							t.Fatal(err)
						}
						return jobs
					}
				}
			}
			var wg sync.WaitGroup
			for _, cfg := range cfgs {
				wg.Go(func() { b.runWith(t, cfg) })
			}
			wg.Wait()
			stats := b.emu.Stats()
			outcome := map[string][]store.Job{}
			for _, res := range results {
				for _, j := range res() {
					outcome[j.InstanceID] = append(outcome[j.InstanceID], j)
				}
			}
			for _, j := range b.jobs {
				applied := stats.Resets[j.InstanceID]
				got := outcome[j.InstanceID]
				if len(applied) != 1 {
					t.Errorf("%s: reset %d times (%v), want exactly once", j.InstanceID, len(applied), applied)
					continue
				}
				succeeded, skipped := 0, 0
				for _, o := range got {
					switch {
					case o.Status == store.StatusSucceeded && o.RequestID == applied[0]:
						succeeded++
					case o.Status == store.StatusSkipped && (o.ErrorCode == runner.CodeHeldByRun || o.ErrorCode == runner.CodeResetByOther):
						skipped++
					default:
						t.Errorf("%s: %s %s %q (applied %v)", j.InstanceID, o.Status, o.ErrorCode, o.ErrorMessage, applied)
					}
				}
				if succeeded != 1 || skipped != 1 {
					t.Errorf("%s: %d runs succeeded and %d skipped it, want one each", j.InstanceID, succeeded, skipped)
				}
			}
		})
	}
}

// TestControlBeforeStart: a run paused before any runner starts sends
// nothing and ends, its jobs still pending; a run cancelled before it starts
// has its jobs skipped at once, and a runner sends nothing for it.
func TestControlBeforeStart(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 20, limit: 50})
	pg := b.importPG(t, "held")
	if err := pg.st.SetControl(t.Context(), pg.run, store.ControlPaused); err != nil {
		t.Fatal(err)
	}
	b.runPG(t, pg, "runner-1", 30*time.Second, relaxed)
	if calls := resetCalls(b).Calls; calls != 0 {
		t.Errorf("paused before start: %d ResetInstance calls, want none", calls)
	}
	if n := len(byStatus(pg.jobs(t), store.StatusPending)); n != len(b.jobs) {
		t.Errorf("paused before start: %d jobs pending, want all %d", n, len(b.jobs))
	}

	if err := pg.st.SetControl(t.Context(), pg.run, store.ControlCancelled); err != nil {
		t.Fatal(err)
	}
	for _, j := range pg.jobs(t) {
		if j.Status != store.StatusSkipped || j.ErrorMessage == "" {
			t.Errorf("%s: %s %q after cancel, want skipped with the reason", j.InstanceID, j.Status, j.ErrorMessage)
		}
	}
	b.runPG(t, pg, "runner-2", 30*time.Second, relaxed)
	if calls := resetCalls(b).Calls; calls != 0 {
		t.Errorf("cancelled before start: %d ResetInstance calls, want none", calls)
	}
	b.verify(t, pg.jobs(t), verdict{})
}

// eventually waits until cond holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
