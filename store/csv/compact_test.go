package csv_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

// TestStoreResumesVersion1 opens a journal written by the previous format
// (the whole job per Save), resumes it, and finds it compacted to version 2
// without losing anything.
func TestStoreResumesVersion1(t *testing.T) {
	t.Parallel()
	tb := setup(t, 3)
	started := "2025-03-01T09:00:00.5Z"
	v1 := `{"batchreset_state":1,"run_id":"` + tb.runID + `","started":"` + started + `"}` + "\n" +
		`{"id":2,"run":"","instance_id":"lhins-00000000","blueprint_id":"","region":"ap-guangzhou","status":"submitting","request_id":"","prev_request_id":"","error_code":"","error_message":"","attempts":1,"not_before":"","intent_at":"2025-03-01T10:00:00.000000005Z","submitted_at":"","finished_at":"","fence":0}` + "\n" +
		`{"id":2,"run":"","instance_id":"lhins-00000000","blueprint_id":"","region":"ap-guangzhou","status":"succeeded","request_id":"6f1c0a9e-1b7d-4c1e-9a3f-000000000000","prev_request_id":"","error_code":"","error_message":"","attempts":1,"not_before":"","intent_at":"2025-03-01T10:00:00.000000005Z","submitted_at":"2025-03-01T10:00:01Z","finished_at":"2025-03-01T10:01:00Z","fence":0}` + "\n" +
		`{"id":4,"run":"","instance_id":"lhins-00000002","blueprint_id":"","region":"ap-guangzhou","status":"failed","request_id":"","prev_request_id":"x","error_code":"E","error_message":"says \"no\"","attempts":2,"not_before":"","intent_at":"","submitted_at":"","finished_at":"2025-03-01T10:01:00Z","fence":3}` + "\n"
	if err := os.WriteFile(tb.path, []byte(v1), 0o644); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(tb.jobs)
	intent := time.Date(2025, 3, 1, 10, 0, 0, 5, time.UTC)
	want[0].Status, want[0].Attempts, want[0].IntentAt = store.StatusSucceeded, 1, intent
	want[0].RequestID = "6f1c0a9e-1b7d-4c1e-9a3f-000000000000"
	want[0].SubmittedAt = time.Date(2025, 3, 1, 10, 0, 1, 0, time.UTC)
	want[0].FinishedAt = time.Date(2025, 3, 1, 10, 1, 0, 0, time.UTC)
	want[2].Status, want[2].Attempts, want[2].PrevRequestID = store.StatusFailed, 2, "x"
	want[2].ErrorCode, want[2].ErrorMessage, want[2].Fence = "E", `says "no"`, 3
	want[2].FinishedAt = want[0].FinishedAt

	s := tb.open(t)
	if !s.Resumed() {
		t.Error("Resumed() of a version-1 journal = false")
	}
	if diff := cmp.Diff(want, s.Jobs()); diff != "" {
		t.Errorf("Jobs() of a version-1 journal mismatch (-want +got):\n%s", diff)
	}
	if got := s.Started(); !got.Equal(time.Date(2025, 3, 1, 9, 0, 0, 5e8, time.UTC)) {
		t.Errorf("Started() = %v, want the header's", got)
	}
	data, err := os.ReadFile(tb.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(`{"batchreset_state":2,`)) || bytes.Count(data, []byte("\n")) != 3 {
		t.Errorf("journal after Open:\n%s\nwant version 2, a header and two records", data)
	}
	j1 := finished(tb.jobs[1], store.StatusSucceeded)
	save(t, s, j1)
	want[1] = j1
	closeStore(t, s)

	s = tb.open(t)
	if diff := cmp.Diff(want, s.Jobs()); diff != "" {
		t.Errorf("Jobs() after reopening mismatch (-want +got):\n%s", diff)
	}
}

