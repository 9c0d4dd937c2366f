package runner_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// TestAdmissionNeverHeldBehindTheGate: one Postgres runner holds far more
// jobs than a wave admits (20 jobs, a canary of 2, waves of 6, 4 workers).
// The operator pauses the run as the first reset of the second wave is
// about to be sent, so that the jobs already admitted into that wave go back
// in line unsent, and resumes it once the runner has seen the pause. The
// admitted jobs must still be sent first: a worker that parks on the wave
// gate holding a job the wave cannot take, while the wave's admitted jobs
// queue behind it, wedges the run for good. The run ends, every instance
// reset exactly once, and the waves keep their sizes.
func TestAdmissionNeverHeldBehindTheGate(t *testing.T) {
	t.Parallel()
	const n = 20
	b := setup(t, scenario{n: n, limit: 50})
	pg := b.importPG(t, "gate")
	var r *runner.Runner
	var intents atomic.Int64
	paused := make(chan struct{})
	cfg := b.configPG(t, pg.st, pg.run, "runner-1", 30*time.Second, func(c *runner.Config) {
		relaxed(c)
		c.Workers = 4
		c.Rollout = &runner.Rollout{Canary: 2, Waves: []int{6}, MaxFailures: -1}
		c.Failpoint = func(name string) {
			if name != runner.FailpointAfterIntent || intents.Add(1) != 3 {
				return
			}
			// The first intent after the canary's two: pause now, in the
			// database (for the intents of the other workers) and in the
			// runner (for the slots they wait for).
			if err := pg.st.SetControl(context.Background(), pg.run, store.ControlPaused); err != nil {
				t.Error(err)
			}
			r.SetControl(store.ControlPaused)
			close(paused)
		}
	})
	var err error
	if r, err = runner.New(cfg); err != nil {
		t.Fatal(err)
	}
	go func() {
		select {
		case <-paused:
		case <-t.Context().Done():
			return
		}
		// Let every worker meet the pause, then resume.
		time.Sleep(5 * cfg.PollInterval)
		if err := pg.st.SetControl(context.Background(), pg.run, store.ControlRunning); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	if _, err := r.Run(ctx); err != nil {
		t.Fatalf("Run() = %v: the run wedged after the pause and resume", err)
	}
	select {
	case <-paused:
	default:
		t.Fatal("the run was never paused: the scenario did not happen")
	}
	jobs := pg.jobs(t)
	if totals := b.verify(t, jobs, verdict{}); totals[store.StatusSucceeded] != n {
		t.Errorf("totals = %v, want all %d succeeded", totals, n)
	}
	waves, err := pg.st.Waves(t.Context(), pg.run)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int]int{}
	for _, w := range waves {
		sizes[w]++
	}
	if sizes[0] != 2 || sizes[1] != 6 || sizes[2] != 6 || sizes[3] != 6 {
		t.Errorf("wave sizes = %v, want 2 (canary) then 6, 6, 6", sizes)
	}
}
