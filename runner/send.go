package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// work sends ResetInstance for admitted jobs until the run finishes. A job
// admitted before, back from a pause, a throttled call or the tracker, goes
// ahead of a new one.
func (r *Runner) work(ctx context.Context) error {
	for {
		var t *task
		select {
		case t = <-r.againq:
		default:
			select {
			case <-ctx.Done():
				return nil
			case <-r.finished:
				return nil
			case t = <-r.againq:
			case t = <-r.readyq:
			}
		}
		r.send(ctx, t)
	}
}

// gate admits the jobs of sendq into the rollout, one at a time and in
// order, and hands each one it admits to a free sender. It is the only
// place that waits for a wave to drain, between waves, or for the operator
// to resume a paused run before admitting: a sender never holds a job the
// rollout has not admitted, so the jobs a wave has admitted are never stuck
// behind one it cannot take, and a job once admitted goes back to the
// senders through againq, never through the gate again.
func (r *Runner) gate(ctx context.Context) error {
	for {
		var t *task
		select {
		case <-ctx.Done():
			return nil
		case <-r.finished:
			return nil
		case t = <-r.sendq:
		}
		if len(r.sendq) < claimBatch {
			select {
			case r.sendLow <- struct{}{}: // wake the feeder
			default:
			}
		}
		if r.needsAdmission(t) {
			if why := r.cfg.Rollout.admit(ctx, r, t); why != "" {
				r.admitDenied(ctx, t)
				continue
			}
			t.admitted = true
		}
		next := r.readyq
		if r.needsBefore(t) {
			next = r.hookq
		}
		select {
		case next <- t:
		case <-ctx.Done():
			r.release(t)
			return nil
		}
	}
}

// needsAdmission reports whether t must pass the rollout before it is sent:
// a job in doubt was sent before, in its wave, and is only sent again.
func (r *Runner) needsAdmission(t *task) bool {
	return r.cfg.Rollout != nil && !t.admitted && !t.doubt
}

// leaseMargin is kept between a call's deadline and the end of the job's
// lease, for the time between the check and the request leaving.
const leaseMargin = 100 * time.Millisecond

// minCallTime is the least time a call must have before its deadline (and
// so before its lease ends) for it to be sent at all.
const minCallTime = 100 * time.Millisecond

// send performs one ResetInstance for t, durably recording the intent first
// and the RequestId right after.
func (r *Runner) send(ctx context.Context, t *task) {
	if r.needsBefore(t) {
		// Never reset an instance whose before-hook has not ended.
		r.toHooks(ctx, t)
		return
	}
	if !r.admit(ctx, t) {
		return
	}
	// The intent is recorded before the rate slot is taken, so that the
	// store's latency (an fsync, a commit) never sits between the slot and
	// the call: the limiter's jitter allowance is for the network alone.
	t.intent(time.Now())
	if err := r.save(ctx, t); err != nil {
		r.intentRefused(ctx, t, err)
		return
	}
	r.failpoint(FailpointAfterIntent)

	slot, slotErr := r.cloud.WaitReset(ctx)
	if slotErr == nil && r.cfg.Rollout != nil {
		// The wait for the slot counts: a window that closed meanwhile, or
		// a budget spent, stops this call too.
		r.cfg.Rollout.check(ctx, r)
	}
	deadline, leased := r.leaseDeadline(t)
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.cfg.RequestTimeout > 0 {
		callCtx, cancel = context.WithTimeout(callCtx, r.cfg.RequestTimeout)
		defer cancel()
	}
	if leased {
		// A call never outlives the lease it left under: once the lease
		// ends another runner may take the job over and prove the call
		// absent.
		callCtx, cancel = context.WithDeadline(callCtx, deadline.Add(-leaseMargin))
		defer cancel()
	}
	callDeadline, _ := callCtx.Deadline()
	st := r.adm.load()
	leaseShort := leased && time.Until(callDeadline) < minCallTime
	if slotErr != nil || st.mode != admitOpen || leaseShort {
		// Nothing was sent: say so before the job goes anywhere else, so
		// that it is not reconciled as a call in doubt.
		t.unsent()
		if r.save(context.WithoutCancel(ctx), t) != nil {
			return
		}
		switch {
		case slotErr == nil && st.mode == admitOpen:
			// The lease was too short (the runner was suspended, or the
			// database slow to renew); the save above renewed it.
			r.log.Warn("lease too short for a call; not sent", "instance_id", t.job.InstanceID)
			r.requeue(ctx, t)
		case ctx.Err() == nil && r.adm.load().mode == admitPaused:
			r.requeue(ctx, t) // admit holds it until the run resumes
		default:
			r.admitDenied(ctx, t)
		}
		return
	}
	t.sent(time.Now())
	r.stats.onSend(t)
	if r.cfg.Failpoint != nil {
		callCtx = context.WithValue(callCtx, failpointKey{}, r.cfg.Failpoint)
	}
	reqID, err := r.cloud.Reset(callCtx, slot, t.job.Region, resetRequest(t.job, r.cfg.Login))
	r.failpoint(FailpointAfterCall)
	if err != nil {
		r.handleSendError(ctx, t, err)
		return
	}
	t.accepted(reqID)
	if r.save(ctx, t) != nil {
		return
	}
	r.log.Debug("reset accepted", "instance_id", t.job.InstanceID, "request_id", reqID, "attempt", t.job.Attempts)
	r.toTracker(ctx, t)
}

