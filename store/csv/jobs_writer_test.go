package csv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

func TestWriteJobs(t *testing.T) {
	t.Parallel()
	// A generated fleet, as `batchreset emulator --write-jobs` writes it.
	var fleet []store.Job
	for _, sd := range emulator.FleetJobs(5, emulator.FleetOptions{Seed: 4, Regions: []string{"ap-guangzhou", "ap-seoul"}, Missing: 2}) {
		fleet = append(fleet, store.Job{InstanceID: sd.InstanceID, BlueprintID: sd.BlueprintID, Region: sd.Region})
	}
	want := "instance_id,blueprint_id,region\n"
	for _, j := range fleet {
		want += j.InstanceID + "," + j.BlueprintID + "," + j.Region + "\n"
	}
	var buf strings.Builder
	if err := csv.WriteJobs(&buf, "", fleet); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Errorf("WriteJobs wrote\n%s\nwant\n%s", buf.String(), want)
	}

	// With a comment and login settings, read back as written.
	jobs := []store.Job{
		{InstanceID: "lhins-aaaaaaaa", BlueprintID: "lhbp-bbbbbbbb", Region: "ap-guangzhou", KeyIDs: []string{"lhkp-cccccccc", "lhkp-dddddddd"}},
		{InstanceID: "lhins-eeeeeeee", Region: "ap-seoul", AutoGeneratePassword: true},
	}
	buf.Reset()
	if err := csv.WriteJobs(&buf, "batchreset select --region all\n--same-image", jobs); err != nil {
		t.Fatal(err)
	}
	const wantText = "# batchreset select --region all --same-image\n" +
		"instance_id,blueprint_id,region,key_ids,auto_generate_password\n" +
		"lhins-aaaaaaaa,lhbp-bbbbbbbb,ap-guangzhou,lhkp-cccccccc;lhkp-dddddddd,\n" +
		"lhins-eeeeeeee,,ap-seoul,,yes\n"
	if buf.String() != wantText {
		t.Errorf("WriteJobs wrote\n%s\nwant\n%s", buf.String(), wantText)
	}
	path := filepath.Join(t.TempDir(), "jobs.csv")
	if err := os.WriteFile(path, []byte(buf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := csv.ReadJobs(path, csv.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range back {
		back[i].ID, back[i].Status = 0, ""
	}
	if diff := cmp.Diff(jobs, back); diff != "" {
		t.Errorf("read back (-written +read):\n%s", diff)
	}
}
