package runner

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchreset/batchreset/store"
)

// Stats are a run's live counters. Fields and methods are safe to use at
// any time; the zero value reads as a run that has done nothing. The Stats
// of a Group (Group.Stats) sum those of its accounts' runners through their
// methods; its own counter fields stay zero.
type Stats struct {
	Dropped    atomic.Int64 // jobs given up because their state could not be saved
	ResetTwice atomic.Int64 // instances another process reset too
	// RecentlyReset counts instances found recently reset by another
	// request when first looked at (see Summary.RecentlyReset).
	RecentlyReset atomic.Int64

	Submitted atomic.Int64 // distinct jobs for which a reset was sent
	InFlight  atomic.Int64 // resets sent and not yet settled
	Waiting   atomic.Int64 // jobs waiting on the cloud (busy, in doubt, tracking)
	// HookFailures counts lifecycle hooks that failed or timed out.
	HookFailures atomic.Int64

	cloud *Cloud     // the run's calls and throttles
	adm   *admission // the run's admission state
	parts []*Stats   // a Group's: its runners'

	mu        sync.Mutex
	totals    store.Totals
	durations []time.Duration // submission to outcome, of finished resets
}

// sum adds up f over a Group's parts.
func (s *Stats) sum(f func(*Stats) int64) int64 {
	var n int64
	for _, p := range s.parts {
		n += f(p)
	}
	return n
}

// Sent returns how many distinct jobs a reset was sent for (Submitted).
func (s *Stats) Sent() int64 {
	if s.parts != nil {
		return s.sum((*Stats).Sent)
	}
	return s.Submitted.Load()
}

// Resetting returns how many resets are sent and not yet settled
// (InFlight).
func (s *Stats) Resetting() int64 {
	if s.parts != nil {
		return s.sum((*Stats).Resetting)
	}
	return s.InFlight.Load()
}

// Calls returns how many ResetInstance calls were sent.
func (s *Stats) Calls() int64 {
	if s.parts != nil {
		return s.sum((*Stats).Calls)
	}
	if s.cloud == nil {
		return 0
	}
	return s.cloud.Calls.Load()
}

// LimiterWait returns the total time senders waited for ResetInstance slots.
func (s *Stats) LimiterWait() time.Duration {
	if s.parts != nil {
		return time.Duration(s.sum(func(p *Stats) int64 { return int64(p.LimiterWait()) }))
	}
	if s.cloud == nil {
		return 0
	}
	return time.Duration(s.cloud.resetWait.Load())
}

// Throttled returns how many calls were answered RequestLimitExceeded.
func (s *Stats) Throttled() int64 {
	if s.parts != nil {
		return s.sum((*Stats).Throttled)
	}
	if s.cloud == nil {
		return 0
	}
	return s.cloud.Throttled.Load()
}

// Paused reports whether the operator has paused the run.
func (s *Stats) Paused() bool {
	for _, p := range s.parts {
		if p.Paused() {
			return true
		}
	}
	return s.adm != nil && s.adm.load().mode == admitPaused
}

// Stopped returns why new resets stopped for good (a failure budget, the
// window, a canary, a cancel), or "" while they may still start.
func (s *Stats) Stopped() string {
	for _, p := range s.parts {
		if why := p.Stopped(); why != "" {
			return why
		}
	}
	if s.adm == nil {
		return ""
	}
	return s.adm.load().reason
}

// Totals returns the outcomes recorded so far by this runner.
func (s *Stats) Totals() store.Totals {
	if s.parts != nil {
		out := store.Totals{}
		for _, p := range s.parts {
			for k, v := range p.Totals() {
				out[k] += v
			}
		}
		return out
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := store.Totals{}
	for k, v := range s.totals {
		out[k] = v
	}
	return out
}

// Durations returns the observed reset durations, sorted.
func (s *Stats) Durations() []time.Duration {
	if s.parts != nil {
		var d []time.Duration
		for _, p := range s.parts {
			d = append(d, p.Durations()...)
		}
		slices.Sort(d)
		return d
	}
	s.mu.Lock()
	d := slices.Clone(s.durations)
	s.mu.Unlock()
	slices.Sort(d)
	return d
}

func (s *Stats) onSend(t *task) {
	if t.job.Attempts == 1 && !t.doubt {
		s.Submitted.Add(1)
	}
}

func (s *Stats) onFinish(t *task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.totals == nil {
		s.totals = store.Totals{}
	}
	s.totals[t.job.Status]++
	if !t.job.SubmittedAt.IsZero() && (t.job.Status == store.StatusSucceeded || t.job.Status == store.StatusFailed) {
		s.durations = append(s.durations, t.job.FinishedAt.Sub(t.job.SubmittedAt))
	}
}

// addWaiting counts t, just handed to the tracker. It does not rescan the
// tracked tasks as setWaiting does: the tracker receives every job it
// follows, and a full scan per receive made it quadratic in the number of
// resets in flight (the tracker goroutine spent seconds there at 100k jobs).
// setWaiting recounts exactly after every poll.
func (s *Stats) addWaiting(tasks map[int64]*task, t *task) {
	s.Waiting.Store(int64(len(tasks)))
	if t.kind == kindTracking || t.kind == kindInDoubt {
		s.InFlight.Add(1)
	}
}

func (s *Stats) setWaiting(tasks map[int64]*task) {
	var inflight int64
	for _, t := range tasks {
		if t.kind == kindTracking || t.kind == kindInDoubt {
			inflight++
		}
	}
	s.Waiting.Store(int64(len(tasks)))
	s.InFlight.Store(inflight)
}

func (s *Stats) summary() Summary {
	return Summary{
		Totals:        s.Totals(),
		Throttled:     s.cloud.Throttled.Load(),
		Calls:         s.cloud.Calls.Load(),
		Describes:     s.cloud.Describes.Load(),
		Dropped:       s.Dropped.Load(),
		ResetTwice:    s.ResetTwice.Load(),
		RecentlyReset: s.RecentlyReset.Load(),
		HookFailures:  s.HookFailures.Load(),
		Durations:     s.Durations(),
	}
}

// Percentile returns the p-th percentile (0..100) of sorted durations, or 0:
// the nearest-rank value, the smallest that at least p% of the durations do
// not exceed (as PostgreSQL's percentile_disc).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*p/100)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