// leaseDeadline returns when t's lease ends on this host's clocks, if the
// store leases jobs.
func (r *Runner) leaseDeadline(t *task) (time.Time, bool) {
	l, ok := r.cfg.Store.(Leaser)
	if !ok {
		return time.Time{}, false
	}
	return l.LeaseDeadline(t.job), true
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
	if r.adm.load().mode == admitBroken {
		// The run broke down (a state it cannot write) while the call was
		// on its way, and ended the call: it may have landed. The job
		// stays submitting, its intent on disk, and the rerun reconciles
		// it; the cause is already said once.
		t.inDoubt(ae, time.Now())
		r.done(t)
		return
	}
	class := ae.Class
	if ctx.Err() != nil && class != lighthouse.ClassRetryable {
		// The run was cancelled mid-call: the call may have landed.
		class = lighthouse.ClassAmbiguous
	}
	if class == lighthouse.ClassFatal && (regionProblem(ae) || loginProblem(ae, t.job, r.cfg.Login)) {
		class = lighthouse.ClassPermanent // one bad row does not stop the fleet
	}
	log := r.log.With("instance_id", t.job.InstanceID, "attempt", t.job.Attempts, "code", ae.Code)
	now := time.Now()
	switch class {
	case lighthouse.ClassRetryable:
		// Rejected, so not executed: it does not count as an attempt, and
		// however long the API keeps rejecting (a network outage, a busy
		// backend) the job is not failed before ResetTimeout.
		throttled := ae.Throttled()
		t.rejected(ae, now, !throttled)
		if r.save(ctx, t) != nil {
			return
		}
		if throttled {
			// The Cloud's gate pauses every sender; the job goes straight
			// back in line.
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
		r.toTracker(ctx, t)
	case lighthouse.ClassBusy:
		if t.doubt {
			// It may be our own earlier reset that is running (the previous
			// call was judged absent too early): reconcile, never fail.
			log.Warn("instance busy after an earlier call of ours; reconciling", "err", ae)
			t.inDoubt(ae, now)
			r.toTracker(ctx, t)
			return
		}
		t.rejected(ae, now, true)
		if now.Sub(t.busySince) > r.cfg.ResetTimeout {
			// The API keeps refusing while DescribeInstances shows the
			// instance idle, so the tracker sends again at once, forever:
			// ResetTimeout bounds the wait however the instance shows.
			r.finish(ctx, t, store.StatusFailed, ae.Code, fmt.Sprintf("instance stayed busy for %s: %s", r.cfg.ResetTimeout, ae.Message))
			return
		}
		log.Debug("instance busy; waiting for it", "err", ae)
		if r.save(ctx, t) != nil {
			return
		}
		r.freeSlot(t)
		r.toTracker(ctx, t)
	case lighthouse.ClassPermanent:
		log.Debug("reset refused", "err", ae) // finish logs the outcome at error
		r.finish(ctx, t, store.StatusFailed, ae.Code, ae.Message)
	case lighthouse.ClassFatal:
		r.fatal(ae)
		t.rejected(ae, now, false)
		if r.save(ctx, t) == nil {
			r.release(t)
		}
	default: // ambiguous
		log.Warn("reset outcome unknown; reconciling before any resend", "err", ae)
		t.inDoubt(ae, now)
		r.toTracker(ctx, t)
	}
}

// refusedIntent reports whether err is a store's refusal of an intent,
// which writes nothing and leaves the job with the runner.
func refusedIntent(err error) bool {
	return errors.Is(err, store.ErrInstanceBusy) || errors.Is(err, store.ErrHeld) || errors.Is(err, store.ErrStopped)
}

// intentRefused handles an intent the store refused (see refusedIntent).
// Another run has the instance in flight: the job waits, as for a busy
// instance, and the instance is looked at again before anything is sent.
// Another run holds it: the job ends skipped, naming the holder. The run is
// paused or cancelled: the job waits for the runner to read the control.
func (r *Runner) intentRefused(ctx context.Context, t *task, err error) {
	if !refusedIntent(err) {
		return // the job was dropped
	}
	now := time.Now()
	switch {
	case errors.Is(err, store.ErrInstanceBusy):
		ae := &lighthouse.APIError{Action: lighthouse.ActionResetInstance, Code: CodeInFlightElsewhere, Message: err.Error(), Class: lighthouse.ClassBusy}
		r.log.Info("instance in flight in another run; waiting", "instance_id", t.job.InstanceID, "err", err)
		t.refused(ae, now)
		r.freeSlot(t)
		r.toTracker(ctx, t)
	case errors.Is(err, store.ErrHeld):
		t.unsent()
		r.finish(ctx, t, store.StatusSkipped, CodeHeldByRun, "not reset: "+heldReason(err))
	default:
		t.unsent()
		if h, err := r.readControl(ctx); err == nil {
			r.applyControl(h)
		}
		r.requeue(ctx, t)
	}
}

// heldReason is the part of a store's ErrHeld refusal that names the
// holder: what follows the sentinel's own words.
func heldReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, store.ErrHeld.Error()+": "); i >= 0 {
		return msg[i+len(store.ErrHeld.Error())+2:]
	}
	return msg
}

