package runner

import (
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// This file is the one home of a job's life in a runner: every change of a
// job's status, of the runner's kind for it and of its times is one of the
// named transitions below. Nothing else assigns them.

// taskKind says who holds a task and what it waits for.
type taskKind int

const (
	kindClaimed  taskKind = iota // claimed, not yet judged against the cloud
	kindSend                     // queued for the senders
	kindWaitIdle                 // the instance is busy, or a call was rejected: send when idle
	kindInDoubt                  // a call may have landed: reconcile before anything else
	kindTracking                 // submitted: wait for our operation to end
	kindAgent                    // reset done: wait for the TAT agent to come back (health)
	kindCommand                  // agent back: run the health command and wait for its exit
	kindBaking                   // healthy: wait out Health.Bake, then check again
	kindDone                     // a terminal outcome is recorded
)

var kindNames = [...]string{"claimed", "send", "wait-idle", "in-doubt", "tracking", "agent", "command", "baking", "done"}

func (k taskKind) String() string { return kindNames[k] }

// task is a claimed job and what the runner knows about it in memory.
type task struct {
	job  store.Job
	kind taskKind
	// doubt: some call for this job may have landed and was not proven
	// absent. A job in doubt is never sent again before reconciliation.
	doubt    bool
	lastSend time.Time // when the latest call left (or, taken over, when it was claimed)
	sentHere bool      // lastSend is a call this runner sent, not a claim
	since    time.Time // when the current wait began
	// busySince is when the instance was first found busy, or a call for it
	// first rejected; ResetTimeout bounds the wait from then.
	busySince time.Time
	lastErr   *lighthouse.APIError

	// What DescribeInstances showed; see observe.
	lastSeen string // the instance's last observed operation, for messages
	misses   int    // polls in a row that did not return the instance
	sawOurs  bool   // our RequestID has been the instance's latest operation
	foreign  string // a ResetInstance not ours seen on the instance, for messages
	// seen is the instance as last described; prevSeen as first described
	// while nothing of this run's had reached it (nil when this process
	// did not see it so), for the hooks' environment.
	seen, prevSeen *lighthouse.Instance

	// The health check after the reset (health.go); the job stays
	// submitted in the store meanwhile.
	health healthState

	slot       bool      // holds an in-flight slot
	admitted   bool      // counted in the rollout's current wave
	undoIntent time.Time // IntentAt before the current intent, for unsent
}

// claimed makes a task of a job the store handed out, of the kind its
// status calls for. A job left submitting (by a crash, or by a runner whose
// lease this one took) is in doubt: that call, or the previous holder's
// last one, may still arrive, so the settle time counts from now.
func claimed(j store.Job, now time.Time) *task {
	t := &task{job: j, since: now}
	switch j.Status {
	case store.StatusSubmitting:
		t.kind, t.doubt, t.lastSend = kindInDoubt, true, now
	case store.StatusSubmitted:
		t.kind = kindTracking
	default:
		t.kind = kindClaimed
	}
	return t
}

// reconciling makes a task of a job left unknown, for Reconcile: tracked
// when the cloud gave it a RequestId, else in doubt since its intent.
func reconciling(j store.Job, now time.Time) *task {
	t := claimed(j, now)
	t.lastSend = j.IntentAt
	if j.RequestID != "" {
		t.kind, t.since = kindTracking, now
	} else {
		t.kind, t.since = kindInDoubt, now
	}
	return t
}

// observe records what one DescribeInstances answer showed (in, present
// when ok). It changes no status or kind: judge decides from it.
func (t *task) observe(in lighthouse.Instance, ok bool) {
	if !ok {
		t.lastSeen = "instance not returned by DescribeInstances"
		t.misses++
		return
	}
	t.lastSeen = describeOp(in)
	t.misses = 0
	t.seen = &in
	if t.prevSeen == nil && t.job.Status == store.StatusPending && t.job.RequestID == "" {
		t.prevSeen = &in
	}
	if in.LatestOperation != lighthouse.ActionResetInstance || in.LatestOperationRequestID == "" {
		return
	}
	switch in.LatestOperationRequestID {
	case t.job.RequestID:
		t.sawOurs = true
	case t.job.PrevRequestID:
	default:
		if t.kind == kindTracking {
			t.foreign = in.LatestOperationRequestID + " (" + orNone(in.LatestOperationState) + ")"
		}
	}
}

// ready sends a job judged at claim time: in is the instance now (zero
// when it was not described). Its latest operation is the run's first
// record of it, and its blueprint the image before the reset, unless ones
// were kept.
func (t *task) ready(in lighthouse.Instance) {
	if t.job.PrevRequestID == "" {
		t.job.PrevRequestID = in.LatestOperationRequestID
	}
	if t.job.PrevBlueprintID == "" {
		t.job.PrevBlueprintID = in.BlueprintID
	}
	t.kind = kindSend
}

// waitIdle parks a pending job whose instance is busy until it is idle.
func (t *task) waitIdle(now time.Time) {
	if t.busySince.IsZero() {
		t.busySince = now
	}
	t.kind, t.since = kindWaitIdle, now
}

// intent: pending → submitting. Saved before the rate slot is taken.
func (t *task) intent(now time.Time) {
	t.undoIntent = t.job.IntentAt
	t.job.Status = store.StatusSubmitting
	t.job.Attempts++
	if t.job.IntentAt.IsZero() {
		t.job.IntentAt = now
	}
}

// unsent: submitting → pending, for an intent after which nothing left
// (the run stopped or paused, the lease would not outlive the call).
func (t *task) unsent() {
	t.job.Status = store.StatusPending
	t.job.Attempts--
	t.job.IntentAt = t.undoIntent
	t.kind = kindSend
}

// refused: the store refused the intent (another run has the instance in
// flight), so nothing was written: back to pending, waiting as for a busy
// instance.
func (t *task) refused(ae *lighthouse.APIError, now time.Time) {
	t.unsent()
	t.lastErr = ae
	t.job.ErrorCode, t.job.ErrorMessage = ae.Code, ae.Message
	t.waitIdle(now)
}

// sent marks the moment the call leaves. SettleTime counts from here, not
// from the intent: recording the intent can take long (a slow or retried
// store write), and a clock started before it expired early, so that a
// reset landing late was "proven absent" and sent again.
func (t *task) sent(now time.Time) { t.lastSend, t.sentHere = now, true }

// accepted: submitting → submitted, with the RequestId the cloud returned.
func (t *task) accepted(requestID string) {
	t.job.Status = store.StatusSubmitted
	t.job.RequestID = requestID
	t.job.ErrorCode, t.job.ErrorMessage = "", ""
	if t.job.SubmittedAt.IsZero() {
		t.job.SubmittedAt = t.lastSend
	}
	t.kind, t.since = kindTracking, t.lastSend
}

// rejected: submitting → pending, for a call the API did not execute
// (throttled, busy, rejected before acting). It does not count as an
// attempt. With wait the tracker watches the instance until it is idle;
// otherwise the job goes straight back to the senders.
func (t *task) rejected(ae *lighthouse.APIError, now time.Time, wait bool) {
	t.lastErr = ae
	t.job.ErrorCode, t.job.ErrorMessage = ae.Code, ae.Message
	t.job.Status = store.StatusPending
	t.job.Attempts--
	if t.busySince.IsZero() {
		t.busySince = now
	}
	t.kind = kindSend
	if wait {
		t.kind, t.since = kindWaitIdle, now
	}
}

// inDoubt: the call's outcome is unknown; the job stays submitting and is
// reconciled by the tracker before anything is sent again.
func (t *task) inDoubt(ae *lighthouse.APIError, now time.Time) {
	t.lastErr = ae
	t.job.ErrorCode, t.job.ErrorMessage = ae.Code, ae.Message
	t.doubt = true
	t.kind, t.since = kindInDoubt, now
}

// adopted: submitting → submitted, for a call in doubt that DescribeInstances
// shows landed, as requestID.
func (t *task) adopted(requestID string, now time.Time) {
	t.job.RequestID = requestID
	t.job.Status = store.StatusSubmitted
	if t.job.SubmittedAt.IsZero() {
		t.job.SubmittedAt = t.job.IntentAt
	}
	t.job.ErrorCode, t.job.ErrorMessage = "", ""
	t.sawOurs = true
	t.kind, t.since = kindTracking, now
}

// sendAgain: back to pending and the senders, for a call proven absent or
// an instance found idle; latest is the instance's latest operation now,
// against which the next call's absence is proven. A job once in doubt
// stays so: its earlier call was proven absent by a settle time that a
// longer visibility lag can beat, so a busy answer or a new reset later may
// still be that call.
func (t *task) sendAgain(latest string) {
	t.job.Status = store.StatusPending
	if latest != "" {
		t.job.PrevRequestID = latest
	}
	t.kind = kindSend
}

// checking: the reset ended SUCCESS and the job's health is checked next,
// from now: the TAT agent first. The job stays submitted in the store: it
// is in flight until its health is known, and a runner that takes it over
// (or a rerun) checks again.
func (t *task) checking(now time.Time) {
	t.health = healthState{started: now, baked: t.health.baked}
	t.kind, t.since = kindAgent, now
}

// agentBack: the agent is Online with a heartbeat after the reset; the
// health command runs next (it is sent at the next poll).
func (t *task) agentBack(now time.Time) {
	t.health.lastSeen = "agent Online"
	t.kind, t.since = kindCommand, now
}

// commandSent records the RunCommand invocation that runs the health
// command on the instance.
func (t *task) commandSent(invocationID string) {
	t.health.invocationID = invocationID
	t.health.sendErr = ""
}

// commandRefused records why RunCommand did not start the health command;
// it is sent again at the next poll, within the health timeout.
func (t *task) commandRefused(why string) { t.health.sendErr = why }

// baking: healthy; the job waits out the bake time, then is checked again.
func (t *task) baking(now time.Time) {
	t.health.baked = true
	t.kind, t.since = kindBaking, now
}

// hookStarted records the job's hook phase, before the hook it names runs
// (or, for drained and done, after the hook ended).
func (t *task) hookStarted(p store.HookPhase) { t.job.HookPhase = p }

// finished records a terminal outcome.
func (t *task) finished(st store.Status, code, msg string, now time.Time) {
	t.job.Status = st
	t.job.ErrorCode, t.job.ErrorMessage = code, msg
	if st == store.StatusSucceeded {
		t.job.ErrorCode, t.job.ErrorMessage = "", ""
	}
	t.job.FinishedAt = now
	t.kind = kindDone
}

// settledUnknown is reconcile's transition of an unknown job whose record
// changed without an outcome: the reset was found applied and still runs.
func (t *task) settledUnknown(requestID, msg string) {
	t.job.RequestID = requestID
	if t.job.SubmittedAt.IsZero() {
		t.job.SubmittedAt = t.job.IntentAt
	}
	t.job.Status = store.StatusUnknown
	t.job.ErrorMessage = msg
	t.kind = kindDone
}
