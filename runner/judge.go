package runner

import (
	"fmt"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// act is what a verdict tells the caller to do with a task.
type act int

const (
	actKeep    act = iota // nothing changes; look again at the next poll
	actResend             // back to the senders (sendAgain with v.latest)
	actAdopt              // an in-doubt call landed as v.requestID (adopted)
	actFinish             // record v.status, v.code, v.msg (finished)
	actHealthy            // the health check passed (health.go moves the job on)
)

// verdict is what one observation decides for a task.
type verdict struct {
	act       act
	status    store.Status
	code, msg string
	requestID string // actAdopt
	latest    string // actResend: the instance's latest operation now
}

// limits are the runner's bounds that judge applies.
type limits struct {
	settle       time.Duration // SettleTime
	resetTimeout time.Duration // ResetTimeout
	maxAttempts  int           // MaxAttempts
}

// Codes of outcomes the runner decides itself.
const (
	CodeResetTwice    = "ResetTwice"    // another ResetInstance landed on the instance during ours
	CodeResetByOther  = "ResetByOther"  // another ResetInstance landed during this run, before ours was sent
	CodeNotApplied    = "NotApplied"    // reconcile proved the reset never took effect
	CodeHeldByRun     = "HeldByRun"     // another run held the instance: not reset by this one
	CodeNotProven     = "NotProvenOurs" // a reset landed after a call in doubt, but cannot be shown to be ours
	CodeRecentlyReset = "RecentlyReset" // another request reset the instance within --skip-reset-since

	CodeInstanceNotFound  = "InstanceNotFound"  // DescribeInstances no longer lists the instance
	CodeBlueprintMismatch = "BlueprintMismatch" // the reset succeeded on another image than the job's: it landed, so it is never retried blindly
	CodeOperationFailed   = "OperationFailed"   // the cloud reports the reset FAILED
	CodeResetTimeout      = "ResetTimeout"      // the reset did not end within ResetTimeout
)

// judge decides what in (present when ok), seen at now, means for t. It is a
// pure function of its arguments: t is read, never changed (observe has
// already recorded the observation in t).
//
// No decision compares the cloud's clock with ours: "ours" and "absent" are
// RequestId identity against t.job.PrevRequestID, the operation recorded
// before our first call, and every duration is measured on this runner's
// clock between two of its own events.
func judge(t *task, in lighthouse.Instance, ok bool, now time.Time, lim limits) verdict {
	switch t.kind {
	case kindWaitIdle:
		return judgeWaitIdle(t, in, ok, now, lim)
	case kindInDoubt:
		return judgeInDoubt(t, in, ok, now, lim)
	case kindTracking:
		return judgeTracking(t, in, ok, now, lim)
	}
	return verdict{}
}

func judgeWaitIdle(t *task, in lighthouse.Instance, ok bool, now time.Time, lim limits) verdict {
	switch {
	case !ok:
		// Gone, or not shown: ResetInstance will say which with its own code.
		return verdict{act: actResend}
	case busy(in):
		if now.Sub(t.busySince) <= lim.resetTimeout {
			return verdict{}
		}
		code := "InstanceBusy"
		if t.job.ErrorCode != "" {
			code = t.job.ErrorCode
		}
		return verdict{act: actFinish, status: store.StatusFailed, code: code,
			msg: fmt.Sprintf("instance stayed busy for %s; last seen: %s", lim.resetTimeout, t.lastSeen)}
	case foreignReset(in, t.job) && t.doubt && couldBeOurs(t, in, now, lim):
		// An earlier call of ours was proven absent, but a lag beyond the
		// settle time can beat that proof: this may be it.
		return verdict{act: actAdopt, requestID: in.LatestOperationRequestID}
	case foreignReset(in, t.job) && t.doubt:
		return notProven(t, in)
	case foreignReset(in, t.job):
		return resetByOther(in)
	}
	return verdict{act: actResend, latest: in.LatestOperationRequestID}
}

// resetByOther is the verdict for a job none of whose calls landed, on an
// instance that another ResetInstance reset during this run.
func resetByOther(in lighthouse.Instance) verdict {
	return verdict{act: actFinish, status: store.StatusSkipped, code: CodeResetByOther,
		msg: fmt.Sprintf("not reset again: another ResetInstance (RequestId %s, state %s) reached the instance during this run",
			in.LatestOperationRequestID, orNone(in.LatestOperationState))}
}

func judgeInDoubt(t *task, in lighthouse.Instance, ok bool, now time.Time, lim limits) verdict {
	settled := now.Sub(t.lastSend) >= lim.settle
	switch {
	case ok && landed(in, t.job) && couldBeOurs(t, in, now, lim):
		// The same observation may already show it finished; the next
		// poll records that.
		return verdict{act: actAdopt, requestID: in.LatestOperationRequestID}
	case ok && landed(in, t.job):
		return notProven(t, in)
	case !ok && t.misses >= 3 && settled:
		// The instance is not there (deleted, or never existed): no reset
		// can have landed on it. The call goes again, and the API's answer
		// (InstanceIdNotFound) becomes the outcome, rather than waiting
		// ResetTimeout to say unknown.
		if t.job.Attempts >= lim.maxAttempts {
			return verdict{act: actFinish, status: store.StatusFailed, code: CodeInstanceNotFound,
				msg: fmt.Sprintf("DescribeInstances does not return the instance, and %d calls got no answer (last error: %s)", t.job.Attempts, orNone(t.job.ErrorMessage))}
		}
		return verdict{act: actResend}
	case ok && settled && provenAbsent(in, t.job):
		if t.job.Attempts < lim.maxAttempts {
			return verdict{act: actResend, latest: in.LatestOperationRequestID}
		}
		if t.lastErr != nil && t.lastErr.Class == lighthouse.ClassBusy {
			// The API kept saying an operation runs while DescribeInstances
			// showed none: it may be our own reset, not yet visible (a lag
			// above SettleTime). Busy answers are never a failure by
			// themselves; a later reconcile settles the job.
			return verdict{act: actFinish, status: store.StatusUnknown, code: t.job.ErrorCode,
				msg: fmt.Sprintf("gave up after %d calls: the API answered %s while DescribeInstances showed no operation in progress, so an earlier call of ours may be running unseen; last seen: %s; run `batchreset reconcile` later", t.job.Attempts, t.lastErr.Code, t.lastSeen)}
		}
		return verdict{act: actFinish, status: store.StatusFailed, code: t.job.ErrorCode,
			msg: fmt.Sprintf("gave up after %d calls, none of which took effect; last error: %s", t.job.Attempts, t.job.ErrorMessage)}
	case now.Sub(t.since) > lim.resetTimeout+lim.settle:
		return verdict{act: actFinish, status: store.StatusUnknown, code: t.job.ErrorCode,
			msg: fmt.Sprintf("could not establish whether the reset was applied (last error: %s); last seen: %s; run `batchreset reconcile` later", orNone(t.job.ErrorMessage), t.lastSeen)}
	}
	return verdict{}
}

func judgeTracking(t *task, in lighthouse.Instance, ok bool, now time.Time, lim limits) verdict {
	if ok && in.LatestOperation == lighthouse.ActionResetInstance && in.LatestOperationRequestID == t.job.RequestID {
		switch in.LatestOperationState {
		case lighthouse.OperationSuccess:
			if t.foreign != "" {
				return resetTwice(t, "before ours finished")
			}
			if t.job.BlueprintID != "" && in.BlueprintID != "" && in.BlueprintID != t.job.BlueprintID {
				return verdict{act: actFinish, status: store.StatusFailed, code: CodeBlueprintMismatch,
					msg: fmt.Sprintf("reset reported SUCCESS but the instance runs %s, not %s", in.BlueprintID, t.job.BlueprintID)}
			}
			return verdict{act: actFinish, status: store.StatusSucceeded}
		case lighthouse.OperationFailed:
			return verdict{act: actFinish, status: store.StatusFailed, code: CodeOperationFailed,
				msg: "the ResetInstance operation ended FAILED"}
		}
	}
	if t.foreign != "" && (t.sawOurs || now.Sub(t.lastSend) >= lim.settle) {
		// Another process reset the instance too, and its operation, not
		// ours, is now the latest: ours will never be shown again. Say so
		// rather than wait for ResetTimeout.
		return resetTwice(t, "and displaced ours as the latest operation")
	}
	if now.Sub(t.since) > lim.resetTimeout {
		return verdict{act: actFinish, status: store.StatusUnknown, code: CodeResetTimeout,
			msg: fmt.Sprintf("reset not finished after %s; last seen: %s", lim.resetTimeout, t.lastSeen)}
	}
	return verdict{}
}

func resetTwice(t *task, how string) verdict {
	return verdict{act: actFinish, status: store.StatusUnknown, code: CodeResetTwice,
		msg: fmt.Sprintf("the instance was reset twice: another ResetInstance, RequestId %s, landed %s (RequestId %s); check the instance", t.foreign, how, t.job.RequestID)}
}

// cloudClockBound is how far the cloud's clock can be from a runner's while
// the API accepts the runner's calls: it rejects a signature whose
// timestamp is more than 300 s off (AuthFailure.SignatureExpire).
const cloudClockBound = 300 * time.Second

// couldBeOurs reports whether a reset that in shows landed after t's call in
// doubt can be that call, by evidence bounded on our clock: seen within the
// settle time of a call this runner sent (the settle time exceeds the API's
// visibility lag plus the call's timeout, so our call, had it landed, was
// visible by then); started, by the cloud's clock, within the settle time
// of the intent, give or take cloudClockBound; or, when the cloud gives no
// start time, seen within the settle time of the intent on the wall clock.
// A reset found later than that (a rerun long after a crash) may be another
// tool's, and is never adopted.
func couldBeOurs(t *task, in lighthouse.Instance, now time.Time, lim limits) bool {
	if t.sentHere && now.Sub(t.lastSend) <= lim.settle {
		return true
	}
	if t.job.IntentAt.IsZero() {
		return false
	}
	if started, ok := in.StartedTime(); ok {
		return !started.Before(t.job.IntentAt.Add(-cloudClockBound)) && !started.After(t.job.IntentAt.Add(lim.settle+cloudClockBound))
	}
	age := now.Round(0).Sub(t.job.IntentAt)
	return age >= 0 && age <= lim.settle
}

// notProven is the verdict for a reset that landed after a call of t in
// doubt but that couldBeOurs cannot tie to it.
func notProven(t *task, in lighthouse.Instance) verdict {
	return verdict{act: actFinish, status: store.StatusUnknown, code: CodeNotProven,
		msg: fmt.Sprintf("a ResetInstance that is not the operation seen before our call is on the instance (RequestId %s, state %s, started %s by the cloud's clock), but it cannot be shown to be our call in doubt (intent recorded %s): it may be another's, and our login settings may not be applied; check the instance",
			in.LatestOperationRequestID, orNone(in.LatestOperationState), orNone(in.LatestOperationStartedTime), formatIntent(t.job.IntentAt))}
}

// formatIntent formats an intent's time for messages.
func formatIntent(at time.Time) string {
	if at.IsZero() {
		return "at an unknown time"
	}
	return at.UTC().Format(time.RFC3339)
}

// landed reports whether in shows a ResetInstance that a call of j in doubt
// started: a reset newer than the operation seen before the first call. It
// cannot tell ours from another process's reset; stores keep two runs from
// having one instance in flight (see the README's guarantees).
func landed(in lighthouse.Instance, j store.Job) bool {
	return in.LatestOperation == lighthouse.ActionResetInstance && in.LatestOperationRequestID != "" &&
		in.LatestOperationRequestID != j.PrevRequestID
}

// foreignReset reports whether in shows a ResetInstance that none of j's
// calls made: neither the operation recorded before the first call nor the
// one the cloud accepted from us.
func foreignReset(in lighthouse.Instance, j store.Job) bool {
	return landed(in, j) && in.LatestOperationRequestID != j.RequestID
}

// provenAbsent reports whether in proves that none of j's calls took effect:
// nothing is in progress and the latest operation is still the one seen
// before the first call (a landed reset of ours would have become the
// latest operation). An answer that names no operation proves nothing: the
// API documents the LatestOperation fields as possibly null, and an answer
// without them looks the same whether or not our reset landed.
func provenAbsent(in lighthouse.Instance, j store.Job) bool {
	return in.LatestOperationRequestID != "" && !busy(in) && in.LatestOperationRequestID == j.PrevRequestID
}

// busy reports whether in is in the middle of something that passes: an
// operation in progress, or a transitional state that becomes RUNNING or
// STOPPED by itself. A reset is waited for, never sent, on a busy instance.
func busy(in lighthouse.Instance) bool {
	return in.LatestOperationState == lighthouse.OperationOperating || lighthouse.Transitional(in.InstanceState)
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

// healthLimits are the bounds of a health check that judgeAgent and
// judgeCommand apply.
type healthLimits struct {
	timeout time.Duration // Health.Timeout
}

// Codes of unhealthy outcomes.
const (
	CodeAgentOffline         = "AgentOffline"         // the TAT agent did not come back Online after the reset
	CodeHealthCommandFailed  = "HealthCommandFailed"  // the health command exited non-zero
	CodeHealthCommandTimeout = "HealthCommandTimeout" // the health command ran past its timeout
	CodeHealthCommandNotRun  = "HealthCommandNotRun"  // TAT could not deliver or start the health command
	CodeHealthTimeout        = "HealthTimeout"        // the health command did not finish within Health.Timeout
)

// judgeAgent decides a task waiting for its TAT agent after the reset, from
// what DescribeInstances (in, present when inOK) and
// DescribeAutomationAgentStatus (recorded by observeAgent) showed at now.
// The agent is back when it is Online, the instance RUNNING, and its
// heartbeat newer than the first one seen since the check began: that
// heartbeat was sent after the reset had ended. Only the cloud's times are
// compared with each other, and the timeout on this runner's clock.
func judgeAgent(t *task, in lighthouse.Instance, inOK bool, now time.Time, lim healthLimits) verdict {
	h := &t.health
	running := !inOK || in.InstanceState == lighthouse.StateRunning
	if h.online && running && h.haveBaseline && h.heartbeat.After(h.baseline) {
		return verdict{act: actHealthy}
	}
	if now.Sub(h.started) > lim.timeout {
		seen := h.lastSeen
		if inOK && !running {
			seen = "instance " + in.InstanceState + ", " + seen
		}
		when := "after the reset"
		if h.baked {
			when = "after baking"
		}
		return verdict{act: actFinish, status: store.StatusUnhealthy, code: CodeAgentOffline,
			msg: fmt.Sprintf("reset succeeded, but the TAT agent was not Online with a new heartbeat within %s %s; last seen: %s", lim.timeout, when, orNone(seen))}
	}
	return verdict{}
}

// judgeCommand decides a task whose health command runs (or could not be
// started yet), from the invocation task it (present when ok) seen at now:
// exit code 0 passes; a non-zero exit, a command timeout or a command TAT
// could not run ends the job unhealthy, with the first lines of the
// output; so does the health timeout.
func judgeCommand(t *task, it lighthouse.InvocationTask, ok bool, now time.Time, lim healthLimits) verdict {
	unhealthy := func(code, format string, args ...any) verdict {
		return verdict{act: actFinish, status: store.StatusUnhealthy, code: code, msg: "reset succeeded, but " + fmt.Sprintf(format, args...)}
	}
	if ok && it.Done() {
		out, _ := it.TaskResult.DecodedOutput()
		switch it.TaskStatus {
		case lighthouse.TaskSuccess:
			if it.TaskResult.ExitCode == 0 {
				return verdict{act: actHealthy}
			}
			return unhealthy(CodeHealthCommandFailed, "the health command exited %d: %s", it.TaskResult.ExitCode, orNone(firstLines(out)))
		case lighthouse.TaskFailed:
			return unhealthy(CodeHealthCommandFailed, "the health command exited %d: %s", it.TaskResult.ExitCode, orNone(firstLines(out)))
		case lighthouse.TaskTimeout:
			return unhealthy(CodeHealthCommandTimeout, "the health command timed out: %s", orNone(firstLines(out)))
		}
		return unhealthy(CodeHealthCommandNotRun, "TAT could not run the health command (%s): %s", it.TaskStatus, orNone(it.ErrorInfo))
	}
	if now.Sub(t.health.started) > lim.timeout {
		if t.health.invocationID == "" {
			return unhealthy(CodeHealthTimeout, "the health command could not be started within %s: %s", lim.timeout, orNone(t.health.sendErr))
		}
		status := "not reported"
		if ok {
			status = it.TaskStatus
		}
		return unhealthy(CodeHealthTimeout, "the health command (invocation %s) did not finish within %s; task %s", t.health.invocationID, lim.timeout, status)
	}
	return verdict{}
}

// bakeDone reports whether a baking task has waited out bake at now.
func bakeDone(t *task, now time.Time, bake time.Duration) bool { return now.Sub(t.since) >= bake }
