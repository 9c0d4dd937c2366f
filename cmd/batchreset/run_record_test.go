package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
)

// TestRunRecordsItsSettings runs a run with hooks, --on-failure stop and
// --approve canary until it pauses after its canary, then: a runner given
// other hooks is refused, naming both, before it sends anything; status,
// with its own defaults, shows the run's --on-failure, --approve and hooks
// from the run's record; and a runner with the run's hooks goes on. CSV
// mode's record is OUT.rollout; Postgres's, the run's rows.
func TestRunRecordsItsSettings(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"CSV", "Postgres"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			needBinary(t)
			dir := t.TempDir()
			script, _ := runnertest.HookScript(t, dir, 0)
			other, _ := runnertest.HookScript(t, t.TempDir(), 0)
			settings := []string{"--canary", "1", "--approve", "canary", "--on-failure", "stop", "--max-failures", "1", "--poll-interval", "100ms"}
			hooks := []string{"--before-reset", "exec:" + script, "--hook-timeout", "1m"}
			var f *fleet
			var runArgs, where []string
			if mode == "CSV" {
				f = newFleet(t, fleetOptions{n: 4})
				out := filepath.Join(dir, "results.csv")
				where = []string{"--jobs", f.jobsPath, "--out", out}
				runArgs = append([]string{"run", "--endpoint", f.url, "--yes", "--rate", "10"}, where...)
			} else {
				pg := newPGFleet(t, fleetOptions{n: 4})
				f = pg.fleet
				where = []string{"--database-url", pg.url, "--run", "fleet"}
				runArgs = pgRun(pg.url, "fleet", f)
			}
			run := func(name string, extra ...string) *proc {
				return startProcess(t, name, nil, append(append(slices.Clone(runArgs), settings...), extra...)...)
			}
			run("first", hooks...).wantExit(t, 60*time.Second, exitPaused)
			sent := f.resets()
			if sent != 1 {
				t.Fatalf("%d resets before the approval, want the canary's 1", sent)
			}

			refused := run("other-hooks", "--before-reset", "exec:"+other)
			refused.wantExit(t, 30*time.Second, exitUsage)
			for _, want := range []string{"--before-reset exec:" + script, "--before-reset exec:" + other} {
				if !strings.Contains(refused.stderr.String(), want) {
					t.Errorf("the refusal does not name %q:\n%s", want, refused.stderr.String())
				}
			}
			if n := f.resets(); n != sent {
				t.Errorf("the refused runner sent %d resets", n-sent)
			}

			st := batchreset(t, append([]string{"status", "--output", "json"}, where...)...)
			st.wantCode(t, exitOK, "status")
			var got runStatus
			if err := json.Unmarshal([]byte(st.stdout), &got); err != nil {
				t.Fatalf("status: %v\n%s", err, st.stdout)
			}
			want := runRecord{OnFailure: "stop", Approve: "canary", Hooks: store.HookSettings{Before: "exec:" + script,
				Timeout: time.Minute, Failure: "abandon", Concurrency: 300}}
			if got.Settings == nil || *got.Settings != want {
				t.Errorf("status settings = %+v, want %+v", got.Settings, want)
			}
			text := batchreset(t, append([]string{"status"}, where...)...).stdout
			for _, line := range []string{"on failure: stop (the run's --on-failure)", "approval: canary (the run's --approve)",
				"hooks: --before-reset exec:" + script + " --hook-timeout 1m0s --hook-failure abandon --hook-concurrency 300 (the run's)"} {
				if !strings.Contains(text, line) {
					t.Errorf("status does not say %q:\n%s", line, text)
				}
			}

			batchreset(t, append([]string{"resume"}, where...)...).wantCode(t, exitOK, "resume")
			run("after-approval", hooks...).wantExit(t, 60*time.Second, exitOK)
			if n := f.resets(); n != 4 {
				t.Errorf("%d resets in all, want 4", n)
			}
		})
	}
}
