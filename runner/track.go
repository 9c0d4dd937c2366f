package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// pollDescribers is how many DescribeInstances calls one poll makes at once.
const pollDescribers = 8

// clockSkew is how far the cloud's clock and ours may disagree when an
// operation's start time is compared with our intent time.
const clockSkew = 60 * time.Second

// track owns every task that waits on the cloud: submitted resets, calls in
// doubt and busy instances. Each poll it describes them in batches of up to
// 100 per region and moves each one on.
func (r *Runner) track(ctx context.Context) error {
	tasks := map[int64]*task{}
	var outbox []*task // tasks going back to the senders
	timer := time.NewTimer(jitter(r.cfg.PollInterval))
	defer timer.Stop()
	for {
		var sendq chan *task
		var next *task
		if len(outbox) > 0 {
			sendq, next = r.sendq, outbox[0]
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.finished:
			return nil
		case t := <-r.trackq:
			tasks[t.job.ID] = t
			r.stats.addWaiting(tasks, t)
		case sendq <- next:
			outbox = outbox[1:]
		case <-timer.C:
			if len(tasks) > 0 {
				outbox = append(outbox, r.poll(ctx, tasks)...)
				r.stats.setWaiting(tasks)
			}
			timer.Reset(jitter(r.cfg.PollInterval))
		}
	}
}

// verdict is what one observation decides for a task.
type verdict struct {
	t      *task
	status store.Status // terminal status to record; "" for none
	code   string
	msg    string
	resend bool // back to the senders
	adopt  bool // an in-doubt call is proven to have landed: record it
}

// poll describes every tracked instance and applies the verdicts.
func (r *Runner) poll(ctx context.Context, tasks map[int64]*task) (resend []*task) {
	byRegion := map[string][]string{}
	for _, t := range tasks {
		byRegion[t.job.Region] = append(byRegion[t.job.Region], t.job.InstanceID)
	}
	// The calls of one poll run concurrently, each still waiting for the
	// describe limiter: made one after the other, a poll of thousands of
	// resets kept the tracker from taking new tasks for so long that every
	// sender stalled on the full trackq. A region any of whose calls failed
	// is left out of this poll, as before.
	var (
		mu        sync.Mutex
		seen      = make(map[string]lighthouse.Instance, len(tasks))
		failed    = map[string]bool{}
		cancelled bool
	)
	dg := new(errgroup.Group)
	dg.SetLimit(pollDescribers)
	for region, ids := range byRegion {
		for chunk := range slices.Chunk(ids, lighthouse.MaxIDsPerCall) {
			dg.Go(func() error {
				insts, err := r.describe(ctx, region, chunk)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if ctx.Err() != nil {
						cancelled = true
						return nil
					}
					r.log.Warn("describe in-flight instances", "region", region, "err", err)
					failed[region] = true
				}
				for _, in := range insts {
					seen[in.Region+"/"+in.InstanceID] = in
				}
				return nil
			})
		}
	}
	_ = dg.Wait()
	if cancelled {
		return nil
	}
	now := time.Now()
	var verdicts []verdict
	for id, t := range tasks {
		if failed[t.job.Region] {
			continue
		}
		in, ok := seen[t.job.Region+"/"+t.job.InstanceID]
		v := r.judge(t, in, ok, now)
		if v.adopt || v.status != "" || v.resend {
			verdicts = append(verdicts, v)
			if !v.adopt {
				delete(tasks, id)
			}
		}
	}
	// Outcomes are written concurrently: each write is durable on its own and
	// stores commit concurrent writes together.
	keep := make([]bool, len(verdicts)) // adopted and still ours: keep tracking
	g := new(errgroup.Group)
	g.SetLimit(32)
	for i, v := range verdicts {
		g.Go(func() error {
			t := v.t
			switch {
			case v.adopt:
				r.log.Info("in-doubt reset found applied; adopting it", "instance_id", t.job.InstanceID, "request_id", t.job.RequestID)
				keep[i] = r.save(ctx, t)
			case v.status != "":
				r.finish(ctx, t, v.status, v.code, v.msg)
			case v.resend:
				t.job.Status = store.StatusPending
				keep[i] = r.save(ctx, t)
			}
			return nil
		})
	}
	_ = g.Wait()
	for i, v := range verdicts {
		switch {
		case v.adopt && !keep[i]:
			delete(tasks, v.t.job.ID)
		case v.resend && keep[i]:
			resend = append(resend, v.t)
		}
	}
	return resend
}

