package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// taskKind says what the tracker waits for.
type taskKind int

const (
	kindSend     taskKind = iota // queued for the senders
	kindWaitIdle                 // instance busy with another operation; send when idle
	kindInDoubt                  // a call may have landed; reconcile
	kindTracking                 // submitted; wait for the operation to end
)

// task is a claimed job and what the runner knows about it in memory.
type task struct {
	job  store.Job
	kind taskKind
	// doubt: some call for this job may have landed and was not proven
	// absent. A job in doubt is never sent again before reconciliation.
	doubt    bool
	lastSend time.Time // when the latest call was about to be sent
	since    time.Time // when the current wait began
	slot     bool      // holds an in-flight slot
	lastSeen string    // the instance's last observed operation, for messages
	misses   int       // polls in a row that did not return the instance
	// busySince is when the instance was first found busy with another
	// operation, or a call for it first rejected; ResetTimeout bounds the
	// wait from then (see kindWaitIdle).
	busySince time.Time
	lastErr   error
	admitted  bool // counted in the rollout's current wave
}

// work sends ResetInstance for queued jobs until the run finishes.
func (r *Runner) work(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.finished:
			return nil
		case t := <-r.sendq:
			if len(r.sendq) < claimBatch {
				select {
				case r.sendLow <- struct{}{}: // wake the feeder
				default:
				}
			}
			r.send(ctx, t)
		}
	}
}

// send performs one ResetInstance for t, durably recording the intent first
// and the RequestId right after.
func (r *Runner) send(ctx context.Context, t *task) {
	if !r.admit(ctx, t) {
		return
	}
	if err := r.gate.wait(ctx); err != nil {
		r.release(t)
		return
	}

	// The intent is recorded before the rate slot is taken, so that the
	// store's latency (an fsync, a commit) never sits between the slot and
	// the call: the limiter's jitter allowance is for the network alone.
	prevIntent := t.job.IntentAt
	t.job.Status = store.StatusSubmitting
	t.job.Attempts++
	if t.job.IntentAt.IsZero() {
		t.job.IntentAt = time.Now()
	}
	if !r.save(ctx, t) {
		return
	}
	r.failpoint(FailpointAfterIntent)

	if !r.waitSlot(ctx) || r.halted() || r.stopReason() != "" || r.paused() {
		// Nothing was sent: say so before the job goes anywhere else, so
		// that it is not reconciled as a call in doubt.
		t.job.Status = store.StatusPending
		t.job.Attempts--
		t.job.IntentAt = prevIntent
		if !r.save(context.WithoutCancel(ctx), t) {
			return
		}
		if ctx.Err() == nil && r.paused() && !r.halted() && r.stopReason() == "" {
			r.requeue(ctx, t) // admit holds it until the run resumes
			return
		}
		r.admitDenied(ctx, t)
		return
	}
	// SettleTime counts from the moment the call leaves, not from the
	// intent: recording the intent can take long (a slow or retried store
	// write), and a clock started before it expired early, so that a reset
	// landing late was "proven absent" and sent again (a double reset with
	// SettleTime above lag + call timeout; TestFaultBusyOnResend).
	t.lastSend = time.Now()
	r.stats.Calls.Add(1)
	r.stats.onSend(t)
	callCtx := ctx
	if r.cfg.Failpoint != nil {
		callCtx = context.WithValue(ctx, failpointKey{}, r.cfg.Failpoint)
	}
	reqID, err := r.cfg.API.ResetInstance(callCtx, t.job.Region, t.job.InstanceID, t.job.BlueprintID)
	r.failpoint(FailpointAfterCall)
	if err == nil {
		r.gate.success()
		t.job.Status = store.StatusSubmitted
		t.job.RequestID = reqID
		t.job.ErrorCode, t.job.ErrorMessage = "", ""
		if t.job.SubmittedAt.IsZero() {
			t.job.SubmittedAt = t.lastSend
		}
		if !r.save(ctx, t) {
			return
		}
		r.log.Debug("reset accepted", "instance_id", t.job.InstanceID, "request_id", reqID, "attempt", t.job.Attempts)
		t.kind, t.since = kindTracking, t.lastSend
		r.toTracker(ctx, t)
		return
	}
	r.handleSendError(ctx, t, err)
}

// waitSlot waits for a ResetInstance rate slot, and again while a throttling
// pause is in force: a throttle answered while this sender waited pauses it
// too, or every sender already queued at the limiter when the pause began
// would still send, and a throttle storm would see calls at the full rate
// (TestFaultThrottled/Storm). It reports false when ctx ended or the
// limiter failed.
func (r *Runner) waitSlot(ctx context.Context) bool {
	for {
		if err := r.gate.wait(ctx); err != nil {
			return false
		}
		start := time.Now()
		err := r.reset.Wait(ctx)
		r.stats.limiterWait.Add(int64(time.Since(start)))
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("wait for a rate slot", "err", err)
			}
			return false
		}
		if !r.gate.paused() {
			return true
		}
	}
}

