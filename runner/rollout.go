package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// Rollout holds the fleet rollout controls: preflight skips, the failure
// budget and the maintenance window. The zero value starts every job.
type Rollout struct {
	// Preflight skips jobs that certainly cannot be reset (see Check),
	// judged from DescribeInstances and DescribeBlueprints when claimed.
	Preflight bool
	// MaxFailures is the failure budget: once more than MaxFailures jobs have
	// ended failed or unknown, no new reset starts. Negative means no budget.
	MaxFailures int
	// WindowEnd is when the maintenance window closes: a reset starts only
	// if it is expected to finish by then. Zero means no window.
	WindowEnd time.Time
	// ExpectedDuration is the reset duration assumed before any reset of
	// this run has finished; default 5m.
	ExpectedDuration time.Duration

	mu       sync.Mutex
	failures int
}

func (ro *Rollout) start(r *Runner) {
	if ro.ExpectedDuration <= 0 {
		ro.ExpectedDuration = 5 * time.Minute
	}
}

// resettableState reports whether state is RUNNING or STOPPED, or a
// transitional state that will become one of them.
func resettableState(state string) bool {
	switch state {
	case lighthouse.StateRunning, lighthouse.StateStopped, "", "PENDING", "STARTING", "STOPPING", "REBOOTING":
		return true
	}
	return false
}

// admit returns why no new reset may start now, or "". It also makes the
// runner stop starting resets when the reason is final.
func (ro *Rollout) admit(ctx context.Context, r *Runner) string {
	ro.mu.Lock()
	failures := ro.failures
	ro.mu.Unlock()
	if ro.MaxFailures >= 0 && failures > ro.MaxFailures {
		why := fmt.Sprintf("failure budget exceeded (%d failed, budget %d)", failures, ro.MaxFailures)
		r.stopStarting(why)
		return why
	}
	if !ro.WindowEnd.IsZero() {
		expect := ro.ExpectedDuration
		if d := r.stats.Durations(); len(d) > 0 {
			expect = Percentile(d, 95)
		}
		if time.Now().Add(expect).After(ro.WindowEnd) {
			why := fmt.Sprintf("window closed: a reset started now is expected to take %s and would end after %s", expect.Round(time.Second), ro.WindowEnd.Format(time.RFC3339))
			r.stopStarting(why)
			return why
		}
	}
	return ""
}

// finished counts an outcome against the failure budget.
func (ro *Rollout) finished(r *Runner, j store.Job) {
	if j.Status != store.StatusFailed && j.Status != store.StatusUnknown {
		return
	}
	ro.mu.Lock()
	ro.failures++
	over := ro.MaxFailures >= 0 && ro.failures > ro.MaxFailures
	n := ro.failures
	ro.mu.Unlock()
	if over {
		r.stopStarting(fmt.Sprintf("failure budget exceeded (%d failed, budget %d)", n, ro.MaxFailures))
	}
}
