package postgres_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres"
)

func TestImportSelected(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	const sel = "batchreset select --region ap-guangzhou --filter tag:env=staging --same-image"

	n, err := tb.store.ImportSelected(ctx, "picked", sel, makeJobs(0, 50))
	if err != nil || n != 50 {
		t.Fatalf("ImportSelected() = %d, %v, want 50, nil", n, err)
	}
	if got, err := tb.store.Selector(ctx, "picked"); err != nil || got != sel {
		t.Errorf("Selector() = %q, %v, want %q", got, err, sel)
	}
	jobs, err := tb.store.Jobs(ctx, "picked")
	if err != nil || len(jobs) != 50 || jobs[0].Status != store.StatusPending {
		t.Fatalf("Jobs() = %d jobs, %v; want 50 pending", len(jobs), err)
	}

	// A run with jobs is never selected into again.
	if _, err := tb.store.ImportSelected(ctx, "picked", "other", makeJobs(100, 5)); !errors.Is(err, postgres.ErrRunHasJobs) {
		t.Errorf("ImportSelected() into a run with jobs = %v, want ErrRunHasJobs", err)
	}
	if got, _ := tb.store.Selector(ctx, "picked"); got != sel {
		t.Errorf("Selector() after the refused import = %q, want %q", got, sel)
	}
	if jobs, _ := tb.store.Jobs(ctx, "picked"); len(jobs) != 50 {
		t.Errorf("run has %d jobs after the refused import, want 50", len(jobs))
	}

	// A run imported from a file records no selector.
	if _, err := tb.store.Import(ctx, "file", makeJobs(0, 3), jobs[0].NotBefore); err != nil {
		t.Fatal(err)
	}
	if got, err := tb.store.Selector(ctx, "file"); err != nil || got != "" {
		t.Errorf("Selector() of an imported run = %q, %v, want \"\", nil", got, err)
	}
	if _, err := tb.store.Selector(ctx, "nosuch"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Selector() of no run = %v, want ErrNotFound", err)
	}
}

// TestImportSelectedConcurrent has several runners select into one empty
// run at once: exactly one list is imported, and the others are told so.
func TestImportSelectedConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	const runners = 4
	var wg sync.WaitGroup
	errs := make([]error, runners)
	for i := range runners {
		wg.Go(func() {
			_, errs[i] = tb.store.ImportSelected(ctx, "race", "sel", makeJobs(i*1000, 200))
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, postgres.ErrRunHasJobs):
			t.Errorf("ImportSelected() = %v, want nil or ErrRunHasJobs", err)
		}
	}
	if jobs, _ := tb.store.Jobs(ctx, "race"); won != 1 || len(jobs) != 200 {
		t.Errorf("%d imports won, run has %d jobs; want 1 and 200", won, len(jobs))
	}
}
