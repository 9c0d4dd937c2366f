package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// Lifecycle hooks take each instance out of service before its reset and
// put it back after (the operator's drain: a load balancer, DNS, queue
// consumers, logs to copy off the disk about to be formatted).
//
//	pending ──before-hook──▶ drained ──gate … reset … health──▶ after-hook ──▶ outcome
//	                           └── not reset (cancel, window, budget, refused, preflight) ──▶ restore ──▶ outcome
//
// The phase (store.HookPhase) is recorded before each hook runs: a rerun
// after a crash runs a before-hook that may not have finished again before
// any reset, and an after-hook or restore that was due. Hooks must
// therefore be idempotent.
//
// A before-hook runs after the gate admits its job into the rollout (the
// instance counts in its wave and, with MaxInFlight, holds its in-flight
// slot from then until its after-hook ends) and before the intent and the
// rate slot, in a stage of its own of Hooks.Concurrency at once: the
// senders never wait for a hook.

// HookKind says where a hook runs.
type HookKind string

// Hook kinds.
const (
	// HookExec runs a local executable once per instance, with the
	// instance in its environment (see HookEnv).
	HookExec HookKind = "exec"
	// HookTAT runs a script on the instance through TAT RunCommand: the
	// before-hook on the old system, the after-hook on the new one.
	HookTAT HookKind = "tat"
)

// Hook is one lifecycle hook.
type Hook struct {
	Kind HookKind
	// Spec is the hook as the run's record keeps it (store.HookSettings):
	// exec:FILE or tat:FILE with the file's absolute path.
	Spec string
	// Path is the executable of HookExec.
	Path string
	// Script and CommandType are the script of HookTAT and how TAT runs it
	// (lighthouse.CommandShell, …).
	Script      []byte
	CommandType string
}

// HookFailure is what a failed before-hook does to its instance.
type HookFailure string

// Hook failure policies.
const (
	// HookAbandon: the instance is not reset; it ends skipped with
	// CodeBeforeHookFailed and counts against the failure budget (the
	// default). A failed after-hook ends the instance unhealthy with
	// CodeAfterHookFailed.
	HookAbandon HookFailure = "abandon"
	// HookContinue: the failure is logged and the reset goes on; a failed
	// after-hook leaves the outcome as it is.
	HookContinue HookFailure = "continue"
)

// Defaults of Hooks.
const (
	DefaultHookTimeout = 5 * time.Minute
	// DefaultHookConcurrency keeps the resets at the API's limit (10/s)
	// with before-hooks of up to 30s: a before-hook stage that drains
	// fewer instances per second than the rate would set the pace.
	DefaultHookConcurrency = 300
	// maxHookOutput bounds the output of an exec hook kept in memory: the
	// last bytes, from which the message's last lines come.
	maxHookOutput = 4 << 10
)

// Error codes of hook failures.
const (
	// CodeBeforeHookFailed is the code of a job skipped because its
	// before-hook failed or timed out (under HookAbandon). Such a job
	// counts against the failure budget (store.Job.Failure).
	CodeBeforeHookFailed = store.CodeBeforeHookFailed
	// CodeAfterHookFailed is the code of a job whose reset happened and
	// whose after-hook failed: it ends unhealthy.
	CodeAfterHookFailed = store.CodeAfterHookFailed
	// CodeRestoreHookFailed is the code of a job that was drained, not
	// reset, and whose restore failed: the instance may still be out of
	// service.
	CodeRestoreHookFailed = store.CodeRestoreHookFailed
)

// Hooks are the lifecycle hooks of a run. The zero value runs none.
type Hooks struct {
	Before, After *Hook
	// Timeout bounds one hook; default DefaultHookTimeout.
	Timeout time.Duration
	// Failure is the policy for failed hooks; default HookAbandon.
	Failure HookFailure
	// Concurrency is how many before-hooks run at once, and how many
	// after-hooks; default DefaultHookConcurrency.
	Concurrency int
	// Run names the run, for BATCHRESET_RUN.
	Run string
	// Secrets are values never kept from a hook's output (the API secret
	// key, a login password): each is replaced by "[redacted]".
	Secrets []string
	// Env, if set, is the environment exec hooks start from (os.Environ
	// without the variables of SecretEnv by default).
	Env []string
}

// SecretEnv are the variables of batchreset's own environment that an exec
// hook is not given.
var SecretEnv = []string{"TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN",
	"TENCENTCLOUD_TOKEN", "DATABASE_URL", "BATCHRESET_PASSWORD", "BATCHRESET_BASIC_AUTH"}

