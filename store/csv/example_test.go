package csv_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

// A jobs CSV names its columns in a header row. Only instance_id is
// required: an empty blueprint_id reinstalls the current image, and an empty
// region takes the default. A column of the file's own, such as owner, is
// read past only when the options allow it.
func ExampleReadJobs() {
	dir, err := os.MkdirTemp("", "batchreset-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "jobs.csv")
	err = os.WriteFile(path, []byte(
		"instance_id,blueprint_id,region,owner\n"+
			"lhins-0a1b2c3d,lhbp-9z8y7x6w,ap-guangzhou,web team\n"+
			"lhins-4e5f6a7b,,,\"ops, night shift\"\n"+
			"\n"+
			"lhins-8c9d0e1f,,ap-shanghai-fsi,ops\n"), 0o600)
	if err != nil {
		panic(err)
	}

	jobs, err := csv.ReadJobs(path, csv.ReadOptions{DefaultRegion: "ap-beijing", AllowUnknownColumns: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, j := range jobs {
		fmt.Printf("line %d: %s blueprint=%q region=%s %s\n", j.ID, j.InstanceID, j.BlueprintID, j.Region, j.Status)
	}
	// Output:
	// line 2: lhins-0a1b2c3d blueprint="lhbp-9z8y7x6w" region=ap-guangzhou pending
	// line 3: lhins-4e5f6a7b blueprint="" region=ap-beijing pending
	// line 5: lhins-8c9d0e1f blueprint="" region=ap-shanghai-fsi pending
}

// Every problem in the file is reported, one per line, and no job is
// returned.
func ExampleReadJobs_errors() {
	dir, err := os.MkdirTemp("", "batchreset-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "jobs.csv")
	err = os.WriteFile(path, []byte(
		"instance_id,blueprint_id,region\n"+
			"lhins-0a1b2c3d,lhbp-x,ap-guangzhou\n"+
			"lhins-4e5f6a7b,,\n"+
			"lhins-0a1b2c3d,,Guangzhou\n"), 0o600)
	if err != nil {
		panic(err)
	}

	_, err = csv.ReadJobs(path, csv.ReadOptions{})
	if errs, ok := err.(csv.Errors); ok {
		for _, e := range errs {
			fmt.Printf("jobs.csv:%d: %s: %v\n", e.Line, e.Field, e.Err)
		}
	}
	// Output:
	// jobs.csv:2: blueprint_id: malformed ID "lhbp-x" (want lhbp- and 8 lowercase letters or digits)
	// jobs.csv:3: region: missing value and no default region given
	// jobs.csv:4: instance_id: duplicate lhins-0a1b2c3d (first on line 2)
	// jobs.csv:4: region: malformed region "Guangzhou" (want lowercase like ap-guangzhou)
}

// WriteResultsSeq writes one row per job; a cloud error message that a
// spreadsheet would run as a formula gets a leading quote.
func ExampleWriteResultsSeq() {
	finished := time.Date(2025, 3, 1, 10, 2, 0, 0, time.UTC)
	jobs := []store.Job{
		{
			InstanceID: "lhins-0a1b2c3d", Region: "ap-guangzhou", Status: store.StatusSucceeded,
			RequestID: "6f1c0a9e-1b7d-4c1e-9a3f-5d2e8b7c4a10", Attempts: 1,
			SubmittedAt: finished.Add(-time.Minute), FinishedAt: finished,
		},
		{
			InstanceID: "lhins-4e5f6a7b", Region: "ap-guangzhou", Status: store.StatusFailed,
			ErrorCode: "InvalidParameterValue", ErrorMessage: "=blueprint not found", Attempts: 1,
		},
	}
	if err := csv.WriteResultsSeq(os.Stdout, slices.Values(jobs), false); err != nil {
		fmt.Println(err)
	}
	// Output:
	// instance_id,blueprint_id,region,status,request_id,error_code,error_message,attempts,submitted_at,finished_at,previous_blueprint_id,hook_phase
	// lhins-0a1b2c3d,,ap-guangzhou,succeeded,6f1c0a9e-1b7d-4c1e-9a3f-5d2e8b7c4a10,,,1,2025-03-01T10:01:00Z,2025-03-01T10:02:00Z,,
	// lhins-4e5f6a7b,,ap-guangzhou,failed,,InvalidParameterValue,'=blueprint not found,1,,,,
}
