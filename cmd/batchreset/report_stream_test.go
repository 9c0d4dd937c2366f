package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// TestWriteRunReport checks that the streamed report of a Postgres run says
// what the report built from the whole job list says, in CSV and JSON.
func TestWriteRunReport(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := postgres.Open(ctx, postgrestest.NewSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	var jobs []store.Job
	for i := range 30 {
		jobs = append(jobs, store.Job{InstanceID: fmt.Sprintf("lhins-%08d", i), Region: "ap-guangzhou"})
	}
	if _, err := db.Import(ctx, "r1", jobs, time.Time{}); err != nil {
		t.Fatal(err)
	}
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
	if err := csvstore.WriteResults(&wantCSV, all); err != nil {
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
	if err := enc.Encode(newReport(all, true)); err != nil {
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
