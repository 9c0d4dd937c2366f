package csv_test

import (
	"os"
	"testing"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

// TestHold: a run's control lives beside its journal: a pause for an
// approval survives the store, a paused run hands out no pending job, a
// resume approves the awaited wave and the same pause is then refused, a
// cancel holds against a pause, and a new journal forgets a stale file.
func TestHold(t *testing.T) {
	t.Parallel()
	tb := setup(t, 3)
	s := tb.open(t)
	if h, err := s.Hold(t.Context()); err != nil || h.Control != store.ControlRunning {
		t.Fatalf("Hold() of a new run = %+v, %v; want running", h, err)
	}
	h, err := s.Pause(t.Context(), "approval of wave 2", 2)
	if err != nil || h.Control != store.ControlPaused || h.Awaiting != 2 {
		t.Fatalf("Pause() = %+v, %v; want paused awaiting wave 2", h, err)
	}
	if jobs, _, err := s.Claim(t.Context(), 10); err != nil || len(jobs) != 0 {
		t.Errorf("Claim() while paused = %d jobs, %v; want none pending", len(jobs), err)
	}
	closeStore(t, s)

	got, err := csv.ReadHold(tb.path)
	if err != nil || got != h {
		t.Fatalf("ReadHold() after the store closed = %+v, %v; want %+v", got, err, h)
	}
	s = tb.open(t)
	if err := s.SetControl(t.Context(), store.ControlRunning); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Hold(t.Context()); got.Control != store.ControlRunning || got.Approved != 2 || got.Reason != "" {
		t.Errorf("Hold() after resume = %+v, want running with wave 2 approved", got)
	}
	if got, _ := s.Pause(t.Context(), "approval of wave 2", 2); got.Control != store.ControlRunning {
		t.Errorf("Pause() for an approved wave = %+v, want still running", got)
	}
	if jobs, _, err := s.Claim(t.Context(), 10); err != nil || len(jobs) != 3 {
		t.Errorf("Claim() after resume = %d jobs, %v; want the 3 pending", len(jobs), err)
	}
	if err := s.SetControl(t.Context(), store.ControlCancelled); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Pause(t.Context(), "failure budget exceeded (3 failed, budget 2)", 0); got.Control != store.ControlCancelled {
		t.Errorf("Pause() of a cancelled run = %+v, want still cancelled", got)
	}
	closeStore(t, s)

	if err := os.Remove(tb.path); err != nil {
		t.Fatal(err)
	}
	s = tb.open(t)
	if got, _ := s.Hold(t.Context()); got.Control != store.ControlRunning {
		t.Errorf("Hold() of a new journal beside an old control file = %+v, want running", got)
	}
}
