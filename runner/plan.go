package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// PlanAPI is what planning calls, on top of API. *lighthouse.Client
// satisfies it. Planning never calls ResetInstance.
type PlanAPI interface {
	API
	DescribeBlueprints(ctx context.Context, region string, ids []string) ([]lighthouse.Blueprint, error)
	DescribeResetInstanceBlueprints(ctx context.Context, region, instanceID string, blueprintIDs []string) ([]lighthouse.ResetInstanceBlueprint, error)
}

// PlanItem is what a run would do with one job.
type PlanItem struct {
	Job    store.Job
	Reset  bool   // true: the job would be reset; false: skipped
	Reason string // why it is skipped, or a note about a busy instance
	// Instance is the instance as DescribeInstances showed it (nil if absent).
	Instance *lighthouse.Instance
}

// Check returns why resetting j certainly fails, given the instance and the
// target blueprint as the API describes them (nil when absent; bp is
// ignored when j keeps its current image), or "" if nothing rules it out.
func Check(j store.Job, in *lighthouse.Instance, bp *lighthouse.Blueprint) string {
	if in == nil {
		return fmt.Sprintf("instance not found in region %s", j.Region)
	}
	if !resettableState(in.InstanceState) {
		return fmt.Sprintf("instance state %s does not allow a reset (needs RUNNING or STOPPED)", in.InstanceState)
	}
	if j.BlueprintID == "" {
		return ""
	}
	switch {
	case bp == nil:
		return fmt.Sprintf("blueprint %s not found in region %s", j.BlueprintID, j.Region)
	case bp.BlueprintState != "" && bp.BlueprintState != "NORMAL":
		return fmt.Sprintf("blueprint %s is %s, not NORMAL", j.BlueprintID, bp.BlueprintState)
	case bp.PlatformType != "" && in.PlatformType != "" && bp.PlatformType != in.PlatformType:
		return fmt.Sprintf("blueprint %s is %s but the instance is %s: a reset cannot switch platform", j.BlueprintID, bp.PlatformType, in.PlatformType)
	case bp.RequiredSystemDiskSize > 0 && in.SystemDisk.DiskSize > 0 && bp.RequiredSystemDiskSize > in.SystemDisk.DiskSize:
		return fmt.Sprintf("blueprint %s needs a %d GB system disk; the instance has %d GB", j.BlueprintID, bp.RequiredSystemDiskSize, in.SystemDisk.DiskSize)
	case bp.RequiredMemorySize > 0 && in.Memory > 0 && bp.RequiredMemorySize > in.Memory:
		return fmt.Sprintf("blueprint %s needs %d GB of memory; the instance has %d GB", j.BlueprintID, bp.RequiredMemorySize, in.Memory)
	}
	return ""
}

// Plan checks jobs against the fleet without changing it: instances,
// their state, and their target blueprints; with resettable, it also asks
// DescribeResetInstanceBlueprints for the service's own verdict on each
// instance that passed the other checks. It never calls ResetInstance.
func Plan(ctx context.Context, api PlanAPI, jobs []store.Job, resettable bool) ([]PlanItem, error) {
	byRegion := map[string][]store.Job{}
	var regions []string
	for _, j := range jobs {
		if _, ok := byRegion[j.Region]; !ok {
			regions = append(regions, j.Region)
		}
		byRegion[j.Region] = append(byRegion[j.Region], j)
	}
	items := map[int64]PlanItem{}
	// One call per instance: spaced at the action's documented limit.
	lim := NewLimiter(lighthouse.DescribeResetInstanceBlueprintsRateLimit, 20*time.Millisecond)
	for _, region := range regions {
		rjobs := byRegion[region]
		ids := make([]string, len(rjobs))
		bpSet := map[string]bool{}
		var bpIDs []string
		for i, j := range rjobs {
			ids[i] = j.InstanceID
			if j.BlueprintID != "" && !bpSet[j.BlueprintID] {
				bpSet[j.BlueprintID] = true
				bpIDs = append(bpIDs, j.BlueprintID)
			}
		}
		insts, err := api.DescribeInstances(ctx, region, ids)
		if err != nil {
			return nil, fmt.Errorf("describe instances in %s: %w", region, err)
		}
		bps, err := api.DescribeBlueprints(ctx, region, bpIDs)
		if err != nil {
			return nil, fmt.Errorf("describe blueprints in %s: %w", region, err)
		}
		instByID := map[string]*lighthouse.Instance{}
		for i := range insts {
			instByID[insts[i].InstanceID] = &insts[i]
		}
		bpByID := map[string]*lighthouse.Blueprint{}
		for i := range bps {
			bpByID[bps[i].BlueprintID] = &bps[i]
		}
		for _, j := range rjobs {
			in := instByID[j.InstanceID]
			it := PlanItem{Job: j, Instance: in, Reason: Check(j, in, bpByID[j.BlueprintID])}
			it.Reset = it.Reason == ""
			if it.Reset && resettable && j.BlueprintID != "" {
				rbs, err := resetBlueprints(ctx, api, lim, region, j)
				if err != nil {
					return nil, fmt.Errorf("describe reset blueprints of %s: %w", j.InstanceID, err)
				}
				for _, rb := range rbs {
					if rb.BlueprintInfo.BlueprintID == j.BlueprintID && !rb.IsResettable {
						it.Reset, it.Reason = false, "not resettable: "+rb.NonResettableMessage
					}
				}
			}
			if it.Reset && in.LatestOperationState == lighthouse.OperationOperating {
				it.Reason = fmt.Sprintf("busy with %s now; the run waits for it", in.LatestOperation)
			}
			items[j.ID] = it
		}
	}
	out := make([]PlanItem, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, items[j.ID])
	}
	return out, nil
}

// resetBlueprints asks DescribeResetInstanceBlueprints about j's target,
// under lim, retrying calls the API rejected (throttled, busy) a few times.
func resetBlueprints(ctx context.Context, api PlanAPI, lim Limiter, region string, j store.Job) ([]lighthouse.ResetInstanceBlueprint, error) {
	retry := newBackoff(500*time.Millisecond, 5*time.Second)
	for attempt := 0; ; attempt++ {
		if err := lim.Wait(ctx); err != nil {
			return nil, err
		}
		rbs, err := api.DescribeResetInstanceBlueprints(ctx, region, j.InstanceID, []string{j.BlueprintID})
		ae, _ := errors.AsType[*lighthouse.APIError](err)
		if err == nil || ae == nil || ae.Class != lighthouse.ClassRetryable || attempt >= 5 {
			return rbs, err
		}
		t := time.NewTimer(retry.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// resettableState reports whether state is RUNNING or STOPPED, or a
// transitional state that will become one of them.
func resettableState(state string) bool {
	switch state {
	case lighthouse.StateRunning, lighthouse.StateStopped, "", "PENDING", "STARTING", "STOPPING", "REBOOTING":
		return true
	}
	return false
}
