package runner

import (
	"context"
	"fmt"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

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

// Plan checks jobs against the fleet without changing it, through cloud:
// instances, their state, their target blueprints, and the login setting
// each reset would send (the job's, else login; see CheckLogin) with the
// key pairs of its region; with resettable, it also asks
// DescribeResetInstanceBlueprints for the service's own verdict on each
// instance that passed the other checks. It never calls ResetInstance.
func Plan(ctx context.Context, cloud *Cloud, jobs []store.Job, login Login, resettable bool) ([]PlanItem, error) {
	byRegion := map[string][]string{}
	bpIDs := map[string][]string{}
	keyIDs := map[string][]string{}
	for _, j := range jobs {
		byRegion[j.Region] = append(byRegion[j.Region], j.InstanceID)
		if j.BlueprintID != "" {
			bpIDs[j.Region] = append(bpIDs[j.Region], j.BlueprintID)
		}
		if lc := loginFor(j, login); lc != nil {
			keyIDs[j.Region] = append(keyIDs[j.Region], lc.KeyIDs...)
		}
	}
	seen, failed, err := cloud.DescribeRegions(ctx, byRegion)
	if err != nil {
		return nil, err
	}
	for region, err := range failed {
		return nil, fmt.Errorf("describe instances in %s: %w", region, err)
	}
	bps := map[string]map[string]*lighthouse.Blueprint{}
	for region, ids := range bpIDs {
		m, err := cloud.Blueprints(ctx, region, ids)
		if err != nil {
			return nil, err
		}
		bps[region] = m
	}
	keys := map[string]map[string]bool{}
	for region, ids := range keyIDs {
		if len(ids) == 0 {
			continue
		}
		m, err := cloud.KeyPairs(ctx, region, ids)
		if err != nil {
			return nil, err
		}
		keys[region] = m
	}
	out := make([]PlanItem, 0, len(jobs))
	for _, j := range jobs {
		var in *lighthouse.Instance
		if v, ok := seen.Get(j.Region, j.InstanceID); ok {
			in = &v
		}
		bp := bps[j.Region][j.BlueprintID]
		it := PlanItem{Job: j, Instance: in, Reason: Check(j, in, bp)}
		if it.Reason == "" {
			it.Reason = CheckLogin(j, loginFor(j, login), in, bp, keys[j.Region])
		}
		it.Reset = it.Reason == ""
		if it.Reset && resettable && j.BlueprintID != "" {
			rbs, err := cloud.ResetBlueprints(ctx, j.Region, j.InstanceID, []string{j.BlueprintID})
			if err != nil {
				return nil, fmt.Errorf("describe reset blueprints of %s: %w", j.InstanceID, err)
			}
			for _, rb := range rbs {
				if rb.BlueprintInfo.BlueprintID == j.BlueprintID && !rb.IsResettable {
					it.Reset, it.Reason = false, "not resettable: "+rb.NonResettableMessage
				}
			}
		}
		switch {
		case it.Reset && in.LatestOperationState == lighthouse.OperationOperating:
			it.Reason = fmt.Sprintf("busy with %s now; the run waits for it", in.LatestOperation)
		case it.Reset && busy(*in):
			it.Reason = fmt.Sprintf("instance is %s now; the run waits for it", in.InstanceState)
		}
		out = append(out, it)
	}
	return out, nil
}

// resettableState reports whether state is RUNNING or STOPPED, or a
// transitional state that will become one of them.
func resettableState(state string) bool {
	switch state {
	case lighthouse.StateRunning, lighthouse.StateStopped, "", lighthouse.StatePending, lighthouse.StateStarting, lighthouse.StateStopping, lighthouse.StateRebooting:
		return true
	}
	return false
}
