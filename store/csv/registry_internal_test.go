package csv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

func openTestRegistry(t *testing.T, dir string, slots uint64) *Registry {
	t.Helper()
	r, err := openRegistry(dir, slots, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRegistry: an intent is refused while another live run has the
// instance in flight, and after another run's intent later than this run's
// start; leaving flight frees it; each registry of the directory (another
// process's file handle) sees the same entries.
func TestRegistry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := openTestRegistry(t, dir, 1<<10), openTestRegistry(t, dir, 1<<10)
	start := time.Now().Add(-time.Minute)
	j := func(id string, st store.Status) *store.Job { return &store.Job{InstanceID: id, Status: st} }

	if err := a.update(j("lhins-00000001", store.StatusSubmitting), "/a/results.csv.state@1", start); err != nil {
		t.Fatal(err)
	}
	err := b.update(j("lhins-00000001", store.StatusSubmitting), "/b/results.csv.state@1", start)
	if !errors.Is(err, store.ErrInstanceBusy) || !strings.Contains(err.Error(), "/a/results.csv.state@1") {
		t.Errorf("intent of another run while the first has it in flight = %v, want ErrInstanceBusy naming the first run", err)
	}
	if err := b.update(j("lhins-00000002", store.StatusSubmitting), "/b/results.csv.state@1", start); err != nil {
		t.Errorf("intent for another instance = %v", err)
	}
	if err := a.update(j("lhins-00000001", store.StatusSucceeded), "/a/results.csv.state@1", start); err != nil {
		t.Fatal(err)
	}
	// Out of flight, but reset after the second run started: that run
	// must not reset it again.
	err = b.update(j("lhins-00000001", store.StatusSubmitting), "/b/results.csv.state@1", start)
	if !errors.Is(err, store.ErrResetElsewhere) {
		t.Errorf("intent after another run reset the instance during this one = %v, want ErrResetElsewhere", err)
	}
	// A run that started after that reset may send it.
	if err := b.update(j("lhins-00000001", store.StatusSubmitting), "/c/results.csv.state@2", time.Now()); err != nil {
		t.Errorf("intent of a run started after the other's reset = %v", err)
	}
	// A save that is neither an intent nor leaving flight writes nothing;
	// leaving flight for an instance never seen is no error.
	if err := a.update(j("lhins-00000003", store.StatusSubmitted), "/a/results.csv.state@1", start); err != nil {
		t.Error(err)
	}
	if err := a.update(j("lhins-00000004", store.StatusFailed), "/a/results.csv.state@1", start); err != nil {
		t.Error(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "slots")); err != nil || st.Size() > 1<<10*slotSize {
		t.Errorf("slots file: %v, %v; want at most one slot per entry", st, err)
	}
}

// TestRegistryFull: instances that collide share a probe chain; once every
// slot is taken, intents for new instances pass unchecked (said once in the
// log), and those with entries are still checked.
func TestRegistryFull(t *testing.T) {
	t.Parallel()
	r := openTestRegistry(t, t.TempDir(), 8)
	start := time.Now().Add(-time.Minute)
	for i := range 8 {
		if err := r.update(&store.Job{InstanceID: fmt.Sprintf("lhins-%08d", i), Status: store.StatusSubmitting}, "run-a", start); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.update(&store.Job{InstanceID: "lhins-99999999", Status: store.StatusSubmitting}, "run-b", start); err != nil {
		t.Errorf("intent when the registry is full = %v, want it let through", err)
	}
	if !r.fullLog.Load() {
		t.Error("a full registry was not reported")
	}
	for i := range 8 {
		err := r.update(&store.Job{InstanceID: fmt.Sprintf("lhins-%08d", i), Status: store.StatusSubmitting}, "run-b", start)
		if !errors.Is(err, store.ErrInstanceBusy) {
			t.Errorf("lhins-%08d: intent of another run = %v, want ErrInstanceBusy", i, err)
		}
	}
}

// TestRegistryConcurrent: goroutines of two registries race for the same
// instances; each instance goes to exactly one run.
func TestRegistryConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	regs := []*Registry{openTestRegistry(t, dir, 1<<12), openTestRegistry(t, dir, 1<<12)}
	start := time.Now().Add(-time.Minute)
	const n = 200
	var mu sync.Mutex
	won := map[string]int{}
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Go(func() {
			run := fmt.Sprintf("run-%d", k)
			for i := range n {
				id := fmt.Sprintf("lhins-%08d", i)
				if err := regs[k%2].update(&store.Job{InstanceID: id, Status: store.StatusSubmitting}, run, start); err == nil {
					mu.Lock()
					won[id]++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrInstanceBusy) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i := range n {
		if id := fmt.Sprintf("lhins-%08d", i); won[id] != 1 {
			t.Errorf("%s: %d runs recorded an intent, want exactly 1", id, won[id])
		}
	}
}
