package runner

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestLocalSpacerWindows checks, in virtual time, that many concurrent
// waiters on a Spacer over this process's slots (those of a Cloud without
// shared limits) never get more than the rate in any fixed one-second
// window, even when each call's arrival is delayed by up to the guard.
func TestLocalSpacerWindows(t *testing.T) {
	t.Parallel()
	for _, perSecond := range []float64{1, 10, 100} {
		synctest.Test(t, func(t *testing.T) {
			guard := 20 * time.Millisecond
			lim := NewSpacer(newLocalSlots(Interval(perSecond, guard), time.Now()), guard)
			start := time.Now()
			var mu sync.Mutex
			var sends []time.Duration
			var wg sync.WaitGroup
			n := int(perSecond) * 5
			for range 16 {
				wg.Go(func() {
					for {
						mu.Lock()
						if len(sends) >= n {
							mu.Unlock()
							return
						}
						mu.Unlock()
						if err := lim.Wait(context.Background()); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						sends = append(sends, time.Since(start))
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			// Worst case for the server: every other call is delayed by the
			// full guard, the rest arrive at once.
			for _, shift := range []time.Duration{0, 20 * time.Millisecond} {
				windows := map[int64]int{}
				for i, s := range sends {
					at := s
					if i%2 == 0 {
						at += shift
					}
					windows[int64(at/time.Second)]++
				}
				for w, c := range windows {
					if float64(c) > perSecond {
						t.Errorf("rate %v: window %d got %d calls, want at most %v", perSecond, w, c, perSecond)
					}
				}
			}
			// And it is not needlessly slow: n calls in about n/rate seconds.
			last := sends[n-1]
			if want := time.Duration(float64(n-1) / perSecond * 1.03 * float64(time.Second)); last > want {
				t.Errorf("rate %v: %d calls took %v of virtual time, want at most %v", perSecond, n, last, want)
			}
		})
	}
}

func TestInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		perSecond float64
		guard     time.Duration
		want      time.Duration
	}{
		{50, 0, 20 * time.Millisecond},
		{50, 100 * time.Millisecond, 22 * time.Millisecond},
		{20, 50 * time.Millisecond, 52500 * time.Microsecond},
		{3, 0, 333334 * time.Microsecond}, // rounded up, never down
		{0.5, 0, 2 * time.Second},
	} {
		if got := Interval(tc.perSecond, tc.guard); got != tc.want {
			t.Errorf("Interval(%v, %v) = %v, want %v", tc.perSecond, tc.guard, got, tc.want)
		}
	}
}

func TestBackoffGate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := newBackoff(500*time.Millisecond, 30*time.Second)
		start := time.Now()
		b.hit()
		if err := b.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		first := time.Since(start)
		if first < 250*time.Millisecond || first > 500*time.Millisecond {
			t.Errorf("first pause = %v, want between 250ms and 500ms", first)
		}
		b.hit() // a second throttle after the pause grows it
		start = time.Now()
		b.wait(context.Background())
		if second := time.Since(start); second < 500*time.Millisecond {
			t.Errorf("second pause = %v, want at least 500ms", second)
		}
		for range 10 {
			b.success()
		}
		b.hit()
		start = time.Now()
		b.wait(context.Background())
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("pause after recovery = %v, want back to at most 500ms", d)
		}
	})
}
