package runner_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

func TestParseWaves(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    string
		total int
		want  []int
		err   bool
	}{
		{in: "1,5,10%,100%", total: 200, want: []int{1, 5, 20, 200}},
		{in: "10%", total: 5, want: []int{1}}, // a wave is never empty
		{in: " 2 , 50% ", total: 7, want: []int{2, 4}},
		{in: "0", total: 10, err: true},
		{in: "150%", total: 10, err: true},
		{in: "x", total: 10, err: true},
	} {
		got, err := runner.ParseWaves(tc.in, tc.total)
		if (err != nil) != tc.err || !cmp.Equal(got, tc.want) {
			t.Errorf("ParseWaves(%q, %d) = %v, %v; want %v, error %v", tc.in, tc.total, got, err, tc.want, tc.err)
		}
	}
}

func TestResolveBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in       string
		total    int
		want     int
		wantNote string
		err      bool
	}{
		{in: "3", total: 100, want: 3},
		{in: "10%", total: 100, want: 10},
		{in: "10%", total: 25, want: 2},                                 // rounded down
		{in: "10%", total: 5, want: 0, wantNote: "first failure"},       // never silently "always"
		{in: "100%", total: 5, want: 5},                                 // asked for: no note
		{in: "99%", total: 5, want: 4},                                  //
		{in: "5", total: 5, want: 5, wantNote: "can never be exceeded"}, // never silently "never"
		{in: "-1", total: 5, err: true},
		{in: "1.5", total: 5, err: true},
		{in: "120%", total: 5, err: true},
	} {
		got, note, err := runner.ResolveBudget(tc.in, tc.total)
		if (err != nil) != tc.err || got != tc.want || !strings.Contains(note, tc.wantNote) || (tc.wantNote == "" && note != "") {
			t.Errorf("ResolveBudget(%q, %d) = %d, %q, %v; want %d, note containing %q, error %v", tc.in, tc.total, got, note, err, tc.want, tc.wantNote, tc.err)
		}
	}
}

func byStatus(jobs []store.Job, st store.Status) []store.Job {
	var out []store.Job
	for _, j := range jobs {
		if j.Status == st {
			out = append(out, j)
		}
	}
	return out
}

// TestCanaryStopsRun: when the canary's resets fail, nothing else is reset.
func TestCanaryStopsRun(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 15, limit: 50, emu: func(c *emulator.Config) { c.FailureRate = 1 }})
	sum, jobs := b.run(t, func(c *runner.Config) {
		c.Rollout = &runner.Rollout{Canary: 3, MaxFailures: -1}
	})
	b.verify(t, jobs, verdict{})
	if got := len(byStatus(jobs, store.StatusFailed)); got != 3 {
		t.Errorf("%d failed, want the 3 canary resets", got)
	}
	skipped := byStatus(jobs, store.StatusSkipped)
	if len(skipped) != 12 {
		t.Errorf("%d skipped, want 12", len(skipped))
	}
	for _, j := range skipped {
		if !strings.Contains(j.ErrorMessage, "canary failed") {
			t.Errorf("%s skipped with %q, want the canary named", j.InstanceID, j.ErrorMessage)
		}
	}
	if calls := b.emu.Stats().Actions["ResetInstance"].Calls; calls != 3 || !strings.Contains(sum.StopReason, "canary") {
		t.Errorf("emulator saw %d ResetInstance calls, stop reason %q; want 3 and the canary", calls, sum.StopReason)
	}
}

// TestWavesInOrder: each wave finishes before the next one starts.
func TestWavesInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 12, limit: 50})
	_, jobs := b.run(t, func(c *runner.Config) {
		c.Rollout = &runner.Rollout{Canary: 2, Waves: []int{3, 5}, MaxFailures: -1}
	})
	b.verify(t, jobs, verdict{})
	if got := len(byStatus(jobs, store.StatusSucceeded)); got != 12 {
		t.Fatalf("%d succeeded, want all 12", got)
	}
	slices.SortFunc(jobs, func(a, b store.Job) int { return a.SubmittedAt.Compare(b.SubmittedAt) })
	// Waves: canary 2, then 3, then 5, then 5 (the last repeats): 2, 3, 5, 2.
	start := 0
	for _, size := range []int{2, 3, 5, 2} {
		wave, rest := jobs[start:start+size], jobs[start+size:]
		var lastFinish time.Time
		for _, j := range wave {
			if j.FinishedAt.After(lastFinish) {
				lastFinish = j.FinishedAt
			}
		}
		for _, j := range rest {
			if j.SubmittedAt.Before(lastFinish) {
				t.Errorf("%s was sent at %v, before wave [%d,%d) finished at %v", j.InstanceID, j.SubmittedAt, start, start+size, lastFinish)
			}
		}
		start += size
	}
}