func (h Hooks) enabled() bool { return h.Before != nil || h.After != nil }

// Settings returns the hooks as the run's record keeps them, defaults
// applied: the zero value when there are none, whatever the other fields.
func (h Hooks) Settings() store.HookSettings {
	if !h.enabled() {
		return store.HookSettings{}
	}
	s := store.HookSettings{Timeout: h.timeout(), Failure: string(h.failure()), Concurrency: h.concurrency()}
	if h.Before != nil {
		s.Before = h.Before.Spec
	}
	if h.After != nil {
		s.After = h.After.Spec
	}
	return s
}

func (h Hooks) failure() HookFailure {
	if h.Failure == "" {
		return HookAbandon
	}
	return h.Failure
}

func (h Hooks) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return DefaultHookTimeout
}

func (h Hooks) concurrency() int {
	if h.Concurrency > 0 {
		return h.Concurrency
	}
	return DefaultHookConcurrency
}

// hookPhase names the phase a hook runs in, for BATCHRESET_PHASE.
type hookPhase string

const (
	phaseBefore  hookPhase = "before"
	phaseAfter   hookPhase = "after"
	phaseRestore hookPhase = "restore"
)

// hookResult is how one hook ended: err nil for exit 0; out is the last
// lines of its output, bounded and redacted.
type hookResult struct {
	err error
	out string
}

func (res hookResult) message() string {
	if res.out == "" {
		return res.err.Error()
	}
	return res.err.Error() + "; output: " + res.out
}

// needsBefore reports whether t must go through its before-hook before it
// may be sent: a before-hook is set and has not ended for the job.
func (r *Runner) needsBefore(t *task) bool {
	return r.cfg.Hooks.Before != nil && t.job.HookPhase != store.HookDrained
}

// outOfService reports whether t's instance may be out of service by a
// before-hook of this run (one that ended, or one a crash interrupted,
// which may have drained it), or since a restore that was due when the
// last process ended: its after-hook or restore is owed.
func outOfService(t *task) bool { return t.job.HookPhase.OutOfService() }

// drain runs the before-hooks of the jobs the gate admitted, Concurrency
// at once, and hands each drained job to the senders.
func (r *Runner) drain(ctx context.Context) error {
	for {
		var t *task
		select {
		case <-ctx.Done():
			return nil
		case <-r.finished:
			return nil
		case t = <-r.hookq:
		}
		r.drainOne(ctx, t)
	}
}

// drainOne runs t's before-hook (after a restore that a crash left due)
// and sends it on.
func (r *Runner) drainOne(ctx context.Context, t *task) {
	// A paused run takes no instance out of service: wait for resume.
	for {
		st, changed := r.adm.watch()
		if st.mode != admitPaused {
			break
		}
		select {
		case <-ctx.Done():
			r.release(t)
			return
		case <-changed:
		}
	}
	if r.slots != nil && !t.slot {
		// From its before-hook on, the instance counts as in flight.
		select {
		case r.slots <- struct{}{}:
			t.slot = true
		case <-ctx.Done():
			r.release(t)
			return
		}
	}
	if t.job.HookPhase == store.HookRestore {
		// A restore was due when the last process ended: the instance may
		// be out of service since an earlier drain; put it back first.
		if !r.runRestore(ctx, t, "") {
			return
		}
	}
	if r.adm.load().mode != admitOpen {
		r.admitDenied(ctx, t)
		return
	}
	t.hookStarted(store.HookBefore)
	if r.save(ctx, t) != nil {
		return
	}
	r.failpoint(FailpointBeforeHookStarted)
	res := r.runHook(ctx, t, r.cfg.Hooks.Before, phaseBefore, "")
	if ctx.Err() != nil {
		// Interrupted twice, or the run ended: the phase stays before,
		// and the next run drains the instance again before any reset.
		r.release(t)
		return
	}
	if res.err != nil {
		r.stats.HookFailures.Add(1)
		if r.cfg.Hooks.Failure != HookContinue {
			r.finish(ctx, t, store.StatusSkipped, CodeBeforeHookFailed, "not reset: before-hook failed: "+res.message())
			return
		}
		r.log.Warn("before-hook failed; resetting anyway (--hook-failure continue)", "instance_id", t.job.InstanceID, "err", res.message())
	}
	t.hookStarted(store.HookDrained)
	if r.save(ctx, t) != nil {
		return
	}
	r.failpoint(FailpointAfterBeforeHook)
	select {
	case r.readyq <- t:
	case <-ctx.Done():
		r.release(t)
	}
}

