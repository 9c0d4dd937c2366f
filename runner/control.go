package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/batchreset/batchreset/store"
)

// admitMode says whether new resets may start, and what becomes of the jobs
// not yet sent when they may not.
type admitMode int

const (
	admitOpen     admitMode = iota // new resets start
	admitPaused                    // the operator paused the run: unsent jobs wait
	admitStopped                   // a rollout rule or a cancel: unsent jobs end skipped
	admitDraining                  // an interrupt: unsent jobs are handed back, for a rerun
	admitFatal                     // a fatal error: unsent jobs are handed back
	admitBroken                    // the state cannot be written: the run ends at once
)

// admState is the runner's admission state, one value read as a whole.
type admState struct {
	mode   admitMode
	reason string // why new resets stopped for good; kept when the run then halts
	// code is the error code of the jobs skipped for reason: "" for the
	// run's rules, CodeAccountBudget for the account's budget.
	code  string
	fatal error // what stopped the run (admitFatal, admitBroken)
	// waitFor says what a paused run waits for (admitPaused).
	waitFor string
}

// halted reports whether unsent jobs are handed back rather than skipped.
func (s admState) halted() bool {
	return s.mode == admitDraining || s.mode == admitFatal || s.mode == admitBroken
}

// admission holds the admState. It is safe for concurrent use.
type admission struct {
	mu      sync.Mutex
	st      admState
	drainCh chan struct{} // closed when the run halts
	breakCh chan struct{} // closed when the run breaks down
	changed chan struct{} // closed at the next change of st, then replaced
}

func (a *admission) init() {
	a.drainCh, a.breakCh = make(chan struct{}), make(chan struct{})
	a.changed = make(chan struct{})
}

func (a *admission) load() admState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}

// watch returns the state and a channel closed when it next changes, so
// that a wait (for a wave, between waves, for a resume) ends as soon as the
// operator's control or an interrupt arrives.
func (a *admission) watch() (admState, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st, a.changed
}

// notify wakes the watchers of the state; a.mu is held.
func (a *admission) notify() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// halting returns a channel closed once the run drains, fails or breaks down.
func (a *admission) halting() <-chan struct{} { return a.drainCh }

// broken returns a channel closed once the run breaks down.
func (a *admission) broken() <-chan struct{} { return a.breakCh }

// pause pauses the run for why, or (why "") resumes it; it reports whether
// the run was paused or resumed. A pause for another reason replaces what
// the paused run says it waits for.
func (a *admission) pause(why string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case why != "" && a.st.mode == admitOpen:
		a.st.mode, a.st.waitFor = admitPaused, why
	case why != "" && a.st.mode == admitPaused:
		a.st.waitFor = why
		return false
	case why == "" && a.st.mode == admitPaused:
		a.st.mode, a.st.waitFor = admitOpen, ""
	default:
		return false
	}
	a.notify()
	return true
}

// stop stops new resets for good, the jobs not sent ending skipped with
// code and why; it reports whether this was the first stop.
func (a *admission) stop(why, code string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.reason != "" {
		return false
	}
	a.st.reason, a.st.code = why, code
	if !a.st.halted() {
		a.st.mode = admitStopped
	}
	a.notify()
	return true
}

// drain halts the run for an interrupt; it reports whether it was the first.
func (a *admission) drain() bool { return a.halt(admitDraining, nil) }

// fail halts the run for a fatal error; it reports whether it was the first.
func (a *admission) fail(err error) bool { return a.halt(admitFatal, err) }

// breakDown halts the run for err, a state that cannot be written, whatever
// halted it before; it reports whether it was the first.
func (a *admission) breakDown(err error) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.mode == admitBroken {
		return false
	}
	if !a.st.halted() {
		close(a.drainCh)
	}
	a.st.mode, a.st.fatal = admitBroken, err
	close(a.breakCh)
	a.notify()
	return true
}

func (a *admission) halt(m admitMode, err error) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.halted() {
		return false
	}
	a.st.mode, a.st.fatal = m, err
	close(a.drainCh)
	a.notify()
	return true
}

// ErrUnreachable reports a run stopped because no API call got an answer
// for Config.Unreachable.
var ErrUnreachable = errors.New("the API does not answer")

// stopStarting makes every job not yet sent end skipped with why.
func (r *Runner) stopStarting(why string) {
	if r.adm.stop(why, "") {
		r.log.Warn("no new resets", "reason", why)
		r.emit(EventStopped, 0, why)
	}
}

// unwritable ends the run at once for err, a store.ErrUnwritable: the store,
// or the host's shared state, cannot write, and asking again changes
// nothing. No intent can be recorded, so nothing more is sent; what the
// runner has is left as a rerun resumes it (see doc.go, Errors). housekeep
// returns err, which ends every goroutine of the run; the command reports
// it, once.
func (r *Runner) unwritable(err error) {
	if r.adm.breakDown(err) {
		r.poke()
	}
}

// fatal stops submission for err; resets already sent are still tracked.
func (r *Runner) fatal(err error) {
	if r.adm.fail(err) {
		r.log.Error("fatal error; no new resets", "err", err)
		r.poke()
	}
}

