package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
)

// blueprintsNow returns each instance's blueprint as the fleet's emulator
// describes it.
func blueprintsNow(t *testing.T, f *fleet) map[string]string {
	t.Helper()
	c, err := lighthouse.New(lighthouse.Config{Endpoint: f.url, Credential: lighthouse.Credential{SecretID: testSecretID, SecretKey: testSecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	byRegion := map[string][]string{}
	for _, in := range f.instances {
		byRegion[in.Region] = append(byRegion[in.Region], in.ID)
	}
	out := map[string]string{}
	for region, ids := range byRegion {
		ins, err := runnertest.DescribeInstances(context.Background(), c, region, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			out[in.InstanceID] = in.BlueprintID
		}
	}
	return out
}

// TestRunOnFailureRollback (not parallel: the credentials come from the
// environment): a CSV run whose second wave fails past its
// budget (--on-failure rollback) rolls back, in the same command, every
// instance it reset, each back on its first image and reset exactly twice,
// the rollback's outcomes in results.rollback.csv; `batchreset rollback`
// afterwards plans nothing to reset, says so plainly, and resets nothing.
func TestRunOnFailureRollback(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 9, limit: 20, edit: func(c *emulator.Config) {
		c.FailInstances = []string{c.Instances[3].ID, c.Instances[4].ID, c.Instances[5].ID}
	}})
	before := blueprintsNow(t, f)
	jobs := f.jobsPath
	res := batchreset(t, csvRun(f, jobs, "--waves", "3", "--max-failures", "2", "--on-failure", "rollback")...)
	res.wantCode(t, exitFailures, "run --on-failure rollback")
	if !strings.Contains(res.stdout, "rollback plan: 3 instance(s)") || !strings.Contains(res.stdout, "NOT restored") {
		t.Errorf("stdout has no rollback plan of 3 instances with the data warning:\n%s", res.stdout)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(jobs), "results.rollback.csv")); err != nil {
		t.Errorf("the rollback's results: %v", err)
	}
	after := f.emu.Stats().Resets
	now := blueprintsNow(t, f)
	for i, in := range f.instances {
		n := len(after[in.ID])
		switch {
		case i < 3:
			if n != 2 || now[in.ID] != before[in.ID] {
				t.Errorf("%s (wave 1): reset %d time(s), on %s; want twice, back on %s", in.ID, n, now[in.ID], before[in.ID])
			}
		case i < 6:
			if n != 1 {
				t.Errorf("%s (wave 2, failed): reset %d time(s), want once", in.ID, n)
			}
		default:
			if n != 0 {
				t.Errorf("%s (never reset by the run): reset %d time(s), want none", in.ID, n)
			}
		}
	}

	again := batchreset(t, "rollback", "--jobs", jobs, "--endpoint", f.url, "--yes", "--rate", "5", "--poll-interval", "200ms", "--request-timeout", "1s", "--settle-time", "2s")
	again.wantCode(t, exitOK, "rollback again")
	if !strings.Contains(again.stdout, "nothing to roll back") || !strings.Contains(again.stdout, "already back on its previous image") {
		t.Errorf("rollback again:\n%s", again.stdout)
	}
	for id, applied := range f.emu.Stats().Resets {
		if len(applied) != len(after[id]) {
			t.Errorf("%s: reset %d time(s) after the second rollback, %d before: want nothing more", id, len(applied), len(after[id]))
		}
	}
}

// TestApproveCanaryCron (not parallel, as above): a CSV run with --approve canary started by cron
// (no terminal) resets the canary, then exits 4 naming what it waits for;
// the next tick resets nothing and exits 4 again; after `resume --jobs`
// the next tick resets the rest, each instance once.
func TestApproveCanaryCron(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 8, limit: 20})
	jobs := f.jobsPath
	args := csvRun(f, jobs, "--canary", "2", "--waves", "3", "--approve", "canary")
	res := batchreset(t, args...)
	res.wantCode(t, exitPaused, "first tick")
	if !strings.Contains(res.stdout, "waiting for approval of wave 2") {
		t.Errorf("first tick's summary does not say what the run waits for:\n%s", res.stdout)
	}
	count := func() int {
		n := 0
		for _, applied := range f.emu.Stats().Resets {
			n += len(applied)
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("%d resets after the first tick, want the canary's 2", n)
	}
	batchreset(t, args...).wantCode(t, exitPaused, "second tick")
	if n := count(); n != 2 {
		t.Fatalf("%d resets after the second tick, want still 2", n)
	}
	batchreset(t, "resume", "--jobs", jobs).wantCode(t, exitOK, "resume")
	batchreset(t, args...).wantCode(t, exitOK, "tick after resume")
	for _, in := range f.instances {
		if n := len(f.emu.Stats().Resets[in.ID]); n != 1 {
			t.Errorf("%s: reset %d time(s), want once", in.ID, n)
		}
	}
}

