package runner_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// resetByAnotherTool resets the instances of jobs through the emulator
// directly, as another tool would, and waits until those resets have ended.
// It returns the RequestIds by instance.
func resetByAnotherTool(t *testing.T, b *bundle, jobs []store.Job) map[string]string {
	t.Helper()
	ctx := context.Background()
	reqs := map[string]string{}
	for _, j := range jobs {
		id, err := b.direct.ResetInstance(ctx, j.Region, lighthouse.ResetInstanceRequest{InstanceID: j.InstanceID})
		if err != nil {
			t.Fatal(err)
		}
		reqs[j.InstanceID] = id
	}
	eventually(t, 10*time.Second, "the other tool's resets to end", func() bool {
		for _, j := range jobs {
			ins, err := b.direct.DescribeInstances(ctx, j.Region, []string{j.InstanceID})
			if err != nil || len(ins) != 1 || ins[0].LatestOperationState != lighthouse.OperationSuccess {
				return false
			}
		}
		return true
	})
	return reqs
}

// TestSkipResetSince: instances another tool reset a moment ago are
// skipped, naming that reset, with --skip-reset-since; without it they are
// reset again and counted. Judged on the emulator's ledger.
func TestSkipResetSince(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 10, limit: 50})
	other := resetByAnotherTool(t, b, b.jobs[:4])
	b.baseline()
	sum, jobs := b.run(t, func(c *runner.Config) { c.SkipResetSince = time.Hour })
	for _, j := range jobs {
		reqID, wasReset := other[j.InstanceID]
		switch {
		case wasReset && (j.Status != store.StatusSkipped || j.ErrorCode != runner.CodeRecentlyReset || !strings.Contains(j.ErrorMessage, reqID)):
			t.Errorf("%s, reset by another tool: %s %s %q, want skipped %s naming %s", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage, runner.CodeRecentlyReset, reqID)
		case !wasReset && j.Status != store.StatusSucceeded:
			t.Errorf("%s: %s %s %q, want succeeded", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage)
		}
	}
	b.verify(t, jobs, verdict{})
	if sum.RecentlyReset != 0 {
		t.Errorf("Summary.RecentlyReset = %d with --skip-reset-since, want 0 (they were skipped)", sum.RecentlyReset)
	}

	c := setup(t, scenario{n: 10, limit: 50})
	resetByAnotherTool(t, c, c.jobs[:4])
	c.baseline()
	sum, jobs = c.run(t, nil)
	if totals := c.verify(t, jobs, verdict{}); totals[store.StatusSucceeded] != len(c.jobs) {
		t.Errorf("without --skip-reset-since: %v, want every instance reset", totals)
	}
	if sum.RecentlyReset != 4 {
		t.Errorf("Summary.RecentlyReset = %d, want the 4 instances another tool had just reset", sum.RecentlyReset)
	}
}

// TestForeignResetAfterLongGap: a call of ours was in doubt (its intent is
// recorded, two hours ago) when the run stopped; meanwhile another tool
// reset the instance. The rerun cannot tie that reset to our call: the job
// ends unknown (NotProvenOurs) naming the other RequestId, never
// succeeded, and nothing is sent.
func TestForeignResetAfterLongGap(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 3, limit: 50})
	ctx := context.Background()
	st := b.open(t)
	j := b.jobs[0]
	ins, err := b.direct.DescribeInstances(ctx, j.Region, []string{j.InstanceID})
	if err != nil || len(ins) != 1 {
		t.Fatalf("describe: %v, %v", ins, err)
	}
	j.Status, j.Attempts = store.StatusSubmitting, 1
	j.PrevRequestID = ins[0].LatestOperationRequestID
	j.IntentAt = time.Now().Add(-2 * time.Hour)
	if err := st.Save(ctx, &j); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	other := resetByAnotherTool(t, b, b.jobs[:1])[j.InstanceID]
	b.baseline()
	sum, jobs := b.run(t, nil)
	for _, got := range jobs {
		if got.InstanceID != j.InstanceID {
			continue
		}
		if got.Status != store.StatusUnknown || got.ErrorCode != runner.CodeNotProven || !strings.Contains(got.ErrorMessage, other) {
			t.Errorf("%s: %s %s %q, want unknown %s naming %s", got.InstanceID, got.Status, got.ErrorCode, got.ErrorMessage, runner.CodeNotProven, other)
		}
	}
	if sum.Calls != 2 {
		t.Errorf("%d ResetInstance calls, want 2 (the other two instances), none for the one in doubt", sum.Calls)
	}
	b.verify(t, jobs, verdict{unknown: map[string]string{j.InstanceID: "another tool's reset after our call in doubt"}})
}
