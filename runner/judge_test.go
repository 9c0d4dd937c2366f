package runner

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// TestJudge is the decision table of one DescribeInstances observation for a
// job in each kind, with explicit times: every clock read is t0 plus the
// case's offset, and the cloud's own timestamps are skewed by up to ±300s to
// show that no decision rests on them.
func TestJudge(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	lim := limits{settle: 90 * time.Second, resetTimeout: 30 * time.Minute, maxAttempts: 5}
	const (
		prev    = "req-prev"    // the instance's operation before our first call
		ours    = "req-ours"    // the RequestId the cloud gave our call
		foreign = "req-foreign" // a reset of another process
	)
	op := func(action, state, reqID string, skew time.Duration) lighthouse.Instance {
		return lighthouse.Instance{
			InstanceID: "lhins-aaaaaaaa", InstanceState: lighthouse.StateRunning,
			LatestOperation: action, LatestOperationState: state, LatestOperationRequestID: reqID,
			LatestOperationStartedTime: t0.Add(skew).Format(time.RFC3339),
		}
	}
	reset := func(state, reqID string, skew time.Duration) lighthouse.Instance {
		return op(lighthouse.ActionResetInstance, state, reqID, skew)
	}
	stopping := func(in lighthouse.Instance) lighthouse.Instance { in.InstanceState = "STOPPING"; return in }
	withoutStart := func(in lighthouse.Instance) lighthouse.Instance { in.LatestOperationStartedTime = ""; return in }
	withBlueprint := func(in lighthouse.Instance, bp string) lighthouse.Instance { in.BlueprintID = bp; return in }
	noOp := lighthouse.Instance{InstanceID: "lhins-aaaaaaaa", InstanceState: lighthouse.StateRunning}
	prevOp := op("StopInstances", lighthouse.OperationSuccess, prev, -24*time.Hour)
	busyErr := &lighthouse.APIError{Code: "UnsupportedOperation.LatestOperationUnfinished", Class: lighthouse.ClassBusy}

	type want struct {
		act    act
		status store.Status
		code   string
		latest string
		req    string
	}
	keep := want{act: actKeep}
	for _, tc := range []struct {
		name string
		kind taskKind
		edit func(*task) // beyond the defaults below
		in   lighthouse.Instance
		ok   bool
		at   time.Duration // now - t0; the call left at t0, the wait began at t0
		want want
	}{
		// Tracking: the cloud accepted our call as ours.
		{"TrackingOursSucceeded", kindTracking, nil, reset(lighthouse.OperationSuccess, ours, 0), true, time.Minute, want{act: actFinish, status: store.StatusSucceeded}},
		{"TrackingOursSucceededCloudClockBehind", kindTracking, nil, reset(lighthouse.OperationSuccess, ours, -300*time.Second), true, time.Minute, want{act: actFinish, status: store.StatusSucceeded}},
		{"TrackingOursSucceededCloudClockAhead", kindTracking, nil, reset(lighthouse.OperationSuccess, ours, 300*time.Second), true, time.Minute, want{act: actFinish, status: store.StatusSucceeded}},
		{"TrackingOursSucceededOtherImage", kindTracking, func(t *task) { t.job.BlueprintID = "lhbp-wanted00" },
			withBlueprint(reset(lighthouse.OperationSuccess, ours, 0), "lhbp-other000"), true, time.Minute, want{act: actFinish, status: store.StatusFailed, code: "BlueprintMismatch"}},
		{"TrackingOursFailed", kindTracking, nil, reset(lighthouse.OperationFailed, ours, 0), true, time.Minute, want{act: actFinish, status: store.StatusFailed, code: "OperationFailed"}},
		{"TrackingOursRunning", kindTracking, nil, reset(lighthouse.OperationOperating, ours, 0), true, time.Minute, keep},
		{"TrackingPreviousShownBeforeTimeout", kindTracking, nil, prevOp, true, time.Minute, keep},
		{"TrackingPreviousShownAfterSettle", kindTracking, nil, prevOp, true, 10 * time.Minute, keep},
		{"TrackingPreviousShownAfterTimeout", kindTracking, nil, prevOp, true, 31 * time.Minute, want{act: actFinish, status: store.StatusUnknown, code: "ResetTimeout"}},
		{"TrackingStaleResetOfPreviousRun", kindTracking, nil, reset(lighthouse.OperationSuccess, prev, -48*time.Hour), true, time.Minute, keep},
		{"TrackingForeignAfterOurs", kindTracking, func(t *task) { t.sawOurs, t.foreign = true, foreign }, reset(lighthouse.OperationOperating, foreign, 0), true, time.Minute, want{act: actFinish, status: store.StatusUnknown, code: CodeResetTwice}},
		{"TrackingForeignOursNotSeenYet", kindTracking, func(t *task) { t.foreign = foreign }, reset(lighthouse.OperationSuccess, foreign, 0), true, time.Minute, keep},
		{"TrackingForeignOursNeverShownAfterSettle", kindTracking, func(t *task) { t.foreign = foreign }, reset(lighthouse.OperationSuccess, foreign, 0), true, 2 * time.Minute, want{act: actFinish, status: store.StatusUnknown, code: CodeResetTwice}},
		{"TrackingForeignBeforeOursFinished", kindTracking, func(t *task) { t.foreign = foreign }, reset(lighthouse.OperationSuccess, ours, 0), true, time.Minute, want{act: actFinish, status: store.StatusUnknown, code: CodeResetTwice}},
		{"TrackingInstanceMissing", kindTracking, nil, lighthouse.Instance{}, false, time.Minute, keep},
		{"TrackingInstanceMissingAfterTimeout", kindTracking, nil, lighthouse.Instance{}, false, 31 * time.Minute, want{act: actFinish, status: store.StatusUnknown, code: "ResetTimeout"}},
		{"TrackingNoOperationFields", kindTracking, nil, noOp, true, time.Minute, keep},

		// In doubt: a call may have landed; its RequestId is unknown.
		{"InDoubtOursLanded", kindInDoubt, nil, reset(lighthouse.OperationOperating, ours, 0), true, time.Second, want{act: actAdopt, req: ours}},
		{"InDoubtOursLandedCloudClockBehind", kindInDoubt, nil, reset(lighthouse.OperationSuccess, ours, -300*time.Second), true, time.Second, want{act: actAdopt, req: ours}},
		{"InDoubtOursLandedCloudClockAhead", kindInDoubt, nil, reset(lighthouse.OperationSuccess, ours, 300*time.Second), true, 5 * time.Minute, want{act: actAdopt, req: ours}},
		{"InDoubtForeignReset", kindInDoubt, nil, reset(lighthouse.OperationSuccess, foreign, 0), true, time.Second, want{act: actAdopt, req: foreign}},
		// A reset found after a call in doubt is adopted only while the
		// evidence can be ours: not hours after a crash.
		{"InDoubtResumedForeignResetHoursLater", kindInDoubt, nil, reset(lighthouse.OperationSuccess, foreign, 2*time.Hour), true, 2*time.Hour + time.Minute, want{act: actFinish, status: store.StatusUnknown, code: CodeNotProven}},
		{"InDoubtResumedForeignResetBeforeIntent", kindInDoubt, nil, reset(lighthouse.OperationSuccess, foreign, -time.Hour), true, time.Minute, want{act: actFinish, status: store.StatusUnknown, code: CodeNotProven}},
		{"InDoubtResumedNoStartTimeLongAfter", kindInDoubt, nil, withoutStart(reset(lighthouse.OperationSuccess, foreign, 0)), true, 2 * time.Hour, want{act: actFinish, status: store.StatusUnknown, code: CodeNotProven}},
		{"InDoubtResumedNoStartTimeSoon", kindInDoubt, nil, withoutStart(reset(lighthouse.OperationSuccess, ours, 0)), true, 30 * time.Second, want{act: actAdopt, req: ours}},
		{"InDoubtResumedNoIntentTime", kindInDoubt, func(t *task) { t.job.IntentAt = time.Time{} }, reset(lighthouse.OperationSuccess, foreign, 0), true, time.Second, want{act: actFinish, status: store.StatusUnknown, code: CodeNotProven}},
		{"InDoubtSentHereSeenWithinSettle", kindInDoubt, func(t *task) { t.sentHere = true }, withoutStart(reset(lighthouse.OperationSuccess, ours, 0)), true, 80 * time.Second, want{act: actAdopt, req: ours}},
		{"InDoubtSentHereSeenLate", kindInDoubt, func(t *task) { t.sentHere = true }, withoutStart(reset(lighthouse.OperationSuccess, foreign, 0)), true, 3 * time.Minute, want{act: actFinish, status: store.StatusUnknown, code: CodeNotProven}},
		{"InDoubtPreviousShownBeforeSettle", kindInDoubt, nil, prevOp, true, 89 * time.Second, keep},
		{"InDoubtPreviousShownAfterSettle", kindInDoubt, nil, prevOp, true, 90 * time.Second, want{act: actResend, latest: prev}},
		{"InDoubtPreviousShownAfterSettleCloudClockAhead", kindInDoubt, nil, op("StopInstances", lighthouse.OperationSuccess, prev, 300*time.Second), true, 90 * time.Second, want{act: actResend, latest: prev}},
		{"InDoubtPreviousResetShownAfterSettle", kindInDoubt, nil, reset(lighthouse.OperationSuccess, prev, -300*time.Second), true, 2 * time.Minute, want{act: actResend, latest: prev}},
		{"InDoubtPreviousShownAfterSettleNoAttemptsLeft", kindInDoubt, func(t *task) { t.job.Attempts = 5 }, prevOp, true, 2 * time.Minute, want{act: actFinish, status: store.StatusFailed}},
		{"InDoubtPreviousShownButAPIBusy", kindInDoubt, func(t *task) { t.job.Attempts, t.lastErr = 5, busyErr }, prevOp, true, 2 * time.Minute, want{act: actFinish, status: store.StatusUnknown}},
		{"InDoubtPreviousStillOperating", kindInDoubt, nil, op("StopInstances", lighthouse.OperationOperating, prev, 0), true, 5 * time.Minute, keep},
		{"InDoubtPreviousShownWhileStopping", kindInDoubt, nil, stopping(prevOp), true, 5 * time.Minute, keep},
		{"InDoubtOtherOperationSinceOurs", kindInDoubt, nil, op("StartInstances", lighthouse.OperationSuccess, "req-start", 0), true, 5 * time.Minute, keep},
		{"InDoubtOtherOperationAfterTimeout", kindInDoubt, nil, op("StartInstances", lighthouse.OperationSuccess, "req-start", 0), true, 32 * time.Minute, want{act: actFinish, status: store.StatusUnknown}},
		{"InDoubtNoOperationFields", kindInDoubt, nil, noOp, true, 5 * time.Minute, keep},
		{"InDoubtNoOperationFieldsAfterTimeout", kindInDoubt, nil, noOp, true, 32 * time.Minute, want{act: actFinish, status: store.StatusUnknown}},
		{"InDoubtInstanceMissingOnce", kindInDoubt, func(t *task) { t.misses = 1 }, lighthouse.Instance{}, false, 5 * time.Minute, keep},
		{"InDoubtInstanceGoneBeforeSettle", kindInDoubt, func(t *task) { t.misses = 3 }, lighthouse.Instance{}, false, time.Minute, keep},
		{"InDoubtInstanceGone", kindInDoubt, func(t *task) { t.misses = 3 }, lighthouse.Instance{}, false, 2 * time.Minute, want{act: actResend}},
		{"InDoubtInstanceGoneNoAttemptsLeft", kindInDoubt, func(t *task) { t.misses, t.job.Attempts = 3, 5 }, lighthouse.Instance{}, false, 2 * time.Minute, want{act: actFinish, status: store.StatusFailed, code: "InstanceNotFound"}},

		// Waiting for an idle instance: nothing of ours has landed.
		{"WaitIdleStillOperating", kindWaitIdle, nil, op("StopInstances", lighthouse.OperationOperating, prev, 0), true, time.Minute, keep},
		{"WaitIdleStopping", kindWaitIdle, nil, stopping(prevOp), true, time.Minute, keep},
		{"WaitIdleBusyTooLong", kindWaitIdle, nil, op("StopInstances", lighthouse.OperationOperating, prev, 0), true, 31 * time.Minute, want{act: actFinish, status: store.StatusFailed, code: "InstanceBusy"}},
		{"WaitIdlePreviousShown", kindWaitIdle, nil, prevOp, true, time.Minute, want{act: actResend, latest: prev}},
		{"WaitIdleOtherOperationEnded", kindWaitIdle, nil, op("StartInstances", lighthouse.OperationSuccess, "req-start", 0), true, time.Minute, want{act: actResend, latest: "req-start"}},
		{"WaitIdleForeignReset", kindWaitIdle, nil, reset(lighthouse.OperationSuccess, foreign, 0), true, time.Minute, want{act: actFinish, status: store.StatusSkipped, code: CodeResetByOther}},
		{"WaitIdleForeignResetCloudClockBehind", kindWaitIdle, nil, reset(lighthouse.OperationSuccess, foreign, -300*time.Second), true, time.Minute, want{act: actFinish, status: store.StatusSkipped, code: CodeResetByOther}},
		{"WaitIdleForeignResetFirstSeenBusy", kindWaitIdle, func(t *task) { t.job.PrevRequestID = "" }, reset(lighthouse.OperationSuccess, foreign, 0), true, time.Minute, want{act: actFinish, status: store.StatusSkipped, code: CodeResetByOther}},
		{"WaitIdleResetAfterOursInDoubt", kindWaitIdle, func(t *task) { t.doubt = true }, reset(lighthouse.OperationSuccess, foreign, 0), true, time.Minute, want{act: actAdopt, req: foreign}},
		{"WaitIdleResetLongAfterOursInDoubt", kindWaitIdle, func(t *task) { t.doubt = true }, reset(lighthouse.OperationSuccess, foreign, 3*time.Hour), true, 3 * time.Hour, want{act: actFinish, status: store.StatusUnknown, code: CodeNotProven}},
		{"WaitIdleInstanceMissing", kindWaitIdle, nil, lighthouse.Instance{}, false, time.Minute, want{act: actResend}},
		{"WaitIdleNoOperationFields", kindWaitIdle, nil, noOp, true, time.Minute, want{act: actResend}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := &task{
				job:  store.Job{InstanceID: "lhins-aaaaaaaa", Region: "ap-guangzhou", PrevRequestID: prev, Attempts: 1, IntentAt: t0},
				kind: tc.kind, lastSend: t0, since: t0, busySince: t0,
			}
			if tc.kind == kindTracking {
				tk.job.RequestID = ours
				tk.job.Status = store.StatusSubmitted
			}
			if tc.kind == kindInDoubt {
				tk.job.Status, tk.doubt = store.StatusSubmitting, true
			}
			if tc.edit != nil {
				tc.edit(tk)
			}
			before := *tk
			before.job.KeyIDs = slices.Clone(tk.job.KeyIDs)
			v := judge(tk, tc.in, tc.ok, t0.Add(tc.at), lim)
			got := want{act: v.act, status: v.status, code: v.code, latest: v.latest, req: v.requestID}
			if tc.want.code == "" && tc.want.act == actFinish && tc.want.status != store.StatusSucceeded {
				got.code = "" // the code is the call's last error here; the status says it
			}
			if got != tc.want {
				t.Errorf("judge(%s, %s, ok=%v, t0+%s) = %+v (%q), want %+v", tc.kind, describeOp(tc.in), tc.ok, tc.at, got, v.msg, tc.want)
			}
			if v.act == actFinish && v.status != store.StatusSucceeded && v.msg == "" {
				t.Errorf("verdict %s has no message", v.status)
			}
			if !reflect.DeepEqual(*tk, before) {
				t.Errorf("judge changed the task: %+v, was %+v", *tk, before)
			}
		})
	}
}