// CodeInFlightElsewhere is the error code of a job that waited because
// another run had its instance in flight.
const CodeInFlightElsewhere = "InFlightElsewhere"

// requeue puts t, admitted already, back in line for the senders.
func (r *Runner) requeue(ctx context.Context, t *task) {
	r.freeSlot(t)
	select {
	case r.againq <- t:
	case <-ctx.Done():
		r.release(t)
	}
}

// admit holds t, which the gate admitted, while the run is paused and until
// an in-flight slot is free. It reports false when t was handed elsewhere.
func (r *Runner) admit(ctx context.Context, t *task) bool {
	for {
		st, changed := r.adm.watch()
		if st.mode != admitPaused {
			break
		}
		select {
		case <-ctx.Done():
			r.release(t)
			return false
		case <-changed:
		}
	}
	if r.adm.load().mode != admitOpen {
		r.admitDenied(ctx, t)
		return false
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
	if st := r.adm.load(); st.mode == admitStopped && !t.doubt {
		r.finish(ctx, t, store.StatusSkipped, st.code, st.reason)
		return
	}
	r.release(t)
}

// release gives t back to the store and forgets it; an instance its
// before-hook took out of service is put back first (restore), unless the
// run's context has ended (the second interrupt): the phase stays, and the
// next run finishes it.
func (r *Runner) release(t *task) {
	if r.cfg.Hooks.enabled() && outOfService(t) && r.runCtx != nil && r.runCtx.Err() == nil {
		r.releaseRestored(r.runCtx, t)
		return
	}
	r.releaseNow(t)
}

// releaseNow gives t back to the store as it is and forgets it.
func (r *Runner) releaseNow(t *task) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.cfg.Store.Release(ctx, []store.Job{t.job}); err != nil {
		r.log.Warn("release job", "instance_id", t.job.InstanceID, "err", err)
	}
	r.done(t)
}

