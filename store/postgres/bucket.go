package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/batchreset/batchreset/store"
)

// Bucket is the slot source of one API action shared by every process using
// the same database: the account-wide limit of that action, held across all
// runners together. It satisfies store.SlotSource; runner.Spacer applies
// the rate rule over it. Get one from Store.Bucket or Limits.SlotSource; it
// is safe for concurrent use.
//
// # Model
//
// Bucket is a GCRA (generic cell rate algorithm) without burst: the
// rate_buckets row holds tat, the time of the next free slot on the
// database's clock. A Bucket leases a run of consecutive slots in one
// upsert, taking them from greatest(tat, clock_timestamp() + lead) and
// moving tat past the last, and then hands them out one per Reserve from
// memory: the row is written once per run, not once per call, so runners
// do not queue on it. A run spans about leaseSpan (one slot at the API's
// real limits, up to maxLeaseRun when limits are lifted), so what one
// runner leases and cannot use soon is little. Every slot is placed on this
// host's clock once, when its run is leased, from the middle of that
// statement; lead, the statement's latest round trip, makes the first slot
// of a run come after the answer rather than before it, so the database's
// latency is never mistaken for lateness by the Spacer. Runners' slots
// never overlap, whatever their clocks: the spacing rule holds across them.
// A slot its caller does not use is wasted, never handed out twice; one
// already staleSlot past when asked for is skipped.
type Bucket struct {
	s        *Store
	name     string
	interval time.Duration
	run      int // slots leased per statement

	mu      sync.Mutex
	slots   slotRun       // leased, not yet handed out
	rtt     time.Duration // the latest lease statement's round trip
	leasing chan struct{} // closed when the lease in flight ends; nil: none
}

// slotRun is what remains of a leased run of slots.
type slotRun struct {
	next  time.Time // the next slot, on the database's clock
	local time.Time // the same slot on this host's monotonic clock
	left  int
}

// Bucket lease sizes.
const (
	// leaseSpan is about how much time one lease covers.
	leaseSpan = 20 * time.Millisecond
	// maxLeaseRun caps the slots of one lease.
	maxLeaseRun = 256
	// maxLead caps how far ahead a lease starts.
	maxLead = 100 * time.Millisecond
	// staleSlot is how far past a leased slot may be and still be handed
	// out; runner.Spacer gives up slots later than half its guard.
	staleSlot = 5 * time.Millisecond
)

// Bucket returns the shared slot source called name whose slots are interval
// apart across all processes. All users of one name must pass the same
// interval. It panics unless name is set and interval is at least a
// microsecond (timestamptz holds no less).
func (s *Store) Bucket(name string, interval time.Duration) *Bucket {
	if name == "" || interval < time.Microsecond {
		panic(fmt.Sprintf("postgres: Bucket(%q, %v): need a name and an interval of at least 1µs", name, interval))
	}
	interval = interval.Truncate(time.Microsecond)
	run := int(min(maxLeaseRun, max(1, leaseSpan/interval)))
	return &Bucket{s: s, name: name, interval: interval, run: run}
}

// Limits are the rate limits of one identity (an API server and the
// principal charged, see runner.Identity) shared by every process using the
// database: each action's Bucket is named after the identity and the
// action, so that runners of one account share its limits, and two
// accounts in one database do not. With HostLimits.Over they are shared
// with the CSV runs of the host too. Limits satisfy runner.SharedLimits.
type Limits struct {
	s        *Store
	identity string
}

// Limits returns the limits of identity (runner.Identity.Key), which must
// not be empty.
func (s *Store) Limits(identity string) Limits {
	if identity == "" {
		panic("postgres: Limits needs an identity")
	}
	return Limits{s: s, identity: identity}
}

// SlotSource returns the shared Bucket of action with slots interval apart.
func (l Limits) SlotSource(action string, interval time.Duration) store.SlotSource {
	return l.s.Bucket(l.identity+"/"+action, interval)
}

// Guard returns the jitter allowance that runners on one database need
// between them: 100ms.
func (l Limits) Guard() time.Duration { return sharedGuard }

// sharedGuard is the jitter allowance of limits shared through the
// database: the runners' paths to the API may differ by up to 100 ms one
// way. It costs 9% of the rate (10/s becomes 9.09/s).
const sharedGuard = 100 * time.Millisecond

