package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
)

// TestHookFailpoints kills a run with exec: hooks at every point between a
// before-hook and the reset's outcome, then reruns it: every instance ends
// reset once, drained before and put back after, or not reset and, if it
// was drained, restored (here: every instance is reset, the rerun finishing
// what the killed run started).
func TestHookFailpoints(t *testing.T) {
	t.Parallel()
	points := []string{runner.FailpointBeforeHookStarted, runner.FailpointAfterBeforeHook, runner.FailpointAfterIntent,
		runner.FailpointDuringCall, runner.FailpointAfterCall, runner.FailpointAfterHookStarted, runner.FailpointBeforeOutcome}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			needBinary(t)
			f := newFleet(t, fleetOptions{n: 12})
			dir := t.TempDir()
			sleep := 50 * time.Millisecond
			if point == runner.FailpointBeforeHookStarted {
				// The killed process's hooks outlive it: one that ended
				// before the rerun resets would hide a rerun that skips
				// an unfinished drain.
				sleep = time.Second
			}
			script, log := runnertest.HookScript(t, dir, sleep)
			out := filepath.Join(t.TempDir(), "results.csv")
			args := []string{"run", "--jobs", f.jobsPath, "--out", out, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
				"--poll-interval", "100ms", "--request-timeout", "500ms", "--settle-time", "1s",
				"--before-reset", "exec:" + script, "--after-reset", "exec:" + script, "--hook-concurrency", "4"}
			startProcess(t, "armed", []string{"BATCHRESET_FAILPOINT=" + point}, args...).wantKilled(t, 30*time.Second)
			if killed := runnertest.ReadHookLog(t, log); len(killed) == 0 && point != runner.FailpointBeforeHookStarted {
				t.Fatal("no hook ran before the process died")
			}
			rerun := startProcess(t, "rerun", nil, args...)
			rerun.wantExit(t, 60*time.Second, exitOK)
			jobs := readResults(t, out)
			checkOutcomes(t, f, jobs, verdict{})
			reset, _ := runnertest.CheckHooks(t, jobs, f.emu.Stats().ResetLog, runnertest.ReadHookLog(t, log), true, nil)
			if reset != len(jobs) {
				t.Errorf("%d of %d instances reset", reset, len(jobs))
			}
			for _, j := range jobs {
				if j.Status != store.StatusSucceeded {
					t.Errorf("%s: %s %s", j.InstanceID, j.Status, j.ErrorMessage)
				}
			}
		})
	}
}
