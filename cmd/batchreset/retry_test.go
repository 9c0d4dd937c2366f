package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

func TestRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		job  store.Job
		k    retryKinds
		want bool
	}{
		{"FailedRefused", store.Job{Status: store.StatusFailed, ErrorCode: "InvalidParameterValue.BlueprintConfigNotMatch"}, retryAll, true},
		{"FailedOperation", store.Job{Status: store.StatusFailed, ErrorCode: "OperationFailed"}, retryAll, true},
		{"FailedNotApplied", store.Job{Status: store.StatusFailed, ErrorCode: runner.CodeNotApplied}, retryAll, true},
		{"FailedWrongImage", store.Job{Status: store.StatusFailed, ErrorCode: runner.CodeBlueprintMismatch}, retryAll, false},
		{"SkippedBudget", store.Job{Status: store.StatusSkipped, ErrorMessage: "failure budget exceeded"}, retryAll, true},
		{"SkippedPreflight", store.Job{Status: store.StatusSkipped, ErrorCode: "Preflight"}, retryAll, false},
		{"SkippedResetByOther", store.Job{Status: store.StatusSkipped, ErrorCode: runner.CodeResetByOther}, retryAll, false},
		{"Unknown", store.Job{Status: store.StatusUnknown, ErrorCode: "ResetTimeout"}, retryAll, false},
		{"ResetTwice", store.Job{Status: store.StatusUnknown, ErrorCode: runner.CodeResetTwice}, retryAll, false},
		{"Unhealthy", store.Job{Status: "unhealthy"}, retryAll, false},
		{"Succeeded", store.Job{Status: store.StatusSucceeded}, retryAll, false},
		{"Submitted", store.Job{Status: store.StatusSubmitted}, retryAll, false},
		{"Submitting", store.Job{Status: store.StatusSubmitting}, retryAll, false},
		{"OnlyFailedSkipsSkipped", store.Job{Status: store.StatusSkipped}, retryKinds{failed: true}, false},
		{"OnlySkippedSkipsFailed", store.Job{Status: store.StatusFailed}, retryKinds{skipped: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := retryable(tt.job, tt.k); got != tt.want {
				t.Errorf("retryable(%s %q, %+v) = %v, want %v", tt.job.Status, tt.job.ErrorCode, tt.k, got, tt.want)
			}
		})
	}
}

// retryFleet serves a fleet whose first refused instances refuse every
// reset, so that a run with a failure budget of budget stops early.
func retryFleet(t *testing.T, n, refused int) (*fleet, []string) {
	t.Helper()
	instances, _ := emulator.GenerateFleet(n, emulator.FleetOptions{Seed: 42})
	var bad []string
	for _, in := range instances[:refused] {
		bad = append(bad, in.ID)
	}
	f := newFleet(t, fleetOptions{n: n, limit: 200, edit: func(c *emulator.Config) {
		c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultError,
			Code: "InvalidParameterValue.BlueprintConfigNotMatch", Instances: bad}}
	}})
	return f, bad
}

// checkRetried checks, after a run, its failures fixed and a retry, that
// every instance of f has exactly one reset applied: the failed and skipped
// were sent once more, and nothing that landed was sent again.
func checkRetried(t *testing.T, f *fleet, jobs []store.Job) {
	t.Helper()
	ledger := f.emu.Stats().Resets
	for _, in := range f.instances {
		if n := len(ledger[in.ID]); n != 1 {
			t.Errorf("%s: %d resets applied, want exactly 1", in.ID, n)
		}
	}
	for _, j := range jobs {
		if j.Status != store.StatusSucceeded {
			t.Errorf("%s: %s (%s: %s) after retry, want succeeded", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage)
		}
	}
}

