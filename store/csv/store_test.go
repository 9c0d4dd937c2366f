package csv_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

type testBundle struct {
	path  string // the state file
	jobs  []store.Job
	runID string
}

func setup(t *testing.T, n int) *testBundle {
	t.Helper()
	jobs := make([]store.Job, n)
	for i := range jobs {
		jobs[i] = pending(int64(i+2), fmt.Sprintf("lhins-%08d", i), "", "ap-guangzhou")
	}
	return &testBundle{
		path:  filepath.Join(t.TempDir(), "results.csv.state"),
		jobs:  jobs,
		runID: csv.Fingerprint(jobs),
	}
}

// open opens the bundle's store and closes it when the test ends.
func (tb *testBundle) open(t *testing.T) *csv.Store {
	t.Helper()
	s, err := csv.Open(tb.path, tb.jobs, tb.runID)
	if err != nil {
		t.Fatalf("Open(%s) = %v", tb.path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func save(t *testing.T, s *csv.Store, j store.Job) {
	t.Helper()
	if err := s.Save(t.Context(), &j); err != nil {
		t.Fatalf("Save(%s) = %v", j.InstanceID, err)
	}
}

func closeStore(t *testing.T, s *csv.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
}

func ids(jobs []store.Job) []string {
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.InstanceID)
	}
	return ids
}

// finished returns j as a job that ended with status st.
func finished(j store.Job, st store.Status) store.Job {
	j.Status = st
	j.Attempts = 1
	j.RequestID = "6f1c0a9e-1b7d-4c1e-9a3f-" + j.InstanceID[6:] + "0000"
	j.IntentAt = time.Date(2025, 3, 1, 10, 0, 0, 123456789, time.UTC)
	j.SubmittedAt = j.IntentAt.Add(time.Second)
	j.FinishedAt = j.IntentAt.Add(time.Minute)
	if st == store.StatusFailed {
		j.ErrorCode = "FailedOperation.InstanceOperationInProgress"
		j.ErrorMessage = "instance busy: \"lhins\", try later\nsecond line"
	}
	return j
}

func TestStoreSaveAndReopen(t *testing.T) {
	t.Parallel()
	tb := setup(t, 4)

	s := tb.open(t)
	if s.Resumed() {
		t.Errorf("Resumed() of a new state file = true")
	}
	j0 := finished(tb.jobs[0], store.StatusSucceeded)
	j2 := finished(tb.jobs[2], store.StatusFailed)
	j2.NotBefore = time.Date(2025, 3, 1, 9, 0, 0, 1, time.FixedZone("CST", 8*3600))
	j2.PrevRequestID = "prev"
	j2.Fence = 7
	j3 := tb.jobs[3]
	j3.Status = store.StatusSubmitting
	save(t, s, j0)
	save(t, s, j2)
	save(t, s, j3)
	j3 = finished(j3, store.StatusSubmitted) // the last record for an instance wins
	save(t, s, j3)
	want := []store.Job{j0, tb.jobs[1], j2, j3}
	if diff := cmp.Diff(want, s.Jobs()); diff != "" {
		t.Errorf("Jobs() mismatch (-want +got):\n%s", diff)
	}
	closeStore(t, s)

	s = tb.open(t)
	if !s.Resumed() {
		t.Errorf("Resumed() of a state file with records = false")
	}
	if diff := cmp.Diff(want, s.Jobs()); diff != "" {
		t.Errorf("Jobs() after reopening mismatch (-want +got):\n%s", diff)
	}
	wantTotals := store.Totals{store.StatusSucceeded: 1, store.StatusPending: 1, store.StatusFailed: 1, store.StatusSubmitted: 1}
	if diff := cmp.Diff(wantTotals, s.Totals()); diff != "" {
		t.Errorf("Totals() mismatch (-want +got):\n%s", diff)
	}
}

func TestStoreJournalFormat(t *testing.T) {
	t.Parallel()
	tb := setup(t, 2)

	s := tb.open(t)
	j := tb.jobs[1]
	j.Status = store.StatusSubmitting
	j.IntentAt = time.Date(2025, 3, 1, 10, 0, 0, 5, time.UTC)
	save(t, s, j)
	j.Status = store.StatusSubmitted
	j.RequestID = "6f1c0a9e-1b7d-4c1e-9a3f-000000010000"
	j.Attempts = 1
	save(t, s, j)
	started := s.Started().UTC().Format(time.RFC3339Nano)
	intent := strconv.FormatInt(j.IntentAt.UnixNano()-s.Started().UnixNano(), 10)
	header := `{"batchreset_state":2,"run_id":"` + tb.runID + `","started":"` + started + `"}` + "\n"

	// Each record says what changed since the job's previous one.
	got, err := os.ReadFile(tb.path)
	if err != nil {
		t.Fatal(err)
	}
	want := header +
		`{"n":1,"s":"submitting","i":` + intent + `}` + "\n" +
		`{"n":1,"s":"submitted","r":"6f1c0a9e-1b7d-4c1e-9a3f-000000010000","a":1}` + "\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("state file mismatch (-want +got):\n%s", diff)
	}

	// Close compacts it to one record per job with a state.
	closeStore(t, s)
	got, err = os.ReadFile(tb.path)
	if err != nil {
		t.Fatal(err)
	}
	want = header +
		`{"n":1,"z":1,"s":"submitted","r":"6f1c0a9e-1b7d-4c1e-9a3f-000000010000","a":1,"i":` + intent + `}` + "\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("compacted state file mismatch (-want +got):\n%s", diff)
	}
}

