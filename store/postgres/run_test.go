package postgres_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	notBefore := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if _, err := tb.store.Import(ctx, "r1", makeJobs(0, 20), notBefore); err != nil {
		t.Fatal(err)
	}
	q := tb.store.Queue("r1", "runner-1", time.Minute)
	held, _, err := q.Claim(ctx, 16)
	if err != nil || len(held) != 16 {
		t.Fatalf("Claim(16) = %d jobs, %v", len(held), err)
	}
	// Job 0 submitting, 1 submitted, 2 succeeded, 3-14 failed (12 errors,
	// saved in order), 15 released; 16-19 never claimed.
	save := func(j store.Job, s store.Status, code string) {
		t.Helper()
		j.Status = s
		j.ErrorCode = code
		if code != "" {
			j.ErrorMessage = "message for " + code
		}
		if err := q.Save(ctx, &j); err != nil {
			t.Fatalf("Save(%s) = %v", s, err)
		}
	}
	save(held[0], store.StatusSubmitting, "")
	save(held[1], store.StatusSubmitted, "")
	save(held[2], store.StatusSucceeded, "")
	for i := 3; i < 15; i++ {
		save(held[i], store.StatusFailed, fmt.Sprintf("Code%02d", i))
	}
	if err := q.Release(ctx, held[15:]); err != nil {
		t.Fatal(err)
	}
	if err := tb.store.SetControl(ctx, "r1", store.ControlPaused); err != nil {
		t.Fatal(err)
	}

	got, err := tb.store.Status(ctx, "r1")
	if err != nil {
		t.Fatalf("Status() = %v", err)
	}
	want := postgres.Status{
		Run:     "r1",
		Control: store.ControlPaused,
		Totals: store.Totals{
			store.StatusPending: 5, store.StatusSubmitting: 1, store.StatusSubmitted: 1,
			store.StatusSucceeded: 1, store.StatusFailed: 12, store.StatusSkipped: 0, store.StatusUnknown: 0, store.StatusUnhealthy: 0,
		},
		Jobs:          20,
		InFlight:      2,
		Leased:        2,
		Owners:        1,
		OldestPending: notBefore,
	}
	for i := 14; i > 4; i-- {
		code := fmt.Sprintf("Code%02d", i)
		want.LastErrors = append(want.LastErrors, postgres.JobError{
			JobID:      held[i].ID,
			InstanceID: held[i].InstanceID,
			Status:     store.StatusFailed,
			Code:       code,
			Message:    "message for " + code,
		})
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(postgres.JobError{}, "At")); diff != "" {
		t.Errorf("Status() mismatch (-want +got):\n%s", diff)
	}
	for _, e := range got.LastErrors {
		if e.At.IsZero() {
			t.Errorf("LastErrors entry %+v has no time", e)
		}
	}

	if _, err := tb.store.Status(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Status() of an unknown run = %v, want %v", err, store.ErrNotFound)
	}
}

func TestRunsAndJobs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	if runs, err := tb.store.Runs(ctx); len(runs) != 0 || err != nil {
		t.Errorf("Runs() on an empty schema = %v, %v, want none", runs, err)
	}
	tb.importJobs(t, "b", 3)
	tb.importJobs(t, "a", 2)
	if _, err := tb.store.Import(ctx, "empty", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.db.Exec(ctx, `INSERT INTO jobs (run, instance_id, region) VALUES ('direct', 'lhins-x1', 'ap-beijing')`); err != nil {
		t.Fatal(err)
	}
	q := tb.store.Queue("a", "runner-1", time.Minute)
	held, _, err := q.Claim(ctx, 1)
	if err != nil || len(held) != 1 {
		t.Fatal(err)
	}
	held[0].Status = store.StatusUnknown
	held[0].ErrorMessage = "DescribeInstances kept failing"
	if err := q.Save(ctx, &held[0]); err != nil {
		t.Fatal(err)
	}

	runs, err := tb.store.Runs(ctx)
	if err != nil {
		t.Fatalf("Runs() = %v", err)
	}
	want := []postgres.Run{
		{Name: "a", Control: store.ControlRunning, Jobs: 2, Unfinished: 1},
		{Name: "b", Control: store.ControlRunning, Jobs: 3, Unfinished: 3},
		{Name: "direct", Control: store.ControlRunning, Jobs: 1, Unfinished: 1},
		{Name: "empty", Control: store.ControlRunning},
	}
	if diff := cmp.Diff(want, runs, cmpopts.IgnoreFields(postgres.Run{}, "CreatedAt")); diff != "" {
		t.Errorf("Runs() mismatch (-want +got):\n%s", diff)
	}

	inDoubt, err := tb.store.Jobs(ctx, "a", store.StatusSubmitting, store.StatusUnknown)
	if err != nil || len(inDoubt) != 1 || inDoubt[0].ID != held[0].ID {
		t.Errorf("Jobs(a, submitting, unknown) = %v, %v, want job %d", inDoubt, err, held[0].ID)
	}
	if got, err := tb.store.Jobs(ctx, "empty"); len(got) != 0 || err != nil {
		t.Errorf("Jobs() of a run without jobs = %v, %v, want none, nil", got, err)
	}
	if _, err := tb.store.Jobs(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Jobs() of an unknown run = %v, want %v", err, store.ErrNotFound)
	}
}

func TestCount(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	if _, err := tb.store.Count(ctx, "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Count(none) = %v, want %v", err, store.ErrNotFound)
	}
	jobs := makeJobs(0, 5)
	jobs[1].Region, jobs[3].Region = "ap-singapore", "ap-beijing"
	if _, err := tb.store.Import(ctx, "r1", jobs, time.Time{}); err != nil {
		t.Fatal(err)
	}
	q := tb.store.Queue("r1", "runner-1", time.Minute)
	got, _, err := q.Claim(ctx, 2) // the first two of ap-guangzhou: jobs 0 and 2
	if err != nil || len(got) != 2 {
		t.Fatalf("Claim() = %d jobs, %v, want 2", len(got), err)
	}
	for i := range got {
		got[i].Status = store.StatusSucceeded
		if err := q.Save(ctx, &got[i]); err != nil {
			t.Fatal(err)
		}
	}
	c, err := tb.store.Count(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := store.Count{
		Totals:     store.Totals{store.StatusSucceeded: 2, store.StatusPending: 3},
		Jobs:       5,
		Unfinished: 3,
		Regions:    []string{"ap-beijing", "ap-guangzhou", "ap-singapore"},
		Sample:     []string{"lhins-00000001", "lhins-00000003", "lhins-00000004"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Count() mismatch (-want +got):\n%s", diff)
	}
}

func TestEachJob(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 250)
	want, err := tb.store.Jobs(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	var got []store.Job
	if err := tb.store.EachJob(ctx, "r1", func(j *store.Job) error {
		got = append(got, *j)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EachJob() mismatch with Jobs() (-want +got):\n%s", diff)
	}
	stop := errors.New("stop")
	n := 0
	if err := tb.store.EachJob(ctx, "r1", func(*store.Job) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("EachJob() with fn failing = %v after %d jobs, want %v after 1", err, n, stop)
	}
	if err := tb.store.EachJob(ctx, "none", func(*store.Job) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EachJob(none) = %v, want %v", err, store.ErrNotFound)
	}
}
