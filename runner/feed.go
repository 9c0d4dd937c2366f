package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// feed claims jobs, takes a DescribeInstances snapshot of each batch, and
// routes every job: pending ones to the senders, in-doubt and submitted ones
// (left by a crash or taken over from a dead runner) to the tracker.
func (r *Runner) feed(ctx context.Context) error {
	retry := newBackoff(time.Second, 30*time.Second)
	opened := false // the run has been open (not paused) since this runner started
	for {
		st := r.adm.load()
		if st.halted() {
			return nil
		}
		opened = opened || st.mode == admitOpen
		// Keep at most a few batches claimed ahead of the senders: claimed
		// jobs are leased, and other runners should get their share. The
		// gate signals sendLow as it takes the queue under a batch.
		if len(r.sendq) >= claimBatch {
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-r.sendLow:
			case <-r.adm.halting():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		jobs, waiting, err := r.cfg.Store.Claim(ctx, claimBatch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, store.ErrUnwritable) {
				r.unwritable(err)
				return nil
			}
			d := retry.next()
			r.log.Warn("claim jobs", "err", err, "retry_in", d)
			if sleep(ctx, d) != nil {
				return nil
			}
			continue
		}
		retry.reset()
		if len(jobs) == 0 {
			// A paused run hands out no pending job. Every runner that
			// has worked the run waits for the operator's resume or
			// cancel, whether it holds jobs or not, so that all of them
			// go on after `resume`; a runner started while the run was
			// paused (say from cron) ends once it holds nothing, having
			// sent nothing. The claim holds the control before the
			// runner reads it (housekeep, each poll interval): read it
			// now, so that no runner ends at a pause it has not seen.
			if !waiting {
				if h, err := r.readControl(ctx); err == nil {
					r.applyControl(h)
				}
			}
			paused := r.adm.load().mode == admitPaused && (opened || r.live.Load() > 0 || r.cfg.WaitPaused)
			if !waiting && !paused {
				return nil
			}
			t := time.NewTimer(r.cfg.PollInterval)
			select {
			case <-ctx.Done():
			case <-r.adm.halting():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		r.live.Add(int64(len(jobs)))
		r.failpoint(FailpointAfterClaim)
		if err := r.route(ctx, jobs); err != nil {
			return err
		}
	}
}

// route snapshots a claimed batch and hands each job on.
func (r *Runner) route(ctx context.Context, jobs []store.Job) error {
	now := time.Now()
	tasks := make([]*task, 0, len(jobs))
	for _, j := range jobs {
		t := claimed(j, now)
		if t.kind == kindClaimed && r.adm.load().mode == admitStopped {
			// New resets are stopped for good: pending jobs are skipped
			// without asking the cloud anything; others are still settled.
			st := r.adm.load()
			r.finish(ctx, t, store.StatusSkipped, st.code, st.reason)
			continue
		}
		tasks = append(tasks, t)
	}
	snap, rejected, complete := r.snapshot(ctx, tasks)
	var bps map[string]map[string]*lighthouse.Blueprint
	var keys map[string]map[string]bool
	if r.cfg.Rollout != nil && r.cfg.Rollout.Preflight && complete {
		bps = r.preflightBlueprints(ctx, tasks)
		keys = r.preflightKeyPairs(ctx, tasks)
	}
	for _, t := range tasks {
		switch t.kind {
		case kindInDoubt:
			r.log.Info("reconciling job left in doubt", "instance_id", t.job.InstanceID)
			r.toTracker(ctx, t)
			continue
		case kindTracking:
			r.toTracker(ctx, t)
			continue
		}
		in, seen := snap.Get(t.job.Region, t.job.InstanceID)
		if !seen && !complete {
			// The run stopped before the instance could be described: it
			// stays pending, for a later run.
			r.release(t)
			continue
		}
		if ae := rejected[t.job.Region]; ae != nil {
			r.finish(ctx, t, store.StatusFailed, ae.Code, ae.Message)
			continue
		}
		if seen {
			t.observe(in, true)
		}
		if r.cfg.Rollout != nil && r.cfg.Rollout.Preflight {
			var inp *lighthouse.Instance
			if seen {
				inp = &in
			}
			var bp *lighthouse.Blueprint
			if t.job.BlueprintID != "" {
				bp = unknownBlueprint(t.job.BlueprintID)
				if m, ok := bps[t.job.Region]; ok {
					bp = m[t.job.BlueprintID]
				}
			}
			why := Check(t.job, inp, bp)
			if why == "" {
				why = CheckLogin(t.job, loginFor(t.job, r.cfg.Login), inp, bp, keys[t.job.Region])
			}
			if why != "" {
				r.finish(ctx, t, store.StatusSkipped, "Preflight", "preflight: "+why)
				continue
			}
		}
		if seen && t.job.PrevRequestID == "" {
			if why := r.recentReset(in, now); why != "" {
				r.finish(ctx, t, store.StatusSkipped, CodeRecentlyReset, why)
				continue
			}
		}
		switch {
		case seen && t.job.PrevRequestID != "" && foreignReset(in, t.job):
			// A job resumed with its instance's operation on record: a
			// reset since then is another process's.
			v := resetByOther(in)
			r.finish(ctx, t, v.status, v.code, v.msg)
			continue
		case seen && busy(in):
			// Busy, perhaps with the reset of the run that holds it: say
			// so rather than wait for it.
			if err := r.heldElsewhere(ctx, &t.job); err != nil {
				r.finish(ctx, t, store.StatusSkipped, CodeHeldByRun, "not reset: "+heldReason(err))
				continue
			}
			t.waitIdle(now)
			r.toTracker(ctx, t)
			continue
		}
		t.ready(in)
		select {
		case r.sendq <- t:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// unknownBlueprint stands for a blueprint whose lookup failed: it says
// nothing, so preflight passes it (the API decides when the reset is sent),
// never judging it absent.
func unknownBlueprint(id string) *lighthouse.Blueprint { return &lighthouse.Blueprint{BlueprintID: id} }

// preflightBlueprints looks up the target blueprints of tasks, by region.
// A region whose lookup failed is left out.
func (r *Runner) preflightBlueprints(ctx context.Context, tasks []*task) map[string]map[string]*lighthouse.Blueprint {
	ids := map[string][]string{}
	for _, t := range tasks {
		if t.kind == kindClaimed && t.job.BlueprintID != "" {
			ids[t.job.Region] = append(ids[t.job.Region], t.job.BlueprintID)
		}
	}
	out := map[string]map[string]*lighthouse.Blueprint{}
	for region, bpIDs := range ids {
		bps, err := r.cloud.Blueprints(ctx, region, bpIDs)
		if err != nil {
			r.log.Warn("describe blueprints for preflight", "region", region, "err", err)
			continue
		}
		out[region] = bps
	}
	return out
}

// snapshot describes the instances of the pending tasks, by region, before
// anything is sent. A region whose call was rejected (throttled, 5xx, timed
// out, malformed) is described again, with backoff, until it answers:
// without the snapshot a job's PrevRequestID is unknown, and an in-doubt
// call of it could later be "reconciled" against an older reset of the same
// instance, while preflight would skip the whole batch as "not found". A
// fatal error (credentials, permissions) stops submission. complete is
// false when the run stopped first.
func (r *Runner) snapshot(ctx context.Context, tasks []*task) (snap Instances, rejected map[string]*lighthouse.APIError, complete bool) {
	byRegion := map[string][]string{}
	for _, t := range tasks {
		if t.kind == kindClaimed {
			byRegion[t.job.Region] = append(byRegion[t.job.Region], t.job.InstanceID)
		}
	}
	snap = Instances{}
	retry := newBackoff(time.Second, 30*time.Second)
	for len(byRegion) > 0 {
		seen, failed, err := r.describeForSend(ctx, byRegion)
		if err != nil || r.adm.load().mode == admitBroken {
			return snap, rejected, false
		}
		for k, in := range seen {
			snap[k] = in
		}
		for region := range byRegion {
			err, bad := failed[region]
			if !bad {
				delete(byRegion, region)
				continue
			}
			ae, _ := errors.AsType[*lighthouse.APIError](err)
			switch {
			case ae != nil && ae.Class == lighthouse.ClassFatal && regionProblem(ae):
				// One bad region (a row naming a region that does not
				// exist) does not stop the fleet: its jobs fail with the
				// API's answer, and the others go on.
				r.log.Warn("describe before sending: region rejected", "region", region, "err", ae)
				if rejected == nil {
					rejected = map[string]*lighthouse.APIError{}
				}
				rejected[region] = ae
				delete(byRegion, region)
			case ae != nil && ae.Class == lighthouse.ClassFatal:
				r.fatal(ae)
				return snap, rejected, false
			case ae == nil || ae.Class == lighthouse.ClassRetryable || ae.Class == lighthouse.ClassAmbiguous:
				r.log.Warn("describe before sending; will retry", "region", region, "err", err)
			default:
				r.log.Warn("describe before sending", "region", region, "err", err)
				delete(byRegion, region)
			}
		}
		if len(byRegion) == 0 {
			break
		}
		if r.adm.load().halted() || sleep(ctx, retry.next()) != nil {
			return snap, rejected, false
		}
	}
	return snap, rejected, true
}

// regionProblem reports whether ae rejects the call's region rather than the
// account or the request.
func regionProblem(ae *lighthouse.APIError) bool {
	switch ae.Code {
	case "UnsupportedRegion", "InvalidParameterValue.Region", "InvalidParameterValue.InvalidZone", "InvalidRegion":
		return true
	}
	return false
}

// heldElsewhere reports whether another run holds j's instance, on this
// host (Config.Holds) or in the store: an error wrapping store.ErrHeld that
// names it. An error of the lookup itself is no answer: the intent's own
// check still decides.
func (r *Runner) heldElsewhere(ctx context.Context, j *store.Job) error {
	if r.cfg.Holds != nil {
		if err := r.cfg.Holds.Held(j); errors.Is(err, store.ErrHeld) {
			return err
		}
	}
	if hs, ok := r.cfg.Store.(HoldingStore); ok {
		if err := hs.Held(ctx, j); errors.Is(err, store.ErrHeld) {
			return err
		}
	}
	return nil
}

// RecentResetWindow is how recent a reset by another request, found on an
// instance when the run first looks at it, must be to be counted in
// Summary.RecentlyReset (and logged).
const RecentResetWindow = 24 * time.Hour

// recentReset looks at in, an instance the run looks at for the first time
// (nothing of the run's has reached it), seen at now. A ResetInstance that
// is its latest operation is another request's. With
// Config.SkipResetSince, one that the cloud started within it, widened by
// cloudClockBound, or whose start the cloud does not give, is the reason
// returned to skip the job; without it, a recent one is counted and logged,
// and "" returned.
func (r *Runner) recentReset(in lighthouse.Instance, now time.Time) string {
	if in.LatestOperation != lighthouse.ActionResetInstance || in.LatestOperationRequestID == "" {
		return ""
	}
	started, known := in.StartedTime()
	ago := now.Round(0).Sub(started)
	if d := r.cfg.SkipResetSince; d > 0 {
		switch {
		case !known:
			return fmt.Sprintf("--skip-reset-since %s: the latest operation is a ResetInstance (RequestId %s, state %s) whose start the API does not give, so it may be within %s",
				d, in.LatestOperationRequestID, orNone(in.LatestOperationState), d)
		case ago <= d+cloudClockBound:
			return fmt.Sprintf("--skip-reset-since %s: reset by another request (RequestId %s, state %s) started %s by the cloud's clock, about %s ago (the cloud's clock may differ from ours by up to %s)",
				d, in.LatestOperationRequestID, orNone(in.LatestOperationState), in.LatestOperationStartedTime, ago.Round(time.Second), cloudClockBound)
		}
	}
	if known && ago <= RecentResetWindow+cloudClockBound {
		r.stats.RecentlyReset.Add(1)
		r.log.Info("instance was reset recently by a request not of this run; resetting it again (--skip-reset-since skips such instances)",
			"instance_id", in.InstanceID, "request_id", in.LatestOperationRequestID, "state", in.LatestOperationState,
			"started", in.LatestOperationStartedTime, "ago", ago.Round(time.Second))
	}
	return ""
}
