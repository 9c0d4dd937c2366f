package runner_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// TestSharedRolloutAcrossRunners runs one Postgres run with three runners
// and --canary 3 --waves 10%,100%: the canary and waves are the run's, not
// each runner's. Exactly 3 resets are sent before the canary has finished,
// the 10% wave (30 of 300) only after, and the rest only once that wave has
// finished, whichever runner sends what.
func TestSharedRolloutAcrossRunners(t *testing.T) {
	t.Parallel()
	const n = 300
	b := setup(t, scenario{n: n, limit: 50})
	pg := b.importPG(t, "waves")
	waves, err := runner.ParseWaves("10%,100%", n)
	if err != nil {
		t.Fatal(err)
	}
	jobs := b.runThree(t, pg, func() *runner.Rollout { return &runner.Rollout{Canary: 3, Waves: waves, MaxFailures: -1} })
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusSucceeded] != n {
		t.Fatalf("totals = %v, want all %d succeeded", totals, n)
	}
	wave, err := pg.st.Waves(context.Background(), pg.run)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int]int{}
	for _, j := range jobs {
		w, ok := wave[j.ID]
		if !ok {
			t.Errorf("%s: in no wave", j.InstanceID)
		}
		sizes[w]++
	}
	if sizes[0] != 3 || sizes[1] != 30 || sizes[2] != n-33 {
		t.Errorf("wave sizes = %v, want 3 (canary), 30 (10%%), %d (the rest)", sizes, n-33)
	}
	// A wave's first reset is sent only after every reset of the wave
	// before it has finished.
	for w := 1; w <= 2; w++ {
		var prevEnd, firstSent time.Time
		for _, j := range jobs {
			switch wave[j.ID] {
			case w - 1:
				if j.FinishedAt.After(prevEnd) {
					prevEnd = j.FinishedAt
				}
			case w:
				if firstSent.IsZero() || j.SubmittedAt.Before(firstSent) {
					firstSent = j.SubmittedAt
				}
			}
		}
		if firstSent.Before(prevEnd) {
			t.Errorf("wave %d's first reset was sent at %v, before wave %d finished at %v", w, firstSent, w-1, prevEnd)
		}
	}
	var order []time.Time
	for _, j := range jobs {
		order = append(order, j.SubmittedAt)
	}
	slices.SortFunc(order, time.Time.Compare)
	t.Logf("first sends %v … last %v", order[0].Format(time.StampMilli), order[len(order)-1].Format(time.StampMilli))
}

// TestSharedBudgetAcrossRunners: three runners share one failure budget of
// 2, in waves of 6, while every reset ends FAILED: the first wave's 6 fail,
// new resets stop for every runner, and the rest of the run is skipped. (Each
// runner with a budget of its own would have sent a wave of 6 each.)
func TestSharedBudgetAcrossRunners(t *testing.T) {
	t.Parallel()
	const n = 300
	b := setup(t, scenario{n: n, limit: 50, emu: func(c *emulator.Config) { c.FailureRate = 1 }})
	pg := b.importPG(t, "budget")
	jobs := b.runThree(t, pg, func() *runner.Rollout { return &runner.Rollout{MaxFailures: 2, Waves: []int{6}} })
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusFailed] != 6 || totals[store.StatusSkipped] != n-6 {
		t.Errorf("totals = %v, want 6 failed and the other %d skipped", totals, n-6)
	}
	for _, j := range byStatus(jobs, store.StatusSkipped) {
		if j.ErrorMessage == "" {
			t.Errorf("%s: skipped without a reason", j.InstanceID)
		}
	}
}

// TestSharedBudgetWithoutWaves: a failure budget alone is shared too,
// without a row per admission: once the run's failures pass it, no runner
// starts another reset, and every job not sent ends skipped with the reason.
func TestSharedBudgetWithoutWaves(t *testing.T) {
	t.Parallel()
	const n = 300
	b := setup(t, scenario{n: n, limit: 50, emu: func(c *emulator.Config) { c.FailureRate = 1 }})
	pg := b.importPG(t, "budget")
	jobs := b.runThree(t, pg, func() *runner.Rollout { return &runner.Rollout{MaxFailures: 2} })
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusFailed] < 3 || totals[store.StatusSkipped] == 0 || totals[store.StatusFailed]+totals[store.StatusSkipped] != n {
		t.Errorf("totals = %v, want at least 3 failed and the rest skipped", totals)
	}
	for _, j := range byStatus(jobs, store.StatusSkipped) {
		if !strings.Contains(j.ErrorMessage, "failure budget exceeded") {
			t.Errorf("%s: skipped for %q, want the failure budget", j.InstanceID, j.ErrorMessage)
		}
	}
	waves, err := pg.st.Waves(t.Context(), pg.run)
	if err != nil || len(waves) != 0 {
		t.Errorf("Waves() = %d jobs recorded, %v; want none for a rollout of one wave", len(waves), err)
	}
}

// runThree runs three runners of the Postgres run pg at once, each with
// the rollout ro makes, and returns the run's jobs once all have ended.
func (b *bundle) runThree(t *testing.T, pg *pgRun, ro func() *runner.Rollout) []store.Job {
	t.Helper()
	var wg sync.WaitGroup
	for i := range 3 {
		cfg := b.configPG(t, openPG(t, pg.url), pg.run, fmt.Sprintf("runner-%d", i), 30*time.Second, relaxed)
		cfg.Rollout = ro()
		wg.Go(func() { b.runWith(t, cfg) })
	}
	wg.Wait()
	return pg.jobs(t)
}