// judge decides what the observation in (present when ok) means for t.
func (r *Runner) judge(t *task, in lighthouse.Instance, ok bool, now time.Time) verdict {
	v := verdict{t: t}
	if ok {
		t.lastSeen = describeOp(in)
		t.misses = 0
	} else {
		t.lastSeen = "instance not returned by DescribeInstances"
		t.misses++
	}
	switch t.kind {
	case kindWaitIdle:
		switch {
		case !ok || in.LatestOperationState != lighthouse.OperationOperating:
			// Idle (or gone: ResetInstance will say so with its own code).
			if ok {
				t.job.PrevRequestID = in.LatestOperationRequestID
			}
			t.kind = kindSend
			v.resend = true
		case now.Sub(t.busySince) > r.cfg.ResetTimeout:
			v.status, v.code = store.StatusFailed, "InstanceBusy"
			if t.job.ErrorCode != "" {
				v.code = t.job.ErrorCode
			}
			v.msg = fmt.Sprintf("instance stayed busy for %s; last seen: %s", r.cfg.ResetTimeout, t.lastSeen)
		}
	case kindInDoubt:
		switch {
		case ok && ours(in, t.job):
			t.job.RequestID = in.LatestOperationRequestID
			t.job.Status = store.StatusSubmitted
			if t.job.SubmittedAt.IsZero() {
				t.job.SubmittedAt = t.job.IntentAt
			}
			t.job.ErrorCode, t.job.ErrorMessage = "", ""
			t.kind, t.since = kindTracking, now
			v.adopt = true
			// The same observation may already show it finished; the next
			// poll records that.
		case !ok && t.misses >= 3 && now.Sub(t.lastSend) >= r.cfg.SettleTime:
			// The instance is not there (deleted, or never existed): no
			// reset can have landed on it. The call goes again, and the
			// API's answer (InstanceIdNotFound) becomes the outcome, rather
			// than waiting ResetTimeout to say unknown.
			if t.job.Attempts >= r.cfg.MaxAttempts {
				v.status, v.code = store.StatusFailed, "InstanceNotFound"
				v.msg = fmt.Sprintf("DescribeInstances does not return the instance, and %d calls got no answer (last error: %s)", t.job.Attempts, orNone(t.job.ErrorMessage))
				break
			}
			r.log.Info("in-doubt instance not found; sending again for the API's verdict", "instance_id", t.job.InstanceID)
			t.kind = kindSend
			v.resend = true
		case ok && now.Sub(t.lastSend) >= r.cfg.SettleTime && provenAbsent(in, t.job):
			if t.job.Attempts >= r.cfg.MaxAttempts {
				v.status, v.code = store.StatusFailed, t.job.ErrorCode
				v.msg = fmt.Sprintf("gave up after %d calls, none of which took effect; last error: %s", t.job.Attempts, t.job.ErrorMessage)
				if ae, _ := errors.AsType[*lighthouse.APIError](t.lastErr); ae != nil && ae.Class == lighthouse.ClassBusy {
					// The API kept saying an operation runs while
					// DescribeInstances showed none: it may be our own
					// reset, not yet visible (a lag above SettleTime).
					// Busy answers are never a failure by themselves; a
					// later reconcile settles the job
					// (TestFaultBusyOnResend/LagFarAboveSettle).
					v.status = store.StatusUnknown
					v.msg = fmt.Sprintf("gave up after %d calls: the API answered %s while DescribeInstances showed no operation in progress, so an earlier call of ours may be running unseen; last seen: %s; run `batchreset reconcile` later", t.job.Attempts, ae.Code, t.lastSeen)
				}
				break
			}
			r.log.Info("in-doubt reset proven not applied; sending again", "instance_id", t.job.InstanceID, "attempt", t.job.Attempts)
			t.job.PrevRequestID = in.LatestOperationRequestID
			t.kind = kindSend
			v.resend = true
		case now.Sub(t.since) > r.cfg.ResetTimeout+r.cfg.SettleTime:
			v.status, v.code = store.StatusUnknown, t.job.ErrorCode
			v.msg = fmt.Sprintf("could not establish whether the reset was applied (last error: %s); last seen: %s; run `batchreset reconcile` later", orNone(t.job.ErrorMessage), t.lastSeen)
		}
	case kindTracking:
		switch {
		case ok && in.LatestOperation == lighthouse.ActionResetInstance && in.LatestOperationRequestID == t.job.RequestID &&
			in.LatestOperationState == lighthouse.OperationSuccess:
			if t.job.BlueprintID != "" && in.BlueprintID != "" && in.BlueprintID != t.job.BlueprintID {
				v.status, v.code = store.StatusFailed, "BlueprintMismatch"
				v.msg = fmt.Sprintf("reset reported SUCCESS but the instance runs %s, not %s", in.BlueprintID, t.job.BlueprintID)
				break
			}
			v.status = store.StatusSucceeded
		case ok && in.LatestOperation == lighthouse.ActionResetInstance && in.LatestOperationRequestID == t.job.RequestID &&
			in.LatestOperationState == lighthouse.OperationFailed:
			v.status, v.code = store.StatusFailed, "OperationFailed"
			v.msg = "the ResetInstance operation ended FAILED"
		case now.Sub(t.since) > r.cfg.ResetTimeout:
			v.status, v.code = store.StatusUnknown, "ResetTimeout"
			v.msg = fmt.Sprintf("reset not finished after %s; last seen: %s", r.cfg.ResetTimeout, t.lastSeen)
		}
	}
	return v
}

