package postgres_test

import (
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

// TestRolloutAdmissionFollowsItsJob: an admission into a wave belongs to the
// job under the lease it was admitted with. Runner A fills a wave of 2 and
// hands one of its jobs back unsent (it was interrupted, or left at a
// pause): the wave must take another job in its place, or it can never
// drain. The job A handed back is admitted anew by whoever sends it. A job
// that was sent keeps its admission whoever holds it.
func TestRolloutAdmissionFollowsItsJob(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 6)
	qa := tb.store.Queue("r1", "runner-a", time.Minute)
	qb := open(t, tb.url).Queue("r1", "runner-b", time.Minute)
	plan := store.RolloutPlan{Canary: 2, Waves: []int{2}, MaxFailures: -1, FirstWave: 2}
	if _, err := qa.RolloutJoin(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if _, err := qb.RolloutJoin(ctx, plan); err != nil {
		t.Fatal(err)
	}
	a, _, err := qa.Claim(ctx, 3)
	if err != nil || len(a) != 3 {
		t.Fatalf("A: Claim(3) = %d jobs, %v", len(a), err)
	}
	for i := range 2 {
		if got, err := qa.RolloutAdmit(ctx, &a[i]); err != nil || !got.Admitted || got.Wave != 0 {
			t.Fatalf("A: RolloutAdmit(job %d) = %+v, %v, want admitted into wave 0", a[i].ID, got, err)
		}
	}
	if got, err := qa.RolloutAdmit(ctx, &a[2]); err != nil || got.Admitted || !got.Full {
		t.Fatalf("A: RolloutAdmit(job %d) into a full wave = %+v, %v, want full", a[2].ID, got, err)
	}
	// A sends its first job and hands the second back unsent.
	a[0].Status, a[0].IntentAt, a[0].Attempts = store.StatusSubmitting, time.Now(), 1
	if err := qa.Save(ctx, &a[0]); err != nil {
		t.Fatal(err)
	}
	if err := qa.Release(ctx, []store.Job{a[0], a[1], a[2]}); err != nil {
		t.Fatal(err)
	}

	bJobs, _, err := qb.Claim(ctx, 6)
	if err != nil || len(bJobs) != 6 {
		t.Fatalf("B: Claim(6) = %d jobs, %v", len(bJobs), err)
	}
	byID := map[int64]*store.Job{}
	for i := range bJobs {
		byID[bJobs[i].ID] = &bJobs[i]
	}
	// The wave's room A left goes to the first job B asks for.
	other := byID[a[2].ID]
	if got, err := qb.RolloutAdmit(ctx, other); err != nil || !got.Admitted || got.Wave != 0 {
		t.Fatalf("B: RolloutAdmit(job %d) = %+v, %v, want admitted into wave 0 in the place of job %d, handed back unsent",
			other.ID, got, err, a[1].ID)
	}
	// The job A sent keeps its admission; the one it handed back waits for
	// the next wave like any other.
	if got, err := qb.RolloutAdmit(ctx, byID[a[0].ID]); err != nil || !got.Admitted || got.Wave != 0 {
		t.Errorf("B: RolloutAdmit(job %d, sent by A) = %+v, %v, want still admitted into wave 0", a[0].ID, got, err)
	}
	if got, err := qb.RolloutAdmit(ctx, byID[a[1].ID]); err != nil || got.Admitted || !got.Full {
		t.Errorf("B: RolloutAdmit(job %d, handed back) = %+v, %v, want the wave full", a[1].ID, got, err)
	}
	ws, err := qb.RolloutWave(ctx, 0)
	if err != nil || ws.Pending != 2 {
		t.Errorf("RolloutWave(0) = %+v, %v, want the 2 jobs admitted now pending", ws, err)
	}
	waves, err := tb.store.Waves(ctx, "r1")
	if err != nil || len(waves) != 2 {
		t.Errorf("Waves() = %v, %v, want 2 jobs in wave 0", waves, err)
	}
}
