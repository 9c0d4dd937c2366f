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
// store.SlotSource). The Postgres store's shared bucket is one; a Cloud
// without shared limits makes a local one of this process.
type SlotSource = store.SlotSource

// Spacer is the rate rule of every API action, in every mode: it waits for
// slots from a SlotSource spaced by the interval the source was made with,
// and gives up a slot that it wakes for more than half the guard late
// (descheduled on a busy host, a slow reply from the database), so that a
// late call never lands among the calls of later slots. It is safe for
// concurrent use.
//
// A Spacer made for a rate (NewRateSpacer) over a source whose spacing can
// change (this process's, or the host's) also adapts to the network it
// sees: Observe feeds it the latencies of answered calls, and once their
// spread exceeds the guard, the source spaces its slots (1s+spread)/rate
// apart, so that jitter the guard did not foresee still never puts rate+1
// calls in one server second. That costs the rate a factor 1/(1+spread);
// Guard reports the allowance in force. (The Postgres store's shared slots
// keep their 100ms allowance.)
type Spacer struct {
	src       SlotSource
	maxLate   time.Duration
	guard     time.Duration
	perSecond float64 // 0: no adaptation

	mu        sync.Mutex
	latencies []time.Duration // of answered calls, a ring of latencyWindow
	next      int
	measured  time.Duration // the allowance in force, when above guard
}

// adjustable is a SlotSource whose spacing can change between slots.
type adjustable interface {
	SetInterval(time.Duration)
}

// latencyWindow is how many answered calls' latencies the spread is taken
// over, and minLatencies how many it needs before it is trusted.
const (
	latencyWindow = 128
	minLatencies  = 16
	// maxGuard caps the measured allowance: beyond it the network, not the
	// limiter, is the problem, and the rate would collapse.
	maxGuard = 250 * time.Millisecond
	// warmupGuard is the allowance before minLatencies calls were answered.
	warmupGuard = 100 * time.Millisecond
)

// NewSpacer returns a Spacer taking slots from src, spaced for guard.
func NewSpacer(src SlotSource, guard time.Duration) *Spacer {
	return &Spacer{src: src, maxLate: guard / 2, guard: guard}
}

// NewRateSpacer is NewSpacer for slots of perSecond calls a second, which
// adapts its allowance to the latencies Observe reports.
func NewRateSpacer(src SlotSource, perSecond float64, guard time.Duration) *Spacer {
	s := NewSpacer(src, guard)
	if _, ok := src.(adjustable); ok {
		s.perSecond = perSecond
		s.allow(max(guard, warmupGuard))
	}
	return s
}

// allow spaces the source's slots for an allowance of g. s.mu is held, or
// s is not yet shared.
func (s *Spacer) allow(g time.Duration) {
	s.measured = 0
	if g > s.guard {
		s.measured = g
	}
	s.src.(adjustable).SetInterval(Interval(s.perSecond, max(g, s.guard)))
}

// Observe records the latency of one answered call: from its slot (see
// Take) to the answer's first byte.
func (s *Spacer) Observe(latency time.Duration) {
	if s.perSecond == 0 || latency <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.latencies) < latencyWindow {
		s.latencies = append(s.latencies, latency)
	} else {
		s.latencies[s.next] = latency
		s.next = (s.next + 1) % latencyWindow
	}
	if len(s.latencies) < minLatencies {
		return // until the spread can be trusted, the warm-up allowance holds
	}
	lo, hi := s.latencies[0], s.latencies[0]
	for _, l := range s.latencies {
		lo, hi = min(lo, l), max(hi, l)
	}
	s.allow(min(hi-lo, maxGuard))
}

// Guard returns the jitter allowance in force: the measured spread of
// latencies when it exceeds the guard the Spacer was made with.
func (s *Spacer) Guard() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.guard, s.measured)
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

// Wait blocks until the caller may send one call, or ctx is done.
func (s *Spacer) Wait(ctx context.Context) error {
	_, err := s.Take(ctx)
	return err
}

// Take is Wait that also returns the slot the call was given: when it was
// due to leave, on this process's clock. A latency reckoned from the slot
// (see Observe) includes whatever delayed the call before it left.
func (s *Spacer) Take(ctx context.Context) (time.Time, error) {
	for late := 0; ; late++ {
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		asked := time.Now()
		wait, err := s.src.Reserve(ctx)
		if err != nil {
			return time.Time{}, err
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
				return time.Time{}, ctx.Err()
			}
		}
		if s.maxLate > 0 && time.Since(slot) > s.maxLate && late < maxLateRetries {
			continue
		}
		return slot, nil
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

// SetInterval changes the spacing of the slots reserved from now on.
func (l *localSlots) SetInterval(d time.Duration) {
	l.mu.Lock()
	l.interval = d
	l.mu.Unlock()
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
