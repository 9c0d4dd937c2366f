package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

func TestPlanWaves(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ro   *runner.Rollout
		n    int
		want []int
		late []bool
	}{
		{"OneWave", &runner.Rollout{}, 24, []int{24}, []bool{false}},
		{"CanaryThenRest", &runner.Rollout{Canary: 2}, 24, []int{2, 22}, []bool{false, false}},
		{"LastRepeats", &runner.Rollout{Canary: 2, Waves: []int{5, 12}}, 24, []int{2, 5, 12, 5}, []bool{false, false, false, false}},
		{"Window", &runner.Rollout{Waves: []int{10}, WindowEnd: now.Add(12 * time.Minute)}, 30, []int{10, 10, 10}, []bool{false, false, true}},
		{"Nothing", &runner.Rollout{Canary: 1}, 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			waves := planWaves(tt.n, tt.ro, 10, 5*time.Minute, now)
			var sizes []int
			var late []bool
			for _, w := range waves {
				sizes, late = append(sizes, w.Resets), append(late, w.AfterWindow)
			}
			if !cmp.Equal(sizes, tt.want) || !cmp.Equal(late, tt.late) {
				t.Errorf("planWaves(%d) = sizes %v, after window %v; want %v, %v", tt.n, sizes, late, tt.want, tt.late)
			}
		})
	}
}

func TestWriteSummary(t *testing.T) {
	t.Parallel()
	var jobs []store.Job
	for i := range 30 {
		jobs = append(jobs, store.Job{InstanceID: fmt.Sprintf("lhins-f%02d", i), Region: "ap-guangzhou", Status: store.StatusFailed, ErrorCode: "OperationFailed"})
	}
	jobs = append(jobs, store.Job{InstanceID: "lhins-u1", Status: store.StatusUnknown, ErrorCode: "ResetTimeout"},
		store.Job{InstanceID: "lhins-s1", Status: store.StatusSkipped, ErrorMessage: "failure budget exceeded"},
		store.Job{InstanceID: "lhins-p1", Status: store.StatusSkipped, ErrorCode: "Preflight"})
	src := &csvSource{out: "out/results.csv", jobsPath: "fleet one.csv"}
	s := newRunSummary(tallyJobs(jobs), src, " --emulate", runner.Summary{StopReason: "failure budget exceeded (3 failed, budget 2)"}, "", nil)
	var b strings.Builder
	writeSummary(&b, s)
	got := b.String()
	for _, want := range []string{
		"33 instances: 0 succeeded, 30 failed, 1 unknown, 2 skipped",
		"31 instance(s) need attention:",
		"lhins-f00", "… and 11 more: every outcome is in out/results.csv",
		"batchreset reconcile --jobs 'fleet one.csv' --emulate",
		"batchreset retry --jobs 'fleet one.csv' --emulate", "send the 31 failed or skipped instance(s) again",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "lhins-f25") {
		t.Errorf("summary lists more than %d instances:\n%s", summaryListMax, got)
	}
	b2, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(b2), `"attention_total":31`) {
		t.Errorf("JSON summary = %s, %v", b2, err)
	}
}

// TestSummaryUnwritable: a run that ended because a file could not be
// written says so, naming the file, and sends the operator to the rerun,
// not to reconcile or retry: the rerun settles what was left in flight.
func TestSummaryUnwritable(t *testing.T) {
	t.Parallel()
	jobs := []store.Job{{InstanceID: "lhins-u1", Status: store.StatusUnknown, ErrorMessage: "still in flight when the run stopped"},
		{InstanceID: "lhins-s1", Status: store.StatusSkipped}}
	src := &csvSource{out: "out/results.csv", jobsPath: "fleet.csv"}
	cause := &store.UnwritableError{Path: "out/results.csv.state", Op: "write journal", Err: syscall.ENOSPC}
	runErr := fmt.Errorf("save lhins-u1: %w", cause)
	s := newRunSummary(tallyJobs(jobs), src, "", runner.Summary{StopReason: "fatal error: " + runErr.Error()}, "", runErr)
	var b strings.Builder
	writeSummary(&b, s)
	got := b.String()
	want := "the run ended at once: cannot write out/results.csv.state: write journal: no space left on device; every job is left as a rerun resumes it"
	if !strings.Contains(got, want) || !strings.Contains(got, "rerun the same command") {
		t.Errorf("summary lacks %q or the rerun:\n%s", want, got)
	}
	for _, bad := range []string{"new resets stopped", "batchreset reconcile", "batchreset retry", "taken over"} {
		if strings.Contains(got, bad) {
			t.Errorf("summary says %q:\n%s", bad, got)
		}
	}
}

