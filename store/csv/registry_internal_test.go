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

func begin(t *testing.T, r *Registry, run string, started time.Time) *Holds {
	t.Helper()
	h, err := r.Begin(run, "the run "+run, started)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.End)
	return h
}

func job(id string, st store.Status) *store.Job { return &store.Job{InstanceID: id, Status: st} }

// TestRegistry: a run holds its instances from its start to its end, not
// only while a call is in flight. Another run cannot hold or send for them
// while the holder lives, even after the holder finished the instance; when
// the holder has ended, a run that began later takes them, unless the
// holder ended with a call in doubt; a run that began before the holder's
// reset never does. Each registry of the directory (another process's file
// handle) sees the same entries.
func TestRegistry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ra, rb := openTestRegistry(t, dir, 1<<10), openTestRegistry(t, dir, 1<<10)
	early := time.Now().Add(-time.Hour)
	a := begin(t, ra, "/a/results.csv.state@1", time.Time{})
	for _, id := range []string{"lhins-00000001", "lhins-00000002", "lhins-00000003"} {
		if err := a.Hold(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Check(job("lhins-00000001", store.StatusSubmitting)); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(job("lhins-00000001", store.StatusSucceeded)); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(job("lhins-00000002", store.StatusSubmitting)); err != nil {
		t.Fatal(err)
	}

	// B, which began before A's resets, and C, which begins now.
	b := begin(t, rb, "/b/results.csv.state@1", early)
	for _, id := range []string{"lhins-00000001", "lhins-00000002", "lhins-00000003"} {
		err := b.Hold(id)
		if !errors.Is(err, store.ErrHeld) || !strings.Contains(err.Error(), "the run /a/results.csv.state@1") {
			t.Errorf("%s: hold while the live run A holds it (finished, in flight or untouched) = %v, want ErrHeld naming A", id, err)
		}
		if err := b.Check(job(id, store.StatusSubmitting)); !errors.Is(err, store.ErrHeld) {
			t.Errorf("%s: intent while the live run A holds it = %v, want ErrHeld", id, err)
		}
	}
	if err := b.Hold("lhins-00000004"); err != nil {
		t.Errorf("hold of an instance nobody holds = %v", err)
	}
	if err := b.Check(job("lhins-00000004", store.StatusSubmitting)); err != nil {
		t.Errorf("intent for an instance B holds = %v", err)
	}

	// A ends, with lhins-00000002 in doubt.
	a.End()
	if err := b.Check(job("lhins-00000003", store.StatusSubmitting)); !errors.Is(err, store.ErrHeld) ||
		!strings.Contains(err.Error(), "held it when this run began") {
		t.Errorf("intent for an instance A held when B began, after A ended = %v, want ErrHeld", err)
	}
	if err := b.Hold("lhins-00000001"); !errors.Is(err, store.ErrHeld) || !strings.Contains(err.Error(), "after this run began") {
		t.Errorf("hold by B, which began before A's reset = %v, want ErrHeld", err)
	}
	c := begin(t, ra, "/c/results.csv.state@2", time.Time{})
	if err := c.Hold("lhins-00000001"); err != nil {
		t.Errorf("hold by a run that began after A ended = %v", err)
	}
	if err := c.Check(job("lhins-00000001", store.StatusSubmitting)); err != nil {
		t.Errorf("intent of that run = %v", err)
	}
	err := c.Hold("lhins-00000002")
	if !errors.Is(err, store.ErrHeld) || !strings.Contains(err.Error(), "in doubt") {
		t.Errorf("hold of an instance A ended with in doubt = %v, want ErrHeld saying so", err)
	}
	// A's rerun (the same run key) settles its own call.
	a2 := begin(t, rb, "/a/results.csv.state@1", time.Time{})
	if err := a2.Hold("lhins-00000002"); err != nil {
		t.Errorf("A's rerun holding its own instance = %v", err)
	}
	if err := a2.Check(job("lhins-00000002", store.StatusSucceeded)); err != nil {
		t.Error(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "slots")); err != nil || st.Size() > 1<<10*slotSize {
		t.Errorf("slots file: %v, %v; want at most one slot per entry", st, err)
	}
}

// TestRegistryFull: instances that collide share a probe chain; once every
// slot is taken, new instances pass unchecked (said once in the log), and
// those with entries are still checked.
func TestRegistryFull(t *testing.T) {
	t.Parallel()
	r := openTestRegistry(t, t.TempDir(), 8)
	a := begin(t, r, "run-a", time.Time{})
	for i := range 8 {
		if err := a.Hold(fmt.Sprintf("lhins-%08d", i)); err != nil {
			t.Fatal(err)
		}
	}
	b := begin(t, r, "run-b", time.Time{})
	if err := b.Check(job("lhins-99999999", store.StatusSubmitting)); err != nil {
		t.Errorf("intent when the registry is full = %v, want it let through", err)
	}
	if !r.fullLog.Load() {
		t.Error("a full registry was not reported")
	}
	for i := range 8 {
		if err := b.Check(job(fmt.Sprintf("lhins-%08d", i), store.StatusSubmitting)); !errors.Is(err, store.ErrHeld) {
			t.Errorf("lhins-%08d: intent of another run = %v, want ErrHeld", i, err)
		}
	}
}

// TestRegistryConcurrent: goroutines of runs on two registries race to hold
// the same instances; each instance goes to exactly one run, and only that
// run may send for it.
func TestRegistryConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	regs := []*Registry{openTestRegistry(t, dir, 1<<12), openTestRegistry(t, dir, 1<<12)}
	const n = 200
	var mu sync.Mutex
	won := map[string]int{}
	var wg sync.WaitGroup
	for k := range 8 {
		h := begin(t, regs[k%2], fmt.Sprintf("run-%d", k), time.Time{})
		wg.Go(func() {
			for i := range n {
				id := fmt.Sprintf("lhins-%08d", i)
				err := h.Hold(id)
				if err == nil {
					err = h.Check(job(id, store.StatusSubmitting))
				}
				switch {
				case err == nil:
					mu.Lock()
					won[id]++
					mu.Unlock()
				case !errors.Is(err, store.ErrHeld):
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i := range n {
		if id := fmt.Sprintf("lhins-%08d", i); won[id] != 1 {
			t.Errorf("%s: %d runs may send for it, want exactly 1", id, won[id])
		}
	}
}

// TestRegistryLaterProcess: run D holds an instance and resets it; run B
// begins while D lives, so its first process is refused the instance; D
// ends. A later process of B (another runner of a Postgres run, or a rerun
// of a CSV run) must not take the instance either: D held it when B began.
// Only an instance taken after B began by a run that has since ended,
// with no reset of it since B began, is B's to take back.
func TestRegistryLaterProcess(t *testing.T) {
	t.Parallel()
	r := openTestRegistry(t, t.TempDir(), 1<<10)
	d := begin(t, r, "run-d", time.Time{})
	if err := d.Hold("lhins-00000001"); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(job("lhins-00000001", store.StatusSubmitting)); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(job("lhins-00000001", store.StatusSucceeded)); err != nil {
		t.Fatal(err)
	}
	b1 := begin(t, r, "run-b", time.Time{})
	if err := b1.Hold("lhins-00000001"); !errors.Is(err, store.ErrHeld) {
		t.Fatalf("B's first process holding D's live instance = %v, want ErrHeld", err)
	}
	if err := b1.Hold("lhins-00000002"); err != nil {
		t.Fatal(err)
	}
	d.End()
	b2 := begin(t, r, "run-b", time.Time{})
	if err := b2.Hold("lhins-00000001"); !errors.Is(err, store.ErrHeld) || !strings.Contains(err.Error(), "held it when this run began") {
		t.Errorf("B's later process holding the instance D held when B began = %v, want ErrHeld", err)
	}
	for _, h := range []*Holds{b1, b2} {
		if err := h.Check(job("lhins-00000001", store.StatusSubmitting)); !errors.Is(err, store.ErrHeld) {
			t.Errorf("B's intent for it = %v, want ErrHeld", err)
		}
	}
	// B ends; C takes B's instance and ends without resetting it; B's
	// rerun takes it back.
	b1.End()
	b2.End()
	c := begin(t, r, "run-c", time.Time{})
	if err := c.Hold("lhins-00000002"); err != nil {
		t.Fatalf("C holding the instance of B, which ended = %v", err)
	}
	c.End()
	b3 := begin(t, r, "run-b", time.Time{})
	if err := b3.Hold("lhins-00000002"); err != nil {
		t.Errorf("B's rerun taking back an instance C took after B began and did not reset = %v", err)
	}
}

// BenchmarkHold measures what a run's start costs on the host registry:
// one Hold per instance (go test -run '^$' -bench BenchmarkHold ./store/csv/).
func BenchmarkHold(b *testing.B) {
	r, err := openRegistry(b.TempDir(), registrySlots, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	h, err := r.Begin("bench", "the benchmark run", time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.End()
	b.ResetTimer()
	for i := range b.N {
		if err := h.Hold(fmt.Sprintf("lhins-%08d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRegistryInherit: a rollback run takes the instances of the run it
// rolls back while another process of that run still lives, but never one
// with a call of that run in doubt.
func TestRegistryInherit(t *testing.T) {
	t.Parallel()
	r := openTestRegistry(t, t.TempDir(), 1<<10)
	p := begin(t, r, "run-p", time.Time{})
	for _, id := range []string{"lhins-00000001", "lhins-00000002"} {
		if err := p.Hold(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Check(job("lhins-00000002", store.StatusSubmitting)); err != nil {
		t.Fatal(err)
	}
	c := begin(t, r, "run-p-rollback", time.Time{})
	c.Inherit("run-p")
	if err := c.Hold("lhins-00000001"); err != nil {
		t.Errorf("rollback run holding its parent's instance = %v", err)
	}
	if err := c.Check(job("lhins-00000001", store.StatusSubmitting)); err != nil {
		t.Errorf("rollback run's intent for it = %v", err)
	}
	if err := c.Hold("lhins-00000002"); !errors.Is(err, store.ErrHeld) {
		t.Errorf("rollback run holding an instance its parent has in flight = %v, want ErrHeld", err)
	}
	other := begin(t, r, "run-o", time.Time{})
	if err := other.Hold("lhins-00000001"); !errors.Is(err, store.ErrHeld) {
		t.Errorf("another run holding the rollback's instance = %v, want ErrHeld", err)
	}
}
