package postgres_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store/postgres"
)

// TestBucketShared has two processes' worth of Buckets on one name, four
// goroutines each, take slots at 50/s and at 5,000/s (where one statement
// leases a run of them), and checks on the database's clock
// that no second holds more than the rate and no two slots are closer than
// the interval.
func TestBucketShared(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		guard            time.Duration
		perSecond, slots int
	}{
		{"NoGuard", 0, 50, 60},
		{"Guard", 100 * time.Millisecond, 50, 60},
		// Slots 200µs apart: each statement leases a run of them.
		{"Leased", 0, 5000, 6000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			perSecond, slots := tc.perSecond, tc.slots
			tb := setup(t)
			buckets := []*postgres.Bucket{
				tb.store.Bucket("ResetInstances", runner.Interval(float64(perSecond), tc.guard)),
				open(t, tb.url).Bucket("ResetInstances", runner.Interval(float64(perSecond), tc.guard)),
			}
			var (
				mu    sync.Mutex
				taken []time.Time
			)
			todo := make(chan struct{}, slots)
			for range slots {
				todo <- struct{}{}
			}
			close(todo)
			var wg sync.WaitGroup
			for _, b := range buckets {
				for range 4 {
					wg.Go(func() {
						for range todo {
							slot, err := b.WaitSlot(t.Context())
							if err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							taken = append(taken, slot)
							mu.Unlock()
						}
					})
				}
			}
			wg.Wait()
			if len(taken) != slots {
				t.Fatalf("took %d slots, want %d", len(taken), slots)
			}
			slices.SortFunc(taken, time.Time.Compare)

			// Fixed windows [k, k+1) of the database's clock.
			perWindow := make(map[int64]int)
			for _, s := range taken {
				perWindow[s.Unix()]++
			}
			for k, n := range perWindow {
				if n > perSecond {
					t.Errorf("second %d holds %d slots, want at most %d", k, n, perSecond)
				}
			}
			// Sliding windows: any perSecond+1 consecutive slots span 1s + guard.
			for i := 0; i+perSecond < len(taken); i++ {
				if span := taken[i+perSecond].Sub(taken[i]); span < time.Second+tc.guard {
					t.Errorf("slots %d..%d span %v, want at least %v", i, i+perSecond, span, time.Second+tc.guard)
				}
			}
			interval := buckets[0].Interval()
			for i := 1; i < len(taken); i++ {
				if gap := taken[i].Sub(taken[i-1]); gap < interval {
					t.Errorf("slots %d and %d are %v apart, want at least %v", i-1, i, gap, interval)
				}
			}
		})
	}
}

func TestBucketWaitCancelled(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	b := runner.NewSpacer(tb.store.Bucket("slow", 10*time.Second), 0) // one slot every 10s

	if err := b.Wait(t.Context()); err != nil {
		t.Fatalf("first Wait() = %v, want nil at once", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait() for a slot 10s away with a 50ms deadline = %v, want %v", err, context.DeadlineExceeded)
	}
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Wait(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait() with a cancelled context = %v, want %v", err, context.Canceled)
	}
}