// TestObserve checks what an observation records before judge reads it: a
// reset of another process is noted only while ours is tracked.
func TestObserve(t *testing.T) {
	t.Parallel()
	in := lighthouse.Instance{LatestOperation: lighthouse.ActionResetInstance, LatestOperationRequestID: "req-foreign", LatestOperationState: lighthouse.OperationSuccess}
	for _, tc := range []struct {
		kind        taskKind
		wantForeign bool
	}{{kindTracking, true}, {kindInDoubt, false}, {kindWaitIdle, false}} {
		tk := &task{kind: tc.kind, job: store.Job{PrevRequestID: "req-prev", RequestID: "req-ours"}, misses: 2}
		tk.observe(in, true)
		if (tk.foreign != "") != tc.wantForeign || tk.misses != 0 || tk.sawOurs {
			t.Errorf("%s: observe() left foreign %q, misses %d, sawOurs %v; want foreign set %v, misses 0, sawOurs false", tc.kind, tk.foreign, tk.misses, tk.sawOurs, tc.wantForeign)
		}
		tk.observe(lighthouse.Instance{}, false)
		if tk.misses != 1 {
			t.Errorf("%s: after a miss, misses = %d, want 1", tc.kind, tk.misses)
		}
	}
	tk := &task{kind: kindTracking, job: store.Job{PrevRequestID: "req-prev", RequestID: "req-ours"}}
	tk.observe(lighthouse.Instance{LatestOperation: lighthouse.ActionResetInstance, LatestOperationRequestID: "req-ours"}, true)
	if !tk.sawOurs || tk.foreign != "" {
		t.Errorf("observe(ours) left sawOurs %v, foreign %q; want true, none", tk.sawOurs, tk.foreign)
	}
}
