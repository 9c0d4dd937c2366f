package runner

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batchreset/batchreset/store"
)

// Rollout holds the fleet rollout controls: preflight skips, canary and
// waves, the failure budget and the maintenance window. The zero value
// starts every job at once with no budget; set MaxFailures to -1 for "no
// budget" explicitly.
//
// Waves admit jobs in batches: a wave's resets must all finish (and, with
// Config.Health, pass their health check or end unhealthy) before the next
// wave starts. The first wave is a canary when Canary is set: the rest
// starts only if every canary reset succeeded. The failure budget applies
// throughout: as soon as more than MaxFailures jobs have failed, ended
// unknown or ended unhealthy, no new reset starts and the remaining jobs
// are skipped.
//
// With a store that shares the run's rollout (SharedRollout: the Postgres
// store), the canary, the waves and the budget are the run's, kept in the
// store: the first runner's plan holds for every runner, a job is admitted
// into a wave once whichever runner sends it, a wave has drained when all
// its jobs are terminal, and the failures of every runner count against one
// budget. An admission belongs to its job: a job admitted but never sent
// that its runner hands back (or leaves behind, dying) gives its place in
// the wave to another, so that the wave can drain. The window is each
// runner's own.
type Rollout struct {
	// Preflight skips jobs that certainly cannot be reset (see Check),
	// judged from DescribeInstances and DescribeBlueprints when claimed.
	Preflight bool
	// Canary resets this many instances first and starts the rest only if
	// all of them succeed; 0 means no canary.
	Canary int
	// Waves are the sizes of successive batches, in jobs; the last repeats
	// (Ansible's serial). Empty means one wave of everything. See ParseWaves.
	Waves []int
	// PauseBetweenWaves is waited after a wave finishes, before the next.
	PauseBetweenWaves time.Duration
	// MaxFailures is the failure budget: once more than MaxFailures jobs
	// have ended failed, unknown or unhealthy, no new reset starts.
	// Negative: no budget.
	MaxFailures int
	// WindowEnd is when the maintenance window closes: a reset starts only
	// if it is expected to finish by then. Zero means no window.
	WindowEnd time.Time
	// ExpectedDuration is the reset duration assumed before any reset of
	// this run has finished; default 5m.
	ExpectedDuration time.Duration
	// BudgetNote explains a rounding of MaxFailures the operator should know
	// about (see ResolveBudget); the runner only reports it.
	BudgetNote string
	// OnFailure is what an exceeded failure budget does; "" is FailStop.
	// With a store that shares the rollout, the run's (as its first runner
	// recorded it) holds for every runner.
	OnFailure OnFailure
	// Approve makes the run wait for a person (a pause in the run's record,
	// see Pauser) after the canary or after every wave; "" never waits.
	Approve Approve
	// Prior counts the jobs of the run that its earlier processes sent (a
	// CSV run resumed): the waves go on from where they were, so that the
	// canary is not taken again nor an approval asked twice. The Postgres
	// store keeps the run's waves itself.
	Prior int

	mu       sync.Mutex
	failures int
	forgiven int // failures a person resumed the run past (OnFailure pause)
	approved int // the highest wave, from 1, a person approved
	awaiting int // the wave whose approval a pause waits for, kept here when the store keeps no pauses
	admitted int // jobs admitted so far
	settled  int // admitted jobs that have left the runner
	waveEnd  int // admissions allowed before the current wave must drain
	wave     int // index of the current wave (0: canary when Canary > 0)
	changed  chan struct{}

	// The pause between waves, as the runner's gate keeps it (only the
	// gate admits; mu guards them for Resting): restWave is the wave,
	// counted from 1, whose end it follows (0: none yet), restUntil when
	// the next may open.
	restWave  int
	restUntil time.Time

	shared SharedRollout // the run's rollout, kept by the store; nil: this process's
}

// OnFailure says what a run does once its failure budget is exceeded.
type OnFailure string

// What an exceeded failure budget does. Every one stops new resets; those
// in flight are tracked to their end.
const (
	// FailStop skips the jobs not yet sent; the run ends.
	FailStop OnFailure = "stop"
	// FailPause pauses the run in its record (see Pauser) until a person
	// resumes it (the failures so far are then forgiven: the budget counts
	// anew) or cancels it; the jobs not yet sent stay pending meanwhile.
	FailPause OnFailure = "pause"
	// FailRollback stops as FailStop does, and Summary.Rollback asks the
	// command to reset every instance the run reset back to its previous
	// blueprint (see PlanRollback).
	FailRollback OnFailure = "rollback"
)

