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
	for _, mode := range []string{"CSV", "Postgres"} {
		for _, point := range points {
			t.Run(mode+"/"+point, func(t *testing.T) {
				t.Parallel()
				needBinary(t)
				dir := t.TempDir()
				sleep := 50 * time.Millisecond
				if point == runner.FailpointBeforeHookStarted {
					// The killed process's hooks outlive it: one that ended
					// before the rerun resets would hide a rerun that skips
					// an unfinished drain.
					sleep = time.Second
				}
				script, log := runnertest.HookScript(t, dir, sleep)
				hooks := []string{"--before-reset", "exec:" + script, "--after-reset", "exec:" + script, "--hook-concurrency", "4"}
				var (
					f    *fleet
					pg   *pgFleet
					args []string
					out  string
				)
				if mode == "CSV" {
					f = newFleet(t, fleetOptions{n: 12})
					out = filepath.Join(t.TempDir(), "results.csv")
					args = append([]string{"run", "--jobs", f.jobsPath, "--out", out, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
						"--poll-interval", "100ms", "--request-timeout", "500ms", "--settle-time", "1s"}, hooks...)
				} else {
					pg = newPGFleet(t, fleetOptions{n: 12})
					f = pg.fleet
					args = pgRun(pg.url, "fleet", f, append([]string{"--lease-ttl", "1s"}, hooks...)...)
				}
				startProcess(t, "armed", []string{"BATCHRESET_FAILPOINT=" + point}, args...).wantKilled(t, 30*time.Second)
				if killed := runnertest.ReadHookLog(t, log); len(killed) == 0 && point != runner.FailpointBeforeHookStarted {
					t.Fatal("no hook ran before the process died")
				}
				rerun := startProcess(t, "rerun", nil, args...)
				rerun.wantExit(t, 60*time.Second, exitOK)
				var jobs []store.Job
				if mode == "CSV" {
					jobs = readResults(t, out)
					checkOutcomes(t, f, jobs, verdict{})
				} else {
					jobs, _ = pg.check(t, verdict{})
					for _, j := range jobs {
						if j.HookPhase != store.HookDone {
							t.Errorf("%s: hook phase %q, want done", j.InstanceID, j.HookPhase)
						}
					}
				}
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
}

// TestHookFailpointsCancelled kills a Postgres run with exec: hooks after a
// drain, cancels the run, and reruns it: the rerun resets nothing more, and
// every instance drained and not reset is restored; those reset get their
// after-hook.
func TestHookFailpointsCancelled(t *testing.T) {
	t.Parallel()
	for _, point := range []string{runner.FailpointAfterBeforeHook, runner.FailpointAfterIntent} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			needBinary(t)
			dir := t.TempDir()
			script, log := runnertest.HookScript(t, dir, 50*time.Millisecond)
			pg := newPGFleet(t, fleetOptions{n: 12})
			args := pgRun(pg.url, "fleet", pg.fleet, "--lease-ttl", "1s", "--hook-concurrency", "6",
				"--before-reset", "exec:"+script, "--after-reset", "exec:"+script)
			startProcess(t, "armed", []string{"BATCHRESET_FAILPOINT=" + point}, args...).wantKilled(t, 30*time.Second)
			// Once the dead runner's leases have ended, the cancel skips
			// every pending job at once, except those that owe a restore.
			time.Sleep(1500 * time.Millisecond)
			batchreset(t, "cancel", "--database-url", pg.url, "--run", "fleet").wantCode(t, exitOK, "cancel")
			sent := pg.resets()
			startProcess(t, "rerun", nil, args...).wait(t, 60*time.Second)
			// A job left in doubt by the kill and proven not sent is handed
			// back pending, as without hooks: restored first.
			jobs := dbJobs(t, pg.url, "fleet")
			stats := pg.emu.Stats()
			reset, restored := runnertest.CheckHooks(t, jobs, stats.ResetLog, runnertest.ReadHookLog(t, log), true, nil)
			if pg.resets() != sent {
				t.Errorf("%d resets after the cancel, want none", pg.resets()-sent)
			}
			if restored == 0 || reset+restored > len(jobs) {
				t.Errorf("%d reset, %d restored of %d: want some restored", reset, restored, len(jobs))
			}
			for _, j := range jobs {
				switch {
				case len(stats.ResetLog[j.InstanceID]) > 1:
					t.Errorf("%s: reset %d times", j.InstanceID, len(stats.ResetLog[j.InstanceID]))
				case j.HookPhase == store.HookBefore || j.HookPhase == store.HookDrained || j.HookPhase == store.HookRestore || j.HookPhase == store.HookAfter:
					t.Errorf("%s: %s, hook phase %q: left out of service", j.InstanceID, j.Status, j.HookPhase)
				case !j.Status.Terminal() && (j.Status != store.StatusPending || len(stats.ResetLog[j.InstanceID]) != 0):
					t.Errorf("%s: %s after the rerun, want terminal, or pending and not reset", j.InstanceID, j.Status)
				}
			}
		})
	}
}
