package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// TestSelectSettings maps select's argv and environment to its settings,
// without running anything.
func TestSelectSettings(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))
	const bp = "lhbp-aaaaaaaa"
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // the selector, as recorded
		wantErr string // substring of the usage error
	}{
		{name: "TagsInRegions", args: []string{"--region", "ap-guangzhou,ap-singapore", "--tag", "env=staging", "--tag", "role=worker,batch", "--blueprint-id", bp, "--out", "x.csv"},
			want: "--region ap-guangzhou --region ap-singapore --filter tag:env=staging --filter tag:role=worker,batch --blueprint-id " + bp},
		{name: "RepeatedRegion", args: []string{"--region", "ap-guangzhou", "--region", "ap-singapore", "--region", "ap-guangzhou", "--same-image", "--out", "-"},
			want: "--region ap-guangzhou --region ap-singapore --same-image"},
		{name: "AllRegions", args: []string{"--region", "all", "--filter", "zone=ap-guangzhou-3", "--same-image", "--out", "-"},
			want: "--region all --filter zone=ap-guangzhou-3 --same-image"},
		{name: "EnvRegion", args: []string{"--same-image", "--out", "-"}, env: map[string]string{"TENCENTCLOUD_REGION": "ap-tokyo"},
			want: "--region ap-tokyo --same-image"},
		{name: "SkipSinceDate", args: []string{"--region", "ap-tokyo", "--same-image", "--skip-matching", "--since", "2026-11-29", "--limit", "5", "--exclude", "keep.txt", "--out", "-"},
			want: "--region ap-tokyo --same-image --exclude keep.txt --limit 5 --skip-matching --since 2026-11-28T16:00:00Z"},
		{name: "SinceRFC3339", args: []string{"--region", "ap-tokyo", "--same-image", "--skip-matching", "--since", "2026-11-29T00:00:00Z", "--out", "-"},
			want: "--region ap-tokyo --same-image --skip-matching --since 2026-11-29T00:00:00Z"},
		{name: "IntoRun", args: []string{"--region", "ap-tokyo", "--same-image", "--run", "r1"}, env: map[string]string{"DATABASE_URL": "postgres://db/x"},
			want: "--region ap-tokyo --same-image"},
		{name: "NoRegion", args: []string{"--same-image", "--out", "-"}, wantErr: "give --region"},
		{name: "AllAndRegion", args: []string{"--region", "all,ap-tokyo", "--same-image", "--out", "-"}, wantErr: "give it alone"},
		{name: "NoTarget", args: []string{"--region", "ap-tokyo", "--tag", "env=x", "--out", "-"}, wantErr: "needs a target image"},
		{name: "TwoTargets", args: []string{"--region", "ap-tokyo", "--same-image", "--blueprint-id", bp, "--out", "-"}, wantErr: "not both"},
		{name: "StandardOutput", args: []string{"--region", "ap-tokyo", "--same-image"}, want: "--region ap-tokyo --same-image"},
		{name: "OutAndRun", args: []string{"--region", "ap-tokyo", "--same-image", "--out", "-", "--run", "r"}, wantErr: "not both"},
		{name: "RunWithoutDatabase", args: []string{"--region", "ap-tokyo", "--same-image", "--run", "r"}, wantErr: "--database-url"},
		{name: "FilterWithoutValue", args: []string{"--region", "ap-tokyo", "--same-image", "--filter", "zone", "--out", "-"}, wantErr: `--filter "zone"`},
		{name: "FilterEmptyValue", args: []string{"--region", "ap-tokyo", "--same-image", "--filter", "zone=a,,b", "--out", "-"}, wantErr: "empty value"},
		{name: "FilterTwice", args: []string{"--region", "ap-tokyo", "--same-image", "--tag", "env=a", "--tag", "env=b", "--out", "-"}, wantErr: "given twice"},
		{name: "SkipWithoutSince", args: []string{"--region", "ap-tokyo", "--same-image", "--skip-matching", "--out", "-"}, wantErr: "--skip-matching needs --since"},
		{name: "SinceWithoutSkip", args: []string{"--region", "ap-tokyo", "--same-image", "--since", "2026-11-29", "--out", "-"}, wantErr: "only means something with --skip-matching"},
		{name: "SinceFuture", args: []string{"--region", "ap-tokyo", "--same-image", "--skip-matching", "--since", "2026-12-02", "--out", "-"}, wantErr: "in the future"},
		{name: "SinceBad", args: []string{"--region", "ap-tokyo", "--same-image", "--skip-matching", "--since", "sunday", "--out", "-"}, wantErr: "neither RFC 3339"},
		{name: "LimitNegative", args: []string{"--region", "ap-tokyo", "--same-image", "--limit", "-1", "--out", "-"}, wantErr: "--limit"},
		{name: "DescribeRateOverLimit", args: []string{"--region", "ap-tokyo", "--same-image", "--describe-rate", "150", "--out", "-"}, wantErr: "--describe-rate"},
		{name: "Emulate", args: []string{"--region", "ap-tokyo", "--same-image", "--emulate", "--out", "-"}, wantErr: "batchreset emulator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := &selectFlags{}
			fs := pflag.NewFlagSet("select", pflag.ContinueOnError)
			o.add(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("Parse(%q) = %v", tc.args, err)
			}
			s, err := o.settings(now, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || exitCode(err) != exitUsage {
					t.Fatalf("settings(%q) = %v, want a usage error with %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("settings(%q) = %v", tc.args, err)
			}
			if got := s.sel.String(); got != tc.want {
				t.Errorf("selector = %s\nwant       %s", got, tc.want)
			}
		})
	}
}