// TestStoreCompactFinished finishes a run, checks that its journal is
// compacted under 200 bytes a job on Close, and resumes it unchanged.
func TestStoreCompactFinished(t *testing.T) {
	t.Parallel()
	const n = 1000
	tb := setup(t, n)
	s := tb.open(t)
	for i := range n {
		j := tb.jobs[i]
		j.PrevRequestID = fmt.Sprintf("9e3b0a2c-5d6e-4f70-8a9b-%012d", i)
		j.Status, j.Attempts, j.IntentAt = store.StatusSubmitting, 1, time.Now()
		save(t, s, j)
		j.Status, j.RequestID, j.SubmittedAt = store.StatusSubmitted, fmt.Sprintf("6f1c0a9e-1b7d-4c1e-9a3f-%012d", i), time.Now()
		save(t, s, j)
		j.Status, j.FinishedAt = store.StatusSucceeded, time.Now()
		save(t, s, j)
	}
	want := s.Jobs()
	closeStore(t, s)
	st, err := os.Stat(tb.path)
	if err != nil {
		t.Fatal(err)
	}
	if per := st.Size() / n; per >= 200 {
		t.Errorf("compacted journal holds %d bytes per finished job, want under 200", per)
	}
	entries, err := os.ReadDir(filepath.Dir(tb.path))
	if err != nil || len(entries) != 1 {
		t.Errorf("directory after compaction holds %v (%v), want the journal alone", entries, err)
	}

	s = tb.open(t)
	if diff := cmp.Diff(want, s.Jobs()); diff != "" {
		t.Errorf("Jobs() after compaction mismatch (-want +got):\n%s", diff)
	}
	if got := s.Totals(); !cmp.Equal(got, store.Totals{store.StatusSucceeded: n}) {
		t.Errorf("Totals() = %v, want %d succeeded", got, n)
	}
	closeStore(t, s)
	if st2, err := os.Stat(tb.path); err != nil || st2.Size() != st.Size() {
		t.Errorf("a compact journal was rewritten on Close: %d bytes, then %v (%v)", st.Size(), st2.Size(), err)
	}
}

// TestStoreDeltaFields saves values that need escaping, request IDs that
// are not UUIDs, and fields set then cleared, and reads them back from the
// live journal (deltas) and from the compacted one.
func TestStoreDeltaFields(t *testing.T) {
	t.Parallel()
	tb := setup(t, 3)
	cst := time.FixedZone("CST", 8*3600)
	tb.jobs[2].NotBefore = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // a state from the input
	tb.runID = csv.Fingerprint(tb.jobs)
	s := tb.open(t)

	j0 := tb.jobs[0]
	j0.Status, j0.RequestID, j0.PrevRequestID = store.StatusFailed, "req-1", "6F1C0A9E-1B7D-4C1E-9A3F-000000000000"
	j0.ErrorCode, j0.ErrorMessage = "InvalidParameter", "line 1\nline \"2\" <b>&</b> \\ é \u2028"
	j0.Attempts, j0.Fence = 3, -7
	j0.NotBefore = time.Date(1960, 1, 1, 0, 0, 0, 1, cst) // before started: a negative offset
	j0.IntentAt = time.Date(2025, 3, 1, 10, 0, 0, 1, cst)
	save(t, s, j0)
	j0.NotBefore, j0.Fence = time.Time{}, 0
	save(t, s, j0)
	j1 := finished(tb.jobs[1], store.StatusSucceeded)
	save(t, s, j1)
	j1.RequestID, j1.ErrorMessage = "", "cleared"
	save(t, s, j1)
	j2 := tb.jobs[2]
	j2.NotBefore = time.Time{}
	save(t, s, j2)
	want := []store.Job{j0, j1, j2}
	if diff := cmp.Diff(want, s.Jobs()); diff != "" {
		t.Errorf("Jobs() mismatch (-want +got):\n%s", diff)
	}

	// A second Store cannot open the journal while the first holds it;
	// ReadState reads the live deltas.
	live, _, err := csv.ReadState(tb.path, tb.jobs, tb.runID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, live); diff != "" {
		t.Errorf("ReadState() of the live journal mismatch (-want +got):\n%s", diff)
	}
	closeStore(t, s)
	s = tb.open(t)
	if diff := cmp.Diff(want, s.Jobs()); diff != "" {
		t.Errorf("Jobs() after compaction mismatch (-want +got):\n%s", diff)
	}
}

