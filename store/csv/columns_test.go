package csv_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

// readWith reads a jobs CSV held in a string with opts.
func readWith(content string, opts csv.ReadOptions) ([]store.Job, error) {
	r := csv.NewReader(strings.NewReader(content), "jobs.csv", opts)
	var jobs []store.Job
	for {
		j, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, r.Err()
}

// TestReaderColumns checks the rule of unknown columns: one that looks like
// a known column is an error naming it, whatever the options; any other is
// an error unless unknown columns are allowed.
func TestReaderColumns(t *testing.T) {
	t.Parallel()

	// A column that looks like a known one, and the one it looks like.
	lookalikes := []struct{ column, meant string }{
		{"blueprint", "blueprint_id"},
		{"blueprintid", "blueprint_id"},
		{"Blueprint ID", "blueprint_id"},
		{"blueprint-id", "blueprint_id"},
		{"BlueprintId", "blueprint_id"},
		{"bleuprint_id", "blueprint_id"},
		{"target_blueprint", "blueprint_id"},
		{"blueprint_name", "blueprint_id"},
		{"image_id", "blueprint_id"},
		{"keyids", "key_ids"},
		{"key_id", "key_ids"},
		{"Key IDs", "key_ids"},
		{"key_pair", "key_ids"},
		{"auto_generate_pasword", "auto_generate_password"},
		{"autogeneratepassword", "auto_generate_password"},
		{"auto_password", "auto_generate_password"},
		{"password", "auto_generate_password"},
		{"regoin", "region"},
		{"regions", "region"},
		{"region_id", "region"},
	}
	for _, tc := range lookalikes {
		for _, allow := range []bool{false, true} {
			content := "instance_id," + tc.column + "\nlhins-aaaaaaaa,lhbp-bbbbbbbb\n"
			jobs, err := readWith(content, csv.ReadOptions{DefaultRegion: "ap-guangzhou", AllowUnknownColumns: allow})
			want := "jobs.csv:1: " + tc.column + ": unknown column: did you mean " + tc.meant + "? (a column that looks like a known one is never ignored: rename it)"
			if err == nil || err.Error() != want {
				t.Errorf("column %q (allowed %t): jobs %v, error %v; want %s", tc.column, allow, jobs, err, want)
			}
		}
	}

	tests := []struct {
		name    string
		content string
		allow   bool
		want    []string // instance IDs read
		wantErr string
	}{
		{
			name:    "Blueprint",
			content: "instance_id,blueprint,region\nlhins-aaaaaaaa,lhbp-bbbbbbbb,ap-guangzhou\n",
			wantErr: "jobs.csv:1: blueprint: unknown column: did you mean blueprint_id? (a column that looks like a known one is never ignored: rename it)",
		},
		{
			name:    "InstanceWithoutInstanceID",
			content: "instance,region\nlhins-aaaaaaaa,ap-guangzhou\n",
			allow:   true,
			wantErr: "jobs.csv:1: instance: unknown column: did you mean instance_id? (a column that looks like a known one is never ignored: rename it)",
		},
		{
			name:    "CaseAndSpacesAreTheKnownColumn",
			content: "Instance_ID ,Blueprint_ID , REGION\nlhins-aaaaaaaa,lhbp-bbbbbbbb,ap-guangzhou\n",
			want:    []string{"lhins-aaaaaaaa"},
		},
		{
			name:    "Unknown",
			content: "instance_id,region,owner\nlhins-aaaaaaaa,ap-guangzhou,ops\n",
			wantErr: "jobs.csv:1: owner: unknown column (the columns are instance_id, blueprint_id, region, key_ids, auto_generate_password, account; a file that carries other data is read with --allow-unknown-columns)",
		},
		{
			name:    "UnknownAllowed",
			content: "instance_id,region,owner,notes\nlhins-aaaaaaaa,ap-guangzhou,ops,\"web, primary\"\n",
			allow:   true,
			want:    []string{"lhins-aaaaaaaa"},
		},
		{
			// instance_id is there: a column of the instance's name
			// beside it is one more unknown column.
			name:    "InstanceNameBesideInstanceID",
			content: "instance_id,instance_name,region\nlhins-aaaaaaaa,web-1,ap-guangzhou\n",
			allow:   true,
			want:    []string{"lhins-aaaaaaaa"},
		},
		{
			name:    "InstanceNameUnknown",
			content: "instance_id,instance_name,region\nlhins-aaaaaaaa,web-1,ap-guangzhou\n",
			wantErr: "jobs.csv:1: instance_name: unknown column (the columns are instance_id, blueprint_id, region, key_ids, auto_generate_password, account; a file that carries other data is read with --allow-unknown-columns)",
		},
		{
			name: "ResultsFileAllowed",
			content: "instance_id,blueprint_id,region,status,request_id,error_code,error_message,attempts,submitted_at,finished_at\n" +
				"lhins-aaaaaaaa,lhbp-bbbbbbbb,ap-guangzhou,failed,req-1,X,boom,1,,\n",
			allow: true,
			want:  []string{"lhins-aaaaaaaa"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jobs, err := readWith(tt.content, csv.ReadOptions{AllowUnknownColumns: tt.allow})
			if tt.wantErr != "" {
				if _, ok := errors.AsType[csv.Errors](err); !ok || err.Error() != tt.wantErr {
					t.Fatalf("read %q = %v, %v; want csv.Errors %s", tt.content, jobs, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("read %q: %v", tt.content, err)
			}
			var ids []string
			for _, j := range jobs {
				ids = append(ids, j.InstanceID)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("read %q (-want +got):\n%s", tt.content, diff)
			}
		})
	}
}
