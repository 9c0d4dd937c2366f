package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

// TestJoinHooks: the first runner's hooks are the run's; a later runner
// joining with others gets the run's back, and Hooks reads them. A run
// whose record holds none reads as not recorded; a run that does not
// exist cannot be joined.
func TestJoinHooks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	if _, err := tb.store.Import(ctx, "r1", makeJobs(0, 3), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, recorded, err := tb.store.Hooks(ctx, "r1"); err != nil || recorded {
		t.Fatalf("Hooks(r1) before a runner = recorded %v, %v; want none recorded", recorded, err)
	}
	first := store.HookSettings{Before: "exec:/opt/drain.sh", After: "tat:/opt/back.sh", Timeout: 90 * time.Second, Failure: "abandon", Concurrency: 50}
	if got, err := tb.store.JoinHooks(ctx, "r1", first); err != nil || got != first {
		t.Fatalf("JoinHooks(first) = %+v, %v; want %+v", got, err, first)
	}
	if got, err := tb.store.JoinHooks(ctx, "r1", store.HookSettings{}); err != nil || got != first {
		t.Fatalf("JoinHooks(none) = %+v, %v; want the run's %+v", got, err, first)
	}
	if got, recorded, err := tb.store.Hooks(ctx, "r1"); err != nil || !recorded || got != first {
		t.Fatalf("Hooks(r1) = %+v, %v, %v; want %+v recorded", got, recorded, err, first)
	}
	if _, err := tb.store.JoinHooks(ctx, "nope", first); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("JoinHooks(nope) = %v, want ErrNotFound", err)
	}
	if _, recorded, err := tb.store.Hooks(ctx, "nope"); err != nil || recorded {
		t.Errorf("Hooks(nope) = recorded %v, %v; want none recorded", recorded, err)
	}
}