// ours reports whether in shows a ResetInstance operation that one of j's
// calls started: newer than the operation seen before the first call, and
// (where the API reports start times) started no earlier than that call.
func ours(in lighthouse.Instance, j store.Job) bool {
	if in.LatestOperation != lighthouse.ActionResetInstance || in.LatestOperationRequestID == "" ||
		in.LatestOperationRequestID == j.PrevRequestID {
		return false
	}
	if started, ok := in.StartedTime(); ok && started.Before(j.IntentAt.Add(-clockSkew)) {
		return false
	}
	return true
}

// provenAbsent reports whether in proves that none of j's calls took effect:
// nothing is in progress and the latest operation is the one seen before the
// first call, or one that started well before it (a landed reset of ours
// would have become the latest operation). An answer that names no
// operation proves nothing: the API documents the LatestOperation fields as
// possibly null, and an answer without them looks the same whether or not
// our reset landed (TestFaultMalformedAnswers/DescribeWithoutOperation).
func provenAbsent(in lighthouse.Instance, j store.Job) bool {
	if in.LatestOperationRequestID == "" || in.LatestOperationState == lighthouse.OperationOperating {
		return false
	}
	if in.LatestOperationRequestID == j.PrevRequestID {
		return true
	}
	started, ok := in.StartedTime()
	return ok && started.Before(j.IntentAt.Add(-clockSkew))
}

func describeOp(in lighthouse.Instance) string {
	return fmt.Sprintf("InstanceState=%s LatestOperation=%s LatestOperationState=%s LatestOperationRequestId=%s",
		orNone(in.InstanceState), orNone(in.LatestOperation), orNone(in.LatestOperationState), orNone(in.LatestOperationRequestID))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
