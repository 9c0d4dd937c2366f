package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// bigFleet serves n instances with fast resets and lifted limits, of
// which the first refused refuse every reset.
func bigFleet(t *testing.T, n, refused int) (*fleet, []string) {
	t.Helper()
	instances, _ := emulator.GenerateFleet(n, emulator.FleetOptions{Seed: 42})
	var bad []string
	for i := range refused {
		bad = append(bad, instances[i*(n/refused)].ID)
	}
	f := newFleet(t, fleetOptions{n: n, limit: 5000, edit: func(c *emulator.Config) {
		c.RateLimits = map[string]int{lighthouse.ActionResetInstance: 5000, lighthouse.ActionDescribeInstances: 5000, "DescribeBlueprints": 5000}
		c.ResetDuration = emulator.Duration{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
		c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultError,
			Code: "InvalidParameterValue.BlueprintConfigNotMatch", Instances: bad}}
	}})
	return f, bad
}

func bigRun(f *fleet, extra ...string) []string {
	return append([]string{"run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", "2000", "--describe-rate", "2000",
		"--workers", "32", "--max-failures", "none", "--poll-interval", "50ms", "--request-timeout", "2s", "--settle-time", "3s"}, extra...)
}

// TestLogsAtScale: a 2,000-instance run writes no per-instance INFO line
// to stderr, an ERROR line for every failed instance, and a few lines
// besides; the summary, on stdout, names the failures.
func TestLogsAtScale(t *testing.T) {
	setCredentials(t)
	const n, refused = 2000, 40
	f, bad := bigFleet(t, n, refused)
	res := batchreset(t, bigRun(f)...)
	res.wantCode(t, exitFailures, "run with refused instances")
	lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
	var infoPerInstance, errors int
	for _, l := range lines {
		if strings.Contains(l, "level=INFO") && strings.Contains(l, "instance_id=") {
			infoPerInstance++
		}
		if strings.Contains(l, "level=ERROR") {
			errors++
		}
	}
	if infoPerInstance != 0 {
		t.Errorf("%d per-instance INFO lines on stderr, want none", infoPerInstance)
	}
	for _, id := range bad {
		if !strings.Contains(res.stderr, "level=ERROR msg=\"reset failed\"") || !strings.Contains(res.stderr, "instance_id="+id) {
			t.Errorf("no ERROR line names %s", id)
		}
	}
	if errors != refused {
		t.Errorf("%d ERROR lines, want %d (one per failed instance)", errors, refused)
	}
	// The ERROR lines, the start (what, budget, emulator) and a progress
	// line or two: not one line per instance.
	if max := refused + 20; len(lines) > max || len(res.stderr) > 400*max {
		t.Errorf("stderr has %d lines, %d bytes; want at most %d lines of about 400 bytes:\n%s", len(lines), len(res.stderr), max, tail(res.stderr, 30))
	}
	for _, want := range []string{fmt.Sprintf("%d instances: %d succeeded, %d failed", n, n-refused, refused),
		fmt.Sprintf("%d instance(s) need attention", refused), fmt.Sprintf("… and %d more", refused-summaryListMax), "batchreset retry --jobs"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("summary does not say %q:\n%s", want, res.stdout)
		}
	}
}