// TestRunSelectorSettings checks how run's --region serves both the rows
// of a jobs file and a selector.
func TestRunSelectorSettings(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		args    []string
		want    string // the selector; "" for none
		region  string // the rows' default region
		wantErr string
	}{
		{name: "RowsRegion", args: []string{"--jobs", "j.csv", "--region", "ap-tokyo"}, region: "ap-tokyo"},
		{name: "Selector", args: []string{"--jobs", "j.csv", "--region", "ap-tokyo", "--region", "ap-seoul", "--tag", "env=staging", "--same-image"},
			want: "--region ap-tokyo --region ap-seoul --filter tag:env=staging --same-image"},
		{name: "SelectorPostgres", args: []string{"--database-url", "postgres://db/x", "--run", "r", "--region", "all", "--blueprint-id", "lhbp-aaaaaaaa"},
			want: "--region all --blueprint-id lhbp-aaaaaaaa"},
		{name: "SeveralRegionsNoSelector", args: []string{"--jobs", "j.csv", "--region", "ap-tokyo", "--region", "ap-seoul"}, wantErr: "go with a selector"},
		{name: "AllNoSelector", args: []string{"--jobs", "j.csv", "--region", "all"}, wantErr: "go with a selector"},
		{name: "SelectorWithoutJobs", args: []string{"--region", "ap-tokyo", "--same-image"}, wantErr: "--jobs"},
		{name: "SelectorEmulate", args: []string{"--jobs", "j.csv", "--emulate", "--region", "ap-tokyo", "--same-image"}, wantErr: "batchreset emulator"},
		{name: "SelectorBad", args: []string{"--jobs", "j.csv", "--region", "ap-tokyo", "--skip-matching", "--same-image"}, wantErr: "--since"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := &runFlags{}
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			o.add(fs)
			o.sel.add(fs) // as runCommand does
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("Parse(%q) = %v", tc.args, err)
			}
			s, err := o.settings(now, func(string) string { return "" })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("settings(%q) = %v, want a usage error with %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("settings(%q) = %v", tc.args, err)
			}
			got := ""
			if s.sel != nil {
				got = s.sel.String()
			}
			if got != tc.want || (tc.want == "" && s.src.region != tc.region) {
				t.Errorf("selector %q, rows' region %q; want %q, %q", got, s.src.region, tc.want, tc.region)
			}
		})
	}
}