// housekeep renews leases, reads the operator's control for the run, and
// stops the run when the API has not answered for Config.Unreachable.
func (r *Runner) housekeep(ctx context.Context) error {
	renew := time.NewTicker(r.cfg.LeaseRenewInterval)
	defer renew.Stop()
	control := time.NewTicker(r.cfg.PollInterval)
	defer control.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.finished:
			return nil
		case <-r.adm.broken():
			return r.adm.load().fatal
		case <-renew.C:
			if err := r.cfg.Store.Renew(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("renew leases", "err", err)
			}
		case <-control.C:
			if d, err := r.cloud.Silence(); err != nil && d > r.cfg.Unreachable {
				// Everything is left as a rerun resumes it: in-flight jobs
				// stay submitted or submitting, unsent ones pending.
				return fmt.Errorf("%w: no call has had an answer for %s (last error: %v)", ErrUnreachable, d.Round(time.Second), err)
			}
			h, err := r.readControl(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("read run control", "err", err)
				}
				continue
			}
			r.applyControl(h)
		}
	}
}

// SetControl applies an operator's instruction to this run now, as if read
// from the store: pause, resume or cancel. It is how a process that owns
// its store (CSV mode) is controlled; in Postgres mode set the run's
// control in the database instead, or every other runner misses it. Safe
// for concurrent use.
func (r *Runner) SetControl(c store.Control) {
	h := store.RunHold{Control: c}
	if p, ok := r.cfg.Store.(Pauser); ok {
		// The store has applied c already; its record says what a pause
		// waits for.
		if got, err := p.Hold(context.Background()); err == nil && got.Control == c {
			h = got
		}
	}
	r.applyControl(h)
	r.poke()
}

// readControl reads the run's control from the store, with what a pause
// waits for when the store keeps it.
func (r *Runner) readControl(ctx context.Context) (store.RunHold, error) {
	if p, ok := r.cfg.Store.(Pauser); ok {
		return p.Hold(ctx)
	}
	c, err := r.cfg.Store.Control(ctx)
	return store.RunHold{Control: c}, err
}

func (r *Runner) applyControl(h store.RunHold) {
	if r.cfg.Rollout != nil {
		r.cfg.Rollout.sawApproved(h.Approved)
	}
	switch h.Control {
	case store.ControlPaused:
		why := h.Reason
		if why == "" {
			why = operatorPause
		}
		r.paused(why, h.Awaiting)
	case store.ControlCancelled:
		r.adm.pause("")
		if r.adm.load().reason == "" {
			r.emit(EventCancelled, 0, "cancelled by operator")
		}
		r.stopStarting("cancelled by operator")
	default:
		if r.adm.pause("") {
			if r.cfg.Rollout != nil {
				r.cfg.Rollout.resumed()
			}
			r.log.Info("run resumed by operator")
			r.emit(EventResumed, 0, "resumed by operator")
		}
	}
}

// paused pauses the run locally for why and says so, once per reason;
// awaiting is the wave, from 1, whose approval the pause waits for (0:
// none), which EventPaused names.
func (r *Runner) paused(why string, awaiting int) {
	before := r.adm.load()
	r.adm.pause(why)
	if before.mode == admitPaused && before.waitFor == why || r.adm.load().mode != admitPaused {
		return
	}
	if why == operatorPause {
		r.log.Warn("run paused by operator: no new resets until it is resumed or cancelled; resets in flight are still tracked")
		r.emit(EventPaused, 0, why)
		return
	}
	r.emit(EventPaused, awaiting, why)
	if r.cfg.WaitPaused {
		r.log.Warn("run paused, waiting for a person: no new resets until the run is resumed or cancelled (batchreset resume|cancel, or the status page); resets in flight are still tracked",
			"waiting_for", why)
		return
	}
	// A rule of the run paused it (its budget, an approval): the decision
	// may take hours, and nobody waits at this process (cron). It ends
	// once its resets in flight have, leaving the unsent jobs pending and
	// the run paused in its record, for whoever resumes it.
	r.log.Warn("run paused, waiting for a person: no new resets; this runner ends once its resets in flight have (a run started later sends nothing until the run is resumed)",
		"waiting_for", why)
	r.adm.drain()
	r.poke()
}

// operatorPause is why a run the operator paused waits.
const operatorPause = "paused by operator"

// holdRun pauses the run for why, a rule of the run, in the run's record
// when the store keeps one (so that every runner, and a restarted one,
// waits too), then here. awaiting > 0 names the wave, from 1, whose
// approval the pause waits for.
func (r *Runner) holdRun(ctx context.Context, why string, awaiting int) {
	if p, ok := r.cfg.Store.(Pauser); ok {
		h, err := p.Pause(context.WithoutCancel(ctx), why, awaiting)
		if err == nil {
			// The record decides: another runner, or a person, may have
			// approved the wave or cancelled the run meanwhile.
			r.applyControl(h)
			return
		}
		// Paused here all the same: a pause is never lost to a store that
		// cannot record it.
		r.log.Warn("record the pause in the run's record", "err", err)
	}
	r.paused(why, awaiting)
}