// TestLogsJSON: with --log-format json stderr holds only JSON objects,
// each naming the run and the runner, durations and rates as numbers, and
// stdout one JSON summary.
func TestLogsJSON(t *testing.T) {
	setCredentials(t)
	const n, refused = 2000, 40
	f, bad := bigFleet(t, n, refused)
	res := batchreset(t, bigRun(f, "--log-format", "json")...)
	res.wantCode(t, exitFailures, "run with refused instances")
	sc := bufio.NewScanner(strings.NewReader(res.stderr))
	failed := map[string]bool{}
	lines := 0
	for sc.Scan() {
		lines++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("stderr line %d is not JSON: %q", lines, sc.Text())
			continue
		}
		if rec["run"] != f.jobsPath || rec["runner"] == nil || rec["runner"] == "" {
			t.Errorf("stderr line %d: run %v, runner %v; want %s and an ID", lines, rec["run"], rec["runner"], f.jobsPath)
		}
		for _, k := range []string{"eta", "resets_per_s", "duration", "retry_in"} {
			if v, ok := rec[k]; ok {
				if _, num := v.(float64); !num {
					t.Errorf("stderr line %d: %s = %v (%T), want a number", lines, k, v, v)
				}
			}
		}
		if rec["level"] == "ERROR" {
			if id, ok := rec["instance_id"].(string); ok {
				failed[id] = true
			}
		}
	}
	for _, id := range bad {
		if !failed[id] {
			t.Errorf("no ERROR record names %s", id)
		}
	}
	var sum runSummary
	if err := json.Unmarshal([]byte(res.stdout), &sum); err != nil {
		t.Fatalf("stdout is not one JSON summary: %v\n%s", err, res.stdout)
	}
	if sum.Instances != n || sum.Totals["failed"] != refused || sum.AttentionTotal != refused || len(sum.Attention) != summaryListMax || len(sum.Next) == 0 {
		t.Errorf("summary: %d instances, totals %v, attention %d of %d, next %v", sum.Instances, sum.Totals, len(sum.Attention), sum.AttentionTotal, sum.Next)
	}

	// An error that ends a command is a JSON record too.
	res = batchreset(t, "run", "--log-format", "json", "--jobs", f.jobsPath, "--rate", "-1")
	res.wantCode(t, exitUsage, "run --rate -1")
	var rec map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.stderr)), &rec); err != nil || rec["level"] != "ERROR" {
		t.Errorf("usage error in JSON mode: stderr = %q, want one JSON error record", res.stderr)
	}
}

// TestSignals: the first SIGTERM or SIGINT is echoed once with what happens
// next, the resets in flight finish, and the exit code is 128 plus the
// signal's number; a second SIGINT exits at once.
func TestSignals(t *testing.T) {
	needBinary(t)
	for _, tt := range []struct {
		name  string
		sig   syscall.Signal
		twice bool
		code  int
		echo  string
	}{
		{"SIGTERM", syscall.SIGTERM, false, exitTerm, "SIGTERM: no new resets"},
		{"SIGINT", syscall.SIGINT, false, exitInterrupt, "interrupt (Ctrl-C): no new resets"},
		{"SIGINTTwice", syscall.SIGINT, true, exitInterrupt, "interrupt (Ctrl-C) again: exiting now"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFleet(t, fleetOptions{n: 40, limit: 200, edit: func(c *emulator.Config) {
				c.ResetDuration = emulator.Duration{Min: time.Second, Max: 2 * time.Second}
			}})
			p := startProcess(t, tt.name, nil, "run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", "5",
				"--poll-interval", "50ms", "--request-timeout", "1s", "--settle-time", "2s")
			eventually(t, 30*time.Second, "a reset in flight", func() bool { return f.resets() > 0 })
			p.cmd.Process.Signal(tt.sig)
			if tt.twice {
				eventually(t, 10*time.Second, "the first signal echoed", func() bool {
					return strings.Contains(p.stderr.String(), "no new resets; waiting")
				})
				p.cmd.Process.Signal(tt.sig)
			}
			p.wantExit(t, 60*time.Second, tt.code)
			if n := strings.Count(p.stderr.String(), tt.echo); n != 1 {
				t.Errorf("stderr says %q %d times, want once:\n%s", tt.echo, n, tail(p.stderr.String(), 20))
			}
			if n := strings.Count(p.stderr.String(), "no new resets; waiting"); n != 1 {
				t.Errorf("the drain is announced %d times, want once:\n%s", n, tail(p.stderr.String(), 20))
			}
			if !strings.Contains(p.stdout.String(), "rerun the same command to resume") {
				t.Errorf("the summary does not say how to resume:\n%s", p.stdout.String())
			}
		})
	}
}

// TestQuiet: --quiet prints the summary and nothing else when all goes
// well.
func TestQuiet(t *testing.T) {
	t.Parallel()
	jobsPath := copyExample(t)
	res := batchreset(t, append([]string{"run", "--quiet", "--jobs", jobsPath, "--emulate", "--yes", "--emulate-failure-rate", "0"}, fastEmulate...)...)
	if res.code != exitOK && res.code != exitFailures {
		res.wantCode(t, exitOK, "run --quiet")
	}
	if res.code == exitOK && res.stderr != "" {
		t.Errorf("run --quiet: stderr = %q, want nothing", res.stderr)
	}
	if !strings.Contains(res.stdout, "24 instances:") {
		t.Errorf("run --quiet: no summary on stdout:\n%s", res.stdout)
	}
}