// freeSlot gives up t's in-flight slot while t waits, unless its instance
// is out of service: with hooks, MaxInFlight counts instances from their
// before-hook to the end of their after-hook (done frees it then).
func (r *Runner) freeSlot(t *task) {
	if r.cfg.Hooks.enabled() && outOfService(t) {
		return
	}
	r.dropSlot(t)
}

func (r *Runner) dropSlot(t *task) {
	if t.slot {
		t.slot = false
		<-r.slots
	}
}

// save records t.job durably. When the store refuses (lease lost, the
// instance in flight elsewhere) or cannot be reached in time, the job is
// dropped from this runner, except for ErrInstanceBusy (the caller decides),
// and the error is returned: whoever holds the job now, or the next run,
// reconciles it. A store that cannot write (store.ErrUnwritable) is not
// asked again: the run ends (see unwritable).
func (r *Runner) save(ctx context.Context, t *task) error {
	var err error
	retry := newBackoff(200*time.Millisecond, 5*time.Second)
	wctx := context.WithoutCancel(ctx)
	for attempt := 0; ; attempt++ {
		if r.cfg.Holds != nil {
			err = r.cfg.Holds.Check(&t.job)
		}
		if err == nil {
			sctx, cancel := context.WithTimeout(wctx, 10*time.Second)
			err = r.cfg.Store.Save(sctx, &t.job)
			cancel()
		}
		if err == nil {
			return nil
		}
		if refusedIntent(err) {
			return err // nothing was written; the caller decides
		}
		if errors.Is(err, store.ErrUnwritable) {
			r.unwritable(err)
			r.done(t)
			return err
		}
		if errors.Is(err, store.ErrLeaseLost) || attempt >= 20 {
			break
		}
		d := retry.next()
		r.log.Warn("save job; retrying", "instance_id", t.job.InstanceID, "err", err, "retry_in", d)
		if sleep(wctx, d) != nil {
			break
		}
	}
	r.log.Error("job dropped: its state could not be recorded", "instance_id", t.job.InstanceID, "status", t.job.Status, "err", err)
	r.stats.Dropped.Add(1)
	r.done(t)
	return err
}

// finish records a terminal outcome for t, after its after-hook or
// restore when one is due (see finishAfterHook).
func (r *Runner) finish(ctx context.Context, t *task, st store.Status, code, msg string) {
	if r.afterHookDue(t, st, code) {
		r.finishAfterHook(ctx, t, st, code, msg)
		return
	}
	r.finishNow(ctx, t, st, code, msg)
}

// finishNow records a terminal outcome for t.
func (r *Runner) finishNow(ctx context.Context, t *task, st store.Status, code, msg string) {
	r.failpoint(FailpointBeforeOutcome)
	t.finished(st, code, msg, time.Now())
	if r.save(ctx, t) != nil {
		return
	}
	r.stats.onFinish(t)
	if r.cfg.Rollout != nil {
		r.cfg.Rollout.finished(r, t.job)
	}
	r.budget.finished(r, t.job)
	switch st {
	case store.StatusSucceeded:
		r.log.Debug("reset succeeded", "instance_id", t.job.InstanceID, "request_id", t.job.RequestID)
	case store.StatusSkipped:
		r.log.Debug("skipped", "instance_id", t.job.InstanceID, "reason", msg)
	default:
		r.log.Error("reset "+string(st), "instance_id", t.job.InstanceID, "request_id", t.job.RequestID, "code", code, "reason", msg)
	}
	r.done(t)
}

// toTracker hands t to the tracker.
func (r *Runner) toTracker(ctx context.Context, t *task) {
	select {
	case r.trackq <- t:
	case <-ctx.Done():
	}
}
