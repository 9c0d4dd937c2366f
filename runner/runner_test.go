package runner_test

import (
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// TestRunRealistic runs a fleet at the real 10/s with resets of varying
// length, a few FAILED, some instances busy and some STOPPED, and network
// latency: every instance ends with exactly one outcome that matches the
// emulator's ledger, and no call exceeds the limit.
func TestRunRealistic(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{
		n:     40,
		fleet: emulator.FleetOptions{Busy: 3, Stopped: 3, BusyFor: 700 * time.Millisecond},
		emu: func(c *emulator.Config) {
			c.FailureRate = 0.1
			c.Faults = []emulator.Fault{{Kind: emulator.FaultLatency, Probability: 1, Latency: 20 * time.Millisecond}}
		},
	})
	sum, jobs := b.run(t, nil)
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusSucceeded]+totals[store.StatusFailed] != len(b.jobs) {
		t.Errorf("totals = %v, want every instance succeeded or failed", totals)
	}
	if totals[store.StatusFailed] == 0 {
		t.Errorf("totals = %v, want some FAILED resets at a 10%% failure rate", totals)
	}
	if sum.Calls < int64(len(b.jobs)) {
		t.Errorf("Summary.Calls = %d, want at least %d", sum.Calls, len(b.jobs))
	}
}

// TestRunResume: a second run over the same journal touches nothing.
func TestRunResume(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 12, limit: 50})
	b.run(t, nil)
	before := b.emu.Stats().Actions["ResetInstance"].Calls
	sum, jobs := b.run(t, nil)
	b.verify(t, jobs, verdict{})
	if after := b.emu.Stats().Actions["ResetInstance"].Calls; after != before || sum.Calls != 0 {
		t.Errorf("second run sent %d ResetInstance calls (emulator saw %d → %d), want none", sum.Calls, before, after)
	}
}

// TestRunPermanentAndPreflight: instances of another platform fail with the
// API's code without preflight, and are skipped with it; missing instances
// likewise.
func TestRunPermanentAndPreflight(t *testing.T) {
	t.Parallel()
	for _, preflight := range []bool{false, true} {
		b := setup(t, scenario{n: 10, limit: 50, fleet: emulator.FleetOptions{OtherPlatform: 2}})
		_, jobs := b.run(t, func(c *runner.Config) { c.Rollout = &runner.Rollout{Preflight: preflight, MaxFailures: -1} })
		totals := b.verify(t, jobs, verdict{})
		want := store.StatusFailed
		if preflight {
			want = store.StatusSkipped
		}
		if totals[want] != 2 || totals[store.StatusSucceeded] != 8 {
			t.Errorf("preflight %v: totals = %v, want 2 %s and 8 succeeded", preflight, totals, want)
		}
	}
}

// TestDescribeBisectsBatchError: the real API may fail a whole
// DescribeInstances call for one unknown ID. The runner splits the batch,
// leaves that instance out (preflight skips it) and resets the rest.
func TestDescribeBisectsBatchError(t *testing.T) {
	t.Parallel()
	var bad string
	b := setup(t, scenario{n: 20, limit: 50, emu: func(c *emulator.Config) {
		bad = c.Instances[7].ID
		c.Faults = []emulator.Fault{{Action: "DescribeInstances", Kind: emulator.FaultError,
			Instances: []string{bad}, Code: "ResourceNotFound.InstanceIdNotFound"}}
	}})
	_, jobs := b.run(t, func(c *runner.Config) { c.Rollout = &runner.Rollout{Preflight: true, MaxFailures: -1} })
	b.verify(t, jobs, verdict{})
	for _, j := range jobs {
		want := store.StatusSucceeded
		if j.InstanceID == bad {
			want = store.StatusSkipped
		}
		if j.Status != want {
			t.Errorf("%s: %s (%s), want %s", j.InstanceID, j.Status, j.ErrorMessage, want)
		}
	}
}