type failpointKey struct{}

// FailpointFromContext returns the failpoint hook carried by a ResetInstance
// call's context, so an API wrapper can fire FailpointDuringCall inside the
// call: after the server has the request, before the answer is read.
func FailpointFromContext(ctx context.Context) func(string) {
	f, _ := ctx.Value(failpointKey{}).(func(string))
	return f
}

// handleSendError decides what a failed ResetInstance means for t.
func (r *Runner) handleSendError(ctx context.Context, t *task, err error) {
	ae, ok := errors.AsType[*lighthouse.APIError](err)
	if !ok {
		ae = &lighthouse.APIError{Action: lighthouse.ActionResetInstance, Code: "Error", Message: err.Error(), Class: lighthouse.ClassAmbiguous, Err: err}
	}
	t.lastErr = ae
	t.job.ErrorCode, t.job.ErrorMessage = ae.Code, ae.Message
	log := r.log.With("instance_id", t.job.InstanceID, "attempt", t.job.Attempts, "code", ae.Code)
	if ctx.Err() != nil && ae.Class != lighthouse.ClassRetryable {
		// The run was cancelled mid-call: the call may have landed.
		ae.Class = lighthouse.ClassAmbiguous
	}
	switch ae.Class {
	case lighthouse.ClassRetryable:
		// Rejected, so not executed: it does not count as an attempt, and
		// however long the API keeps rejecting (a network outage, a busy
		// backend) the job is not failed before ResetTimeout.
		t.job.Attempts--
		now := time.Now()
		if t.busySince.IsZero() {
			t.busySince = now
		}
		t.job.Status = store.StatusPending
		if !r.save(ctx, t) {
			return
		}
		if ae.Throttled() {
			// The shared gate pauses every sender; the job goes straight
			// back in line.
			r.stats.Throttled.Add(1)
			r.gate.hit()
			log.Debug("reset throttled; will retry", "err", ae)
			r.requeue(ctx, t)
			return
		}
		if now.Sub(t.busySince) > r.cfg.ResetTimeout {
			r.finish(ctx, t, store.StatusFailed, ae.Code, fmt.Sprintf("not accepted within %s: %s", r.cfg.ResetTimeout, ae.Message))
			return
		}
		// Retried after the next poll (the tracker's pace is the backoff),
		// without holding a sender.
		log.Warn("reset rejected; will retry", "err", ae)
		r.freeSlot(t)
		t.kind, t.since = kindWaitIdle, now
		r.toTracker(ctx, t)
	case lighthouse.ClassBusy:
		if t.doubt {
			// It may be our own earlier reset that is running (the previous
			// call was judged absent too early): reconcile, never fail.
			log.Warn("instance busy after an earlier call of ours; reconciling", "err", ae)
			t.kind, t.since = kindInDoubt, time.Now()
			r.toTracker(ctx, t)
			return
		}
		now := time.Now()
		if t.busySince.IsZero() {
			t.busySince = now
		}
		t.job.Attempts--
		if now.Sub(t.busySince) > r.cfg.ResetTimeout {
			// The API keeps refusing while DescribeInstances shows the
			// instance idle, so the tracker sends again at once, forever:
			// ResetTimeout bounds the wait however the instance shows
			// (TestFaultBusyOnResend/BusyWhileIdle).
			r.finish(ctx, t, store.StatusFailed, ae.Code, fmt.Sprintf("instance stayed busy for %s: %s", r.cfg.ResetTimeout, ae.Message))
			return
		}
		log.Info("instance busy; waiting for it", "err", ae)
		t.job.Status = store.StatusPending
		if !r.save(ctx, t) {
			return
		}
		r.freeSlot(t)
		t.kind, t.since = kindWaitIdle, now
		r.toTracker(ctx, t)
	case lighthouse.ClassPermanent:
		log.Error("reset refused", "err", ae)
		r.finish(ctx, t, store.StatusFailed, ae.Code, ae.Message)
	case lighthouse.ClassFatal:
		log.Error("fatal error; no new resets", "err", ae)
		r.fatal.CompareAndSwap(nil, ae)
		t.job.Status = store.StatusPending
		t.job.Attempts--
		if r.save(ctx, t) {
			r.release(t)
		}
	default: // ambiguous
		log.Warn("reset outcome unknown; reconciling before any resend", "err", ae)
		t.doubt = true
		t.kind, t.since = kindInDoubt, time.Now()
		r.toTracker(ctx, t)
	}
}