// TestRetryCSV: a run whose first instances are refused stops at its
// failure budget; retry then sends exactly the failed and skipped
// instances, once each, and none that succeeded.
func TestRetryCSV(t *testing.T) {
	setCredentials(t)
	f, bad := retryFleet(t, 40, 3)
	out := filepath.Join(filepath.Dir(f.jobsPath), "results.csv")
	common := []string{"--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--poll-interval", "50ms", "--request-timeout", "1s", "--settle-time", "2s"}
	res := batchreset(t, append([]string{"run", "--workers", "1", "--max-failures", "2", "--on-failure", "stop"}, common...)...)
	res.wantCode(t, exitFailures, "run (3 refused, budget 2)")
	first := readResults(t, out)
	var failed, skipped int
	for _, j := range first {
		switch j.Status {
		case store.StatusFailed:
			failed++
		case store.StatusSkipped:
			skipped++
		}
	}
	if failed != len(bad) || skipped == 0 {
		t.Fatalf("first run: %d failed, %d skipped; want %d failed and a budget stop that skipped some", failed, skipped, len(bad))
	}
	for _, want := range []string{"need attention", bad[0], "next:", "batchreset retry --jobs " + f.jobsPath} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("summary does not show %q:\n%s", want, res.stdout)
		}
	}

	res = batchreset(t, append([]string{"retry", "--only", "bogus"}, common...)...)
	res.wantCode(t, exitUsage, "retry --only bogus")

	if err := f.emu.SetFaults(nil); err != nil {
		t.Fatal(err)
	}
	res = batchreset(t, append([]string{"retry"}, common...)...)
	res.wantCode(t, exitOK, "retry")
	if !strings.Contains(res.stderr, fmt.Sprintf("retry: %d job(s) made pending again", failed+skipped)) {
		t.Errorf("retry does not say it requeued %d jobs:\n%s", failed+skipped, tail(res.stderr, 10))
	}
	checkRetried(t, f, readResults(t, out))

	res = batchreset(t, append([]string{"retry"}, common...)...)
	res.wantCode(t, exitOK, "second retry")
	if !strings.Contains(res.stdout, "nothing to retry") {
		t.Errorf("second retry: stdout = %q, want nothing to retry", res.stdout)
	}
	checkRetried(t, f, readResults(t, out))
}

// TestRetryNeedsFinishedRun: retry of a jobs file never run refuses, and
// leaves no state behind.
func TestRetryNeedsFinishedRun(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 3})
	res := batchreset(t, "retry", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes")
	res.wantCode(t, exitUsage, "retry of a file never run")
	if state := filepath.Join(filepath.Dir(f.jobsPath), "results.csv.state"); fileExists(state) {
		t.Errorf("retry left %s behind", state)
	}
	if n := f.resets(); n != 0 {
		t.Errorf("%d resets applied, want 0", n)
	}
}

// TestRetryPostgres: as TestRetryCSV, on a Postgres run that is then
// cancelled: retry sets it running again and sends the failed and skipped
// jobs once each.
func TestRetryPostgres(t *testing.T) {
	setCredentials(t)
	url := postgrestest.NewSchema(t)
	f, bad := retryFleet(t, 40, 3)
	batchreset(t, "import", "--database-url", url, "--jobs", f.jobsPath, "--run", "night").wantCode(t, exitOK, "import")
	common := []string{"--database-url", url, "--run", "night", "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--poll-interval", "50ms", "--request-timeout", "1s", "--settle-time", "2s", "--lease-ttl", "2s"}
	res := batchreset(t, append([]string{"run", "--workers", "1", "--max-failures", "2", "--on-failure", "stop"}, common...)...)
	res.wantCode(t, exitFailures, "run (3 refused, budget 2)")
	jobs := dbJobs(t, url, "night")
	var failed, skipped int
	for _, j := range jobs {
		switch j.Status {
		case store.StatusFailed:
			failed++
		case store.StatusSkipped:
			skipped++
		}
	}
	if failed != len(bad) || skipped == 0 {
		t.Fatalf("first run: %d failed, %d skipped; want %d failed and a budget stop that skipped some", failed, skipped, len(bad))
	}
	batchreset(t, "cancel", "--database-url", url, "--run", "night").wantCode(t, exitOK, "cancel")

	if err := f.emu.SetFaults(nil); err != nil {
		t.Fatal(err)
	}
	res = batchreset(t, append([]string{"retry"}, common...)...)
	res.wantCode(t, exitOK, "retry")
	checkRetried(t, f, dbJobs(t, url, "night"))
}
