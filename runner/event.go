package runner

import (
	"time"

	"github.com/batchreset/batchreset/store"
)

// EventKind names a moment of a run worth telling someone about (see
// Config.OnEvent). The values are written as they are to notifications.
type EventKind string

// Event kinds the runner reports.
const (
	// EventStarted: Run began.
	EventStarted EventKind = "run.started"
	// EventWaveFinished: every reset of wave Event.Wave finished; the next
	// wave starts after PauseBetweenWaves.
	EventWaveFinished EventKind = "wave.finished"
	// EventStopped: no new reset starts, for good (Event.Reason: the
	// failure budget, the window, a failed canary, a cancel); resets in
	// flight are still tracked.
	EventStopped EventKind = "run.stopped"
	// EventPaused: the run paused, for Event.Reason: the operator, an
	// exceeded failure budget (OnFailure pause), or the approval of wave
	// Event.Wave (Approve). EventResumed: the operator resumed it.
	EventPaused  EventKind = "run.paused"
	EventResumed EventKind = "run.resumed"
	// EventCancelled: the operator cancelled the run; EventStopped follows.
	EventCancelled EventKind = "run.cancelled"
	// EventDraining: an interrupt stopped new resets; unsent jobs are
	// handed back for a rerun.
	EventDraining EventKind = "run.draining"
)

// Event is one moment of a run, handed to Config.OnEvent.
type Event struct {
	Kind EventKind
	At   time.Time
	// Wave is the wave the event concerns, counted from 1 (the canary is
	// wave 1 when there is one): the wave finished, or the wave whose
	// approval a pause waits for; 0 when none.
	Wave int
	// Reason says why the run stopped, or what a paused run waits for.
	Reason string
	// Totals are the outcomes this runner has recorded so far.
	Totals store.Totals
}

// emit hands an event to Config.OnEvent, if set.
func (r *Runner) emit(kind EventKind, wave int, reason string) {
	if r.cfg.OnEvent == nil {
		return
	}
	r.cfg.OnEvent(Event{Kind: kind, At: time.Now(), Wave: wave, Reason: reason, Totals: r.stats.Totals()})
}