// requeue puts t back in the send queue.
func (r *Runner) requeue(ctx context.Context, t *task) {
	r.freeSlot(t)
	select {
	case r.sendq <- t:
	case <-ctx.Done():
		r.release(t)
	}
}

// admit holds t until the rollout lets it start and an in-flight slot is
// free. It reports false when t was handed elsewhere.
func (r *Runner) admit(ctx context.Context, t *task) bool {
	for r.paused() && !r.halted() && r.stopReason() == "" {
		if r.sleep(ctx, r.cfg.PollInterval/4) != nil {
			r.release(t)
			return false
		}
	}
	if r.halted() || r.stopReason() != "" {
		r.admitDenied(ctx, t)
		return false
	}
	if r.cfg.Rollout != nil && !t.admitted && !t.doubt {
		if why := r.cfg.Rollout.admit(ctx, r); why != "" {
			r.admitDenied(ctx, t)
			return false
		}
		t.admitted = true
	}
	if r.slots != nil && !t.slot {
		select {
		case r.slots <- struct{}{}:
			t.slot = true
		case <-ctx.Done():
			r.release(t)
			return false
		}
	}
	return true
}

// admitDenied disposes of a job that may not start: released when the run is
// halting (it stays pending for the next run), skipped when a rollout rule
// or the operator stopped new resets.
func (r *Runner) admitDenied(ctx context.Context, t *task) {
	if why := r.stopReason(); why != "" && !r.halted() && !t.doubt {
		r.finish(ctx, t, store.StatusSkipped, "", why)
		return
	}
	r.release(t)
}

// release gives t back to the store unstarted (or as it is) and forgets it.
func (r *Runner) release(t *task) {
	r.freeSlot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.cfg.Store.Release(ctx, []store.Job{t.job}); err != nil {
		r.log.Warn("release job", "instance_id", t.job.InstanceID, "err", err)
	}
	r.done(t)
}

func (r *Runner) freeSlot(t *task) {
	if t.slot {
		t.slot = false
		<-r.slots
	}
}

// save records t.job durably. When the store refuses (lease lost) or cannot
// be reached in time, the job is dropped from this runner, and false is
// returned: whoever holds it now, or the next run, reconciles it.
func (r *Runner) save(ctx context.Context, t *task) bool {
	var err error
	retry := newBackoff(200*time.Millisecond, 5*time.Second)
	wctx := context.WithoutCancel(ctx)
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithTimeout(wctx, 10*time.Second)
		err = r.cfg.Store.Save(sctx, &t.job)
		cancel()
		if err == nil {
			return true
		}
		if errors.Is(err, store.ErrLeaseLost) || attempt >= 20 {
			break
		}
		d := retry.next()
		r.log.Warn("save job; retrying", "instance_id", t.job.InstanceID, "err", err, "retry_in", d)
		if r.sleep(wctx, d) != nil {
			break
		}
	}
	r.log.Error("job dropped: its state could not be recorded", "instance_id", t.job.InstanceID, "status", t.job.Status, "err", err)
	r.stats.Dropped.Add(1)
	r.freeSlot(t)
	r.done(t)
	return false
}

// finish records a terminal outcome for t.
func (r *Runner) finish(ctx context.Context, t *task, st store.Status, code, msg string) {
	r.failpoint(FailpointBeforeOutcome)
	t.job.Status = st
	t.job.ErrorCode, t.job.ErrorMessage = code, msg
	if st == store.StatusSucceeded {
		t.job.ErrorCode, t.job.ErrorMessage = "", ""
	}
	t.job.FinishedAt = time.Now()
	if !r.save(ctx, t) {
		return
	}
	r.stats.onFinish(t)
	if r.cfg.Rollout != nil {
		r.cfg.Rollout.finished(r, t.job)
	}
	switch st {
	case store.StatusSucceeded:
		r.log.Info("reset succeeded", "instance_id", t.job.InstanceID, "request_id", t.job.RequestID)
	case store.StatusSkipped:
		r.log.Info("skipped", "instance_id", t.job.InstanceID, "reason", msg)
	default:
		r.log.Error("reset "+string(st), "instance_id", t.job.InstanceID, "request_id", t.job.RequestID, "code", code, "reason", msg)
	}
	r.freeSlot(t)
	r.done(t)
}

// toTracker hands t to the tracker.
func (r *Runner) toTracker(ctx context.Context, t *task) {
	select {
	case r.trackq <- t:
	case <-ctx.Done():
	}
}
