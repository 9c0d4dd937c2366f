package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
)

// TestClaimConcurrent has two runners, each with several workers claiming
// and finishing jobs as fast as they can, and checks that every job was
// handed out exactly once.
func TestClaimConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	const jobs = 600
	tb.importJobs(t, "r1", jobs)

	var (
		mu      sync.Mutex
		claimed = make(map[int64][]string) // job ID → owners that got it
	)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for _, owner := range []string{"runner-a", "runner-b"} {
		q := open(t, tb.url).Queue("r1", owner, time.Minute)
		for w := range 6 {
			wg.Go(func() {
				for {
					got, waiting, err := q.Claim(ctx, 1+w%4)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 && !waiting {
						return
					}
					mu.Lock()
					for _, j := range got {
						claimed[j.ID] = append(claimed[j.ID], owner)
					}
					mu.Unlock()
					for _, j := range got {
						j.Status = store.StatusSucceeded
						if err := q.Save(ctx, &j); err != nil {
							errs <- fmt.Errorf("%s: Save(job %d) = %w", owner, j.ID, err)
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if len(claimed) != jobs {
		t.Errorf("%d jobs claimed, want %d", len(claimed), jobs)
	}
	for id, owners := range claimed {
		if len(owners) != 1 {
			t.Errorf("job %d claimed %d times, by %v", id, len(owners), owners)
		}
	}
	st, err := tb.store.Status(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Totals[store.StatusSucceeded] != jobs {
		t.Errorf("Status().Totals = %v, want %d succeeded", st.Totals, jobs)
	}
}

func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 1)

	q1 := tb.store.Queue("r1", "runner-1", 200*time.Millisecond)
	q2 := tb.store.Queue("r1", "runner-2", time.Minute)

	got1, _, err := q1.Claim(ctx, 1)
	if err != nil || len(got1) != 1 {
		t.Fatalf("q1.Claim() = %d jobs, %v, want 1", len(got1), err)
	}
	j1 := got1[0]
	if got, waiting, err := q2.Claim(ctx, 1); len(got) != 0 || !waiting || err != nil {
		t.Fatalf("q2.Claim() while q1's lease is live = %d jobs, waiting %v, %v, want 0, true, nil", len(got), waiting, err)
	}
	// q1 records the intent and then stalls: no Renew.
	j1.Status = store.StatusSubmitting
	j1.Attempts = 1
	j1.IntentAt = time.Now()
	if err := q1.Save(ctx, &j1); err != nil {
		t.Fatalf("q1.Save(submitting) = %v", err)
	}

	var j2 store.Job
	waitFor(t, 10*time.Second, "q2 to take over the expired lease", func() bool {
		got, _, err := q2.Claim(ctx, 1)
		if err != nil {
			t.Fatalf("q2.Claim() = %v", err)
		}
		if len(got) == 1 {
			j2 = got[0]
			return true
		}
		return false
	})
	if j2.ID != j1.ID || j2.Fence <= j1.Fence {
		t.Fatalf("q2 claimed job %d fence %d, want job %d with a fence above %d", j2.ID, j2.Fence, j1.ID, j1.Fence)
	}
	if j2.Status != store.StatusSubmitting || j2.Attempts != 1 {
		t.Errorf("q2 claimed %+v, want the submitting job as q1 left it", j2)
	}

	// q1 wakes up: every write it tries is refused.
	if err := q1.Renew(ctx); err != nil {
		t.Fatalf("q1.Renew() = %v", err)
	}
	for _, s := range []store.Status{store.StatusSubmitted, store.StatusSucceeded, store.StatusPending} {
		j := j1
		j.Status = s
		if err := q1.Save(ctx, &j); !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("q1.Save(%s) after takeover = %v, want %v", s, err, store.ErrLeaseLost)
		}
	}
	j2.Status = store.StatusSucceeded
	if err := q2.Save(ctx, &j2); err != nil {
		t.Errorf("q2.Save() = %v, want nil", err)
	}
	jobs, err := tb.store.Jobs(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if jobs[0].Status != store.StatusSucceeded || jobs[0].Fence != j2.Fence {
		t.Errorf("Jobs() = %+v, want q2's succeeded job", jobs[0])
	}
}

// TestSaveIntentNeedsLiveLease checks that a runner whose lease has expired
// cannot record the intent to send, even if nobody has taken the job yet,
// while it can still record what it already knows.
func TestSaveIntentNeedsLiveLease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 1)
	q := tb.store.Queue("r1", "runner-1", 200*time.Millisecond)
	got, _, err := q.Claim(ctx, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim() = %d jobs, %v, want 1", len(got), err)
	}
	waitFor(t, 10*time.Second, "the lease to expire", func() bool {
		var expired bool
		err := tb.db.QueryRow(ctx, `SELECT lease_expires_at < now() FROM jobs WHERE id = $1`, got[0].ID).Scan(&expired)
		if err != nil {
			t.Fatal(err)
		}
		return expired
	})

	j := got[0]
	j.Status = store.StatusSubmitting
	if err := q.Save(ctx, &j); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Save(submitting) on an expired lease = %v, want %v", err, store.ErrLeaseLost)
	}
	j.Status = store.StatusSubmitted
	j.RequestID = "req-1"
	if err := q.Save(ctx, &j); err != nil {
		t.Errorf("Save(submitted) on an expired but untaken lease = %v, want nil", err)
	}
}

func TestSaveTerminal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 1)
	q := tb.store.Queue("r1", "runner-1", time.Minute)
	got, _, err := q.Claim(ctx, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim() = %d jobs, %v, want 1", len(got), err)
	}
	j := got[0]
	now := time.Now().Truncate(time.Microsecond)
	j.Status = store.StatusSucceeded
	j.RequestID = "req-1"
	j.PrevRequestID = "req-0"
	j.Attempts = 1
	j.IntentAt = now.Add(-2 * time.Second)
	j.SubmittedAt = now.Add(-time.Second)
	j.FinishedAt = now
	if err := q.Save(ctx, &j); err != nil {
		t.Fatalf("Save(succeeded) = %v", err)
	}
	// A retry after an ambiguous error finds its write done.
	if err := q.Save(ctx, &j); err != nil {
		t.Errorf("Save(succeeded) again = %v, want nil", err)
	}
	// Nothing else may follow a terminal status.
	for _, s := range []store.Status{store.StatusFailed, store.StatusPending, store.StatusSubmitting} {
		k := j
		k.Status = s
		if err := q.Save(ctx, &k); !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("Save(%s) after succeeded = %v, want %v", s, err, store.ErrLeaseLost)
		}
	}

	jobs, err := tb.store.Jobs(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(j, jobs[0]); diff != "" {
		t.Errorf("Jobs() after Save mismatch (-want +got):\n%s", diff)
	}
	var leased bool
	if err := tb.db.QueryRow(ctx, `SELECT lease_owner IS NOT NULL OR lease_expires_at IS NOT NULL FROM jobs`).Scan(&leased); err != nil {
		t.Fatal(err)
	}
	if leased {
		t.Error("terminal job still leased")
	}
	if err := q.Save(ctx, &store.Job{ID: j.ID, Fence: j.Fence, Status: "done"}); err == nil {
		t.Error("Save() with an invalid status = nil, want an error")
	}
}

