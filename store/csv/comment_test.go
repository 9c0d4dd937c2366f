package csv_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store/csv"
)

// TestReaderComments checks that lines starting with # are ignored before
// the header and between rows (batchreset select writes one recording the
// selector), that line numbers in errors still count them, and that a # in
// a quoted field or later in a line is data.
func TestReaderComments(t *testing.T) {
	t.Parallel()
	in := "\ufeff# batchreset select --region ap-guangzhou --filter tag:env=staging --same-image; resolved 2026-12-01T09:00:00Z\n" +
		"instance_id,blueprint_id,region\n" +
		"# a comment between rows, with, commas and \"quotes\n" +
		"lhins-aaaaaaaa,lhbp-bbbbbbbb,ap-guangzhou\n" +
		"#lhins-cccccccc,lhbp-bbbbbbbb,ap-guangzhou\n" +
		"lhins-dddddddd,,ap-singapore\n"
	r := csv.NewReader(strings.NewReader(in), "jobs.csv", csv.ReadOptions{})
	var got []string
	for {
		j, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read() = %v", err)
		}
		got = append(got, j.InstanceID+" "+j.BlueprintID+" "+j.Region)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err() = %v", err)
	}
	want := []string{"lhins-aaaaaaaa lhbp-bbbbbbbb ap-guangzhou", "lhins-dddddddd  ap-singapore"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}

	// Errors name physical lines, comment lines counted.
	bad := "# selector\ninstance_id,region\n# note\nlhins-bad,ap-guangzhou\n"
	r = csv.NewReader(strings.NewReader(bad), "jobs.csv", csv.ReadOptions{})
	for {
		if _, err := r.Read(); err != nil {
			break
		}
	}
	var re *csv.RowError
	if err := r.Err(); !errors.As(err, &re) || re.Line != 4 || re.Field != "instance_id" {
		t.Errorf("Err() = %v, want jobs.csv:4: instance_id: …", err)
	}
}
