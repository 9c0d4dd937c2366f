package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

// TestPauseResumeBetweenWaves replays an operator's history on two runner
// processes of one Postgres run in waves (--canary 2 --waves 25%,100%
// --pause-between-waves): `pause` once the canary has finished, `resume`
// after both runners have seen it. Neither runner exits at the pause: each
// says it is paused and waits, and the status says so. After the resume
// the run finishes, both runners end on their own, and every instance is
// reset exactly once.
func TestPauseResumeBetweenWaves(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 40})
	args := pgRun(f.url, "fleet", f.fleet, "--canary", "2", "--waves", "25%,100%", "--pause-between-waves", "2s")
	a := startProcess(t, "runnerA", nil, args...)
	b := startProcess(t, "runnerB", nil, args...)
	eventually(t, 60*time.Second, "the canary to finish", func() bool {
		return strings.Contains(a.stderr.String()+b.stderr.String(), "wave finished")
	})
	batchreset(t, "pause", "--database-url", f.url, "--run", "fleet").wantCode(t, exitOK, "pause")
	for _, p := range []*proc{a, b} {
		eventually(t, 10*time.Second, p.name+" to say the run is paused", func() bool {
			return strings.Contains(p.stderr.String(), "run paused by operator")
		})
	}
	// The pause between waves has passed: a runner that was to end at the
	// pause has had time to.
	time.Sleep(3 * time.Second)
	for _, p := range []*proc{a, b} {
		select {
		case <-p.done:
			t.Fatalf("%s exited at the pause (exit %d), while the run waits for resume\nstderr:\n%s",
				p.name, p.cmd.ProcessState.ExitCode(), indent(tail(p.stderr.String(), 20)))
		default:
		}
	}
	if res := batchreset(t, "status", "--database-url", f.url, "--run", "fleet"); !strings.HasPrefix(res.stdout, "run fleet (paused)") {
		t.Errorf("status while paused:\n%s", res.stdout)
	}
	batchreset(t, "resume", "--database-url", f.url, "--run", "fleet").wantCode(t, exitOK, "resume")
	a.wantExit(t, 60*time.Second, exitOK)
	b.wantExit(t, 60*time.Second, exitOK)
	jobs, totals := f.check(t, verdict{})
	if totals[store.StatusSucceeded] != len(jobs) {
		t.Errorf("totals = %v, want all %d succeeded", totals, len(jobs))
	}
	for id, applied := range f.emu.Stats().Resets {
		if len(applied) != 1 {
			t.Errorf("%s: reset %d times, want once", id, len(applied))
		}
	}
}

// TestCancelBetweenWaves: `cancel` during a long pause between waves ends
// the run within a poll interval or so, not when the pause would have
// ended: every job not sent ends skipped with the reason, the canary's
// resets are kept, and the runner exits 1.
func TestCancelBetweenWaves(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 20})
	const pause = 2 * time.Minute
	p := startProcess(t, "runner", nil, pgRun(f.url, "fleet", f.fleet, "--canary", "2", "--waves", "50%", "--pause-between-waves", pause.String())...)
	eventually(t, 60*time.Second, "the canary to finish", func() bool {
		return strings.Contains(p.stderr.String(), "wave finished")
	})
	batchreset(t, "cancel", "--database-url", f.url, "--run", "fleet").wantCode(t, exitOK, "cancel")
	cancelled := time.Now()
	// Generous against a loaded machine, and far below the pause.
	p.wantExit(t, pause/4, exitFailures)
	t.Logf("the runner ended %s after the cancel", time.Since(cancelled).Round(time.Millisecond))
	jobs, totals := f.check(t, verdict{allowOther: true})
	if totals[store.StatusSucceeded] != 2 || totals[store.StatusSkipped] != len(jobs)-2 {
		t.Errorf("totals = %v, want the 2 canary resets succeeded and the other %d jobs skipped", totals, len(jobs)-2)
	}
	for _, j := range jobs {
		if j.Status == store.StatusSkipped && !strings.Contains(j.ErrorMessage, "cancelled by operator") {
			t.Errorf("%s: skipped for %q, want the cancel", j.InstanceID, j.ErrorMessage)
		}
	}
}

// TestInterruptBetweenWaves: one Ctrl-C during a long pause between waves,
// with nothing in flight, ends the runner at once (exit 130), every job not
// sent left pending for a rerun.
func TestInterruptBetweenWaves(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 20})
	const pause = 2 * time.Minute
	p := startProcess(t, "runner", nil, pgRun(f.url, "fleet", f.fleet, "--canary", "2", "--waves", "50%", "--pause-between-waves", pause.String())...)
	eventually(t, 60*time.Second, "the canary to finish", func() bool {
		return strings.Contains(p.stderr.String(), "wave finished")
	})
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	p.wantExit(t, pause/4, exitInterrupt)
	jobs := dbJobs(t, f.url, "fleet")
	var pending int
	for _, j := range jobs {
		if j.Status == store.StatusPending {
			pending++
		}
	}
	if pending != len(jobs)-2 {
		t.Errorf("%d jobs pending after the interrupt, want the %d not sent", pending, len(jobs)-2)
	}
}