// Interval returns the spacing between the bucket's slots.
func (b *Bucket) Interval() time.Duration { return b.interval }

// Reserve takes the bucket's next slot and returns the time left until it,
// reckoned from the middle of the call, as runner.Spacer reads it.
func (b *Bucket) Reserve(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, local, err := b.reserve(ctx, time.Time{})
	if err != nil {
		return 0, err
	}
	end := time.Now()
	return local.Sub(start.Add(end.Sub(start) / 2)), nil
}

// ReserveAfter takes the bucket's next slot not before notBefore on this
// host's clock, and returns it on this host's clock (runner.LaterSlotSource).
// The database is asked for a slot that far ahead of its own clock, as a
// delay, so that no offset between the clocks matters; leased slots before
// notBefore are skipped, wasted.
func (b *Bucket) ReserveAfter(ctx context.Context, notBefore time.Time) (time.Time, error) {
	_, local, err := b.reserve(ctx, notBefore)
	return local, err
}

// reserve takes the next slot not before notBefore (the zero time: any)
// and returns it on the database's clock and on this host's, leasing a new
// run of slots when none is left.
func (b *Bucket) reserve(ctx context.Context, notBefore time.Time) (slot, local time.Time, err error) {
	for {
		if err := ctx.Err(); err != nil {
			// Do not waste a slot that nobody will use.
			return time.Time{}, time.Time{}, fmt.Errorf("reserve slot in rate bucket %q: %w", b.name, context.Cause(ctx))
		}
		b.mu.Lock()
		now := time.Now()
		for b.slots.left > 0 && (now.Sub(b.slots.local) > staleSlot || b.slots.local.Before(notBefore)) {
			b.slots.take(b.interval)
		}
		if b.slots.left > 0 {
			slot, local = b.slots.take(b.interval)
			b.mu.Unlock()
			return slot, local, nil
		}
		if ch := b.leasing; ch != nil {
			b.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				continue
			}
		}
		ch := make(chan struct{})
		b.leasing = ch
		lead := max(min(b.rtt, maxLead), notBefore.Sub(now))
		b.mu.Unlock()

		run, rtt, err := b.lease(ctx, lead)
		b.mu.Lock()
		b.leasing = nil
		close(ch)
		if err != nil {
			b.mu.Unlock()
			return time.Time{}, time.Time{}, err
		}
		b.rtt, b.slots = rtt, run
		b.mu.Unlock()
	}
}

// take hands out the run's next slot.
func (r *slotRun) take(interval time.Duration) (slot, local time.Time) {
	slot, local = r.next, r.local
	r.next, r.local = r.next.Add(interval), r.local.Add(interval)
	r.left--
	return slot, local
}

// lease takes the next b.run slots from the row, none earlier than lead
// (the latest round trip, or the delay a caller asks for) from now on the
// database's clock, and places them on this host's clock.
func (b *Bucket) lease(ctx context.Context, lead time.Duration) (slotRun, time.Duration, error) {
	const leaseSQL = `INSERT INTO rate_buckets AS b (name, tat)
		VALUES ($1, clock_timestamp() + ($4::bigint + $2::bigint * $3::bigint) * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE
		SET tat = greatest(b.tat, clock_timestamp() + $4::bigint * interval '1 microsecond')
		          + $2::bigint * $3::bigint * interval '1 microsecond'
		RETURNING b.tat - $2::bigint * $3::bigint * interval '1 microsecond', clock_timestamp()`
	var first, dbNow time.Time
	asked := time.Now()
	err := b.s.pool.QueryRow(ctx, leaseSQL, b.name, micros(b.interval), b.run, micros(lead)).Scan(&first, &dbNow)
	answered := time.Now()
	if err != nil {
		return slotRun{}, 0, fmt.Errorf("reserve slot in rate bucket %q: %w", b.name, err)
	}
	// The database read its clock somewhere between asking and hearing
	// back: take the middle.
	mid := asked.Add(answered.Sub(asked) / 2)
	return slotRun{next: first, local: mid.Add(first.Sub(dbNow)), left: b.run}, answered.Sub(asked), nil
}