// toHooks hands t to the before-hook stage.
func (r *Runner) toHooks(ctx context.Context, t *task) {
	select {
	case r.hookq <- t:
	case <-ctx.Done():
		r.release(t)
	}
}

// afterHookDue reports whether t, about to end with st and code, owes its
// after-hook or restore: not when its before-hook failed (the instance was
// never taken out of service as far as the hook says).
func (r *Runner) afterHookDue(t *task, st store.Status, code string) bool {
	return r.cfg.Hooks.enabled() && outOfService(t) && !(st == store.StatusSkipped && code == CodeBeforeHookFailed)
}

// finishAfterHook runs t's after-hook (the reset was accepted) or restore
// (it was not), off the caller's goroutine, then records the outcome st.
func (r *Runner) finishAfterHook(ctx context.Context, t *task, st store.Status, code, msg string) {
	r.hookWG.Go(func() {
		select {
		case r.afterSem <- struct{}{}:
		case <-ctx.Done():
			r.release(t)
			return
		}
		defer func() { <-r.afterSem }()
		if notReset(t) {
			if !r.runRestore(ctx, t, st) {
				return
			}
			if t.job.ErrorCode == CodeRestoreHookFailed {
				code, msg = CodeRestoreHookFailed, joinMsg(msg, t.job.ErrorMessage)
			}
			r.finishNow(ctx, t, st, code, msg)
			return
		}
		if r.cfg.Hooks.After == nil {
			t.hookStarted(store.HookDone)
			r.finishNow(ctx, t, st, code, msg)
			return
		}
		if t.job.Status != store.StatusSubmitting {
			// A submitting job keeps its phase: recording it would ask
			// the store for an intent, and the rerun that reconciles the
			// job reaches its outcome, and this hook, again.
			t.hookStarted(store.HookAfter)
			if r.save(ctx, t) != nil {
				return
			}
		}
		r.failpoint(FailpointAfterHookStarted)
		res := r.runHook(ctx, t, r.cfg.Hooks.After, phaseAfter, st)
		if ctx.Err() != nil {
			r.release(t)
			return
		}
		t.hookStarted(store.HookDone)
		if res.err != nil {
			r.stats.HookFailures.Add(1)
			if r.cfg.Hooks.Failure != HookContinue && st == store.StatusSucceeded {
				st, code, msg = store.StatusUnhealthy, CodeAfterHookFailed, "reset succeeded; after-hook failed: "+res.message()
			} else {
				r.log.Warn("after-hook failed", "instance_id", t.job.InstanceID, "err", res.message())
				if st != store.StatusSucceeded {
					msg = joinMsg(msg, "after-hook failed: "+res.message())
				}
			}
		}
		r.finishNow(ctx, t, st, code, msg)
	})
}

// runRestore runs t's after-hook with phase restore, its phase recorded
// first, and records the phase after it (done, or none for a job that
// stays pending when outcome is ""). It reports false when t was handed
// elsewhere (released, dropped).
func (r *Runner) runRestore(ctx context.Context, t *task, outcome store.Status) bool {
	if r.cfg.Hooks.After == nil {
		t.hookStarted(store.HookNone)
		if outcome == "" {
			return r.save(ctx, t) == nil
		}
		return true
	}
	if t.job.Status != store.StatusSubmitting {
		t.hookStarted(store.HookRestore)
		if r.save(ctx, t) != nil {
			return false
		}
	}
	res := r.runHook(ctx, t, r.cfg.Hooks.After, phaseRestore, outcome)
	if ctx.Err() != nil {
		r.release(t)
		return false
	}
	if res.err != nil {
		r.stats.HookFailures.Add(1)
		r.log.Error("restore hook failed: the instance may still be out of service", "instance_id", t.job.InstanceID, "err", res.message())
		if outcome != "" {
			t.job.ErrorCode, t.job.ErrorMessage = CodeRestoreHookFailed, "restore hook failed: "+res.message()
		}
	}
	if outcome != "" {
		t.hookStarted(store.HookDone)
		return true
	}
	t.hookStarted(store.HookNone)
	return r.save(ctx, t) == nil
}

// notReset reports whether t's instance was certainly not reset by this
// run: nothing was sent or it was proven absent (pending), or the API
// refused the one call (no RequestID, no doubt).
func notReset(t *task) bool {
	return t.job.Status == store.StatusPending || t.job.RequestID == "" && !t.doubt
}

