package emulator_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// TestRateLimit sends 30 concurrent resets at the documented limit of 10
// per second, all in one window of a stopped clock.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const n = 30
	b := setup(t, emulator.Config{Instances: fleet(n + 1), Blueprints: testBlueprints(), Now: clock.Now})

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = map[string]int{}
	)
	for _, id := range ids(n) {
		wg.Go(func() {
			_, err := reset(t, b.client, id, bpTarget)
			mu.Lock()
			defer mu.Unlock()
			outcomes[code(err)]++
		})
	}
	wg.Wait()
	if diff := cmp.Diff(map[string]int{"": 10, "RequestLimitExceeded": 20}, outcomes); diff != "" {
		t.Errorf("outcomes of %d concurrent resets mismatch (-want +got):\n%s", n, diff)
	}
	st := b.emu.Stats()
	want := emulator.ActionStats{Calls: n, Rejected: 20, OverLimit: 20, MaxPerSecond: n}
	if diff := cmp.Diff(want, st.Actions["ResetInstance"]); diff != "" {
		t.Errorf("Stats().Actions[ResetInstance] mismatch (-want +got):\n%s", diff)
	}
	if len(st.Resets) != 10 {
		t.Errorf("Stats().Resets has %d instances, want the 10 accepted", len(st.Resets))
	}

	// The next second is a new window.
	clock.Add(time.Second)
	if _, err := reset(t, b.client, ids(n + 1)[n], bpTarget); err != nil {
		t.Errorf("ResetInstance in the next window = %v, want success", err)
	}
	if got := b.emu.Stats().Actions["ResetInstance"]; got.MaxPerSecond != n || got.Calls != n+1 {
		t.Errorf("Stats().Actions[ResetInstance] after the next window = %+v, want MaxPerSecond %d, Calls %d", got, n, n+1)
	}
}

// TestRateLimitWindows checks that windows are fixed Unix seconds, not
// sliding: two bursts 200 ms apart but in different seconds both pass.
func TestRateLimitWindows(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	now := clock.Now()
	clock.Add(now.Truncate(time.Second).Add(900 * time.Millisecond).Sub(now))
	b := setup(t, emulator.Config{Instances: fleet(1), Now: clock.Now, RateLimits: map[string]int{"DescribeBlueprints": 3}})
	burst := func() (ok, rejected int) {
		for range 4 {
			switch err := send(t, b.client, "DescribeBlueprints", nil, nil); code(err) {
			case "":
				ok++
			case "RequestLimitExceeded":
				rejected++
			default:
				t.Fatalf("DescribeBlueprints error: %v", err)
			}
		}
		return ok, rejected
	}
	for i := range 2 {
		if ok, rejected := burst(); ok != 3 || rejected != 1 {
			t.Errorf("burst %d: %d accepted, %d rejected; want 3 and 1", i, ok, rejected)
		}
		clock.Add(200 * time.Millisecond)
	}
	want := emulator.ActionStats{Calls: 8, Rejected: 2, OverLimit: 2, MaxPerSecond: 4}
	if diff := cmp.Diff(want, b.emu.Stats().Actions["DescribeBlueprints"]); diff != "" {
		t.Errorf("Stats().Actions[DescribeBlueprints] mismatch (-want +got):\n%s", diff)
	}
}

func TestRateLimitConfig(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, emulator.Config{
		Instances:  fleet(1),
		Blueprints: testBlueprints(),
		Now:        clock.Now,
		RateLimits: map[string]int{"DescribeInstances": 2, "DescribeBlueprints": -1},
	})
	// calls sends n concurrent calls of action without parameters and
	// counts the answers by code.
	calls := func(action string, n int) map[string]int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[string]int{}
		for range n {
			wg.Go(func() {
				err := send(t, b.client, action, nil, nil)
				mu.Lock()
				defer mu.Unlock()
				codes[code(err)]++
			})
		}
		wg.Wait()
		return codes
	}
	tests := []struct {
		action string
		n      int
		want   map[string]int
	}{
		{"DescribeInstances", 5, map[string]int{"": 2, "RequestLimitExceeded": 3}},
		{"DescribeBlueprints", 50, map[string]int{"": 50}},
		// The default limit of 20 applies, and is checked before the
		// missing InstanceId.
		{"DescribeResetInstanceBlueprints", 25, map[string]int{"MissingParameter": 20, "RequestLimitExceeded": 5}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, calls(tt.action, tt.n)); diff != "" {
			t.Errorf("%d concurrent %s mismatch (-want +got):\n%s", tt.n, tt.action, diff)
		}
	}
	want := map[string]emulator.ActionStats{
		"DescribeInstances":               {Calls: 5, Rejected: 3, OverLimit: 3, MaxPerSecond: 5},
		"DescribeBlueprints":              {Calls: 50, MaxPerSecond: 50},
		"DescribeResetInstanceBlueprints": {Calls: 25, Rejected: 5, Errors: 20, OverLimit: 5, MaxPerSecond: 25},
	}
	if diff := cmp.Diff(want, b.emu.Stats().Actions); diff != "" {
		t.Errorf("Stats().Actions mismatch (-want +got):\n%s", diff)
	}
}