// ParseOnFailure parses "stop", "pause" or "rollback".
func ParseOnFailure(s string) (OnFailure, error) {
	switch f := OnFailure(s); f {
	case FailStop, FailPause, FailRollback:
		return f, nil
	}
	return "", fmt.Errorf("%q: want stop, pause or rollback", s)
}

// Approve says which waves of a run wait for a person before they start.
type Approve string

// Approvals.
const (
	ApproveNone     Approve = ""
	ApproveCanary   Approve = "canary"    // the wave after the canary
	ApproveEachWave Approve = "each-wave" // every wave after the first
)

// ParseApprove parses "canary" or "each-wave" ("" for none).
func ParseApprove(s string) (Approve, error) {
	switch a := Approve(s); a {
	case ApproveNone, ApproveCanary, ApproveEachWave:
		return a, nil
	}
	return "", fmt.Errorf("%q: want canary or each-wave", s)
}

// SharedRollout is implemented by a store whose runners share one run (the
// Postgres store): it keeps the run's rollout for all of them.
type SharedRollout interface {
	// RolloutJoin records plan unless a runner already did, and returns the
	// run's.
	RolloutJoin(ctx context.Context, plan store.RolloutPlan) (store.RolloutPlan, error)
	// RolloutAdmit admits j into the current wave if it has room, the
	// budget holds and nothing stopped the run.
	RolloutAdmit(ctx context.Context, j *store.Job) (store.Admission, error)
	// RolloutWave reports the current wave and how far wave has come.
	RolloutWave(ctx context.Context, wave int) (store.WaveState, error)
	// RolloutAdvance opens wave+1 with size more jobs, if wave is current.
	RolloutAdvance(ctx context.Context, wave, size int) error
	// RolloutFailed counts a failure and returns the run's count.
	RolloutFailed(ctx context.Context) (int, error)
	// RolloutStop stops new resets for every runner of the run.
	RolloutStop(ctx context.Context, why string) error
}

// share makes the Rollout the run's, kept by s: the run's plan, as the
// first runner recorded it, replaces this one's.
func (ro *Rollout) share(ctx context.Context, s SharedRollout) error {
	plan, err := s.RolloutJoin(ctx, store.RolloutPlan{Canary: ro.Canary, Waves: ro.Waves, MaxFailures: ro.MaxFailures,
		FirstWave: ro.waveSize(0), OnFailure: string(ro.onFailure()), Approve: string(ro.Approve)})
	if err != nil {
		return err
	}
	ro.Adopt(plan)
	ro.mu.Lock()
	ro.shared = s
	ro.mu.Unlock()
	return nil
}

// Adopt makes plan, the run's rollout as its record keeps it, this
// Rollout's canary, waves, budget, OnFailure and Approve, as a runner of a
// shared rollout does when it joins the run; the banner applies it first
// so that it shows what the runner will do. A BudgetNote about a budget
// the plan replaces is dropped.
func (ro *Rollout) Adopt(plan store.RolloutPlan) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if plan.MaxFailures != ro.MaxFailures {
		ro.BudgetNote = ""
	}
	ro.Canary, ro.Waves, ro.MaxFailures = plan.Canary, plan.Waves, plan.MaxFailures
	ro.OnFailure, ro.Approve = OnFailure(plan.OnFailure), Approve(plan.Approve)
}

// gated reports whether the rollout holds jobs back: a canary, waves or a
// budget. One that holds nothing back needs no shared state.
func (ro *Rollout) gated() bool {
	return ro.Canary > 0 || len(ro.Waves) > 0 || ro.MaxFailures >= 0
}

// onFailure is OnFailure, "" read as FailStop.
func (ro *Rollout) onFailure() OnFailure {
	if ro.OnFailure == "" {
		return FailStop
	}
	return ro.OnFailure
}

