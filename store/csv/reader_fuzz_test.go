package csv_test

import (
	"bytes"
	stdcsv "encoding/csv"
	"errors"
	"io"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

var (
	instancePattern  = regexp.MustCompile(`^lhins-[a-z0-9]{8}$`)
	blueprintPattern = regexp.MustCompile(`^(lhbp-[a-z0-9]{8})?$`)
	regionPattern    = regexp.MustCompile(`^[a-z]{2,4}-[a-z]+(-[a-z0-9]+)*$`)
)

// FuzzReader checks that the Reader never panics, returns only valid jobs
// and reports errors within the file, and that the jobs it returns read back
// the same once written out, as a jobs CSV and as a results CSV.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"instance_id,blueprint_id,region\nlhins-aaaaaaaa,lhbp-bbbbbbbb,ap-guangzhou\nlhins-cccccccc,,\n",
		"\ufeffInstance_ID , Region\r\n lhins-aaaaaaaa , na-siliconvalley \r\n\r\n",
		"notes,instance_id\n\"a,\nb\"\"\",lhins-aaaaaaaa\n\"c\" ,lhins-bbbbbbbb\n",
		"instance_id\nlhins-aaaaaaaa\nlhins-aaaaaaaa\nlhins-AAAAAAAA\n",
		"instance_id,region\nlhins-aaaaaaaa\nlhins-bbbbbbbb,ap-x,extra\n",
		"instance_id,x\n\"lhins-aaaaaaaa,\n",
		"instance_id\nlhins-aa\"aaaaaa\n",
		"instance_id\x00\xff\nlhins-aaaaaaaa\n",
		"\xff\xfei\x00d\x00",
		"",
		"\n\n,,\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		lines := bytes.Count([]byte(in), []byte("\n")) + 1
		r := csv.NewReader(bytes.NewReader([]byte(in)), "fuzz.csv", csv.ReadOptions{DefaultRegion: "ap-guangzhou"})
		var jobs []store.Job
		seen := make(map[string]bool)
		for {
			j, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Read() = %v", err)
			}
			if !instancePattern.MatchString(j.InstanceID) || !blueprintPattern.MatchString(j.BlueprintID) ||
				!regionPattern.MatchString(j.Region) || j.Status != store.StatusPending {
				t.Fatalf("Read() = %+v, not a valid job", j)
			}
			if seen[j.InstanceID] {
				t.Fatalf("Read() returned %s twice", j.InstanceID)
			}
			seen[j.InstanceID] = true
			if j.ID < 1 || j.ID > int64(lines) || (len(jobs) > 0 && j.ID <= jobs[len(jobs)-1].ID) {
				t.Fatalf("Read() = job on line %d after %v, in a file of %d lines", j.ID, jobs, lines)
			}
			jobs = append(jobs, j)
		}
		if err := r.Err(); err != nil {
			var errs csv.Errors
			if !errors.As(err, &errs) || len(errs) == 0 || len(errs) > 101 {
				t.Fatalf("Err() = %v, want 1 to 101 row errors", err)
			}
			for _, e := range errs {
				if e.Line < 0 || e.Line > lines || e.Path != "fuzz.csv" {
					t.Fatalf("Err() has %q, outside a file of %d lines", e, lines)
				}
			}
		}

		// Written out as a jobs CSV, the jobs read back the same.
		var buf bytes.Buffer
		w := stdcsv.NewWriter(&buf)
		w.Write([]string{"instance_id", "blueprint_id", "region"})
		for _, j := range jobs {
			w.Write([]string{j.InstanceID, j.BlueprintID, j.Region})
		}
		w.Flush()
		back := readAll(t, buf.Bytes())
		for i := range jobs {
			jobs[i].ID = int64(i + 2)
		}
		if diff := cmp.Diff(jobs, back); diff != "" {
			t.Fatalf("jobs written and read back mismatch (-want +got):\n%s", diff)
		}
	})
}

func readAll(t *testing.T, data []byte) []store.Job {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(data), "back.csv", csv.ReadOptions{})
	var jobs []store.Job
	for {
		j, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("reading back %q: %v", data, err)
	}
	return jobs
}