func TestStoreTornLastLine(t *testing.T) {
	t.Parallel()
	tb := setup(t, 3)

	s := tb.open(t)
	j0 := finished(tb.jobs[0], store.StatusSucceeded)
	save(t, s, j0)
	closeStore(t, s)
	st, err := os.Stat(tb.path)
	if err != nil {
		t.Fatal(err)
	}

	// A crash in the middle of appending the next record.
	f, err := os.OpenFile(tb.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"id":3,"run":"","instance_id":"lhins-0000`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s = tb.open(t)
	if diff := cmp.Diff([]store.Job{j0, tb.jobs[1], tb.jobs[2]}, s.Jobs()); diff != "" {
		t.Errorf("Jobs() after a torn write mismatch (-want +got):\n%s", diff)
	}
	if st2, err := os.Stat(tb.path); err != nil || st2.Size() != st.Size() {
		t.Errorf("state file after Open: %v, %v; want the torn line truncated to %d bytes", st2.Size(), err, st.Size())
	}
	j1 := finished(tb.jobs[1], store.StatusSucceeded)
	save(t, s, j1)
	closeStore(t, s)

	s = tb.open(t)
	if diff := cmp.Diff([]store.Job{j0, j1, tb.jobs[2]}, s.Jobs()); diff != "" {
		t.Errorf("Jobs() after appending past a torn write mismatch (-want +got):\n%s", diff)
	}
}

func TestStoreTornHeader(t *testing.T) {
	t.Parallel()
	tb := setup(t, 1)

	// A crash while the first Open wrote the header.
	if err := os.WriteFile(tb.path, []byte(`{"batchreset_sta`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := tb.open(t)
	save(t, s, finished(tb.jobs[0], store.StatusSucceeded))
	closeStore(t, s)
	s = tb.open(t)
	if got := s.Jobs()[0].Status; got != store.StatusSucceeded {
		t.Errorf("status after reopening = %s, want succeeded", got)
	}
}

func TestStoreOpenErrors(t *testing.T) {
	t.Parallel()

	header := func(tb *testBundle) string {
		return `{"batchreset_state":1,"run_id":"` + tb.runID + `"}` + "\n"
	}
	record := func(tb *testBundle, i int) string {
		return `{"id":2,"instance_id":"` + tb.jobs[i].InstanceID + `","region":"ap-guangzhou","status":"succeeded"}` + "\n"
	}
	tests := []struct {
		name    string
		content func(tb *testBundle) string
		want    string // after "open state: <path>"
		is      error
	}{
		{
			name: "CorruptMiddleLine",
			content: func(tb *testBundle) string {
				return header(tb) + record(tb, 0) + `{"id":2,"inst` + "\n" + record(tb, 1)
			},
			want: ":3: corrupt record: unexpected EOF",
		},
		{
			name:    "ZerosInTheMiddle",
			content: func(tb *testBundle) string { return header(tb) + "\x00\x00\x00\n" + record(tb, 1) },
			want:    ":2: corrupt record: invalid character '\\x00' looking for beginning of value",
		},
		{
			name: "UnknownStatus",
			content: func(tb *testBundle) string {
				return header(tb) + `{"instance_id":"lhins-00000000","status":"done"}` + "\n"
			},
			want: `:2: corrupt record: unknown status "done"`,
		},
		{
			name: "UnknownField",
			content: func(tb *testBundle) string {
				return header(tb) + `{"instance_id":"lhins-00000000","status":"pending","x":1}` + "\n"
			},
			want: `:2: corrupt record: json: unknown field "x"`,
		},
		{
			name: "OtherJob",
			content: func(tb *testBundle) string {
				return header(tb) + `{"instance_id":"lhins-00000000","blueprint_id":"lhbp-aaaaaaaa","region":"ap-guangzhou","status":"pending"}` + "\n"
			},
			want: `:2: record for lhins-00000000: blueprint "lhbp-aaaaaaaa" in region "ap-guangzhou", but the input has "" in "ap-guangzhou"`,
		},
		{
			name: "UnknownInstance",
			content: func(tb *testBundle) string {
				return header(tb) + `{"instance_id":"lhins-zzzzzzzz","status":"pending"}` + "\n"
			},
			want: ":2: record for lhins-zzzzzzzz, which is not in the input",
		},
		{
			name: "OtherRun",
			content: func(tb *testBundle) string {
				return `{"batchreset_state":1,"run_id":"sha256:0000"}` + "\n" + record(tb, 0)
			},
			want: `:1: state file belongs to another run (run_id "sha256:0000", this input is "RUNID"): finish that run or move the file away`,
			is:   csv.ErrOtherRun,
		},
		{
			name:    "OtherVersion",
			content: func(tb *testBundle) string { return `{"batchreset_state":3,"run_id":"x"}` + "\n" },
			want:    ":1: state format version 3, want 1 or 2",
		},
		{
			name:    "NotAJournal",
			content: func(tb *testBundle) string { return "instance_id,status\nlhins-00000000,succeeded\n" },
			want:    ":1: not a batchreset state file",
		},
		{
			name:    "NotAJournalOneLine",
			content: func(tb *testBundle) string { return "instance_id" },
			want:    ":1: not a batchreset state file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, 2)
			content := tt.content(tb)
			if err := os.WriteFile(tb.path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := csv.Open(tb.path, tb.jobs, tb.runID)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) = nil error, want one", content)
			}
			want := "open state: " + tb.path + strings.ReplaceAll(tt.want, "RUNID", tb.runID)
			if err.Error() != want {
				t.Errorf("Open(%q) = %q, want %q", content, err, want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Open(%q) = %v, want errors.Is %v", content, err, tt.is)
			}
			if got, _ := os.ReadFile(tb.path); string(got) != content {
				t.Errorf("Open(%q) changed the file to %q", content, got)
			}
		})
	}
}

func TestStoreOpenBadInput(t *testing.T) {
	t.Parallel()
	tb := setup(t, 2)

	dup := []store.Job{tb.jobs[0], tb.jobs[0]}
	if _, err := csv.Open(tb.path, dup, tb.runID); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("Open(duplicate jobs) = %v, want an error", err)
	}
	if _, err := csv.Open(tb.path, tb.jobs, ""); err == nil {
		t.Errorf("Open(empty run ID) = nil error, want one")
	}
	if _, err := csv.Open(filepath.Join(tb.path, "missing-dir", "state"), tb.jobs, tb.runID); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(in a missing directory) = %v, want os.ErrNotExist", err)
	}
}

