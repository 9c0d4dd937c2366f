package postgres

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Bucket is a rate limiter shared by every process using the same database
// and bucket name: the account-wide limit of one API action, enforced across
// all runners together. It satisfies runner.Limiter. Get one from
// Store.Bucket; it is safe for concurrent use.
//
// # Model
//
// Bucket is a GCRA (generic cell rate algorithm) without burst: the
// rate_buckets row holds tat, the time of the next free slot on the
// database's clock. Each Wait takes the slot greatest(tat, clock_timestamp())
// and moves tat one interval past it, in one upsert, then sleeps until that
// slot. Every duration is computed on the database's clock, so the runners'
// own clocks may disagree without harm.
//
// The interval is (1s + guard) / perSecond, so any perSecond+1 consecutive
// slots span at least 1s + guard. A call leaves its runner some time after its
// slot: the database's reply and the API request travel over the network. As
// long as those delays differ by less than guard between calls, any
// perSecond+1 calls reach the API at least 1s apart, so no 1-second window,
// sliding or fixed, sees more than perSecond calls from all runners together.
// The price is a rate of perSecond/(1 + guard/1s). A slot reserved by a Wait
// whose ctx ends before the slot is wasted, never handed out twice.
//
// A slot is only as good as its punctuality: a runner that wakes for its
// slot late (descheduled on a busy host, a slow reply from the database)
// would send its call next to the calls of later slots. So a slot found more
// than half the guard late when its wait ends is given up and another one
// reserved (at most maxLateRetries times), which keeps every call that goes
// out within half the guard of its slot.
type Bucket struct {
	s        *Store
	name     string
	interval time.Duration
	maxLate  time.Duration
}

// maxLateRetries bounds how many late slots one Wait gives up, so that a
// host too busy to keep any slot still makes progress.
const maxLateRetries = 5

// Bucket returns the shared limiter called name that allows perSecond calls
// per second across all processes, spaced to tolerate guard of jitter (see
// Bucket's model). All users of one name must pass the same rate and guard.
// It panics unless perSecond is positive and finite and guard is not negative.
func (s *Store) Bucket(name string, perSecond float64, guard time.Duration) *Bucket {
	if name == "" || !(perSecond > 0) || math.IsInf(perSecond, 1) || guard < 0 {
		panic(fmt.Sprintf("postgres: Bucket(%q, %v, %v): need a name, a positive finite rate and a guard ≥ 0", name, perSecond, guard))
	}
	ns := math.Ceil(float64(time.Second+guard) / perSecond)
	// Whole microseconds, rounded up: timestamptz cannot hold less, and the
	// spacing must never shrink below the interval asked for.
	interval := time.Duration(micros(time.Duration(ns))) * time.Microsecond
	return &Bucket{s: s, name: name, interval: interval, maxLate: guard / 2}
}

// Interval returns the spacing between the bucket's slots.
func (b *Bucket) Interval() time.Duration { return b.interval }

// Wait reserves the bucket's next slot and blocks until it comes or ctx is
// done, whichever is first. It returns nil at the slot, or an error wrapping
// ctx's error (the slot is then wasted) or the database's.
func (b *Bucket) Wait(ctx context.Context) error {
	_, err := b.wait(ctx)
	return err
}

// wait is Wait, returning the slot taken on the database's clock.
func (b *Bucket) wait(ctx context.Context) (time.Time, error) {
	for late := 0; ; late++ {
		if err := ctx.Err(); err != nil {
			// Do not waste a slot that nobody will use.
			return time.Time{}, fmt.Errorf("wait for rate bucket %q: %w", b.name, context.Cause(ctx))
		}
		asked := time.Now()
		slot, wait, err := b.reserve(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return time.Time{}, fmt.Errorf("wait for rate bucket %q: %w", b.name, context.Cause(ctx))
			}
		}
		// The slot came no earlier than asked+wait on this host's clock;
		// how far past that we are bounds how late the call would be.
		if b.maxLate > 0 && time.Since(asked.Add(wait)) > b.maxLate && late < maxLateRetries {
			continue
		}
		return slot, nil
	}
}

// reserve takes the next slot and returns it, with the time left until it on
// the database's clock.
func (b *Bucket) reserve(ctx context.Context) (slot time.Time, wait time.Duration, err error) {
	const reserveSQL = `INSERT INTO rate_buckets AS b (name, tat)
		VALUES ($1, clock_timestamp() + $2 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE
		SET tat = greatest(b.tat, clock_timestamp()) + $2 * interval '1 microsecond'
		RETURNING b.tat - $2 * interval '1 microsecond', clock_timestamp()`
	var now time.Time
	err = b.s.pool.QueryRow(ctx, reserveSQL, b.name, micros(b.interval)).Scan(&slot, &now)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("reserve slot in rate bucket %q: %w", b.name, err)
	}
	return slot, slot.Sub(now), nil
}
