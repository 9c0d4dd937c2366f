package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/batchreset/batchreset/store"
)

func TestImport(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)

	notBefore := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	jobs := makeJobs(0, 1000)
	jobs[7].BlueprintID = "" // reinstall the current image
	later := notBefore.Add(time.Hour)
	jobs[8].NotBefore = later

	n, err := tb.store.Import(ctx, "r1", jobs, notBefore)
	if err != nil || n != len(jobs) {
		t.Fatalf("Import() = %d, %v, want %d, nil", n, err, len(jobs))
	}

	got, err := tb.store.Jobs(ctx, "r1")
	if err != nil {
		t.Fatalf("Jobs() = %v", err)
	}
	want := make([]store.Job, len(jobs))
	for i, j := range jobs {
		want[i] = store.Job{
			Run:         "r1",
			InstanceID:  j.InstanceID,
			BlueprintID: j.BlueprintID,
			Region:      j.Region,
			Status:      store.StatusPending,
			NotBefore:   notBefore,
		}
	}
	want[8].NotBefore = later
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(store.Job{}, "ID")); diff != "" {
		t.Errorf("Jobs() after Import mismatch (-want +got):\n%s", diff)
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID <= got[i-1].ID {
			t.Fatalf("Jobs() not in import order at %d: IDs %d, %d", i, got[i-1].ID, got[i].ID)
		}
	}

	// The run exists with a control row: it can be paused at once.
	if err := tb.store.SetControl(ctx, "r1", store.ControlPaused); err != nil {
		t.Errorf("SetControl() after Import = %v", err)
	}
}

func TestImportDefaultNotBefore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)

	var before time.Time
	if err := tb.db.QueryRow(ctx, `SELECT now()`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	tb.importJobs(t, "r1", 3)
	got, err := tb.store.Jobs(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range got {
		if j.NotBefore.Before(before) {
			t.Errorf("job %s NotBefore = %v, want the import time (after %v)", j.InstanceID, j.NotBefore, before)
		}
	}
}

func TestImportRejects(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tb := setup(t)
	tb.importJobs(t, "r1", 1000)

	withDup := makeJobs(1000, 500)             // new instances…
	withDup[250].InstanceID = "lhins-00000042" // …and one already in the run
	twice := makeJobs(5000, 3)
	twice[2].InstanceID = twice[0].InstanceID
	badID := makeJobs(6000, 3)
	badID[1].InstanceID = "lhins-BAD"
	noRegion := makeJobs(7000, 3)
	noRegion[2].Region = ""

	for _, tc := range []struct {
		name    string
		jobs    []store.Job
		wantErr string // a substring of the error: the offending instance
	}{
		{"AlreadyInRun", withDup, "lhins-00000042"},
		{"AllAlreadyInRun", makeJobs(0, 10), "lhins-00000000 and 9 more"},
		{"TwiceInInput", twice, twice[0].InstanceID},
		{"BadInstanceID", badID, "lhins-BAD"},
		{"NoRegion", noRegion, "lhins-00007002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tb.store.Import(ctx, "r1", tc.jobs, time.Time{})
			if err == nil || n != 0 {
				t.Fatalf("Import() = %d, %v, want 0 and an error", n, err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Import() = %q, want it to name %q", err, tc.wantErr)
			}
		})
	}

	got, err := tb.store.Jobs(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 {
		t.Errorf("Jobs() after failed imports = %d jobs, want 1000 (nothing imported)", len(got))
	}

	// The same instance may be in another run.
	if n, err := tb.store.Import(ctx, "r2", makeJobs(0, 10), time.Time{}); err != nil || n != 10 {
		t.Errorf("Import() into another run = %d, %v, want 10, nil", n, err)
	}
	// And more instances may join a run.
	if n, err := tb.store.Import(ctx, "r1", makeJobs(1000, 10), time.Time{}); err != nil || n != 10 {
		t.Errorf("Import() of new instances into r1 = %d, %v, want 10, nil", n, err)
	}
}
