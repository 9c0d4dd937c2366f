package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// TestWriteRunReport checks that the streamed report of a Postgres run says
// what the report built from the whole job list says, in CSV and JSON: the
// database's aggregates count as the tally of every job does.
func TestWriteRunReport(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, _ := importedRun(t, 30)
	q := db.Queue("r1", "runner-1", time.Minute)
	got, _, err := q.Claim(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, j := range got {
		j.Status, j.Attempts = []store.Status{store.StatusSucceeded, store.StatusFailed, store.StatusSubmitted}[i%3], 1
		j.SubmittedAt, j.FinishedAt = now.Add(-time.Duration(i)*time.Second), now
		j.ErrorMessage = `<"=HYPERLINK()">`
		if err := q.Save(ctx, &j); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.Jobs(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	resultsView(all)
	src := &dbSource{db: db, run: "r1"}

	var wantCSV, gotCSV bytes.Buffer
	if err := csvstore.WriteResultsSeq(&wantCSV, slices.Values(all), false); err != nil {
		t.Fatal(err)
	}
	if err := writeRunReport(ctx, src, "csv", "", &gotCSV); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantCSV.String(), gotCSV.String()); diff != "" {
		t.Errorf("CSV report mismatch (-want +got):\n%s", diff)
	}

	var wantJSON bytes.Buffer
	enc := json.NewEncoder(&wantJSON)
	enc.SetIndent("", "  ")
	want := newReport(tallyJobs(all))
	for i := range all {
		want.Outcomes = append(want.Outcomes, outcomeOf(&all[i]))
	}
	if err := enc.Encode(want); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.json")
	if err := writeRunReport(ctx, src, "json", path, nil); err != nil {
		t.Fatal(err)
	}
	gotJSON, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Only generated_at differs.
	var w, g map[string]any
	if err := json.Unmarshal(wantJSON.Bytes(), &w); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(gotJSON, &g); err != nil {
		t.Fatalf("streamed JSON report does not parse: %v\n%s", err, gotJSON)
	}
	delete(w, "generated_at")
	delete(g, "generated_at")
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("JSON report mismatch (-want +got):\n%s", diff)
	}
	wantText := bytes.SplitN(wantJSON.Bytes(), []byte("\n"), 3)[2]
	if gotText := bytes.SplitN(gotJSON, []byte("\n"), 3)[2]; !bytes.Equal(wantText, gotText) {
		t.Errorf("JSON report text after generated_at differs:\n%s\nwant\n%s", gotText, wantText)
	}

	if err := writeRunReport(context.Background(), &dbSource{db: db, run: "none"}, "json", "", &bytes.Buffer{}); err == nil {
		t.Error("writeRunReport() of a run that does not exist = nil, want an error")
	}
}

// TestTallyPostgres checks that the database's aggregates count a run as a
// pass over every job does: totals as results show them, the jobs needing
// attention and their order, what retry would send, the durations.
func TestTallyPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, url := importedRun(t, 200)
	// Every stored status, with and without the codes retry tells apart.
	kinds := []struct {
		status store.Status
		code   string
	}{
		{"pending", ""}, {"submitting", ""}, {"submitted", ""}, {"succeeded", ""}, {"failed", "OperationFailed"},
		{"failed", runner.CodeBlueprintMismatch}, {"skipped", ""}, {"skipped", "ResetByOther"}, {"skipped", "Preflight"},
		{"unknown", "ResetTimeout"}, {"unhealthy", "HealthTimeout"},
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const setSQL = `UPDATE jobs SET status = $2, error_code = $3,
		submitted_at = CASE WHEN $2 IN ('pending', 'skipped') THEN NULL ELSE now() - make_interval(secs => id * 1.5) END,
		finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'unknown', 'unhealthy') THEN now() END
		WHERE run = 'r1' AND id % $4 = $1`
	for i, k := range kinds {
		if _, err := conn.Exec(ctx, setSQL, i, k.status, k.code, len(kinds)); err != nil {
			t.Fatal(err)
		}
	}
	for _, asStored := range []bool{false, true} {
		all, err := db.Jobs(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if !asStored {
			resultsView(all)
		}
		want := tallyJobs(all)
		got, err := (&dbSource{db: db, run: "r1", asStored: asStored}).Tally(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if want.AttentionTotal == 0 || want.Retry == 0 || want.Durations == nil {
			t.Fatalf("the fixture covers too little: %+v", want)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Tally(asStored %v) mismatch (-pass over jobs +aggregates):\n%s", asStored, diff)
		}
		// Without durations, the database sorts nothing and says the rest.
		got, err = (&dbSource{db: db, run: "r1", asStored: asStored}).Tally(ctx, false)
		want.Durations = nil
		if diff := cmp.Diff(want, got); err != nil || diff != "" {
			t.Errorf("Tally(asStored %v, no durations) = %v; mismatch (-want +got):\n%s", asStored, err, diff)
		}
	}
	if _, err := (&dbSource{db: db, run: "none"}).Tally(ctx, true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Tally() of a run that does not exist = %v, want store.ErrNotFound", err)
	}
}

// importedRun opens a store on a fresh schema (its URL too) holding run r1
// of n pending jobs.
func importedRun(t *testing.T, n int) (*postgres.Store, string) {
	t.Helper()
	url := postgrestest.NewSchema(t)
	db, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	var jobs []store.Job
	for i := range n {
		jobs = append(jobs, store.Job{InstanceID: fmt.Sprintf("lhins-%08d", i), Region: "ap-guangzhou"})
	}
	if _, err := db.Import(t.Context(), "r1", jobs, time.Time{}); err != nil {
		t.Fatal(err)
	}
	return db, url
}
