package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres"
)

// TestSaveBatch writes one batch in which every job meets a different rule
// of Save, and checks that each gets its own answer, as if saved alone.
func TestSaveBatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 5)
	q := tb.store.Queue("r1", "runner-1", time.Minute)
	got, _, err := q.Claim(ctx, 5)
	if err != nil || len(got) != 5 {
		t.Fatalf("Claim() = %d jobs, %v, want 5", len(got), err)
	}
	done := got[3]
	done.Status = store.StatusSucceeded
	done.RequestID = "req-3"
	if err := q.Save(ctx, &done); err != nil {
		t.Fatal(err)
	}

	batch := make([]store.Job, 5)
	copy(batch, got)
	batch[0].Status = store.StatusSubmitting // an intent on a live lease
	batch[0].Attempts = 1
	batch[1].Status = store.StatusSubmitted
	batch[1].RequestID = "req-1"
	batch[2].Status = store.StatusSubmitted
	batch[2].Fence++ // a lease this runner does not hold
	batch[3] = done  // the same outcome again, as after an ambiguous error
	batch[4].Status = store.StatusFailed
	batch[4].ErrorCode = "E"
	errs := q.SaveBatch(ctx, batch)
	for i, want := range []error{nil, nil, store.ErrLeaseLost, nil, nil} {
		if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
			t.Errorf("SaveBatch()[%d] (%s) = %v, want %v", i, batch[i].Status, errs[i], want)
		}
	}

	jobs, err := tb.store.Jobs(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []store.Status{store.StatusSubmitting, store.StatusSubmitted, store.StatusPending, store.StatusSucceeded, store.StatusFailed} {
		if jobs[i].Status != want {
			t.Errorf("job %d: status %s, want %s", i, jobs[i].Status, want)
		}
	}
	if jobs[1].RequestID != "req-1" || jobs[4].ErrorCode != "E" || jobs[0].Attempts != 1 {
		t.Errorf("Jobs() = %+v, want the batch's fields written", jobs)
	}
}

// TestSaveBatchIntentRefused writes a batch of intents in which one
// instance is held by another run (which began first and has it in flight),
// then one while the run is paused: the batch falls back to one statement
// per job, and only those intents are refused.
func TestSaveBatchIntentRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 3)
	tb.importJobs(t, "r2", 1) // lhins-00000000 again
	other := tb.store.Queue("r2", "runner-2", time.Minute)
	o, _, err := other.Claim(ctx, 1)
	if err != nil || len(o) != 1 {
		t.Fatalf("Claim(r2) = %d jobs, %v, want 1", len(o), err)
	}
	o[0].Status = store.StatusSubmitting
	if err := other.Save(ctx, &o[0]); err != nil {
		t.Fatal(err)
	}

	q := tb.store.Queue("r1", "runner-1", time.Minute)
	got, _, err := q.Claim(ctx, 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("Claim(r1) = %d jobs, %v, want 3", len(got), err)
	}
	for i := range got {
		got[i].Status = store.StatusSubmitting
	}
	errs := q.SaveBatch(ctx, got)
	if !errors.Is(errs[0], store.ErrHeld) || !strings.Contains(errs[0].Error(), `run "r2" holds it`) || errs[1] != nil || errs[2] != nil {
		t.Errorf("SaveBatch() = %v, want [%v naming r2, nil, nil]", errs, store.ErrHeld)
	}

	if err := tb.store.SetControl(ctx, "r1", store.ControlPaused); err != nil {
		t.Fatal(err)
	}
	got[0].Status, got[1].Status, got[2].Status = store.StatusPending, store.StatusSubmitting, store.StatusSubmitted
	errs = q.SaveBatch(ctx, got)
	if errs[0] != nil || !errors.Is(errs[1], store.ErrStopped) || errs[2] != nil {
		t.Errorf("SaveBatch() while paused = %v, want [nil, %v, nil]", errs, store.ErrStopped)
	}
}