func joinMsg(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// releaseRestored puts t's instance back in service (a restore) before
// releasing it, off the caller's goroutine: t was drained and is handed
// back unsent (the first interrupt, a stop that releases).
func (r *Runner) releaseRestored(ctx context.Context, t *task) {
	r.hookWG.Go(func() {
		select {
		case r.afterSem <- struct{}{}:
		case <-ctx.Done():
			r.releaseNow(t)
			return
		}
		defer func() { <-r.afterSem }()
		if r.runRestore(ctx, t, "") {
			r.releaseNow(t)
		}
	})
}

// runHook runs h for t in phase; outcome is the job's outcome for an
// after-hook or restore ("" otherwise).
func (r *Runner) runHook(ctx context.Context, t *task, h *Hook, phase hookPhase, outcome store.Status) hookResult {
	start := time.Now()
	var res hookResult
	switch h.Kind {
	case HookTAT:
		res = r.tat.run(ctx, t, h, phase)
	default:
		res = r.execHook(ctx, t, h, phase, outcome)
	}
	res.out = r.redact(res.out)
	log := r.log.With("instance_id", t.job.InstanceID, "phase", phase, "took", time.Since(start).Round(time.Millisecond))
	if res.err != nil {
		log.Warn("hook failed", "err", res.message())
	} else {
		log.Debug("hook done")
	}
	return res
}

// HookEnv returns the environment variables an exec hook of phase gets for
// j, whose instance was seen as in (before its reset: prev; nil when this
// process did not see it before).
func HookEnv(run string, j store.Job, in, prev *lighthouse.Instance, phase string, outcome store.Status) []string {
	env := []string{
		"BATCHRESET_PHASE=" + phase,
		"BATCHRESET_RUN=" + run,
		"BATCHRESET_INSTANCE_ID=" + j.InstanceID,
		"BATCHRESET_REGION=" + j.Region,
		"BATCHRESET_BLUEPRINT_ID=" + j.BlueprintID,
	}
	var prevBP, private, public string
	if prev != nil {
		prevBP = prev.BlueprintID
	}
	if in == nil {
		in = prev
	}
	if in != nil {
		private, public = strings.Join(in.PrivateAddresses, " "), strings.Join(in.PublicAddresses, " ")
	}
	env = append(env, "BATCHRESET_PREVIOUS_BLUEPRINT_ID="+prevBP, "BATCHRESET_PRIVATE_IPS="+private, "BATCHRESET_PUBLIC_IPS="+public)
	if outcome != "" {
		env = append(env, "BATCHRESET_OUTCOME="+string(outcome))
	}
	return env
}

// execHook runs h.Path for t, within the hook timeout.
func (r *Runner) execHook(ctx context.Context, t *task, h *Hook, phase hookPhase, outcome store.Status) hookResult {
	hctx, cancel := context.WithTimeout(ctx, r.cfg.Hooks.timeout())
	defer cancel()
	cmd := exec.CommandContext(hctx, h.Path)
	cmd.Env = append(r.hookBaseEnv(), HookEnv(r.cfg.Hooks.Run, t.job, t.seen, t.prevSeen, string(phase), outcome)...)
	out := &tailBuffer{max: maxHookOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// A hook's children that keep its output open do not hold it past
	// its timeout.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err == nil {
		return hookResult{}
	}
	if errors.Is(hctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%s hook timed out after %s", phase, r.cfg.Hooks.timeout())
	} else {
		err = fmt.Errorf("%s hook %s: %v", phase, h.Path, err)
	}
	return hookResult{err: err, out: lastLines(out.bytes())}
}

// hookBaseEnv is the environment exec hooks start from.
func (r *Runner) hookBaseEnv() []string {
	if r.cfg.Hooks.Env != nil {
		return r.cfg.Hooks.Env
	}
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, name := range SecretEnv {
			if strings.HasPrefix(kv, name+"=") {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return env
}

// redact replaces every secret in s.
func (r *Runner) redact(s string) string {
	for _, sec := range r.cfg.Hooks.Secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// lastLines returns the last lines of a hook's output for a message: at
// most maxCommandLines lines and maxCommandOutput bytes, as firstLines.
func lastLines(out []byte) string {
	lines := strings.Split(strings.TrimSpace(strings.ToValidUTF8(string(out), "?")), "\n")
	if len(lines) > maxCommandLines {
		lines = lines[len(lines)-maxCommandLines:]
	}
	s := firstLines([]byte(strings.Join(lines, "\n")))
	return s
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf)
}
