package runner

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// backoff is a capped exponential backoff with jitter. As a gate shared by
// all senders (hit, success, wait) it pauses every ResetInstance call after
// the server throttles, and lets the rate recover as calls succeed again.
type backoff struct {
	base, max time.Duration

	mu    sync.Mutex
	cur   time.Duration
	until time.Time
}

func newBackoff(base, max time.Duration) *backoff {
	return &backoff{base: base, max: max}
}

// next returns the next delay (full jitter over the upper half).
func (b *backoff) next() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.grow()
}

func (b *backoff) grow() time.Duration {
	if b.cur == 0 {
		b.cur = b.base
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur/2 + time.Duration(rand.Int64N(int64(b.cur/2)+1))
}

func (b *backoff) reset() {
	b.mu.Lock()
	b.cur = 0
	b.mu.Unlock()
}

// hit records a throttled call: every sender waits out the next delay.
func (b *backoff) hit() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Now().Before(b.until) {
		return // already backing off; this call was sent before the pause began
	}
	b.until = time.Now().Add(b.grow())
}

// success records an accepted call: the next throttle pauses for the base
// delay again. (Halving instead let sporadic throttling walk the pause up to
// tens of seconds once a throttle pauses every sender: each throttled probe
// doubles it, and only one probe goes out per pause; TestFaultThrottled.)
func (b *backoff) success() {
	b.mu.Lock()
	b.cur = 0
	b.mu.Unlock()
}

// paused reports whether a throttling pause is in force.
func (b *backoff) paused() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Now().Before(b.until)
}

// wait blocks while a throttling pause is in force.
func (b *backoff) wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		d := time.Until(b.until)
		b.mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