// TestRunOnFailureRollbackPostgres: two runner processes of one Postgres
// run whose second wave fails past its budget (--on-failure rollback) both
// reach the rollback: the first to plan it creates the run
// fleet-rollback, both work it, and every instance the run reset ends back
// on its first image, reset exactly twice; the rest are not touched again.
func TestRunOnFailureRollbackPostgres(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 9, limit: 20, edit: func(c *emulator.Config) {
		c.FailInstances = []string{c.Instances[3].ID, c.Instances[4].ID, c.Instances[5].ID}
	}})
	before := blueprintsNow(t, f.fleet)
	args := pgRun(f.url, "fleet", f.fleet, "--waves", "3", "--max-failures", "2", "--on-failure", "rollback")
	a := startProcess(t, "runnerA", nil, args...)
	b := startProcess(t, "runnerB", nil, args...)
	a.wantExit(t, 90*time.Second, exitFailures)
	b.wantExit(t, 90*time.Second, exitFailures)
	rolled := dbJobs(t, f.url, "fleet-rollback")
	if len(rolled) != 3 {
		t.Errorf("fleet-rollback has %d jobs, want the 3 the run reset", len(rolled))
	}
	now := blueprintsNow(t, f.fleet)
	stats := f.emu.Stats()
	for _, j := range dbJobs(t, f.url, "fleet") {
		n := len(stats.Resets[j.InstanceID])
		switch j.Status {
		case store.StatusSucceeded:
			if n != 2 || now[j.InstanceID] != before[j.InstanceID] {
				t.Errorf("%s: reset %d time(s), on %s; want twice, back on %s", j.InstanceID, n, now[j.InstanceID], before[j.InstanceID])
			}
		case store.StatusFailed:
			if n != 1 {
				t.Errorf("%s (failed): reset %d time(s), want once", j.InstanceID, n)
			}
		default:
			if n != 0 {
				t.Errorf("%s (%s): reset %d time(s), want none", j.InstanceID, j.Status, n)
			}
		}
	}
	for action, as := range stats.Actions {
		if as.OverLimit > 0 {
			t.Errorf("%s: %d call(s) over the limit", action, as.OverLimit)
		}
	}
}

// TestResumeRetryFailed (not parallel: the credentials come from the
// environment): a CSV run whose second wave the API refuses (a bad image)
// pauses past its budget (the default --on-failure pause) and exits 4;
// once the image is fixed, `resume --retry-failed` makes the failed
// instances pending again, and the next tick sends them once more with the
// rest: every instance ends reset exactly once.
func TestResumeRetryFailed(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 9, limit: 20})
	bad := []string{f.instances[3].ID, f.instances[4].ID, f.instances[5].ID}
	if err := f.emu.SetFaults([]emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultError,
		Instances: bad, Code: "ResourceUnavailable.BlueprintUnavailable"}}); err != nil {
		t.Fatal(err)
	}
	args := csvRun(f, f.jobsPath, "--waves", "3", "--max-failures", "2")
	first := batchreset(t, args...)
	first.wantCode(t, exitPaused, "first tick")
	if !strings.Contains(first.stdout, "waiting for failure budget exceeded") {
		t.Errorf("first tick's summary does not say what the run waits for:\n%s", first.stdout)
	}
	if err := f.emu.SetFaults(nil); err != nil {
		t.Fatal(err)
	}
	batchreset(t, "resume", "--jobs", f.jobsPath, "--retry-failed").wantCode(t, exitOK, "resume --retry-failed")
	batchreset(t, args...).wantCode(t, exitOK, "tick after resume")
	for _, in := range f.instances {
		if n := len(f.emu.Stats().Resets[in.ID]); n != 1 {
			t.Errorf("%s: reset %d time(s), want once", in.ID, n)
		}
	}
}
