package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// Reconcile settles jobs whose outcome was left unknown, from what
// DescribeInstances shows now, through cloud, and sends nothing. It applies
// the runner's own judgement (see judge) with settle as the settle time: a
// reset since found finished becomes succeeded or failed; one found applied
// but still running gets its RequestID and stays unknown until a later
// reconcile; a call proven never applied becomes failed (CodeNotApplied).
// It returns the jobs whose record changed, and how many unknown jobs
// could not be described. Jobs of other statuses are ignored.
func Reconcile(ctx context.Context, cloud *Cloud, jobs []store.Job, settle time.Duration) (changed []store.Job, undescribed int, err error) {
	byRegion := map[string][]string{}
	for _, j := range jobs {
		if j.Status == store.StatusUnknown {
			byRegion[j.Region] = append(byRegion[j.Region], j.InstanceID)
		}
	}
	seen, failed, err := cloud.DescribeRegions(ctx, byRegion)
	if err != nil {
		return nil, 0, err
	}
	for region, err := range failed {
		if ae, ok := err.(*lighthouse.APIError); ok && ae.Class == lighthouse.ClassFatal && !regionProblem(ae) {
			return nil, 0, fmt.Errorf("describe instances in %s: %w", region, err)
		}
	}
	now := time.Now()
	for _, j := range jobs {
		if j.Status != store.StatusUnknown {
			continue
		}
		if failed[j.Region] != nil {
			undescribed++
			continue
		}
		in, ok := seen.Get(j.Region, j.InstanceID)
		if nj, ok := settleJob(j, in, ok, now, settle); ok {
			changed = append(changed, nj)
		}
	}
	return changed, undescribed, nil
}

// settleJob is what reconcile decides for one job left unknown, from what
// DescribeInstances shows now (in, present when ok): the job's new record,
// and whether it changed. Reconcile sends nothing, so a reset proven never
// applied becomes failed (NotApplied), which a retry may send again.
func settleJob(j store.Job, in lighthouse.Instance, ok bool, now time.Time, settle time.Duration) (store.Job, bool) {
	if !ok {
		return j, false
	}
	t := reconciling(j, now)
	t.observe(in, true)
	lim := limits{settle: settle, resetTimeout: 1<<63 - 1, maxAttempts: 1 << 30}
	v := judge(t, in, true, now, lim)
	switch v.act {
	case actAdopt:
		t.adopted(v.requestID, now)
		// Judge again with the RequestId: the same answer may show it ended.
		t.observe(in, true)
		if v2 := judge(t, in, true, now, lim); v2.act == actFinish {
			t.finished(v2.status, v2.code, v2.msg, now)
			return t.job, true
		}
		t.settledUnknown(v.requestID, "reset found applied; still running when last reconciled")
		return t.job, true
	case actFinish:
		if v.code == j.ErrorCode && v.status == store.StatusUnknown {
			return j, false // still unknown, for the same reason
		}
		if v.status != store.StatusUnknown || v.code == CodeResetTwice {
			t.finished(v.status, v.code, v.msg, now)
			return t.job, true
		}
	case actResend:
		if t.kind == kindInDoubt && v.latest != "" {
			t.finished(store.StatusFailed, CodeNotApplied,
				"reconcile: DescribeInstances shows the instance's operation unchanged since before the call, with nothing in progress: the reset never took effect", now)
			return t.job, true
		}
	}
	return j, false
}
