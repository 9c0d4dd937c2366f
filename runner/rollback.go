package runner

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// A rollback resets every instance a run reset back to the blueprint it had
// before (store.Job.PrevBlueprintID), as a run of its own: the same rate
// limit, holds, intents and tracking as any run. It puts back the image,
// never the data: the system disk is formatted again.

// RollbackStep is what a rollback does with one job of the run it rolls
// back.
type RollbackStep struct {
	// Job is the original run's job: its BlueprintID the image the run
	// installed, its PrevBlueprintID the one a rollback puts back.
	Job store.Job
	// Wave is the wave, from 1, the run sent the job in (0: unknown).
	Wave int
	// Reset is true when the instance is to be reset back; otherwise Why
	// says why it is left alone.
	Reset bool
	Why   string
	// Now is the instance's blueprint as the cloud showed it ("" when it
	// was not found).
	Now string
}

// RollbackJob returns the rollback's job for a step to reset: the instance back to
// its previous blueprint, with the original's login settings.
func (s RollbackStep) RollbackJob() store.Job {
	j := s.Job
	return store.Job{InstanceID: j.InstanceID, Region: j.Region, BlueprintID: j.PrevBlueprintID,
		KeyIDs: j.KeyIDs, AutoGeneratePassword: j.AutoGeneratePassword, Status: store.StatusPending}
}

// PlanRollback decides, for each job of a run (waves: the wave of each job
// ID, from 1, when the store kept them), whether a rollback resets its
// instance back to its previous blueprint, judged from what the cloud shows
// now (now, by region and ID). Only an instance this run reset (succeeded,
// or unhealthy: the reset happened) whose latest operation is still that
// reset, and which still runs the run's image, is reset back; every other
// one is left alone with the reason. The steps to reset come first, the
// last wave first and, within a wave, the last sent first; the others
// follow in the order given.
func PlanRollback(jobs []store.Job, waves map[int64]int, now Instances) []RollbackStep {
	var reset, alone []RollbackStep
	for _, j := range jobs {
		s := RollbackStep{Job: j, Wave: waves[j.ID]}
		in, seen := now.Get(j.Region, j.InstanceID)
		if seen {
			s.Now = in.BlueprintID
		}
		s.Why = rollbackWhy(j, in, seen)
		if s.Reset = s.Why == ""; s.Reset {
			reset = append(reset, s)
		} else {
			alone = append(alone, s)
		}
	}
	slices.SortStableFunc(reset, func(a, b RollbackStep) int {
		return cmp.Or(cmp.Compare(b.Wave, a.Wave), b.Job.SubmittedAt.Compare(a.Job.SubmittedAt))
	})
	return append(reset, alone...)
}

// rollbackWhy returns why j's instance (in, described when seen) is left
// alone by a rollback, or "" to reset it back.
func rollbackWhy(j store.Job, in lighthouse.Instance, seen bool) string {
	switch j.Status {
	case store.StatusSucceeded, store.StatusUnhealthy:
	case store.StatusFailed:
		return "its reset failed: the run did not change it"
	case store.StatusUnknown:
		return "the outcome of its reset is unknown: run reconcile first"
	case store.StatusSkipped, store.StatusPending:
		return "never reset by the run"
	default:
		return "its reset is still in flight: wait for the run to end"
	}
	switch {
	case j.PrevBlueprintID == "":
		return "its previous image was not recorded (a run of an older batchreset)"
	case j.BlueprintID == "" || j.BlueprintID == j.PrevBlueprintID:
		return "the run reinstalled the image it had: there is no other image to put back"
	case !seen:
		return fmt.Sprintf("not found in region %s", j.Region)
	case busy(in):
		return "busy: " + describeOp(in)
	case in.BlueprintID == j.PrevBlueprintID:
		return "already back on its previous image " + j.PrevBlueprintID
	case in.LatestOperation == lighthouse.ActionResetInstance && in.LatestOperationRequestID != j.RequestID:
		return fmt.Sprintf("reset again since the run, by another request (RequestId %s, %s)", in.LatestOperationRequestID, orNone(in.LatestOperationState))
	case in.BlueprintID != j.BlueprintID:
		return fmt.Sprintf("runs %s, neither the run's image %s nor its previous one %s", orNone(in.BlueprintID), j.BlueprintID, j.PrevBlueprintID)
	}
	return ""
}

// DescribeForRollback describes the instances of jobs through cloud, by
// region, for PlanRollback. A region that cannot be described is an error:
// a rollback is planned from the cloud as it is, never from a guess.
func DescribeForRollback(ctx context.Context, cloud *Cloud, jobs []store.Job) (Instances, error) {
	byRegion := map[string][]string{}
	for _, j := range jobs {
		byRegion[j.Region] = append(byRegion[j.Region], j.InstanceID)
	}
	seen, failed, err := cloud.DescribeRegions(ctx, byRegion)
	if err != nil {
		return nil, err
	}
	for region, err := range failed {
		return nil, fmt.Errorf("describe the instances of region %s: %w", region, err)
	}
	return seen, nil
}
