package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/batchreset/batchreset/store"
)

// Bucket is the slot source of one API action shared by every process using
// the same database: the account-wide limit of that action, held across all
// runners together. It satisfies store.SlotSource; runner.Spacer applies
// the rate rule over it. Get one from Store.Bucket or Queue.SlotSource; it
// is safe for concurrent use.
//
// # Model
//
// Bucket is a GCRA (generic cell rate algorithm) without burst: the
// rate_buckets row holds tat, the time of the next free slot on the
// database's clock. Each Reserve takes the slot greatest(tat,
// clock_timestamp()) and moves tat one interval past it, in one upsert, and
// returns the time left until that slot. Every duration is computed on the
// database's clock, so the runners' own clocks may disagree without harm.
// A reserved slot that its caller does not use is wasted, never handed out
// twice.
type Bucket struct {
	s        *Store
	name     string
	interval time.Duration
}

// Bucket returns the shared slot source called name whose slots are interval
// apart across all processes. All users of one name must pass the same
// interval. It panics unless name is set and interval is at least a
// microsecond (timestamptz holds no less).
func (s *Store) Bucket(name string, interval time.Duration) *Bucket {
	if name == "" || interval < time.Microsecond {
		panic(fmt.Sprintf("postgres: Bucket(%q, %v): need a name and an interval of at least 1µs", name, interval))
	}
	return &Bucket{s: s, name: name, interval: interval.Truncate(time.Microsecond)}
}

// SlotSource returns the shared Bucket of action with slots interval apart.
// With Guard it satisfies runner.SharedLimits: every command on this Store
// shares the account's limits with every runner on the database.
func (s *Store) SlotSource(action string, interval time.Duration) store.SlotSource {
	return s.Bucket(action, interval)
}

// SlotSource is the Store's SlotSource: a runner on this Queue shares the
// account's limits with every other runner on the database.
func (q *Queue) SlotSource(action string, interval time.Duration) store.SlotSource {
	return q.s.SlotSource(action, interval)
}

// sharedGuard is the jitter allowance of limits shared through the
// database: the runners' paths to the API may differ by up to 100 ms one
// way. It costs 9% of the rate (10/s becomes 9.09/s).
const sharedGuard = 100 * time.Millisecond

// Guard returns the jitter allowance that runners on one database need
// between them: 100ms.
func (s *Store) Guard() time.Duration { return sharedGuard }

// Guard is the Store's Guard.
func (q *Queue) Guard() time.Duration { return sharedGuard }

// Interval returns the spacing between the bucket's slots.
func (b *Bucket) Interval() time.Duration { return b.interval }

// Reserve takes the bucket's next slot and returns the time left until it,
// on the database's clock.
func (b *Bucket) Reserve(ctx context.Context) (time.Duration, error) {
	_, wait, err := b.reserve(ctx)
	return wait, err
}

// reserve takes the next slot and returns it, with the time left until it on
// the database's clock.
func (b *Bucket) reserve(ctx context.Context) (slot time.Time, wait time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		// Do not waste a slot that nobody will use.
		return time.Time{}, 0, fmt.Errorf("reserve slot in rate bucket %q: %w", b.name, context.Cause(ctx))
	}
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