func TestClaimNotBefore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	jobs := makeJobs(0, 2)
	jobs[1].NotBefore = time.Now().Add(time.Hour)
	if _, err := tb.store.Import(ctx, "r1", jobs, time.Time{}); err != nil {
		t.Fatal(err)
	}
	q := tb.store.Queue("r1", "runner-1", time.Minute)

	got, waiting, err := q.Claim(ctx, 10)
	if err != nil || len(got) != 1 || got[0].InstanceID != jobs[0].InstanceID {
		t.Fatalf("Claim() = %v, %v, want only the due job %s", got, err, jobs[0].InstanceID)
	}
	if waiting {
		t.Error("Claim() waiting = true with only a job not yet due left, want false (a later run takes it)")
	}
	j := got[0]
	j.Status = store.StatusFailed
	if err := q.Save(ctx, &j); err != nil {
		t.Fatal(err)
	}
	got, waiting, err = q.Claim(ctx, 10)
	if len(got) != 0 || waiting || err != nil {
		t.Errorf("Claim() = %d jobs, waiting %v, %v, want 0, false (only a job not yet due), nil", len(got), waiting, err)
	}

	// Once due, it is claimed; then nothing is left.
	if _, err := tb.db.Exec(ctx, `UPDATE jobs SET not_before = now() - interval '1 second' WHERE instance_id = $1`, jobs[1].InstanceID); err != nil {
		t.Fatal(err)
	}
	got, _, err = q.Claim(ctx, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim() after not_before = %d jobs, %v, want 1", len(got), err)
	}
	j = got[0]
	j.Status = store.StatusSucceeded
	if err := q.Save(ctx, &j); err != nil {
		t.Fatal(err)
	}
	got, waiting, err = q.Claim(ctx, 10)
	if len(got) != 0 || waiting || err != nil {
		t.Errorf("Claim() on a finished run = %d jobs, waiting %v, %v, want 0, false, nil", len(got), waiting, err)
	}
}

