package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFinishedRunMark: a CSV run that ends with every job finished leaves a
// mark by which the next run, a cron tick, does nothing without reading the
// run; a changed jobs file, a changed journal or a missing results file
// makes the run read everything again, and a command that may write the
// journal removes the mark.
func TestFinishedRunMark(t *testing.T) {
	t.Parallel()
	jobs := copyExample(t)
	dir := filepath.Dir(jobs)
	out := filepath.Join(dir, "results.csv")
	run := append([]string{"run", "--jobs", jobs, "--emulate", "--yes", "--emulate-failure-rate", "0"}, fastEmulate...)

	res := batchreset(t, run...)
	res.wantCode(t, exitOK, "first run")
	if _, err := os.Stat(out + ".done"); err != nil {
		t.Fatalf("no done mark after a finished run: %v", err)
	}
	results, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	res = batchreset(t, run...)
	res.wantCode(t, exitOK, "cron tick on the finished run")
	if !strings.Contains(res.stderr, "nothing to do: every one of the 24 instances has an outcome") ||
		!strings.Contains(res.stdout, "24 instances: 24 succeeded, 0 failed, 0 unknown, 0 skipped") ||
		!strings.Contains(res.stdout, "API calls: 0 ResetInstance, 0 DescribeInstances") {
		t.Errorf("cron tick on a finished run:\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	}
	if again, _ := os.ReadFile(out); string(again) != string(results) {
		t.Error("the cron tick rewrote the results")
	}

	// The results file is gone: the run reads everything and writes it.
	os.Remove(out)
	res = batchreset(t, run...)
	res.wantCode(t, exitOK, "run without the results file")
	if strings.Contains(res.stderr, "nothing to do") {
		t.Error("run took the mark although the results file is gone")
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("results not written again: %v", err)
	}

	// retry opens the journal to write: the mark goes first, even with
	// nothing to retry, and the next run reads everything again.
	res = batchreset(t, append([]string{"retry", "--jobs", jobs, "--emulate", "--yes"}, fastEmulate...)...)
	res.wantCode(t, exitOK, "retry with nothing to retry")
	if _, err := os.Stat(out + ".done"); err == nil {
		t.Error("done mark left by retry")
	}
	res = batchreset(t, run...)
	res.wantCode(t, exitOK, "run after retry")
	if strings.Contains(res.stderr, "nothing to do") {
		t.Error("run after retry took a mark")
	}
	if _, err := os.Stat(out + ".done"); err != nil {
		t.Errorf("no done mark after the run: %v", err)
	}

	// Rows without a region would take another one: the mark is not this
	// input's.
	res = batchreset(t, append(run, "--region", "ap-beijing")...)
	if strings.Contains(res.stderr, "nothing to do") {
		t.Errorf("run with another --region took the mark:\n%s", res.stderr)
	}

	res = batchreset(t, run...) // a mark of the default region again
	res.wantCode(t, exitOK, "run with the default region")
	if res = batchreset(t, run...); !strings.Contains(res.stderr, "nothing to do") {
		t.Fatalf("the mark was not taken:\n%s", res.stderr)
	}

	// The jobs file changed: the mark is not its.
	b, err := os.ReadFile(jobs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jobs, append(b, "lhins-zz000001,,ap-guangzhou\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	res = batchreset(t, run...)
	if strings.Contains(res.stderr, "nothing to do") {
		t.Errorf("run took the mark of another jobs file:\n%s", res.stderr)
	}
}
