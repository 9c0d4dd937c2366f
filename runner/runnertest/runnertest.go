// Package runnertest judges what a run recorded against the emulator's
// ledger, the truth, for the tests of runner and of the command.
package runnertest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// Ledger is the truth a run is judged against.
type Ledger struct {
	// Input holds the instance IDs of the run's input: each must have
	// exactly one record.
	Input []string
	// Applied holds the resets the emulator applied per instance (its
	// Stats().Resets, less any from before the run), by RequestId.
	Applied map[string][]string
	// Now holds the instances as the emulator shows them after the run,
	// for the instances it has; nil skips that check.
	Now map[string]lighthouse.Instance
}

// Allow says which outcomes a scenario allows besides succeeded. Every
// outcome is checked against the ledger whatever is allowed.
type Allow struct {
	Failed, Skipped bool
	// Unknown lists instances that may end unknown, each with the reason
	// the truth is unknowable for it; AnyUnknown allows it for all.
	Unknown    map[string]string
	AnyUnknown bool
	// Unhealthy allows jobs whose reset happened but whose health check
	// did not pass.
	Unhealthy bool
}

// All allows every terminal outcome.
var All = Allow{Failed: true, Skipped: true, AnyUnknown: true, Unhealthy: true}

// Check judges jobs, the final records of a run: one record and one
// terminal outcome per input instance; no instance reset more than once; a
// job that succeeded, or failed in the cloud, names the RequestId the
// emulator applied and the instance shows it; a job refused, skipped or
// never sent claims no reset and had none; an unknown job explains itself
// and names no RequestId the emulator did not apply; and no reset was
// applied to an instance outside the input. It returns the totals.
func Check(t testing.TB, jobs []store.Job, l Ledger, a Allow) store.Totals {
	t.Helper()
	records := map[string]int{}
	for _, j := range jobs {
		records[j.InstanceID]++
	}
	input := map[string]bool{}
	for _, id := range l.Input {
		input[id] = true
		if records[id] != 1 {
			t.Errorf("%s: %d job records, want exactly 1", id, records[id])
		}
	}
	for id := range records {
		if !input[id] {
			t.Errorf("%s: job record for an instance that is not in the input", id)
		}
	}
	for id, applied := range l.Applied {
		if len(applied) > 0 && !input[id] {
			t.Errorf("%s: reset %v but not among the jobs", id, applied)
		}
	}
	totals := store.Totals{}
	for _, j := range jobs {
		totals[j.Status]++
		applied := l.Applied[j.InstanceID]
		where := fmt.Sprintf("%s (status %s, request %q, %s: %s)", j.InstanceID, j.Status, j.RequestID, j.ErrorCode, j.ErrorMessage)
		if len(applied) > 1 {
			t.Errorf("%s: reset applied %d times (%v): DOUBLE RESET", where, len(applied), applied)
		}
		appliedOurs := len(applied) == 1 && applied[0] == j.RequestID
		in, shown := l.Now[j.InstanceID]
		switch j.Status {
		case store.StatusSucceeded:
			if !appliedOurs {
				t.Errorf("%s: succeeded but the emulator applied %v", where, applied)
			}
			if shown && (in.LatestOperationRequestID != j.RequestID || in.LatestOperationState != lighthouse.OperationSuccess) {
				t.Errorf("%s: succeeded but the instance shows %s %s", where, in.LatestOperationRequestID, in.LatestOperationState)
			}
		case store.StatusFailed:
			if !a.Failed {
				t.Errorf("%s: failed, want succeeded", where)
			}
			if j.ErrorCode == "" {
				t.Errorf("%s: failed without an error code", where)
			}
			if j.ErrorCode == "OperationFailed" {
				if !appliedOurs || (shown && in.LatestOperationState != lighthouse.OperationFailed) {
					t.Errorf("%s: failed as an operation, but the emulator applied %v and shows %s", where, applied, in.LatestOperationState)
				}
			} else if len(applied) != 0 {
				t.Errorf("%s: failed as refused, but the emulator applied %v: the outcome of a reset sent was lost", where, applied)
			}
		case store.StatusSkipped:
			if !a.Skipped {
				t.Errorf("%s: skipped, want succeeded", where)
			}
			if len(applied) != 0 || j.ErrorMessage == "" {
				t.Errorf("%s: skipped, but applied %v / no reason", where, applied)
			}
		case store.StatusUnknown:
			if !a.AnyUnknown && a.Unknown[j.InstanceID] == "" {
				t.Errorf("%s: unknown, and this scenario leaves nothing unknowable", where)
			}
			if j.ErrorMessage == "" {
				t.Errorf("%s: unknown without an explanation", where)
			}
			if j.RequestID != "" && !appliedOurs && j.ErrorCode != runner.CodeResetTwice {
				t.Errorf("%s: unknown with a RequestId the emulator did not apply (applied %v)", where, applied)
			}
		case store.StatusUnhealthy:
			if !a.Unhealthy {
				t.Errorf("%s: unhealthy, want succeeded", where)
			}
			if !appliedOurs || j.ErrorCode == "" || j.ErrorMessage == "" {
				t.Errorf("%s: unhealthy, but the emulator applied %v / no reason: an unhealthy job's reset happened", where, applied)
			}
			if shown && (in.LatestOperationRequestID != j.RequestID || in.LatestOperationState != lighthouse.OperationSuccess) {
				t.Errorf("%s: unhealthy but the instance shows %s %s, not our reset's SUCCESS", where, in.LatestOperationRequestID, in.LatestOperationState)
			}
		default:
			t.Errorf("%s: not terminal", where)
		}
		if j.Status != store.StatusSucceeded && j.Status != store.StatusUnknown && j.Status != store.StatusUnhealthy && j.ErrorCode != "OperationFailed" && j.RequestID != "" && len(applied) == 0 {
			t.Errorf("%s: records RequestId %q, but the emulator applied no reset", where, j.RequestID)
		}
	}
	return totals
}

// CheckRates fails the test for any action of actions (the emulator's
// Stats().Actions) that had a call over its limit or more calls in one
// second than limits gives it. Actions without a limit are not checked.
func CheckRates(t testing.TB, actions map[string]emulator.ActionStats, limits map[string]int) {
	t.Helper()
	for action, as := range actions {
		limit, ok := limits[action]
		if !ok || limit < 0 {
			continue
		}
		if as.OverLimit != 0 || as.MaxPerSecond > limit {
			t.Errorf("%s: %d calls over the limit, at most %d in one second; want 0 and at most %d", action, as.OverLimit, as.MaxPerSecond, limit)
		}
	}
}

// DescribeInstances describes ids of region with c, in calls of at most
// lighthouse.MaxIDsPerCall IDs, one after the other: a test's look at a
// whole fleet on the emulator, beside the run and its limiter.
func DescribeInstances(ctx context.Context, c *lighthouse.Client, region string, ids []string) ([]lighthouse.Instance, error) {
	var all []lighthouse.Instance
	for chunk := range slices.Chunk(ids, lighthouse.MaxIDsPerCall) {
		insts, err := c.DescribeInstances(ctx, region, chunk)
		if err != nil {
			return nil, err
		}
		all = append(all, insts...)
	}
	return all, nil
}