// ParseWaves parses a wave list such as "1,5,10%,100%" for a run of total
// jobs: counts are taken as they are, percentages of total are rounded up
// (a wave is never empty). The last size repeats.
func ParseWaves(s string, total int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if p, ok := strings.CutSuffix(f, "%"); ok {
			pct, err := strconv.ParseFloat(p, 64)
			if err != nil || pct <= 0 || pct > 100 {
				return nil, fmt.Errorf("wave %q: want a percentage in (0%%, 100%%]", f)
			}
			out = append(out, max(1, int(math.Ceil(pct*float64(total)/100))))
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("wave %q: want a positive count or a percentage", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ResolveBudget turns "N" or "P%" into the failure budget for a run of total
// jobs. A percentage is rounded down, so the budget never exceeds what was
// asked; note explains a rounding the operator should know about (a budget
// of 0, which stops at the first failure, or one that can never trip).
func ResolveBudget(s string, total int) (budget int, note string, err error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		pct, err := strconv.ParseFloat(p, 64)
		if err != nil || pct < 0 || pct > 100 {
			return 0, "", fmt.Errorf("%q is not a percentage between 0%% and 100%%", s)
		}
		budget = int(math.Floor(pct * float64(total) / 100))
		switch {
		case pct > 0 && budget == 0:
			note = fmt.Sprintf("%s of %d instances rounds down to 0: the first failure stops new resets", s, total)
		case pct < 100 && budget >= total:
			note = fmt.Sprintf("%s of %d instances is %d: the budget can never be exceeded", s, total, budget)
		}
		return budget, note, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, "", fmt.Errorf("%q is neither a count nor a percentage", s)
	}
	if total > 0 && n >= total {
		note = fmt.Sprintf("a budget of %d with %d instances can never be exceeded", n, total)
	}
	return n, note, nil
}

// WavePlan returns the wave, counted from 0 (the canary, when there is
// one), in which the run starts each of n jobs, given in the order the run
// starts them: wave i takes the next jobs up to its size, as the runner's
// gate admits them. Without a canary or waves every job is in wave 0; with
// a canary and no waves, the rest are wave 1. plan, the summary and the
// status page label jobs with it, so that they show the waves the runner
// will run.
func (ro *Rollout) WavePlan(n int) []int {
	out := make([]int, n)
	wave, end := 0, ro.waveSize(0)
	for k := range out {
		for k >= end {
			wave++
			end += ro.waveSize(wave)
		}
		out[k] = wave
	}
	return out
}

// waveSize returns the size of wave i.
func (ro *Rollout) waveSize(i int) int {
	return store.RolloutPlan{Canary: ro.Canary, Waves: ro.Waves}.WaveSize(i)
}

// start readies the rollout for its runners. The runners of one Group
// share one Rollout (see Group), so only the first start counts.
func (ro *Rollout) start() {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.changed != nil {
		return
	}
	if ro.ExpectedDuration <= 0 {
		ro.ExpectedDuration = 5 * time.Minute
	}
	ro.changed = make(chan struct{}, 1)
	ro.waveEnd = ro.waveSize(0)
	// Go on from the wave the Prior jobs reached: the first whose end is
	// not before them. A wave they filled has drained (its jobs ended, or
	// are tracked again as they were sent), and the next one opens as any
	// would: after its approval.
	for ro.waveEnd < ro.Prior {
		ro.wave++
		ro.waveEnd += ro.waveSize(ro.wave)
	}
	ro.admitted, ro.settled = ro.Prior, ro.Prior
}

// admit waits until t may start under the waves and returns "", or returns
// why none may start (and makes the runner stop starting them). Only the
// runner's gate calls it, for one job at a time, so that no sender waits on
// a wave. It admits nothing while the run is paused, and each of its waits
// (a wave draining, the pause between waves, a resume) ends as soon as the
// operator's control or an interrupt changes the runner's state: a halted
// or cancelled run returns at once.
func (ro *Rollout) admit(ctx context.Context, r *Runner, t *task) string {
	for {
		st, control := r.adm.watch()
		switch st.mode {
		case admitOpen:
		case admitPaused:
			// Waits for a person: `resume`, `cancel` or an interrupt.
			select {
			case <-ctx.Done():
				return "run stopped"
			case <-control:
			}
			continue
		default:
			return "run stopped" // admitDenied tells why
		}
		if why := ro.check(ctx, r); why != "" {
			return why
		}
		if r.adm.load().mode != admitOpen {
			continue // the budget paused the run
		}
		var w waveGate
		if ro.shared != nil {
			w = ro.tryShared(ctx, r, t)
		} else {
			w = ro.tryLocal()
		}
		var wait time.Duration
		switch {
		case w.stopped != "":
			r.stopStarting(w.stopped)
			return w.stopped
		case w.paused != "":
			r.paused(w.paused, 0) // the store paused the run for every runner: its budget
			continue
		case w.admitted:
			return ""
		case w.moved:
			continue
		case !w.drained:
			// The wave's resets, whoever sent them, are not all finished.
			wait = r.cfg.PollInterval
		case ro.Canary > 0 && w.wave == 0 && w.failures > 0:
			why := fmt.Sprintf("canary failed: %d of %d canary resets did not succeed", w.failures, ro.Canary)
			if ro.shared != nil {
				if err := ro.shared.RolloutStop(ctx, why); err != nil {
					r.log.Warn("rollout: stop the run", "err", err)
				}
			}
			r.stopStarting(why)
			return why
		case ro.awaitsApproval(w.wave):
			next := w.wave + 2
			ro.mu.Lock()
			ro.awaiting = next
			ro.mu.Unlock()
			r.log.Info("wave finished; the next waits for a person's approval", "wave", w.wave+1, "next", next)
			r.holdRun(ctx, fmt.Sprintf("approval of wave %d", next), next)
			continue
		default:
			ro.mu.Lock()
			rested := ro.restWave == w.wave+1
			if !rested {
				ro.restWave, ro.restUntil = w.wave+1, time.Now().Add(ro.PauseBetweenWaves)
			}
			until := ro.restUntil
			ro.mu.Unlock()
			if !rested {
				r.log.Info("wave finished", "wave", w.wave+1, "next_in", ro.PauseBetweenWaves)
				r.emit(EventWaveFinished, w.wave+1, "")
			}
			if wait = time.Until(until); wait <= 0 {
				ro.advance(ctx, r, w.wave)
				continue
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "run stopped"
		case <-control:
		case <-ro.changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// waveGate is one look at the current wave for a job: admitted, stopped
// (why), or full, with the wave's index, whether it has drained and how
// many of its resets failed; moved: the wave changed meanwhile, look again.
type waveGate struct {
	admitted bool
	stopped  string
	paused   string
	moved    bool
	wave     int
	drained  bool
	failures int
}

// tryLocal admits a job into this process's current wave, if it has room.
func (ro *Rollout) tryLocal() waveGate {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.admitted < ro.waveEnd {
		ro.admitted++
		return waveGate{admitted: true}
	}
	return waveGate{wave: ro.wave, drained: ro.settled == ro.admitted, failures: ro.failures}
}

// tryShared admits t into the run's current wave, kept by the store, if it
// has room. A store that cannot be read counts as a wave not drained: the
// gate looks again after a poll interval.
func (ro *Rollout) tryShared(ctx context.Context, r *Runner, t *task) waveGate {
	a, err := ro.shared.RolloutAdmit(ctx, &t.job)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("rollout: admit a job", "err", err)
		}
		return waveGate{}
	}
	ro.mu.Lock()
	ro.wave, ro.failures = a.Wave, a.Failures
	ro.mu.Unlock()
	switch {
	case a.Stopped != "":
		return waveGate{stopped: a.Stopped}
	case a.Paused != "":
		return waveGate{paused: a.Paused}
	case a.Admitted:
		return waveGate{admitted: true}
	}
	ws, err := ro.shared.RolloutWave(ctx, a.Wave)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			r.log.Warn("rollout: read the wave", "err", err)
		}
		return waveGate{}
	case ws.Current != a.Wave:
		return waveGate{moved: true} // another runner opened the next wave
	}
	return waveGate{wave: a.Wave, drained: ws.Pending == 0, failures: ws.Failures}
}

// advance opens the wave after wave, which has drained.
func (ro *Rollout) advance(ctx context.Context, r *Runner, wave int) {
	if ro.shared != nil {
		// Several runners may find the wave drained: the store opens the
		// next one once.
		if err := ro.shared.RolloutAdvance(ctx, wave, ro.waveSize(wave+1)); err != nil {
			r.log.Warn("rollout: open the next wave", "err", err)
		}
		return
	}
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.wave == wave {
		ro.wave++
		ro.waveEnd += ro.waveSize(ro.wave)
	}
}

// check returns why no new reset may start (failure budget, window), or "".
// A budget exceeded under FailPause pauses the run and returns "".
func (ro *Rollout) check(ctx context.Context, r *Runner) string {
	ro.mu.Lock()
	failures, shared := ro.failures-ro.forgiven, ro.shared != nil
	ro.mu.Unlock()
	if !shared && ro.MaxFailures >= 0 && failures > ro.MaxFailures {
		return ro.overBudget(ctx, r, failures)
	}
	if !ro.WindowEnd.IsZero() {
		expect := ro.ExpectedDuration
		if d := r.stats.Durations(); len(d) > 0 {
			expect = Percentile(d, 95)
		}
		if time.Now().Add(expect).After(ro.WindowEnd) {
			why := fmt.Sprintf("window closed: a reset started now is expected to take %s (p95 so far) and would end after %s",
				expect.Round(time.Second), ro.WindowEnd.Format(time.RFC3339))
			r.stopStarting(why)
			return why
		}
	}
	return ""
}

// overBudget applies OnFailure to a budget exceeded with n failures: it
// stops new resets and returns why, or (FailPause) pauses the run in its
// record and returns "".
func (ro *Rollout) overBudget(ctx context.Context, r *Runner, n int) string {
	why := fmt.Sprintf("failure budget exceeded (%d failed, budget %d)", n, ro.MaxFailures)
	if ro.onFailure() == FailPause {
		r.holdRun(ctx, why, 0)
		return ""
	}
	if ro.onFailure() == FailRollback {
		why += rollingBack
	}
	if ro.shared != nil {
		if err := ro.shared.RolloutStop(context.WithoutCancel(ctx), why); err != nil {
			r.log.Warn("rollout: stop the run", "err", err)
		}
	}
	r.stopStarting(why)
	return why
}

// rollingBack ends the stop reason of a budget exceeded under FailRollback,
// in the runner and in the run's shared record alike.
const rollingBack = "; rolling back"

// RollbackDue reports whether a run's stop reason (Summary.StopReason, or
// the one its shared record keeps) is a failure budget exceeded under
// FailRollback: the run is to be rolled back.
func RollbackDue(stopReason string) bool {
	return strings.HasPrefix(stopReason, "failure budget exceeded") && strings.HasSuffix(stopReason, rollingBack)
}

// awaitsApproval reports whether the wave after wave (from 0), which has
// drained, waits for a person's approval that has not come.
func (ro *Rollout) awaitsApproval(wave int) bool {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	need := ro.Approve == ApproveEachWave || ro.Approve == ApproveCanary && ro.Canary > 0 && wave == 0
	return need && ro.approved < wave+2
}

// sawApproved records the highest wave, from 1, the run's record says a
// person approved.
func (ro *Rollout) sawApproved(n int) {
	ro.mu.Lock()
	ro.approved = max(ro.approved, n)
	ro.mu.Unlock()
}

// resumed is told that a person resumed the paused run: the wave it
// awaited is approved (kept here for a store that keeps no pauses), and
// failures over the budget are forgiven, so that the budget counts anew.
func (ro *Rollout) resumed() {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	ro.approved = max(ro.approved, ro.awaiting)
	ro.awaiting = 0
	if ro.MaxFailures >= 0 && ro.failures-ro.forgiven > ro.MaxFailures {
		ro.forgiven = ro.failures
	}
}

// finished counts an outcome against the failure budget: failed, unknown
// and unhealthy (a reset that happened but left the instance unhealthy),
// and skipped because its before-hook failed (store.Job.Failure).
func (ro *Rollout) finished(r *Runner, j store.Job) {
	if !j.Failure() {
		return
	}
	if ro.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := ro.shared.RolloutFailed(ctx)
		if err != nil {
			r.log.Warn("rollout: count a failure", "err", err)
			return
		}
		ro.mu.Lock()
		ro.failures = n
		ro.mu.Unlock()
		if ro.MaxFailures >= 0 && n > ro.MaxFailures {
			ro.overBudget(ctx, r, n)
		}
		return
	}
	ro.mu.Lock()
	ro.failures++
	n := ro.failures - ro.forgiven
	ro.mu.Unlock()
	if ro.MaxFailures >= 0 && n > ro.MaxFailures {
		ro.overBudget(context.Background(), r, n)
	}
}

// Wave returns the current wave, counted from 1, and whether it is the
// canary; 0 before New has started the rollout.
func (ro *Rollout) Wave() (n int, canary bool) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.changed == nil {
		return 0, false
	}
	return ro.wave + 1, ro.Canary > 0 && ro.wave == 0
}

// Plan returns the canary, waves and failure budget the rollout applies:
// in a run whose store shares its rollout, the run's, once it has joined.
func (ro *Rollout) Plan() store.RolloutPlan {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return store.RolloutPlan{Canary: ro.Canary, Waves: ro.Waves, MaxFailures: ro.MaxFailures}
}

// Resting reports whether the run is between waves: a wave has drained and
// the next opens at next, after PauseBetweenWaves.
func (ro *Rollout) Resting() (next time.Time, ok bool) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.restWave == 0 || ro.restWave != ro.wave+1 {
		return time.Time{}, false
	}
	return ro.restUntil, true
}

// Failures returns how many admitted jobs have failed, ended unknown or
// ended unhealthy, the count the failure budget is held against.
func (ro *Rollout) Failures() int {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.failures
}

// onSettled records that an admitted job left the runner.
func (ro *Rollout) onSettled() {
	ro.mu.Lock()
	ro.settled++
	ro.mu.Unlock()
	select {
	case ro.changed <- struct{}{}:
	default:
	}
}