// TestPlanAfterRun: plan reads the journal of a finished run: nothing is
// left to reset; and its JSON lists the waves a rerun would go through.
func TestPlanAfterRun(t *testing.T) {
	t.Parallel()
	jobsPath := copyExample(t)
	res := batchreset(t, append([]string{"plan", "--jobs", jobsPath, "--emulate", "--output", "json", "--canary", "2", "--waves", "10"}, fastEmulate[:4]...)...)
	res.wantCode(t, exitOK, "plan before the run")
	var p planOutput
	if err := json.Unmarshal([]byte(res.stdout), &p); err != nil {
		t.Fatalf("plan --output json: %v\n%s", err, res.stdout)
	}
	if p.ToReset != 24 || len(p.Waves) != 4 || !p.Waves[0].Canary || p.Waves[0].Resets != 2 || len(p.Items) != 24 || p.Items[2].Wave != 2 {
		t.Errorf("plan before the run: %+v", p)
	}
	res = batchreset(t, append([]string{"run", "--jobs", jobsPath, "--emulate", "--yes"}, fastEmulate...)...)
	if res.code != exitOK && res.code != exitFailures {
		res.wantCode(t, exitOK, "run")
	}
	res = batchreset(t, append([]string{"plan", "--jobs", jobsPath, "--emulate", "--summary"}, fastEmulate[:4]...)...)
	res.wantCode(t, exitOK, "plan after the run")
	if !strings.Contains(res.stdout, "0 to reset") || !strings.Contains(res.stdout, "24 of 24 instances already finished") || strings.Contains(res.stdout, "INSTANCE") {
		t.Errorf("plan --summary after the run:\n%s", res.stdout)
	}
}

// TestPlanCanaryLabels: plan labels each item with the wave the runner will
// start it in, and the items of each wave are as many as the waves list
// says: with --canary 2 and no --waves, 2 then the other 22.
func TestPlanCanaryLabels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []int // resets per wave
	}{
		{[]string{"--canary", "2"}, []int{2, 22}},
		{[]string{"--canary", "2", "--waves", "5,10"}, []int{2, 5, 10, 7}},
		{[]string{"--waves", "25%"}, []int{6, 6, 6, 6}},
		{nil, []int{24}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			args := append([]string{"plan", "--jobs", copyExample(t), "--emulate", "--output", "json"}, tc.args...)
			res := batchreset(t, append(args, fastEmulate[:4]...)...)
			res.wantCode(t, exitOK, "plan")
			var p planOutput
			if err := json.Unmarshal([]byte(res.stdout), &p); err != nil {
				t.Fatalf("plan --output json: %v\n%s", err, res.stdout)
			}
			var listed []int
			for _, w := range p.Waves {
				listed = append(listed, w.Resets)
			}
			labelled := make([]int, len(p.Waves))
			last := 0
			for _, it := range p.Items {
				if it.Action != "reset" {
					continue
				}
				if it.Wave < 1 || it.Wave > len(labelled) || it.Wave < last {
					t.Fatalf("item %s is labelled wave %d after wave %d; the plan has %d waves", it.InstanceID, it.Wave, last, len(p.Waves))
				}
				labelled[it.Wave-1]++
				last = it.Wave
			}
			if !cmp.Equal(listed, tc.want) || !cmp.Equal(labelled, tc.want) {
				t.Errorf("plan %v: waves list %v, items labelled %v; want %v", tc.args, listed, labelled, tc.want)
			}
		})
	}
}

// TestPlanRunTimeMatchesWaves: the time plan gives for the whole run is the
// end of its last wave, as the wave table prints it, not the sending time
// plus one reset.
func TestPlanRunTimeMatchesWaves(t *testing.T) {
	t.Parallel()
	args := []string{"plan", "--jobs", copyExample(t), "--emulate", "--summary", "--canary", "2", "--waves", "25%,100%", "--pause-between-waves", "10s"}
	res := batchreset(t, append(args, fastEmulate[:4]...)...)
	res.wantCode(t, exitOK, "plan")
	run := regexp.MustCompile(`the run about (\S+) \(`).FindStringSubmatch(res.stdout)
	var lastEnd string
	for _, line := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && strings.HasPrefix(f[len(f)-1], "+") && strings.HasPrefix(f[len(f)-2], "+") {
			lastEnd = strings.TrimPrefix(f[len(f)-1], "+")
		}
	}
	if run == nil || lastEnd == "" || run[1] != lastEnd {
		t.Errorf("plan says the run takes %v, its wave table ends at +%s:\n%s", run, lastEnd, res.stdout)
	}
}
