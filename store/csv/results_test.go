package csv_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

const resultsHeader = "instance_id,blueprint_id,region,status,request_id,error_code,error_message,attempts,submitted_at,finished_at,previous_blueprint_id,hook_phase\n"

func TestWriteResults(t *testing.T) {
	t.Parallel()

	cst := time.FixedZone("CST", 8*3600)
	jobs := []store.Job{
		{
			InstanceID: "lhins-aaaaaaaa", BlueprintID: "lhbp-bbbbbbbb", Region: "ap-guangzhou",
			Status: store.StatusSucceeded, RequestID: "6f1c0a9e-1b7d-4c1e-9a3f-000000000001", Attempts: 1, PrevBlueprintID: "lhbp-aaaaaaaa",
			HookPhase:   store.HookDone,
			SubmittedAt: time.Date(2025, 3, 1, 18, 0, 0, 999, cst),
			FinishedAt:  time.Date(2025, 3, 1, 10, 1, 30, 0, time.UTC),
		},
		{
			InstanceID: "lhins-cccccccc", Region: "ap-shanghai-fsi", Status: store.StatusFailed,
			ErrorCode: "FailedOperation", ErrorMessage: `the "image", sadly, is gone`, Attempts: 2,
		},
		{InstanceID: "lhins-dddddddd", Region: "na-siliconvalley", Status: store.StatusPending},
	}
	var buf bytes.Buffer
	if err := csv.WriteResultsSeq(&buf, slices.Values(jobs), false); err != nil {
		t.Fatalf("WriteResults() = %v", err)
	}
	want := resultsHeader +
		"lhins-aaaaaaaa,lhbp-bbbbbbbb,ap-guangzhou,succeeded,6f1c0a9e-1b7d-4c1e-9a3f-000000000001,,,1,2025-03-01T10:00:00Z,2025-03-01T10:01:30Z,lhbp-aaaaaaaa,done\n" +
		`lhins-cccccccc,,ap-shanghai-fsi,failed,,FailedOperation,"the ""image"", sadly, is gone",2,,,,` + "\n" +
		"lhins-dddddddd,,na-siliconvalley,pending,,,,0,,,,\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("WriteResults() mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteResultsDefusesFormulas(t *testing.T) {
	t.Parallel()

	tests := []struct{ message, cell string }{
		{"=HYPERLINK(\"http://x\")", `"'=HYPERLINK(""http://x"")"`},
		{"+1", "'+1"},
		{"-1+2", "'-1+2"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "\"'\r=1\""},
		{"'quoted", "''quoted"},
		{"1+1", "1+1"},
		{"a=b", "a=b"},
		{"", ""},
	}
	for _, tt := range tests {
		jobs := []store.Job{{InstanceID: "lhins-aaaaaaaa", Region: "ap-guangzhou", Status: store.StatusFailed, ErrorCode: tt.message, ErrorMessage: tt.message}}
		var buf bytes.Buffer
		if err := csv.WriteResultsSeq(&buf, slices.Values(jobs), false); err != nil {
			t.Fatalf("WriteResults() = %v", err)
		}
		want := resultsHeader + "lhins-aaaaaaaa,,ap-guangzhou,failed,," + tt.cell + "," + tt.cell + ",0,,,,\n"
		if got := buf.String(); got != want {
			t.Errorf("WriteResults(message %q) = %q, want %q", tt.message, got, want)
		}
	}
}

func TestWriteResultsFile(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	path := filepath.Join(dir, "results.csv")
	if err := os.WriteFile(path, []byte("old results\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jobs := []store.Job{{InstanceID: "lhins-aaaaaaaa", Region: "ap-guangzhou", Status: store.StatusSucceeded}}
	if err := csv.WriteResultsFileSeq(path, slices.Values(jobs), false); err != nil {
		t.Fatalf("WriteResultsFile() = %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := resultsHeader + "lhins-aaaaaaaa,,ap-guangzhou,succeeded,,,,0,,,,\n"; string(got) != want {
		t.Errorf("results file = %q, want %q", got, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only results.csv: the temporary file is renamed", entries)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("results file mode = %v, %v; want 0644", st.Mode(), err)
	}

	if err := csv.WriteResultsFileSeq(filepath.Join(dir, "missing", "results.csv"), slices.Values(jobs), false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WriteResultsFile(in a missing directory) = %v, want os.ErrNotExist", err)
	}
}
