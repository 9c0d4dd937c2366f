package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
)

// TestPauseSurvivesKill pauses a run by its failure budget (--on-failure
// pause: one instance's reset is refused, the budget is 0) while resets it
// sent are still in flight, kills the process with SIGKILL, and restarts
// it: the restarted runner settles what was in flight and sends nothing
// past the pause, as the emulator's ledger shows, and exits 4 (paused);
// after `batchreset resume` the next process resets the rest, each
// instance once. CSV mode keeps the pause in OUT.state.control, Postgres
// mode in the run's row.
func TestPauseSurvivesKill(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"CSV", "Postgres"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			needBinary(t)
			opts := fleetOptions{n: 20, limit: 20, edit: func(c *emulator.Config) {
				// Long resets: those sent before the refusal are still in
				// flight when the run pauses, so its process is alive.
				c.ResetDuration = emulator.Duration{Min: 3 * time.Second, Max: 4 * time.Second}
				c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultError,
					Code: "InvalidParameterValue.BlueprintConfigNotMatch", Instances: []string{c.Instances[4].ID}}}
			}}
			var f *fleet
			var args, where []string
			if mode == "CSV" {
				f = newFleet(t, opts)
				out := filepath.Join(t.TempDir(), "results.csv")
				where = []string{"--jobs", f.jobsPath, "--out", out}
				args = append(csvRun(f, f.jobsPath, "--out", out), "--rate", "5")
			} else {
				pg := newPGFleet(t, opts)
				f = pg.fleet
				where = []string{"--database-url", pg.url, "--run", "fleet"}
				args = append(pgRun(pg.url, "fleet", f), "--rate", "5")
			}
			args = append(args, "--max-failures", "0", "--on-failure", "pause")
			refused := f.instances[4].ID
			calls := func() int { return f.emu.Stats().Actions[lighthouse.ActionResetInstance].Calls }

			first := startProcess(t, "first", nil, args...)
			eventually(t, 60*time.Second, "the run to pause on its budget", func() bool {
				return strings.Contains(first.stderr.String(), "run paused, waiting for a person")
			})
			if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			first.wantKilled(t, 10*time.Second)
			sent := calls()
			if sent >= len(f.instances) {
				t.Fatalf("%d ResetInstance calls before the kill: the run sent everything before it paused", sent)
			}

			restarted := startProcess(t, "restarted", nil, args...)
			restarted.wantExit(t, 60*time.Second, exitPaused)
			if n := calls(); n != sent {
				t.Fatalf("the restarted process sent %d ResetInstance call(s) past the pause", n-sent)
			}
			if !strings.Contains(restarted.stdout.String(), "the run is paused, waiting for failure budget exceeded") {
				t.Errorf("the restarted process's summary does not say what the run waits for:\n%s", restarted.stdout.String())
			}
			st := batchreset(t, append([]string{"status"}, where...)...).stdout
			if mode == "Postgres" && !strings.HasPrefix(st, "run fleet (paused)") {
				t.Errorf("status after the restart:\n%s", st)
			}

			batchreset(t, append([]string{"resume"}, where...)...).wantCode(t, exitOK, "resume")
			// A CSV run ends with failures while the refused instance's
			// stands; a Postgres runner answers for the jobs it finished.
			want := exitFailures
			if mode == "Postgres" {
				want = exitOK
			}
			startProcess(t, "after-resume", nil, args...).wantExit(t, 90*time.Second, want)
			for _, in := range f.instances {
				n := len(f.emu.Stats().Resets[in.ID])
				switch {
				case in.ID == refused && n != 0:
					t.Errorf("%s (refused): reset %d time(s)", in.ID, n)
				case in.ID != refused && n != 1:
					t.Errorf("%s: reset %d time(s), want once", in.ID, n)
				}
			}
			var jobs []store.Job
			if mode == "CSV" {
				jobs = readResults(t, where[3])
			} else {
				jobs = dbJobs(t, where[1], "fleet")
			}
			for _, j := range jobs {
				if j.InstanceID != refused && j.Status != store.StatusSucceeded {
					t.Errorf("%s: %s %s, want succeeded", j.InstanceID, j.Status, j.ErrorMessage)
				}
			}
		})
	}
}