func TestClaimWaiting(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 3)
	q1 := tb.store.Queue("r1", "runner-1", time.Minute)
	q2 := tb.store.Queue("r1", "runner-2", time.Minute)

	held, waiting, err := q1.Claim(ctx, 3)
	if err != nil || len(held) != 3 || waiting {
		t.Fatalf("q1.Claim(3) = %d jobs, waiting %v, %v, want 3, false, nil", len(held), waiting, err)
	}
	// Jobs held by q1 itself are not "waiting" for q1…
	if got, waiting, err := q1.Claim(ctx, 1); len(got) != 0 || waiting || err != nil {
		t.Errorf("q1.Claim() holding everything = %d jobs, waiting %v, %v, want 0, false, nil", len(got), waiting, err)
	}
	// …but are for q2.
	if got, waiting, err := q2.Claim(ctx, 1); len(got) != 0 || !waiting || err != nil {
		t.Errorf("q2.Claim() = %d jobs, waiting %v, %v, want 0, true, nil", len(got), waiting, err)
	}
	for _, j := range held {
		j.Status = store.StatusSkipped
		j.ErrorMessage = "cancelled"
		if err := q1.Save(ctx, &j); err != nil {
			t.Fatal(err)
		}
	}
	if got, waiting, err := q2.Claim(ctx, 1); len(got) != 0 || waiting || err != nil {
		t.Errorf("q2.Claim() on a finished run = %d jobs, waiting %v, %v, want 0, false, nil", len(got), waiting, err)
	}
	if _, _, err := q2.Claim(ctx, 0); err == nil {
		t.Error("Claim(0) = nil error, want an error")
	}
}

func TestRelease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 3)
	q1 := tb.store.Queue("r1", "runner-1", time.Minute)
	q2 := tb.store.Queue("r1", "runner-2", time.Minute)

	held, _, err := q1.Claim(ctx, 3)
	if err != nil || len(held) != 3 {
		t.Fatalf("q1.Claim(3) = %d jobs, %v", len(held), err)
	}
	if err := q1.Release(ctx, held[:2]); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	got, waiting, err := q2.Claim(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(jobs []store.Job) []int64 {
		var out []int64
		for _, j := range jobs {
			out = append(out, j.ID)
		}
		return out
	}
	if diff := cmp.Diff(ids(held[:2]), ids(got)); diff != "" {
		t.Errorf("q2.Claim() after Release mismatch (-want +got):\n%s", diff)
	}
	if !waiting {
		t.Error("q2.Claim() waiting = false while q1 holds a job, want true")
	}
	j := held[0]
	j.Status = store.StatusSubmitting
	if err := q1.Save(ctx, &j); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("q1.Save() of a released job = %v, want %v", err, store.ErrLeaseLost)
	}
	// Releasing a job already released, or taken by another, does nothing.
	if err := q1.Release(ctx, held[:2]); err != nil {
		t.Fatalf("second Release() = %v", err)
	}
	j = got[0]
	j.Status = store.StatusSubmitting
	if err := q2.Save(ctx, &j); err != nil {
		t.Errorf("q2.Save() after q1's second Release = %v, want nil", err)
	}
}

func TestRenew(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 3)
	q := tb.store.Queue("r1", "runner-1", time.Minute)
	held, _, err := q.Claim(ctx, 3)
	if err != nil || len(held) != 3 {
		t.Fatalf("Claim(3) = %d jobs, %v", len(held), err)
	}
	expiries := func() map[int64]time.Time {
		rows, err := tb.db.Query(ctx, `SELECT id, lease_expires_at FROM jobs WHERE lease_expires_at IS NOT NULL`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := make(map[int64]time.Time)
		for rows.Next() {
			var (
				id int64
				at time.Time
			)
			if err := rows.Scan(&id, &at); err != nil {
				t.Fatal(err)
			}
			out[id] = at
		}
		return out
	}
	// One job finishes, one is released: only the third is renewed.
	j := held[0]
	j.Status = store.StatusSucceeded
	if err := q.Save(ctx, &j); err != nil {
		t.Fatal(err)
	}
	if err := q.Release(ctx, held[1:2]); err != nil {
		t.Fatal(err)
	}
	before := expiries()
	if err := q.Renew(ctx); err != nil {
		t.Fatalf("Renew() = %v", err)
	}
	after := expiries()
	if len(after) != 1 || !after[held[2].ID].After(before[held[2].ID]) {
		t.Errorf("lease expiries %v after Renew, want only job %d's, later than %v", after, held[2].ID, before[held[2].ID])
	}
}