func TestReadExclude(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          []string
		wantErr       string
	}{
		{name: "List", content: "# keep these\nlhins-aaaaaaaa\n\n  lhins-bbbbbbbb  \n", want: []string{"lhins-aaaaaaaa", "lhins-bbbbbbbb"}},
		{name: "Results", content: "\ufeffinstance_id,blueprint_id,region,status\nlhins-aaaaaaaa,,ap-tokyo,succeeded\n\"lhins-cccccccc\",,ap-tokyo,failed\n", want: []string{"lhins-aaaaaaaa", "lhins-cccccccc"}},
		{name: "JobsWithSelectorLine", content: "# batchreset select --region all --same-image\nregion,instance_id\nap-tokyo,lhins-aaaaaaaa\n", want: []string{"lhins-aaaaaaaa"}},
		{name: "Malformed", content: "lhins-aaaaaaaa\nlhins-AB\n", wantErr: "x.txt:2"},
		{name: "Empty", content: "# nothing\n", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, tc.name, "x.txt")
			os.MkdirAll(filepath.Dir(path), 0o755)
			writeFile(t, path, tc.content)
			ids, err := readExclude(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("readExclude() = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for id := range ids {
				got = append(got, id)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("readExclude() (-want +got):\n%s", diff)
			}
		})
	}
}

// selectRegions are the regions of the command tests' fleets.
var selectRegions = []string{"ap-guangzhou", "ap-singapore", "eu-frankfurt"}

// newTaggedFleet serves a fleet of n instances over selectRegions, 30%
// tagged env=staging and 70% env=prod.
func newTaggedFleet(t *testing.T, n int) *fleet {
	t.Helper()
	return newFleet(t, fleetOptions{n: n, limit: 200, opts: emulator.FleetOptions{Regions: selectRegions,
		Tags: []emulator.TagShare{{Key: "env", Value: "staging", Percent: 30}, {Key: "env", Value: "prod", Percent: 70}}}})
}

// target returns the blueprint the fleet's jobs file resets to.
func (f *fleet) target(t *testing.T) string {
	t.Helper()
	return mustReadJobs(t, f.jobsPath)[0].BlueprintID
}