func TestStoreLocked(t *testing.T) {
	t.Parallel()
	tb := setup(t, 1)

	s := tb.open(t)
	// flock locks belong to the open file, so this second Open in the same
	// process stands for another process.
	s2, err := csv.Open(tb.path, tb.jobs, tb.runID)
	if !errors.Is(err, store.ErrLocked) {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("second Open() = %v, want store.ErrLocked", err)
	}
	if !strings.Contains(err.Error(), tb.path) {
		t.Errorf("second Open() = %q, want the path in it", err)
	}
	closeStore(t, s)

	s2 = tb.open(t) // the lock went with Close
	closeStore(t, s2)
}

func TestStoreClaim(t *testing.T) {
	t.Parallel()
	tb := setup(t, 5)
	tb.jobs[1].NotBefore = time.Now().Add(time.Hour)
	tb.jobs[3] = finished(tb.jobs[3], store.StatusSkipped)
	s := tb.open(t)
	ctx := t.Context()

	claim := func(n int) []string {
		t.Helper()
		jobs, waiting, err := s.Claim(ctx, n)
		if err != nil || waiting {
			t.Fatalf("Claim(%d) = _, %t, %v; want no error, not waiting", n, waiting, err)
		}
		return ids(jobs)
	}
	check := func(got, want []string) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Claim() mismatch (-want +got):\n%s", diff)
		}
	}

	// Not due (1) and terminal (3) jobs are never claimed.
	check(claim(1), []string{"lhins-00000000"})
	check(claim(10), []string{"lhins-00000002", "lhins-00000004"})
	check(claim(10), nil)
	check(claim(0), nil)

	// Released jobs come back, in input order.
	jobs := s.Jobs()
	if err := s.Release(ctx, []store.Job{jobs[4], jobs[0]}); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	check(claim(10), []string{"lhins-00000000", "lhins-00000004"})

	// A job saved terminal is not claimed again, even once released.
	save(t, s, finished(jobs[0], store.StatusSucceeded))
	j2 := jobs[2]
	j2.Status = store.StatusSubmitted // still in progress
	save(t, s, j2)
	if err := s.Release(ctx, []store.Job{jobs[0], jobs[2]}); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	check(claim(10), []string{"lhins-00000002"})

	// A job saved with a NotBefore in the past is due again.
	j1 := jobs[1]
	j1.NotBefore = time.Now().Add(-time.Second)
	save(t, s, j1)
	check(claim(10), []string{"lhins-00000001"})

	if err := s.Release(ctx, []store.Job{{InstanceID: "lhins-zzzzzzzz"}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Release(unknown) = %v, want store.ErrNotFound", err)
	}
	if err := s.Renew(ctx); err != nil {
		t.Errorf("Renew() = %v", err)
	}
	if c, err := s.Control(ctx); c != store.ControlRunning || err != nil {
		t.Errorf("Control() = %s, %v; want running", c, err)
	}
}

