package runner

import (
	"context"
	"sync"
	"time"

	"github.com/batchreset/batchreset/store"
)

// Spacing defaults. The server counts calls per fixed one-second window by
// arrival; a limiter spaces calls (1s+guard)/rate apart, so that any rate+1
// consecutive calls span more than a second plus guard, and no window sees
// more than rate calls as long as the calls' delays on the way differ by
// less than guard.
const (
	// DefaultGuard is the jitter allowance of a limiter used by one process:
	// its calls share one host and one network path.
	DefaultGuard = 20 * time.Millisecond
	// maxLateRetries bounds how many late slots one Wait gives up, so that a
	// host too busy to keep any slot still makes progress.
	maxLateRetries = 5
)

// SlotSource hands out the slots of one action's calls (see
// store.SlotSource). The Postgres store's shared bucket is one; NewLimiter
// makes a local one.
type SlotSource = store.SlotSource

// Spacer is the rate rule of every API action, in every mode: it waits for
// slots from a SlotSource spaced by the interval the source was made with,
// and gives up a slot that it wakes for more than half the guard late
// (descheduled on a busy host, a slow reply from the database), so that a
// late call never lands among the calls of later slots. It is safe for
// concurrent use.
type Spacer struct {
	src     SlotSource
	maxLate time.Duration
}

// NewSpacer returns a Spacer taking slots from src, spaced for guard.
func NewSpacer(src SlotSource, guard time.Duration) *Spacer {
	return &Spacer{src: src, maxLate: guard / 2}
}

// Interval returns the spacing that perSecond calls a second need with guard
// of jitter allowance: (1s+guard)/perSecond, rounded up to a microsecond.
func Interval(perSecond float64, guard time.Duration) time.Duration {
	ns := float64(time.Second+guard) / perSecond
	us := time.Duration(ns / 1e3)
	if float64(us)*1e3 < ns {
		us++
	}
	return us * time.Microsecond
}

// NewLimiter returns a Spacer over a local slot source for perSecond calls
// a second with guard of jitter allowance, whose first slot is now.
func NewLimiter(perSecond float64, guard time.Duration) *Spacer {
	return NewSpacer(newLocalSlots(Interval(perSecond, guard), time.Now()), guard)
}

// Wait blocks until the caller may send one call, or ctx is done.
func (s *Spacer) Wait(ctx context.Context) error {
	for late := 0; ; late++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		asked := time.Now()
		wait, err := s.src.Reserve(ctx)
		if err != nil {
			return err
		}
		// The slot is wait after the source decided, somewhere between
		// asking and hearing back: take the middle.
		answered := time.Now()
		slot := asked.Add(answered.Sub(asked) / 2).Add(wait)
		if d := time.Until(slot); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		if s.maxLate > 0 && time.Since(slot) > s.maxLate && late < maxLateRetries {
			continue
		}
		return nil
	}
}

// localSlots is a GCRA without burst on this process's monotonic clock.
type localSlots struct {
	interval time.Duration

	mu  sync.Mutex
	tat time.Time // the next free slot
}

func newLocalSlots(interval time.Duration, first time.Time) *localSlots {
	return &localSlots{interval: interval, tat: first}
}

func (l *localSlots) Reserve(context.Context) (time.Duration, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	slot := l.tat
	if slot.Before(now) {
		slot = now
	}
	l.tat = slot.Add(l.interval)
	return slot.Sub(now), nil
}