// TestStoreCompactLeftover checks that a compaction cut short by a crash
// (its file written beside the journal but not renamed) changes nothing.
func TestStoreCompactLeftover(t *testing.T) {
	t.Parallel()
	tb := setup(t, 2)
	s := tb.open(t)
	save(t, s, finished(tb.jobs[0], store.StatusSucceeded))
	want := s.Jobs()
	closeStore(t, s)
	leftover := filepath.Join(filepath.Dir(tb.path), "."+filepath.Base(tb.path)+".compact-123")
	if err := os.WriteFile(leftover, []byte(`{"batchreset_state":2,"run_id":"x","started":"2025-01-01T00:00:00Z"}`+"\n"+`{"n":1,"z":1,"s":"fai`), 0o644); err != nil {
		t.Fatal(err)
	}
	s = tb.open(t)
	if diff := cmp.Diff(want, s.Jobs()); diff != "" {
		t.Errorf("Jobs() beside a leftover compaction mismatch (-want +got):\n%s", diff)
	}
}

// TestReadInput reads a jobs file into an Input, as ReadJobs reads it, and
// runs a Store over it that writes the same results file from its
// iterator as from its slice.
func TestReadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.csv")
	var b strings.Builder
	b.WriteString("instance_id,blueprint_id,region,key_ids\n")
	for i := range 50 {
		region := []string{"ap-guangzhou", "ap-singapore", ""}[i%3]
		keys := ""
		if i%7 == 0 {
			keys = "lhkp-aaaaaaaa;lhkp-bbbbbbbb"
		}
		fmt.Fprintf(&b, "lhins-%08d,lhbp-2u5ha3ob,%s,%s\n", i, region, keys)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs, err := csv.ReadJobs(path, csv.ReadOptions{DefaultRegion: "ap-beijing"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := csv.ReadInput(path, csv.ReadOptions{DefaultRegion: "ap-beijing"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(jobs, in.Jobs()); diff != "" {
		t.Errorf("ReadInput().Jobs() mismatch with ReadJobs (-want +got):\n%s", diff)
	}
	if got, want := in.RunID(), csv.Fingerprint(jobs); got != want {
		t.Errorf("RunID() = %s, want Fingerprint() = %s", got, want)
	}
	wantSum := store.Count{Totals: store.Totals{store.StatusPending: 50}, Jobs: 50, Unfinished: 50, Regions: []string{"ap-beijing", "ap-guangzhou", "ap-singapore"},
		Sample: []string{"lhins-00000000", "lhins-00000001", "lhins-00000002"}}
	if diff := cmp.Diff(wantSum, in.Count()); diff != "" {
		t.Errorf("Count() mismatch (-want +got):\n%s", diff)
	}

	s, err := csv.OpenInput(filepath.Join(dir, "results.csv.state"), in)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 49 {
		save(t, s, finished(jobs[i], []store.Status{store.StatusSucceeded, store.StatusFailed}[i%2]))
	}
	wantSum = store.Count{Totals: store.Totals{store.StatusSucceeded: 25, store.StatusFailed: 24, store.StatusPending: 1}, Jobs: 50, Unfinished: 1, Regions: []string{"ap-singapore"}, Sample: []string{"lhins-00000049"}}
	if diff := cmp.Diff(wantSum, s.Count()); diff != "" {
		t.Errorf("Store.Count() mismatch (-want +got):\n%s", diff)
	}
	if got := slices.Collect(s.All()); !cmp.Equal(got, s.Jobs()) {
		t.Errorf("All() = %d jobs, not what Jobs() returns", len(got))
	}
	var fromSlice, fromSeq bytes.Buffer
	if err := csv.WriteResultsSeq(&fromSlice, slices.Values(s.Jobs()), false); err != nil {
		t.Fatal(err)
	}
	if err := csv.WriteResultsSeq(&fromSeq, s.All(), false); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromSlice.String(), fromSeq.String()); diff != "" {
		t.Errorf("WriteResultsSeq(All()) mismatch with WriteResultsSeq(Jobs()) (-want +got):\n%s", diff)
	}
	if err := csv.WriteResultsFileSeq(filepath.Join(dir, "results.csv"), s.All(), false); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "results.csv")); err != nil || string(got) != fromSlice.String() {
		t.Errorf("WriteResultsFileSeq() wrote %d bytes (%v), want WriteResultsSeq's %d", len(got), err, fromSlice.Len())
	}
}