// TestStoreClaimOneRegion: a claim's jobs are of one region: the last
// claim's while it has due jobs, then the first due job's.
func TestStoreClaimOneRegion(t *testing.T) {
	t.Parallel()
	tb := setup(t, 40)
	for i := range tb.jobs {
		if i%2 == 1 {
			tb.jobs[i].Region = "ap-singapore"
		}
	}
	tb.jobs[0].NotBefore = time.Now().Add(time.Hour) // the first due job is lhins-00000001, of ap-singapore
	tb.jobs[39].Region = "eu-frankfurt"
	tb.runID = csv.Fingerprint(tb.jobs)
	s := tb.open(t)
	ctx := t.Context()
	regions := func(n int) []string {
		t.Helper()
		jobs, _, err := s.Claim(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, j := range jobs {
			out = append(out, j.Region)
		}
		return slices.Compact(out)
	}
	for _, want := range [][]string{{"ap-singapore"}, {"ap-singapore"}, {"ap-guangzhou"}, {"ap-guangzhou"}, {"eu-frankfurt"}, nil} {
		if got := regions(10); !slices.Equal(got, want) {
			t.Errorf("Claim(10) regions = %v, want %v", got, want)
		}
	}
}

// TestStoreClaimSparseRegion: a region's jobs far apart in the input still
// come in one claim, and a released job of the region comes back.
func TestStoreClaimSparseRegion(t *testing.T) {
	t.Parallel()
	tb := setup(t, 2000)
	tb.jobs[0].Region, tb.jobs[1999].Region = "ap-singapore", "ap-singapore"
	tb.runID = csv.Fingerprint(tb.jobs)
	s := tb.open(t)
	ctx := t.Context()
	got, _, err := s.Claim(ctx, 10)
	if err != nil || len(got) != 2 || got[0].Region != "ap-singapore" || got[1].InstanceID != tb.jobs[1999].InstanceID {
		t.Fatalf("Claim(10) = %v, %v; want the 2 jobs of ap-singapore", ids(got), err)
	}
	if err := s.Release(ctx, got[1:]); err != nil {
		t.Fatal(err)
	}
	if again, _, err := s.Claim(ctx, 10); err != nil || len(again) != 1 || again[0].InstanceID != tb.jobs[1999].InstanceID {
		t.Errorf("Claim(10) after a release = %v, %v; want the released job of ap-singapore", ids(again), err)
	}
	if next, _, err := s.Claim(ctx, 10); err != nil || len(next) != 10 || next[0].Region != "ap-guangzhou" {
		t.Errorf("Claim(10) once ap-singapore is claimed = %v, %v; want 10 of ap-guangzhou", ids(next), err)
	}
}

func TestStoreSaveErrors(t *testing.T) {
	t.Parallel()
	tb := setup(t, 2)
	s := tb.open(t)

	unknown := store.Job{InstanceID: "lhins-zzzzzzzz", Status: store.StatusPending}
	if err := s.Save(t.Context(), &unknown); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Save(unknown instance) = %v, want store.ErrNotFound", err)
	}
	bad := tb.jobs[0]
	bad.Status = "done"
	if err := s.Save(t.Context(), &bad); err == nil {
		t.Errorf("Save(status done) = nil, want an error")
	}
	other := finished(tb.jobs[0], store.StatusSucceeded)
	other.BlueprintID = "lhbp-aaaaaaaa" // not what the input asked for
	if err := s.Save(t.Context(), &other); err == nil || !strings.Contains(err.Error(), "but the input has") {
		t.Errorf("Save(another blueprint) = %v, want an error", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	done := finished(tb.jobs[0], store.StatusSucceeded)
	if err := s.Save(ctx, &done); !errors.Is(err, context.Canceled) {
		t.Errorf("Save(cancelled) = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(tb.jobs, s.Jobs()); diff != "" {
		t.Errorf("Jobs() after failed Saves mismatch (-want +got):\n%s", diff)
	}

	closeStore(t, s)
	if err := s.Save(t.Context(), &done); err == nil {
		t.Errorf("Save() after Close = nil, want an error")
	}
	if _, _, err := s.Claim(t.Context(), 1); err == nil {
		t.Errorf("Claim() after Close = nil error, want one")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

func TestStoreJobsIsACopy(t *testing.T) {
	t.Parallel()
	tb := setup(t, 1)
	s := tb.open(t)
	s.Jobs()[0].Status = store.StatusFailed
	if got := s.Jobs()[0].Status; got != store.StatusPending {
		t.Errorf("Jobs()[0].Status = %s after changing a copy, want pending", got)
	}
}

// TestStoreGroupCommitDurable saves from many goroutines at once and checks
// that every Save that returned is in the journal.
func TestStoreGroupCommitDurable(t *testing.T) {
	t.Parallel()
	const workers, rounds = 64, 20
	tb := setup(t, workers*2)
	s := tb.open(t)

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				j := tb.jobs[w*2+r%2] // each worker owns two jobs
				j.Status = store.StatusSubmitting
				j.Attempts = r + 1
				if err := s.Save(t.Context(), &j); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Save() = %v", err)
	}
	want := s.Jobs()
	for i, j := range want {
		if j.Attempts != rounds-1+i%2 {
			t.Fatalf("job %d: Attempts = %d, want %d", i, j.Attempts, rounds-1+i%2)
		}
	}
	data, err := os.ReadFile(tb.path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := bytes.Count(data, []byte("\n")), 1+workers*rounds; got != want {
		t.Errorf("state file has %d lines, want %d: a header and one per Save", got, want)
	}
	closeStore(t, s)
	s = tb.open(t)
	if diff := cmp.Diff(want, s.Jobs()); diff != "" {
		t.Errorf("Jobs() after reopening mismatch (-want +got):\n%s", diff)
	}
}

// TestStoreConcurrentWorkers runs claimers and savers together, as a runner
// does, and checks that no job is handed out twice.
func TestStoreConcurrentWorkers(t *testing.T) {
	t.Parallel()
	const n, workers = 300, 8
	tb := setup(t, n)
	s := tb.open(t)

	var (
		mu      sync.Mutex
		claimed = make(map[string]int)
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				jobs, _, err := s.Claim(t.Context(), 3)
				if err != nil {
					t.Errorf("Claim() = %v", err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				for _, j := range jobs {
					mu.Lock()
					claimed[j.InstanceID]++
					mu.Unlock()
					j.Status = store.StatusSubmitting
					if err := s.Save(t.Context(), &j); err != nil {
						t.Errorf("Save() = %v", err)
						return
					}
					j = finished(j, store.StatusSucceeded)
					if err := s.Save(t.Context(), &j); err != nil {
						t.Errorf("Save() = %v", err)
						return
					}
				}
				_ = s.Totals()
			}
		})
	}
	wg.Wait()

	if len(claimed) != n {
		t.Errorf("%d jobs claimed, want %d", len(claimed), n)
	}
	for id, c := range claimed {
		if c != 1 {
			t.Errorf("%s claimed %d times", id, c)
		}
	}
	if diff := cmp.Diff(store.Totals{store.StatusSucceeded: n}, s.Totals()); diff != "" {
		t.Errorf("Totals() mismatch (-want +got):\n%s", diff)
	}
}
