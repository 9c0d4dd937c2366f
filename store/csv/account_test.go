package csv_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

func TestReadAccountColumn(t *testing.T) {
	t.Parallel()
	in := "instance_id,region,account\n" +
		"lhins-aaaaaaa1,ap-guangzhou,team-a\n" +
		"lhins-aaaaaaa2,ap-guangzhou,\n" +
		"lhins-aaaaaaa3,ap-guangzhou,Team A\n"
	_, err := readJobs(strings.NewReader(in))
	want := `jobs.csv:4: account: account name "Team A": want lowercase letters, digits, - and _, starting with a letter`
	if err == nil || err.Error() != want {
		t.Fatalf("ReadJobs() error = %v, want %s", err, want)
	}
	jobs, err := readJobs(strings.NewReader(strings.TrimSuffix(in, "lhins-aaaaaaa3,ap-guangzhou,Team A\n")))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.Account)
	}
	if diff := cmp.Diff([]string{"team-a", ""}, got); diff != "" {
		t.Errorf("accounts (-want +got):\n%s", diff)
	}
}

// TestViewClaimsItsAccount: each account's View hands out the jobs of its
// account alone, one region a claim, and together they hand out each job
// once.
func TestViewClaimsItsAccount(t *testing.T) {
	t.Parallel()
	var jobs []store.Job
	for i, a := range []string{"a", "b", "", "a", "b", "a"} {
		region := "ap-guangzhou"
		if i%2 == 1 {
			region = "ap-shanghai"
		}
		jobs = append(jobs, store.Job{ID: int64(i + 2), InstanceID: "lhins-0000000" + string(rune('0'+i)), Region: region, Account: a, Status: store.StatusPending})
	}
	s, err := csv.Open(filepath.Join(t.TempDir(), "state"), jobs, "run")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if diff := cmp.Diff([]string{"a", "b", ""}, s.Accounts()); diff != "" {
		t.Errorf("Accounts() (-want +got):\n%s", diff)
	}
	ctx := context.Background()
	claimed := map[string]string{}
	for _, a := range []string{"a", "b", "", "c"} {
		v := s.View(a)
		for {
			got, _, err := v.Claim(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			for _, j := range got {
				if j.Account != a || j.Region != got[0].Region {
					t.Errorf("View(%q).Claim() gave %s of account %q in %s, with %s", a, j.InstanceID, j.Account, j.Region, got[0].Region)
				}
				if prev, ok := claimed[j.InstanceID]; ok {
					t.Errorf("%s claimed by %q and %q", j.InstanceID, prev, a)
				}
				claimed[j.InstanceID] = a
			}
		}
	}
	if len(claimed) != len(jobs) {
		t.Errorf("claimed %d jobs, want %d", len(claimed), len(jobs))
	}
}

func TestResultsAccountColumn(t *testing.T) {
	t.Parallel()
	jobs := []store.Job{
		{InstanceID: "lhins-aaaaaaa1", Region: "ap-guangzhou", Status: store.StatusSucceeded, Account: "team-a"},
		{InstanceID: "lhins-aaaaaaa2", Region: "ap-guangzhou", Status: store.StatusSucceeded},
	}
	var buf bytes.Buffer
	if err := csv.WriteResultsSeq(&buf, slices.Values(jobs), true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if !strings.HasSuffix(lines[0], ",previous_blueprint_id,hook_phase,account") || !strings.HasSuffix(lines[1], ",team-a") {
		t.Errorf("results = %q, want account last", lines[:2])
	}
	buf.Reset()
	if err := csv.WriteJobs(&buf, "", jobs); err != nil {
		t.Fatal(err)
	}
	again, err := readJobs(&buf)
	if err != nil || again[0].Account != "team-a" {
		t.Errorf("WriteJobs then ReadJobs = %v, %v; want account team-a", again, err)
	}
}

// readAll reads every job of a jobs CSV named jobs.csv.
func readJobs(in io.Reader) ([]store.Job, error) {
	r := csv.NewReader(in, "jobs.csv", csv.ReadOptions{})
	var jobs []store.Job
	for {
		j, err := r.Read()
		if err == io.EOF {
			return jobs, r.Err()
		}
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
}
