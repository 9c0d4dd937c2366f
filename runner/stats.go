package runner

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchreset/batchreset/store"
)

// Stats are a run's live counters. Fields are safe to read at any time.
type Stats struct {
	Calls     atomic.Int64 // ResetInstance calls sent
	Describes atomic.Int64 // DescribeInstances calls sent
	Throttled atomic.Int64 // calls answered RequestLimitExceeded
	Dropped   atomic.Int64 // jobs given up because their state could not be saved

	Submitted atomic.Int64 // distinct jobs for which a reset was sent
	InFlight  atomic.Int64 // resets sent and not yet settled
	Waiting   atomic.Int64 // jobs waiting on the cloud (busy, in doubt, tracking)

	paused      atomic.Bool
	limiterWait atomic.Int64 // nanoseconds senders waited for the reset limiter

	mu        sync.Mutex
	totals    store.Totals
	durations []time.Duration // submission to outcome, of finished resets
	firstSend time.Time
	lastSend  time.Time
}

// LimiterWait returns the total time senders waited for the ResetInstance
// rate limiter.
func (s *Stats) LimiterWait() time.Duration { return time.Duration(s.limiterWait.Load()) }

// Paused reports whether the operator has paused the run.
func (s *Stats) Paused() bool { return s.paused.Load() }

// Totals returns the outcomes recorded so far by this runner.
func (s *Stats) Totals() store.Totals {
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
	s.mu.Lock()
	d := slices.Clone(s.durations)
	s.mu.Unlock()
	slices.Sort(d)
	return d
}

// SendSpan returns the first and last time a reset was sent.
func (s *Stats) SendSpan() (first, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstSend, s.lastSend
}

func (s *Stats) onSend(t *task) {
	if t.job.Attempts == 1 && !t.doubt {
		s.Submitted.Add(1)
	}
	now := time.Now()
	s.mu.Lock()
	if s.firstSend.IsZero() {
		s.firstSend = now
	}
	s.lastSend = now
	s.mu.Unlock()
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
		Totals:    s.Totals(),
		Throttled: s.Throttled.Load(),
		Calls:     s.Calls.Load(),
		Describes: s.Describes.Load(),
		Dropped:   s.Dropped.Load(),
		Durations: s.Durations(),
	}
}

// Percentile returns the p-th percentile (0..100) of sorted durations, or 0.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1)*p/100 + 0.5)
	return sorted[min(max(i, 0), len(sorted)-1)]
}
