package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// TestApprovalSurvivesKill: a run with --approve canary at a terminal (a
// pseudo-terminal from script(1)) waits at its pause after the canary; it
// is killed there with SIGKILL and restarted from cron (no terminal): the
// restarted runner sends nothing past the canary, as the emulator's ledger
// shows, and exits 4; after `batchreset resume` the next process resets the
// rest, each instance once. CSV and Postgres.
func TestApprovalSurvivesKill(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) to run a process at a terminal")
	}
	for _, mode := range []string{"CSV", "Postgres"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			needBinary(t)
			opts := fleetOptions{n: 8, limit: 20}
			var f *fleet
			var args, where []string
			if mode == "CSV" {
				f = newFleet(t, opts)
				out := filepath.Join(t.TempDir(), "results.csv")
				where = []string{"--jobs", f.jobsPath, "--out", out}
				args = csvRun(f, f.jobsPath, "--out", out)
			} else {
				pg := newPGFleet(t, opts)
				f = pg.fleet
				where = []string{"--database-url", pg.url, "--run", "fleet"}
				args = pgRun(pg.url, "fleet", f)
			}
			args = append(args, "--canary", "2", "--waves", "3", "--approve", "canary")
			calls := func() int { return f.emu.Stats().Actions[lighthouse.ActionResetInstance].Calls }

			term := startAtTerminal(t, "at-terminal", args...)
			eventually(t, 60*time.Second, "the run to wait at its terminal for the approval of wave 2", func() bool {
				// What a runner at a terminal says: it waits; one from
				// cron would end instead.
				out := term.stdout.String()
				return strings.Contains(out, "no new resets until the run is resumed or cancelled") && strings.Contains(out, `waiting_for="approval of wave 2"`)
			})
			if sent := calls(); sent != 2 {
				t.Fatalf("%d ResetInstance calls before the pause, want the canary's 2", sent)
			}
			pid := descendant(t, term.cmd.Process.Pid)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill %d: %v", pid, err)
			}
			term.wait(t, 10*time.Second)

			startProcess(t, "restarted", nil, args...).wantExit(t, 60*time.Second, exitPaused)
			if n := calls(); n != 2 {
				t.Fatalf("the restarted process sent %d ResetInstance call(s) past the canary before the approval", n-2)
			}
			batchreset(t, append([]string{"resume"}, where...)...).wantCode(t, exitOK, "resume")
			startProcess(t, "after-resume", nil, args...).wantExit(t, 60*time.Second, exitOK)
			for _, in := range f.instances {
				if n := len(f.emu.Stats().Resets[in.ID]); n != 1 {
					t.Errorf("%s: reset %d time(s), want once", in.ID, n)
				}
			}
		})
	}
}

// startAtTerminal starts the binary with args at a pseudo-terminal of
// script(1), whose output (the process's stdout and stderr) is p.stdout.
// Its standard input stays open until the test ends.
func startAtTerminal(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	line := shellQuote(bin)
	for _, a := range args {
		line += " " + shellQuote(a)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: exec.Command("script", "-qefc", line, "/dev/null"), done: make(chan struct{})}
	p.cmd.Env = subprocessEnv()
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = r, &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	r.Close()
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		w.Close()
		select {
		case <-p.done:
		default:
			if pid, ok := findDescendant(p.cmd.Process.Pid); ok {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s: %s\noutput:\n%s", name, p.cmd.ProcessState, indent(tail(redact(p.stdout.String()), 80)))
		}
	})
	return p
}

// descendant returns the process of the test binary under root.
func descendant(t *testing.T, root int) int {
	t.Helper()
	pid, ok := findDescendant(root)
	if !ok {
		t.Fatalf("no %s process under pid %d", bin, root)
	}
	return pid
}

// findDescendant finds the process running bin among root's descendants,
// from /proc.
func findDescendant(root int) (int, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, not ")".
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 {
			parent[pid], _ = strconv.Atoi(fields[1])
		}
	}
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p != root {
				continue
			}
			if exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe")); err == nil && exe == bin {
				return pid, true
			}
			break
		}
	}
	return 0, false
}