// TestFailureBudgetExact: with a budget of 2 and one reset at a time, the
// third failure stops the run: exactly 3 failed, the rest skipped.
func TestFailureBudgetExact(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 12, limit: 50, emu: func(c *emulator.Config) { c.FailureRate = 1 }})
	sum, jobs := b.run(t, func(c *runner.Config) {
		c.MaxInFlight = 1
		c.Rollout = &runner.Rollout{MaxFailures: 2}
	})
	b.verify(t, jobs, verdict{})
	failed, skipped := byStatus(jobs, store.StatusFailed), byStatus(jobs, store.StatusSkipped)
	if len(failed) != 3 || len(skipped) != 9 {
		t.Errorf("%d failed and %d skipped, want 3 and 9", len(failed), len(skipped))
	}
	for _, j := range skipped {
		if !strings.Contains(j.ErrorMessage, "failure budget exceeded") {
			t.Errorf("%s skipped with %q, want the failure budget named", j.InstanceID, j.ErrorMessage)
		}
	}
	if !strings.Contains(sum.StopReason, "budget 2") {
		t.Errorf("StopReason = %q, want the budget named", sum.StopReason)
	}
}

// TestFailureBudgetConcurrent: with many resets in flight, no reset starts
// after the failure that exceeded the budget was recorded.
func TestFailureBudgetConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 30, limit: 20, emu: func(c *emulator.Config) {
		c.FailInstances = nil
		c.FailureRate = 0.5
	}})
	_, jobs := b.run(t, func(c *runner.Config) { c.Rollout = &runner.Rollout{MaxFailures: 1} })
	b.verify(t, jobs, verdict{})
	failed := byStatus(jobs, store.StatusFailed)
	if len(failed) < 2 {
		t.Fatalf("%d failed, want at least 2 at a 50%% failure rate", len(failed))
	}
	slices.SortFunc(failed, func(a, b store.Job) int { return a.FinishedAt.Compare(b.FinishedAt) })
	tripped := failed[1].FinishedAt
	for _, j := range jobs {
		if !j.SubmittedAt.IsZero() && j.SubmittedAt.After(tripped) {
			t.Errorf("%s was sent at %v, after the budget was exceeded at %v", j.InstanceID, j.SubmittedAt, tripped)
		}
	}
	if len(byStatus(jobs, store.StatusSkipped)) == 0 {
		t.Error("nothing skipped, want the rest skipped once the budget was exceeded")
	}
}

// TestWindowTooShort: resets that would end after the window are not
// started; they are skipped and the reason says so.
func TestWindowTooShort(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 40, limit: 10})
	end := time.Now().Add(2 * time.Second)
	_, jobs := b.run(t, func(c *runner.Config) {
		c.Rollout = &runner.Rollout{MaxFailures: -1, WindowEnd: end, ExpectedDuration: time.Second}
	})
	b.verify(t, jobs, verdict{})
	skipped := byStatus(jobs, store.StatusSkipped)
	if len(skipped) == 0 || len(skipped) == len(jobs) {
		t.Fatalf("%d of %d skipped, want some but not all (the window fits a few seconds of resets)", len(skipped), len(jobs))
	}
	for _, j := range skipped {
		if !strings.Contains(j.ErrorMessage, "window closed") {
			t.Errorf("%s skipped with %q, want the window named", j.InstanceID, j.ErrorMessage)
		}
	}
	// A reset starts only if now + p95 of the durations seen so far fits;
	// p95 is at least the shortest duration seen in the run.
	shortest := time.Hour
	for _, j := range byStatus(jobs, store.StatusSucceeded) {
		shortest = min(shortest, j.FinishedAt.Sub(j.SubmittedAt))
	}
	for _, j := range jobs {
		if !j.SubmittedAt.IsZero() && j.SubmittedAt.After(end.Add(-shortest)) {
			t.Errorf("%s was sent at %v, too close to the window end %v for a reset (at least %v) to finish", j.InstanceID, j.SubmittedAt, end, shortest)
		}
	}
}

func TestWavePlan(t *testing.T) {
	t.Parallel()
	count := func(waves []int) []int {
		var sizes []int
		for k, w := range waves {
			if k > 0 && w < waves[k-1] {
				t.Fatalf("WavePlan goes back from wave %d to %d at job %d", waves[k-1], w, k)
			}
			for len(sizes) <= w {
				sizes = append(sizes, 0)
			}
			sizes[w]++
		}
		return sizes
	}
	for _, tc := range []struct {
		name string
		ro   *runner.Rollout
		n    int
		want []int // jobs per wave
	}{
		{"None", &runner.Rollout{}, 24, []int{24}},
		{"CanaryAlone", &runner.Rollout{Canary: 2}, 24, []int{2, 22}},
		{"CanaryAndWaves", &runner.Rollout{Canary: 2, Waves: []int{5, 10}}, 24, []int{2, 5, 10, 7}},
		{"LastRepeats", &runner.Rollout{Waves: []int{3}}, 10, []int{3, 3, 3, 1}},
		{"Empty", &runner.Rollout{Canary: 2}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := count(tc.ro.WavePlan(tc.n)); !slices.Equal(got, tc.want) {
				t.Errorf("WavePlan(%d) = waves of %v, want %v", tc.n, got, tc.want)
			}
		})
	}
}