// TestSaveGroup has many workers of one Queue save at once and checks that
// every Save is committed when it returns, in fewer statements than Saves.
func TestSaveGroup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	const jobs = 400
	tb.importJobs(t, "r1", jobs)
	s, counter, err := postgres.OpenCounted(ctx, tb.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	q := s.Queue("r1", "runner-1", time.Minute)
	got, _, err := q.Claim(ctx, jobs)
	if err != nil || len(got) != jobs {
		t.Fatalf("Claim() = %d jobs, %v, want %d", len(got), err, jobs)
	}
	counter.Reset()
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			j := got[i]
			for _, st := range []store.Status{store.StatusSubmitting, store.StatusSubmitted, store.StatusSucceeded} {
				j.Status = st
				if err := q.Save(ctx, &j); err != nil {
					t.Errorf("Save(job %d, %s) = %v", j.ID, st, err)
					return
				}
				var now store.Status
				if err := tb.store.Pool().QueryRow(ctx, `SELECT status FROM jobs WHERE id = $1`, j.ID).Scan(&now); err != nil || now != st {
					t.Errorf("job %d after Save(%s) returned: %s, %v", j.ID, st, now, err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d Saves in %d statements", 3*jobs, counter.Statements())
	if n := counter.Statements(); n >= 3*jobs {
		t.Errorf("%d statements for %d concurrent Saves, want fewer", n, 3*jobs)
	}
}

// TestSaveGroupCancelled checks that a Save whose context ends while it
// waits returns at once with the context's error.
func TestSaveGroupCancelled(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.importJobs(t, "r1", 1)
	q := tb.store.Queue("r1", "runner-1", time.Minute)
	got, _, err := q.Claim(t.Context(), 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim() = %d jobs, %v, want 1", len(got), err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got[0].Status = store.StatusSubmitting
	if err := q.Save(ctx, &got[0]); !errors.Is(err, context.Canceled) {
		t.Errorf("Save() with a cancelled context = %v, want %v", err, context.Canceled)
	}
}

// TestHoldsLaterRunner: run d holds an instance and resets it; run b
// begins while d lives, so b's first runner may not send for it; d's
// runner leaves. A later runner of b may not send for it either: d held it
// when b began. A job of b whose instance no run holds is taken at its
// intent.
func TestHoldsLaterRunner(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "d", 1) // lhins-00000000
	tb.importJobs(t, "b", 2) // lhins-00000000, lhins-00000001
	d := tb.store.Queue("d", "runner-d", time.Minute)
	dj, _, err := d.Claim(ctx, 1)
	if err != nil || len(dj) != 1 {
		t.Fatalf("Claim(d) = %d jobs, %v", len(dj), err)
	}
	dj[0].Status = store.StatusSubmitting
	if err := d.Save(ctx, &dj[0]); err != nil {
		t.Fatal(err)
	}
	dj[0].Status, dj[0].RequestID = store.StatusSucceeded, "req-d"
	if err := d.Save(ctx, &dj[0]); err != nil {
		t.Fatal(err)
	}

	intent := func(q *postgres.Queue) error {
		jobs, _, err := q.Claim(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.InstanceID == "lhins-00000000" {
				j.Status = store.StatusSubmitting
				err := q.Save(ctx, &j)
				if rerr := q.Release(ctx, jobs); rerr != nil {
					t.Fatal(rerr)
				}
				return err
			}
		}
		t.Fatal("lhins-00000000 not claimed")
		return nil
	}
	b1 := tb.store.Queue("b", "runner-b1", time.Minute)
	if err := intent(b1); !errors.Is(err, store.ErrHeld) || !strings.Contains(err.Error(), `run "d" holds it`) {
		t.Errorf("b's first runner: intent while d lives = %v, want ErrHeld naming d", err)
	}
	if err := d.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	b2 := tb.store.Queue("b", "runner-b2", time.Minute)
	if err := intent(b2); !errors.Is(err, store.ErrHeld) || !strings.Contains(err.Error(), "held it when this run began") {
		t.Errorf("b's later runner: intent after d left = %v, want ErrHeld", err)
	}
}

// TestCancelWhileHeld: a run is cancelled while a runner holds some of its
// pending jobs; that runner is interrupted and hands them back unsent. The
// next claim of any runner skips them, as the cancel skipped the others:
// a cancelled run's pending jobs are never claimed, so nothing else would
// end them.
func TestCancelWhileHeld(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "c", 5)
	q := tb.store.Queue("c", "runner-1", time.Minute)
	held, _, err := q.Claim(ctx, 2)
	if err != nil || len(held) != 2 {
		t.Fatalf("Claim = %d jobs, %v, want 2", len(held), err)
	}
	if err := tb.store.SetControl(ctx, "c", store.ControlCancelled); err != nil {
		t.Fatal(err)
	}
	if err := q.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	jobs, _, err := tb.store.Queue("c", "runner-2", time.Minute).Claim(ctx, 5)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("Claim after the cancel = %d jobs, %v, want none", len(jobs), err)
	}
	all, err := tb.store.Jobs(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all {
		if j.Status != store.StatusSkipped || j.ErrorMessage != "cancelled by operator" {
			t.Errorf("%s: %s %q, want skipped, cancelled by operator", j.InstanceID, j.Status, j.ErrorMessage)
		}
	}
}