// staging returns the IDs of the fleet's env=staging instances, ordered as
// a selection orders them: by region, then ID.
func (f *fleet) staging() []string {
	var ins []emulator.Instance
	for _, in := range f.instances {
		if slices.Contains(in.Tags, emulator.Tag{Key: "env", Value: "staging"}) {
			ins = append(ins, in)
		}
	}
	slices.SortFunc(ins, func(a, b emulator.Instance) int {
		return cmpOr(strings.Compare(a.Region, b.Region), strings.Compare(a.ID, b.ID))
	})
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	return ids
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// checkSelectRates checks that the emulator saw no call of the selection's
// actions over their documented limits.
func checkSelectRates(t *testing.T, f *fleet) {
	t.Helper()
	limits := emulator.DefaultRateLimits()
	runnertest.CheckRates(t, f.emu.Stats().Actions, map[string]int{
		lighthouse.ActionDescribeInstances: limits[lighthouse.ActionDescribeInstances],
		lighthouse.ActionGetResources:      limits[lighthouse.ActionGetResources],
		lighthouse.ActionDescribeRegions:   limits[lighthouse.ActionDescribeRegions],
	})
}

// TestSelectCommand runs select against an emulated, tagged fleet in three
// regions and compares the lists with the fleet's truth. Not parallel: the
// credentials come from the environment.
func TestSelectCommand(t *testing.T) {
	setCredentials(t)
	f := newTaggedFleet(t, 450)
	target := f.target(t)
	dir := t.TempDir()

	out := filepath.Join(dir, "staging.csv")
	res := batchreset(t, "select", "--endpoint", f.url, "--region", "all", "--tag", "env=staging", "--blueprint-id", target, "--out", out)
	res.wantCode(t, exitOK, "select --out")
	jobs := mustReadJobs(t, out)
	if diff := cmp.Diff(f.staging(), instanceIDs(jobs)); diff != "" {
		t.Errorf("selected (-truth +file):\n%s", diff)
	}
	for _, j := range jobs {
		if j.BlueprintID != target || !slices.Contains(selectRegions, j.Region) {
			t.Errorf("%s: blueprint %s in %s, want %s in one of %v", j.InstanceID, j.BlueprintID, j.Region, target, selectRegions)
		}
	}
	b, _ := os.ReadFile(out)
	first, _, _ := strings.Cut(string(b), "\n")
	if want := "# batchreset select --region all --filter tag:env=staging --blueprint-id " + target + "; regions ap-guangzhou,ap-singapore,eu-frankfurt; "; !strings.HasPrefix(first, want) {
		t.Errorf("first line = %q, want it to start %q", first, want)
	}
	if want := fmt.Sprintf("%d selected of %d matched in 3 region(s)", len(jobs), len(jobs)); !strings.Contains(res.stdout, want) {
		t.Errorf("stdout = %q, want %q", res.stdout, want)
	}

	// To standard output, in given regions, reinstalling current images.
	res = batchreset(t, "select", "--endpoint", f.url, "--region", "ap-singapore", "--region", "eu-frankfurt", "--same-image", "--out", "-")
	res.wantCode(t, exitOK, "select --out -")
	listed := readJobsText(t, res.stdout)
	want := 0
	for _, in := range f.instances {
		if in.Region != "ap-guangzhou" {
			want++
			if i := slices.IndexFunc(listed, func(j store.Job) bool { return j.InstanceID == in.ID }); i < 0 || listed[i].BlueprintID != in.BlueprintID {
				t.Errorf("%s: not listed with its current image %s", in.ID, in.BlueprintID)
			}
		}
	}
	if len(listed) != want || !strings.Contains(res.stderr, "selected of") {
		t.Errorf("listed %d, want %d; the summary goes to stderr: %q", len(listed), want, res.stderr)
	}

	// Exclusion, limit and the rows left out, as an operator sees them.
	exclude := filepath.Join(dir, "keep.txt")
	writeFile(t, exclude, "# never these\n"+strings.Join(f.staging()[:3], "\n")+"\n")
	res = batchreset(t, "select", "--endpoint", f.url, "--region", "ap-guangzhou", "--tag", "env=staging", "--blueprint-id", target,
		"--exclude", exclude, "--limit", "4", "--verbose", "--out", filepath.Join(dir, "canary.csv"))
	res.wantCode(t, exitOK, "select --exclude --limit --verbose")
	golden(t, "select-verbose", strings.ReplaceAll(strings.ReplaceAll(res.stdout, dir, "DIR"), target, "TARGET"))
	if got := instanceIDs(mustReadJobs(t, filepath.Join(dir, "canary.csv"))); !cmp.Equal(got, f.staging()[3:7]) {
		t.Errorf("canary list = %v, want %v", got, f.staging()[3:7])
	}

	// A selector that matches nothing: exit 2, nothing written.
	none := filepath.Join(dir, "none.csv")
	res = batchreset(t, "select", "--endpoint", f.url, "--region", "all", "--tag", "env=nowhere", "--same-image", "--out", none)
	res.wantCode(t, exitUsage, "select matching nothing")
	if !strings.Contains(res.stderr, "matched no instance") || fileExists(none) {
		t.Errorf("stderr = %q, file written: %v; want a clear message and no file", res.stderr, fileExists(none))
	}
	res = batchreset(t, "select", "--endpoint", f.url, "--region", "ap-guangzhou", "--filter", "instance-state=NONESUCH", "--same-image", "--out", none)
	res.wantCode(t, exitUsage, "select matching nothing in a region")

	// Invalid filters: the API's error, named.
	for _, tc := range []struct{ filter, code string }{
		{"instance-id=lhins-aaaaaaaa", "InvalidParameter.InvalidFilterNotSupportedName"},
		{"private-ip-address=10.0.0", "InvalidParameterValue.InvalidIpFormat"},
		{"zone=Guangzhou 3", "InvalidParameterValue.InvalidZone"},
	} {
		res = batchreset(t, "select", "--endpoint", f.url, "--region", "ap-guangzhou", "--filter", tc.filter, "--same-image", "--out", none)
		res.wantCode(t, exitUsage, "select --filter ", tc.filter)
		if !strings.Contains(res.stderr, "DescribeInstances: "+tc.code) || fileExists(none) {
			t.Errorf("--filter %s: stderr = %q, want DescribeInstances' %s and no file", tc.filter, res.stderr, tc.code)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--region", "ap-guangzhou", "--blueprint-id", "lhbp-nosuch00"}, "blueprint lhbp-nosuch00 in ap-guangzhou: not found"},
		{[]string{"--region", "ap-guangzhou", "--blueprint-id", "lhbp-BAD"}, "InvalidParameterValue.BlueprintIdMalformed"},
		{[]string{"--region", "xx-nowhere-9", "--same-image"}, "UnsupportedRegion"},
	} {
		res = batchreset(t, append([]string{"select", "--endpoint", f.url, "--out", none}, tc.args...)...)
		res.wantCode(t, exitUsage, "select ", tc.args)
		if !strings.Contains(res.stderr, tc.want) || fileExists(none) {
			t.Errorf("select %v: stderr = %q, want %q and no file", tc.args, res.stderr, tc.want)
		}
	}
	checkSelectRates(t, f)
	if f.resets() != 0 {
		t.Errorf("select reset %d instances, want none", f.resets())
	}
}

// TestSelectIntoRun imports a selection into a Postgres run, with its
// selector recorded, and refuses a second selection into it.
func TestSelectIntoRun(t *testing.T) {
	setCredentials(t)
	url := postgrestest.NewSchema(t)
	f := newTaggedFleet(t, 300)
	args := []string{"select", "--database-url", url, "--run", "picked", "--endpoint", f.url, "--region", "all", "--tag", "env=staging", "--same-image"}
	batchreset(t, args...).wantCode(t, exitOK, "select --run")
	jobs := dbJobs(t, url, "picked")
	if diff := cmp.Diff(f.staging(), instanceIDs(jobs)); diff != "" {
		t.Errorf("run's jobs (-truth +run):\n%s", diff)
	}
	db, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sel, err := db.Selector(context.Background(), "picked")
	if err != nil || !strings.HasPrefix(sel, "batchreset select --region all --filter tag:env=staging --same-image; regions ") {
		t.Errorf("Selector() = %q, %v, want the selector recorded", sel, err)
	}
	res := batchreset(t, args...)
	res.wantCode(t, exitUsage, "select into a run with jobs")
	if !strings.Contains(res.stderr, "has jobs already") {
		t.Errorf("stderr = %q, want the run named as taken", res.stderr)
	}
}

// TestRunWithSelector runs with a selector: the list is resolved once and
// saved in --jobs; a rerun, with other selector flags, works on the saved
// list and resets nothing new.
func TestRunWithSelector(t *testing.T) {
	setCredentials(t)
	f := newTaggedFleet(t, 200)
	jobsPath := filepath.Join(t.TempDir(), "jobs.csv")
	args := func(limit string) []string {
		return []string{"run", "--jobs", jobsPath, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate), "--poll-interval", "100ms",
			"--request-timeout", "1s", "--settle-time", "2s", "--region", "all", "--tag", "env=staging", "--blueprint-id", f.target(t), "--limit", limit}
	}
	res := batchreset(t, args("5")...)
	res.wantCode(t, exitOK, "run with a selector")
	saved := mustReadJobs(t, jobsPath)
	if got, want := instanceIDs(saved), f.staging()[:5]; !cmp.Equal(got, want) {
		t.Fatalf("saved list = %v, want %v", got, want)
	}
	reset := f.emu.Stats().Resets
	if len(reset) != 5 {
		t.Errorf("%d instances reset, want the 5 selected", len(reset))
	}
	for _, id := range instanceIDs(saved) {
		if len(reset[id]) != 1 {
			t.Errorf("%s reset %d times, want once", id, len(reset[id]))
		}
	}

	res = batchreset(t, args("5")...)
	res.wantCode(t, exitOK, "rerun")
	if !strings.Contains(res.stderr, "not resolved again") || strings.Contains(res.stderr, "not made by this selector") {
		t.Errorf("stderr = %q, want the saved list used, without a warning", res.stderr)
	}
	res = batchreset(t, args("10")...)
	res.wantCode(t, exitOK, "rerun with other selector flags")
	if !strings.Contains(res.stderr, "not resolved again") || !strings.Contains(res.stderr, "not made by this selector") {
		t.Errorf("stderr = %q, want the saved list used and the different selector noted", res.stderr)
	}
	if n := f.resets(); n != 5 {
		t.Errorf("%d resets after the rerun, want still 5", n)
	}
	if got := instanceIDs(readResults(t, filepath.Join(filepath.Dir(jobsPath), "results.csv"))); !cmp.Equal(got, instanceIDs(saved)) {
		t.Errorf("results list %v, want the saved list", got)
	}

	// Nothing matched: nothing saved, nothing started.
	none := filepath.Join(t.TempDir(), "none.csv")
	res = batchreset(t, "run", "--jobs", none, "--endpoint", f.url, "--yes", "--region", "all", "--tag", "env=nowhere", "--same-image")
	res.wantCode(t, exitUsage, "run with a selector matching nothing")
	if fileExists(none) || f.resets() != 5 {
		t.Errorf("file written %v, resets %d; want no file and no new reset", fileExists(none), f.resets())
	}
	checkSelectRates(t, f)
	checkRate(t, f)
}

// TestRunWithSelectorPostgres imports the selection into an empty run
// once; a rerun works on the run's rows.
func TestRunWithSelectorPostgres(t *testing.T) {
	setCredentials(t)
	url := postgrestest.NewSchema(t)
	f := newTaggedFleet(t, 200)
	args := func(limit string) []string {
		return []string{"run", "--database-url", url, "--run", "sel", "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate), "--poll-interval", "100ms",
			"--request-timeout", "1s", "--settle-time", "2s", "--lease-ttl", "2s", "--region", "all", "--tag", "env=staging", "--same-image", "--limit", limit}
	}
	batchreset(t, args("4")...).wantCode(t, exitOK, "run --run with a selector")
	jobs := dbJobs(t, url, "sel")
	if got, want := instanceIDs(jobs), f.staging()[:4]; !cmp.Equal(got, want) {
		t.Errorf("run's jobs = %v, want %v", got, want)
	}
	res := batchreset(t, args("8")...)
	res.wantCode(t, exitOK, "rerun")
	if !strings.Contains(res.stderr, "not resolved again") || len(dbJobs(t, url, "sel")) != 4 || f.resets() != 4 {
		t.Errorf("rerun: stderr %q, %d jobs, %d resets; want the run's 4 jobs reused and nothing new reset", res.stderr, len(dbJobs(t, url, "sel")), f.resets())
	}
}

// TestPlanWithSelector freezes the selection in --jobs and plans it.
func TestPlanWithSelector(t *testing.T) {
	setCredentials(t)
	f := newTaggedFleet(t, 150)
	jobsPath := filepath.Join(t.TempDir(), "plan.csv")
	res := batchreset(t, "plan", "--jobs", jobsPath, "--endpoint", f.url, "--region", "ap-singapore", "--tag", "env=staging", "--blueprint-id", f.target(t))
	res.wantCode(t, exitOK, "plan with a selector")
	var want []string
	for _, id := range f.staging() {
		if slices.ContainsFunc(f.instances, func(in emulator.Instance) bool { return in.ID == id && in.Region == "ap-singapore" }) {
			want = append(want, id)
		}
	}
	if got := instanceIDs(mustReadJobs(t, jobsPath)); !cmp.Equal(got, want) {
		t.Errorf("saved list = %v, want %v", got, want)
	}
	if !strings.Contains(res.stdout, fmt.Sprintf("%d to reset", len(want))) || f.resets() != 0 {
		t.Errorf("plan: stdout %q, %d resets; want %d to reset and none done", res.stdout, f.resets(), len(want))
	}
}

func TestSelectHelp(t *testing.T) {
	t.Parallel()
	res := batchreset(t, "select", "--help")
	res.wantCode(t, exitOK, "select --help")
	golden(t, "select", res.stdout)
}

// readJobsText reads a jobs CSV given as text, as run would read it.
func readJobsText(t *testing.T, text string) []store.Job {
	t.Helper()
	r := csvstore.NewReader(strings.NewReader(text), "stdout", csvstore.ReadOptions{})
	var jobs []store.Job
	for {
		j, err := r.Read()
		if err != nil {
			break
		}
		jobs = append(jobs, j)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("not a jobs CSV: %v\n%s", err, text)
	}
	return jobs
}
