package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// Reconcile settles jobs whose outcome was left unknown, from what
// DescribeInstances shows now, and sends nothing. It returns the jobs whose
// record changed: a reset since found finished becomes succeeded or failed;
// one found applied but still running gets its RequestID and stays unknown
// until a later reconcile. Jobs of other statuses are ignored.
func Reconcile(ctx context.Context, api API, jobs []store.Job) ([]store.Job, error) {
	byRegion := map[string][]string{}
	for _, j := range jobs {
		if j.Status == store.StatusUnknown {
			byRegion[j.Region] = append(byRegion[j.Region], j.InstanceID)
		}
	}
	seen := map[string]lighthouse.Instance{}
	for region, ids := range byRegion {
		insts, err := api.DescribeInstances(ctx, region, ids)
		if err != nil {
			return nil, fmt.Errorf("describe instances in %s: %w", region, err)
		}
		for _, in := range insts {
			seen[region+"/"+in.InstanceID] = in
		}
	}
	var changed []store.Job
	now := time.Now()
	for _, j := range jobs {
		if j.Status != store.StatusUnknown {
			continue
		}
		in, ok := seen[j.Region+"/"+j.InstanceID]
		if !ok {
			continue
		}
		updated := false
		if j.RequestID == "" && ours(in, j) {
			j.RequestID = in.LatestOperationRequestID
			if j.SubmittedAt.IsZero() {
				j.SubmittedAt = j.IntentAt
			}
			j.ErrorMessage = "reset found applied; still running when last reconciled"
			updated = true
		}
		if j.RequestID != "" && in.LatestOperation == lighthouse.ActionResetInstance && in.LatestOperationRequestID == j.RequestID {
			switch in.LatestOperationState {
			case lighthouse.OperationSuccess:
				j.Status, j.ErrorCode, j.ErrorMessage, j.FinishedAt = store.StatusSucceeded, "", "", now
				updated = true
			case lighthouse.OperationFailed:
				j.Status, j.ErrorCode, j.ErrorMessage, j.FinishedAt = store.StatusFailed, "OperationFailed", "the ResetInstance operation ended FAILED", now
				updated = true
			}
		}
		if updated {
			changed = append(changed, j)
		}
	}
	return changed, nil
}
