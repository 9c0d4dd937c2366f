package csv_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store/csv"
)

func TestReadInstanceList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          []string
		wantErr       string
	}{
		{name: "List", content: "# keep these\nlhins-aaaaaaaa\n\n  lhins-bbbbbbbb  \nlhins-aaaaaaaa\n", want: []string{"lhins-aaaaaaaa", "lhins-bbbbbbbb"}},
		{name: "QuotedList", content: "\"lhins-aaaaaaaa\"\n", want: []string{"lhins-aaaaaaaa"}},
		{
			// A quoted field holding a comma comes before instance_id:
			// splitting the line on commas would take "primary" for the
			// ID.
			name:    "QuotedComma",
			content: "notes,instance_id,region\n\"web, primary\",lhins-aaaaaaaa,ap-tokyo\n\"db, \"\"main\"\"\",\"lhins-bbbbbbbb\",ap-tokyo\n",
			want:    []string{"lhins-aaaaaaaa", "lhins-bbbbbbbb"},
		},
		{name: "Results", content: "\ufeffinstance_id,blueprint_id,region,status,error_message\nlhins-aaaaaaaa,,ap-tokyo,failed,\"no, not this\"\n", want: []string{"lhins-aaaaaaaa"}},
		{name: "Short", content: "lhins-aaaaaaaa\nlhins-abc\n", wantErr: `list.txt:2: malformed ID "lhins-abc" (want lhins- and 8 lowercase letters or digits)`},
		{name: "ShortInCSV", content: "instance_id,region\nlhins-abc,ap-tokyo\n", wantErr: `list.txt:2: instance_id: malformed ID "lhins-abc" (want lhins- and 8 lowercase letters or digits)`},
		{name: "Long", content: "lhins-aaaaaaaaa\n", wantErr: `list.txt:1: malformed ID "lhins-aaaaaaaaa" (want lhins- and 8 lowercase letters or digits)`},
		{name: "NoHeader", content: "lhins-aaaaaaaa,ap-tokyo\n", wantErr: `list.txt:1: 2 fields: want one instance ID per line, or a header naming an instance_id column`},
		{name: "Empty", content: "# nothing\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, tt.name, "list.txt")
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			ids, err := csv.ReadInstanceList(path)
			if tt.wantErr != "" {
				want := filepath.Join(dir, tt.name) + "/" + tt.wantErr
				if err == nil || err.Error() != want {
					t.Fatalf("ReadInstanceList() = %v, %v; want error %s", ids, err, want)
				}
				if _, ok := errors.AsType[csv.Errors](err); !ok {
					t.Errorf("ReadInstanceList() error %T, want csv.Errors", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("ReadInstanceList() (-want +got):\n%s", diff)
			}
		})
	}
}