func TestControl(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 1)
	q := tb.store.Queue("r1", "runner-1", time.Minute)

	for _, c := range []store.Control{store.ControlRunning, store.ControlPaused, store.ControlRunning, store.ControlCancelled} {
		if err := tb.store.SetControl(ctx, "r1", c); err != nil {
			t.Fatalf("SetControl(%q) = %v", c, err)
		}
		if got, err := q.Control(ctx); got != c || err != nil {
			t.Errorf("Control() after SetControl(%q) = %q, %v", c, got, err)
		}
	}
	if err := tb.store.SetControl(ctx, "nope", store.ControlPaused); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetControl() of an unknown run = %v, want %v", err, store.ErrNotFound)
	}
	if err := tb.store.SetControl(ctx, "r1", "stopped"); err == nil {
		t.Error("SetControl(invalid) = nil, want an error")
	}

	// A run whose jobs another tool inserted has no runs row until set.
	if _, err := tb.db.Exec(ctx, `INSERT INTO jobs (run, instance_id, region) VALUES ('direct', 'lhins-x1', 'ap-beijing')`); err != nil {
		t.Fatal(err)
	}
	qd := tb.store.Queue("direct", "runner-1", time.Minute)
	if got, err := qd.Control(ctx); got != store.ControlRunning || err != nil {
		t.Errorf("Control() without a runs row = %q, %v, want running", got, err)
	}
	if err := tb.store.SetControl(ctx, "direct", store.ControlPaused); err != nil {
		t.Fatalf("SetControl() of a directly inserted run = %v", err)
	}
	if got, err := qd.Control(ctx); got != store.ControlPaused || err != nil {
		t.Errorf("Control() = %q, %v, want paused", got, err)
	}
	if got, err := tb.store.Queue("nope", "runner-1", time.Minute).Control(ctx); got != store.ControlRunning || err != nil {
		t.Errorf("Control() of an unknown run = %q, %v, want running", got, err)
	}
}

// TestQueueCancelled checks that a cancelled context ends Claim with an error
// wrapping it, not a hang or a panic.
func TestQueueCancelled(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.importJobs(t, "r1", 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	q := tb.store.Queue("r1", "runner-1", time.Minute)
	if _, _, err := q.Claim(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Claim() with a cancelled context = %v, want %v", err, context.Canceled)
	}
}

// TestClaimOneRegion: a claim's jobs are of one region, so that the runner
// describes them in one call: the last claim's while it has claimable jobs,
// then the first claimable job's; when another claim holds that region's
// jobs, the claim takes the others.
func TestClaimOneRegion(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	jobs := makeJobs(0, 12)
	for i := range jobs {
		jobs[i].Region = []string{"ap-guangzhou", "ap-singapore", "ap-beijing"}[i%3]
	}
	if _, err := tb.store.Import(ctx, "r1", jobs, time.Time{}); err != nil {
		t.Fatal(err)
	}
	q := tb.store.Queue("r1", "runner-1", time.Minute)
	var order []string
	for range 6 {
		got, _, err := q.Claim(ctx, 3)
		if err != nil || len(got) != 3-len(order)%2*2 {
			t.Fatalf("Claim(3) = %d jobs, %v, want 3 then the last 1 of one region", len(got), err)
		}
		for _, j := range got {
			if j.Region != got[0].Region {
				t.Fatalf("Claim(3) mixes regions: %v", got)
			}
		}
		order = append(order, got[0].Region)
	}
	if want := []string{"ap-guangzhou", "ap-guangzhou", "ap-singapore", "ap-singapore", "ap-beijing", "ap-beijing"}; !slices.Equal(order, want) {
		t.Errorf("claims came in region order %v, want %v", order, want)
	}

	// Another claim is under way on the first region's jobs: this one does
	// not come back empty.
	if _, err := tb.store.Import(ctx, "r2", makeJobs(100, 2), time.Time{}); err != nil {
		t.Fatal(err)
	}
	other := makeJobs(200, 2)
	for i := range other {
		other[i].Region = "ap-singapore"
	}
	if _, err := tb.store.Import(ctx, "r2", other, time.Time{}); err != nil {
		t.Fatal(err)
	}
	tx, err := tb.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT id FROM jobs WHERE run = 'r2' AND region = 'ap-guangzhou' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	got, _, err := tb.store.Queue("r2", "runner-2", time.Minute).Claim(ctx, 5)
	if err != nil || len(got) != 2 || got[0].Region != "ap-singapore" || got[1].Region != "ap-singapore" {
		t.Errorf("Claim(5) while ap-guangzhou's jobs are being claimed = %v, %v; want the 2 of ap-singapore", got, err)
	}
}
