package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
)

const (
	selSecretID  = "AKIDselecttest"
	selSecretKey = "select-test-secret-key-0123456789"

	bpTarget = "lhbp-target01"
	bpOther  = "lhbp-other001"
)

func TestSelectorCheck(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	ok := Selector{Regions: []string{"ap-guangzhou"}, BlueprintID: bpTarget}
	for _, tc := range []struct {
		name string
		edit func(*Selector)
		want string // "" for valid
	}{
		{"Valid", func(*Selector) {}, ""},
		{"AllRegions", func(s *Selector) { s.Regions, s.AllRegions = nil, true }, ""},
		{"NoRegion", func(s *Selector) { s.Regions = nil }, "name the regions"},
		{"RegionsAndAll", func(s *Selector) { s.AllRegions = true }, "not both"},
		{"NoTarget", func(s *Selector) { s.BlueprintID = "" }, "target image"},
		{"TwoTargets", func(s *Selector) { s.SameImage = true }, "not both"},
		{"SameImage", func(s *Selector) { s.BlueprintID, s.SameImage = "", true }, ""},
		{"NegativeLimit", func(s *Selector) { s.Limit = -1 }, "limit -1"},
		{"SkipWithoutSince", func(s *Selector) { s.SkipMatching = true }, "needs a time"},
		{"SinceWithoutSkip", func(s *Selector) { s.Since = since }, "only means something"},
		{"Skip", func(s *Selector) { s.SkipMatching, s.Since = true, since }, ""},
		{"EmptyFilter", func(s *Selector) { s.Filters = []lighthouse.Filter{{Name: "zone"}} }, "at least one value"},
		{"FilterTwice", func(s *Selector) {
			s.Filters = []lighthouse.Filter{{Name: "tag:env", Values: []string{"a"}}, {Name: "tag:env", Values: []string{"b"}}}
		}, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := ok
			tc.edit(&s)
			err := s.Check()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Check() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSelectorString(t *testing.T) {
	t.Parallel()
	s := Selector{
		Regions:      []string{"ap-guangzhou", "ap-singapore"},
		Filters:      []lighthouse.Filter{{Name: "tag:env", Values: []string{"staging", "qa"}}, {Name: "instance-name", Values: []string{"web 1"}}},
		SameImage:    true,
		Exclude:      map[string]bool{"lhins-aaaaaaaa": true},
		ExcludeFrom:  "keep.txt",
		Limit:        5,
		SkipMatching: true,
		Since:        time.Date(2026, 11, 29, 8, 0, 0, 0, time.FixedZone("CST", 8*3600)),
	}
	want := `--region ap-guangzhou --region ap-singapore --filter tag:env=staging,qa --filter "instance-name=web 1" --same-image --exclude keep.txt --limit 5 --skip-matching --since 2026-11-29T00:00:00Z`
	if got := s.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	all := Selector{AllRegions: true, BlueprintID: bpTarget}
	if got, want := all.String(), "--region all --blueprint-id "+bpTarget; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestTagFilters(t *testing.T) {
	t.Parallel()
	got := tagFilters([]lighthouse.Filter{
		{Name: "tag:env", Values: []string{"staging", "qa"}},
		{Name: "tag-key", Values: []string{"role"}},
		{Name: "tag-key", Values: []string{"a", "b"}}, // keys ORed: GetResources ANDs its filters
		{Name: "tag-value", Values: []string{"x"}},    // any key: not expressible
		{Name: "zone", Values: []string{"ap-guangzhou-3"}},
	})
	want := []lighthouse.TagFilter{{TagKey: "env", TagValues: []string{"staging", "qa"}}, {TagKey: "role"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tagFilters() (-want +got):\n%s", diff)
	}
}

// inst is an instance as DescribeInstances shows it.
func inst(region, id, blueprint, op, state, started string) lighthouse.Instance {
	return lighthouse.Instance{Region: region, InstanceID: id, BlueprintID: blueprint, LatestOperation: op,
		LatestOperationState: state, LatestOperationRequestID: "req-" + id, LatestOperationStartedTime: started}
}

func TestMatching(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	const after, before = "2026-11-30T03:00:00Z", "2026-11-28T23:59:59Z"
	for _, tc := range []struct {
		name string
		in   lighthouse.Instance
		want match
	}{
		{"ResetSinceToTarget", inst("r", "i", bpTarget, "ResetInstance", "SUCCESS", after), matched},
		{"ResetExactlyAtSince", inst("r", "i", bpTarget, "ResetInstance", "SUCCESS", "2026-11-29T00:00:00Z"), matched},
		{"ResetBeforeSince", inst("r", "i", bpTarget, "ResetInstance", "SUCCESS", before), notMatched},
		{"OtherImage", inst("r", "i", bpOther, "ResetInstance", "SUCCESS", after), notMatched},
		{"ResetFailed", inst("r", "i", bpTarget, "ResetInstance", "FAILED", after), notMatched},
		{"ResetRunning", inst("r", "i", bpTarget, "ResetInstance", "OPERATING", after), notMatched},
		{"RebootedSince", inst("r", "i", bpTarget, "RebootInstances", "SUCCESS", after), notMatched},
		{"NoStartTime", inst("r", "i", bpTarget, "ResetInstance", "SUCCESS", ""), undated},
		{"BadStartTime", inst("r", "i", bpTarget, "ResetInstance", "SUCCESS", "yesterday"), undated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, detail := matching(tc.in, bpTarget, since)
			if got != tc.want {
				t.Errorf("matching() = %v (%s), want %v", got, detail, tc.want)
			}
			if got == matched && !strings.Contains(detail, "req-i") {
				t.Errorf("matching() detail %q names no RequestId", detail)
			}
		})
	}
}

func TestSift(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	const after = "2026-11-30T03:00:00Z"
	// Out of order on purpose: the list is ordered by region, then ID.
	insts := []lighthouse.Instance{
		inst("ap-singapore", "lhins-00000005", bpOther, "StartInstances", "SUCCESS", ""),
		inst("ap-guangzhou", "lhins-00000003", bpTarget, "ResetInstance", "SUCCESS", after),
		inst("ap-guangzhou", "lhins-00000001", bpOther, "StartInstances", "SUCCESS", ""),
		inst("ap-guangzhou", "lhins-00000002", bpOther, "StartInstances", "SUCCESS", ""),
		inst("ap-singapore", "lhins-00000004", bpTarget, "ResetInstance", "SUCCESS", ""),
	}
	type row struct{ ID, BP, Region string }
	jobRows := func(js []store.Job) []row {
		var out []row
		for _, j := range js {
			out = append(out, row{j.InstanceID, j.BlueprintID, j.Region})
		}
		return out
	}
	leftRows := func(ls []LeftOut) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.InstanceID+" "+string(l.Reason))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		sel      Selector
		jobs     []row
		left     []string
		undated  int
		wantDesc string
	}{
		{
			name: "TargetAll",
			sel:  Selector{BlueprintID: bpTarget},
			jobs: []row{{"lhins-00000001", bpTarget, "ap-guangzhou"}, {"lhins-00000002", bpTarget, "ap-guangzhou"}, {"lhins-00000003", bpTarget, "ap-guangzhou"},
				{"lhins-00000004", bpTarget, "ap-singapore"}, {"lhins-00000005", bpTarget, "ap-singapore"}},
			wantDesc: "5 selected of 5 matched in 0 region(s)",
		},
		{
			name: "SameImagePerRow",
			sel:  Selector{SameImage: true, Limit: 2},
			jobs: []row{{"lhins-00000001", bpOther, "ap-guangzhou"}, {"lhins-00000002", bpOther, "ap-guangzhou"}},
			left: []string{"lhins-00000003 beyond-limit", "lhins-00000004 beyond-limit", "lhins-00000005 beyond-limit"},
		},
		{
			name:     "ExcludeSkipLimit",
			sel:      Selector{BlueprintID: bpTarget, Exclude: map[string]bool{"lhins-00000001": true, "lhins-00000003": true}, SkipMatching: true, Since: since, Limit: 1},
			jobs:     []row{{"lhins-00000002", bpTarget, "ap-guangzhou"}},
			left:     []string{"lhins-00000001 excluded", "lhins-00000003 excluded", "lhins-00000004 beyond-limit", "lhins-00000005 beyond-limit"},
			undated:  1, // lhins-00000004 runs the target after a reset of unknown time: kept
			wantDesc: "1 selected of 5 matched in 0 region(s); left out: 2 excluded, 2 beyond-limit",
		},
		{
			name:     "SkipMatching",
			sel:      Selector{BlueprintID: bpTarget, SkipMatching: true, Since: since},
			jobs:     []row{{"lhins-00000001", bpTarget, "ap-guangzhou"}, {"lhins-00000002", bpTarget, "ap-guangzhou"}, {"lhins-00000004", bpTarget, "ap-singapore"}, {"lhins-00000005", bpTarget, "ap-singapore"}},
			left:     []string{"lhins-00000003 already-matching"},
			undated:  1,
			wantDesc: "4 selected of 5 matched in 0 region(s); left out: 1 already-matching",
		},
		{
			name: "SkipMatchingSameImage",
			sel:  Selector{SameImage: true, SkipMatching: true, Since: since},
			jobs: []row{{"lhins-00000001", bpOther, "ap-guangzhou"}, {"lhins-00000002", bpOther, "ap-guangzhou"}, {"lhins-00000004", bpTarget, "ap-singapore"}, {"lhins-00000005", bpOther, "ap-singapore"}},
			left: []string{"lhins-00000003 already-matching"}, undated: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sel := tc.sel.sift(insts)
			if diff := cmp.Diff(tc.jobs, jobRows(sel.Jobs)); diff != "" {
				t.Errorf("jobs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.left, leftRows(sel.Left)); diff != "" {
				t.Errorf("left out (-want +got):\n%s", diff)
			}
			if sel.Undated != tc.undated || sel.Matched != len(insts) {
				t.Errorf("Undated, Matched = %d, %d, want %d, %d", sel.Undated, sel.Matched, tc.undated, len(insts))
			}
			for i, j := range sel.Jobs {
				if j.ID != int64(i+1) || j.Status != store.StatusPending {
					t.Errorf("job %d: ID %d, status %s; want %d, pending", i, j.ID, j.Status, i+1)
				}
			}
			if tc.wantDesc != "" && sel.Summary() != tc.wantDesc {
				t.Errorf("Summary() = %q, want %q", sel.Summary(), tc.wantDesc)
			}
		})
	}
}

// selectFleet is an emulated account for selection tests, over real HTTP
// with real signing.
type selectFleet struct {
	emu       *emulator.Server
	client    *lighthouse.Client
	instances []emulator.Instance
}

// newSelectFleet serves instances (and the target blueprint) with edit
// applied to the configuration.
func newSelectFleet(t testing.TB, instances []emulator.Instance, edit func(*emulator.Config)) *selectFleet {
	t.Helper()
	cfg := emulator.Config{
		Credentials: map[string]string{selSecretID: selSecretKey},
		Instances:   instances,
		Blueprints: []emulator.Blueprint{{ID: bpTarget, Name: "Ubuntu", Type: "PURE_OS", State: "NORMAL", Platform: "UBUNTU",
			PlatformType: "LINUX_UNIX", OsName: "Ubuntu Server 22.04 LTS 64bit", RequiredDiskSize: 20, RequiredMemory: 1}},
		ResetDuration: emulator.Duration{Min: time.Nanosecond},
		Seed:          3,
		Logger:        slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(emu)
	c, err := lighthouse.New(lighthouse.Config{Endpoint: ts.URL, Credential: lighthouse.Credential{SecretID: selSecretID, SecretKey: selSecretKey}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		emu.Close()
		c.CloseIdleConnections()
		ts.Close()
	})
	return &selectFleet{emu: emu, client: c, instances: cfg.Instances}
}

// cloud returns a Cloud over the fleet's client at the documented
// DescribeInstances limit, the most a selection may use.
func (f *selectFleet) cloud(t testing.TB) *Cloud {
	t.Helper()
	return f.cloudAt(t, lighthouse.DescribeInstancesRateLimit)
}

// cloudAt returns a Cloud over the fleet's client at describeRate.
func (f *selectFleet) cloudAt(t testing.TB, describeRate float64) *Cloud {
	t.Helper()
	c, err := NewCloud(CloudConfig{API: f.client, DescribeRate: describeRate, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkLimits fails the test if any action saw a call over its documented
// limit.
func (f *selectFleet) checkLimits(t testing.TB) {
	t.Helper()
	for action, as := range f.emu.Stats().Actions {
		limit := emulator.DefaultRateLimits()[action]
		if as.OverLimit != 0 || as.MaxPerSecond > limit {
			t.Errorf("%s: %d calls over the limit, at most %d in one second; want 0 and at most %d", action, as.OverLimit, as.MaxPerSecond, limit)
		}
	}
}

// fleetOf generates n instances over regions, with varied states, bundles,
// zones, names, addresses and tags whose truth the tests compute from the
// returned values.
func fleetOf(n int, regions ...string) []emulator.Instance {
	insts, _ := emulator.GenerateFleet(n, emulator.FleetOptions{Seed: 11, Regions: regions,
		Tags: []emulator.TagShare{{Key: "env", Value: "staging", Percent: 30}, {Key: "env", Value: "prod", Percent: 60}, {Key: "role", Value: "worker", Percent: 50}}})
	for i := range insts {
		in := &insts[i]
		in.PrivateIP = fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		in.PublicIP = fmt.Sprintf("170.106.%d.%d", i/250, i%250+1)
		in.BundleID = []string{"bundle_a", "bundle_b", "bundle_c"}[i%3]
		if i%4 == 0 {
			in.State = "STOPPED"
		}
	}
	return insts
}

// truth returns the IDs of insts for which keep holds, sorted as a
// selection orders them (region, then ID).
func truth(insts []emulator.Instance, keep func(emulator.Instance) bool) []string {
	var out []emulator.Instance
	for _, in := range insts {
		if keep(in) {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b emulator.Instance) int {
		if a.Region != b.Region {
			return strings.Compare(a.Region, b.Region)
		}
		return strings.Compare(a.ID, b.ID)
	})
	ids := make([]string, len(out))
	for i, in := range out {
		ids[i] = in.ID
	}
	return ids
}

func jobIDs(jobs []store.Job) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.InstanceID
	}
	return ids
}

func hasTag(in emulator.Instance, key, value string) bool {
	return slices.Contains(in.Tags, emulator.Tag{Key: key, Value: value})
}

// TestSelectEachFilter selects by each documented filter name and compares
// the list with the fleet's truth.
func TestSelectEachFilter(t *testing.T) {
	t.Parallel()
	regions := []string{"ap-guangzhou", "ap-singapore"}
	insts := fleetOf(300, regions...)
	f := newSelectFleet(t, insts, nil)
	t.Cleanup(func() { f.checkLimits(t) }) // after the parallel subtests
	c := f.cloud(t)
	probe := insts[7]
	for _, tc := range []struct {
		filter lighthouse.Filter
		keep   func(emulator.Instance) bool
	}{
		{lighthouse.Filter{Name: lighthouse.FilterInstanceName, Values: []string{probe.Name, insts[8].Name}},
			func(in emulator.Instance) bool { return in.Name == probe.Name || in.Name == insts[8].Name }},
		{lighthouse.Filter{Name: lighthouse.FilterPrivateIPAddress, Values: []string{probe.PrivateIP}},
			func(in emulator.Instance) bool { return in.PrivateIP == probe.PrivateIP }},
		{lighthouse.Filter{Name: lighthouse.FilterPublicIPAddress, Values: []string{probe.PublicIP}},
			func(in emulator.Instance) bool { return in.PublicIP == probe.PublicIP }},
		{lighthouse.Filter{Name: lighthouse.FilterZone, Values: []string{"ap-guangzhou-1", "ap-singapore-2"}},
			func(in emulator.Instance) bool { return in.Zone == "ap-guangzhou-1" || in.Zone == "ap-singapore-2" }},
		{lighthouse.Filter{Name: lighthouse.FilterInstanceState, Values: []string{"STOPPED"}},
			func(in emulator.Instance) bool { return in.State == "STOPPED" }},
		{lighthouse.Filter{Name: lighthouse.FilterTagKey, Values: []string{"role"}},
			func(in emulator.Instance) bool { return hasTag(in, "role", "worker") }},
		{lighthouse.Filter{Name: lighthouse.FilterTagValue, Values: []string{"staging"}},
			func(in emulator.Instance) bool { return hasTag(in, "env", "staging") }},
		{lighthouse.Filter{Name: lighthouse.FilterTag("env"), Values: []string{"prod"}},
			func(in emulator.Instance) bool { return hasTag(in, "env", "prod") }},
		{lighthouse.Filter{Name: lighthouse.FilterBundleID, Values: []string{"bundle_b"}},
			func(in emulator.Instance) bool { return in.BundleID == "bundle_b" }},
	} {
		t.Run(tc.filter.Name, func(t *testing.T) {
			t.Parallel()
			sel, err := Selector{Regions: regions, Filters: []lighthouse.Filter{tc.filter}, BlueprintID: bpTarget}.Resolve(t.Context(), c, time.Now())
			if err != nil {
				t.Fatalf("Resolve() = %v", err)
			}
			want := truth(insts, tc.keep)
			if len(want) == 0 {
				t.Fatal("the fleet has no instance for this filter: the test proves nothing")
			}
			if diff := cmp.Diff(want, jobIDs(sel.Jobs)); diff != "" {
				t.Errorf("selected (-want +got):\n%s", diff)
			}
			for _, j := range sel.Jobs {
				if j.BlueprintID != bpTarget {
					t.Errorf("%s: blueprint %q, want %s", j.InstanceID, j.BlueprintID, bpTarget)
				}
			}
		})
	}
	t.Run("ANDed", func(t *testing.T) {
		t.Parallel()
		fs := []lighthouse.Filter{{Name: lighthouse.FilterTag("env"), Values: []string{"staging", "prod"}}, {Name: lighthouse.FilterTag("role"), Values: []string{"worker"}},
			{Name: lighthouse.FilterInstanceState, Values: []string{"RUNNING"}}}
		sel, err := Selector{Regions: regions, Filters: fs, SameImage: true}.Resolve(t.Context(), c, time.Now())
		if err != nil {
			t.Fatalf("Resolve() = %v", err)
		}
		want := truth(insts, func(in emulator.Instance) bool {
			return (hasTag(in, "env", "staging") || hasTag(in, "env", "prod")) && hasTag(in, "role", "worker") && in.State == "RUNNING"
		})
		if diff := cmp.Diff(want, jobIDs(sel.Jobs)); diff != "" {
			t.Errorf("selected (-want +got):\n%s", diff)
		}
		for _, j := range sel.Jobs {
			if j.BlueprintID == "" || j.BlueprintID != insts[slices.IndexFunc(insts, func(in emulator.Instance) bool { return in.ID == j.InstanceID })].BlueprintID {
				t.Errorf("%s: blueprint %q, want the instance's current image", j.InstanceID, j.BlueprintID)
			}
		}
	})
}

// TestSelectAllRegions selects by tag in every region, through the Tag
// service (tag filters) and through DescribeRegions (no tag filter).
func TestSelectAllRegions(t *testing.T) {
	t.Parallel()
	insts := fleetOf(600, "ap-guangzhou", "ap-singapore", "eu-frankfurt")
	f := newSelectFleet(t, insts, nil)
	c := f.cloud(t)
	for _, tc := range []struct {
		name    string
		filters []lighthouse.Filter
		keep    func(emulator.Instance) bool
		via     string // the action that found the regions
	}{
		{"TagService", []lighthouse.Filter{{Name: lighthouse.FilterTag("env"), Values: []string{"staging"}}},
			func(in emulator.Instance) bool { return hasTag(in, "env", "staging") }, lighthouse.ActionGetResources},
		{"DescribeRegions", []lighthouse.Filter{{Name: lighthouse.FilterTagValue, Values: []string{"worker"}}},
			func(in emulator.Instance) bool { return hasTag(in, "role", "worker") }, lighthouse.ActionDescribeRegions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.emu.Stats().Actions[tc.via].Calls
			sel, err := Selector{AllRegions: true, Filters: tc.filters, BlueprintID: bpTarget}.Resolve(t.Context(), c, time.Now())
			if err != nil {
				t.Fatalf("Resolve() = %v", err)
			}
			if diff := cmp.Diff(truth(insts, tc.keep), jobIDs(sel.Jobs)); diff != "" {
				t.Errorf("selected (-want +got):\n%s", diff)
			}
			for _, r := range []string{"ap-guangzhou", "ap-singapore", "eu-frankfurt"} {
				if !slices.Contains(sel.Regions, r) {
					t.Errorf("regions scanned %v, want %s among them", sel.Regions, r)
				}
			}
			if f.emu.Stats().Actions[tc.via].Calls == before {
				t.Errorf("no %s call: the regions were not found through it", tc.via)
			}
		})
	}
	f.checkLimits(t)
}

// TestSelectTagServiceRefused selects by tag in every region with a key
// the Tag service refuses (CAM grants tag:GetResources apart): every
// region DescribeRegions lists is scanned instead, with the same result.
func TestSelectTagServiceRefused(t *testing.T) {
	t.Parallel()
	insts := fleetOf(300, "ap-guangzhou", "eu-frankfurt")
	f := newSelectFleet(t, insts, func(cfg *emulator.Config) {
		cfg.Faults = []emulator.Fault{{Action: lighthouse.ActionGetResources, Kind: emulator.FaultError, Code: "UnauthorizedOperation", Probability: 1}}
	})
	sel, err := Selector{AllRegions: true, Filters: []lighthouse.Filter{{Name: lighthouse.FilterTag("env"), Values: []string{"prod"}}}, SameImage: true}.Resolve(t.Context(), f.cloud(t), time.Now())
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	if diff := cmp.Diff(truth(insts, func(in emulator.Instance) bool { return hasTag(in, "env", "prod") }), jobIDs(sel.Jobs)); diff != "" {
		t.Errorf("selected (-want +got):\n%s", diff)
	}
	if n := f.emu.Stats().Actions[lighthouse.ActionDescribeRegions].Calls; n != 1 {
		t.Errorf("%d DescribeRegions calls, want 1", n)
	}
}

// TestSelectPaging pages past 100 and past 1,000 instances of one region,
// each page one call under the limiter.
func TestSelectPaging(t *testing.T) {
	t.Parallel()
	for _, n := range []int{250, 2345} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			insts := fleetOf(n, "ap-guangzhou")
			f := newSelectFleet(t, insts, nil)
			c := f.cloud(t)
			sel, err := Selector{Regions: []string{"ap-guangzhou"}, SameImage: true}.Resolve(t.Context(), c, time.Now())
			if err != nil {
				t.Fatalf("Resolve() = %v", err)
			}
			if diff := cmp.Diff(truth(insts, func(emulator.Instance) bool { return true }), jobIDs(sel.Jobs)); diff != "" {
				t.Errorf("selected (-want +got):\n%s", diff)
			}
			pages := (n + 99) / 100
			if got := f.emu.Stats().Actions[lighthouse.ActionDescribeInstances].Calls; got != pages {
				t.Errorf("DescribeInstances calls = %d, want %d (one per page of 100)", got, pages)
			}
			f.checkLimits(t)
		})
	}
}

// TestSelectSkipMatching resets some instances, then selects with
// skip-matching: those reset to the target since the time are left out,
// those reset to another image, or before the time, are kept.
func TestSelectSkipMatching(t *testing.T) {
	t.Parallel()
	insts := fleetOf(40, "ap-guangzhou")
	f := newSelectFleet(t, insts, func(cfg *emulator.Config) {
		cfg.RateLimits = map[string]int{lighthouse.ActionResetInstance: -1} // the resets set the scene
		cfg.Blueprints = append(cfg.Blueprints, emulator.Blueprint{ID: bpOther, Name: "Debian", Type: "PURE_OS", State: "NORMAL", Platform: "DEBIAN",
			PlatformType: "LINUX_UNIX", OsName: "Debian 12", RequiredDiskSize: 20, RequiredMemory: 1})
	})
	ctx := t.Context()
	reset := func(ids []string, bp string) {
		t.Helper()
		for _, id := range ids {
			if _, err := f.client.ResetInstance(ctx, "ap-guangzhou", lighthouse.ResetInstanceRequest{InstanceID: id, BlueprintID: bp}); err != nil {
				t.Fatalf("ResetInstance(%s) = %v", id, err)
			}
		}
	}
	var toTarget, toOther []string
	for i, in := range insts {
		switch {
		case in.State == "STOPPED":
		case i%5 == 1:
			toTarget = append(toTarget, in.ID)
		case i%5 == 2:
			toOther = append(toOther, in.ID)
		}
	}
	since := time.Now().Add(-time.Minute)
	reset(toTarget, bpTarget)
	reset(toOther, bpOther)
	waitDone(t, f.client, "ap-guangzhou", append(slices.Clone(toTarget), toOther...))

	c := f.cloud(t)
	sel, err := Selector{Regions: []string{"ap-guangzhou"}, BlueprintID: bpTarget, SkipMatching: true, Since: since}.Resolve(ctx, c, time.Now())
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	want := truth(insts, func(in emulator.Instance) bool { return !slices.Contains(toTarget, in.ID) })
	if diff := cmp.Diff(want, jobIDs(sel.Jobs)); diff != "" {
		t.Errorf("selected (-want +got):\n%s", diff)
	}
	if got := sel.Counts()[ReasonMatching]; got != len(toTarget) {
		t.Errorf("%d left out as already matching, want %d", got, len(toTarget))
	}

	// A reset before --since does not count: nothing is skipped.
	sel, err = Selector{Regions: []string{"ap-guangzhou"}, BlueprintID: bpTarget, SkipMatching: true, Since: time.Now().Add(time.Hour)}.Resolve(ctx, c, time.Now())
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	if len(sel.Jobs) != len(insts) {
		t.Errorf("with --since after every reset: %d selected, want all %d", len(sel.Jobs), len(insts))
	}

	// Reinstalling the current image: each instance's own image, and those
	// reset since the time (to either image) are left out.
	sel, err = Selector{Regions: []string{"ap-guangzhou"}, SameImage: true, SkipMatching: true, Since: since}.Resolve(ctx, c, time.Now())
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	if got, want := len(sel.Left), len(toTarget)+len(toOther); got != want {
		t.Errorf("same image: %d left out, want %d (every instance reset since)", got, want)
	}
}

// waitDone waits until none of ids has an operation in progress.
func waitDone(t *testing.T, c *lighthouse.Client, region string, ids []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		insts, err := c.DescribeInstances(ctx, region, ids)
		if err != nil {
			t.Fatalf("DescribeInstances = %v", err)
		}
		busy := 0
		for _, in := range insts {
			if in.LatestOperationState != lighthouse.OperationSuccess {
				busy++
			}
		}
		if busy == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d resets still not SUCCESS", busy)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestSelectExcludeAndLimit(t *testing.T) {
	t.Parallel()
	insts := fleetOf(120, "ap-guangzhou", "ap-singapore")
	f := newSelectFleet(t, insts, nil)
	all := truth(insts, func(emulator.Instance) bool { return true })
	exclude := map[string]bool{all[0]: true, all[5]: true, all[100]: true, "lhins-notinfl": true}
	sel, err := Selector{Regions: []string{"ap-singapore", "ap-guangzhou"}, BlueprintID: bpTarget, Exclude: exclude, ExcludeFrom: "keep.txt", Limit: 10}.Resolve(t.Context(), f.cloud(t), time.Now())
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	var want []string
	for _, id := range all {
		if !exclude[id] && len(want) < 10 {
			want = append(want, id)
		}
	}
	if diff := cmp.Diff(want, jobIDs(sel.Jobs)); diff != "" {
		t.Errorf("selected (-want +got):\n%s", diff)
	}
	counts := sel.Counts()
	if counts[ReasonExcluded] != 3 || counts[ReasonLimit] != len(all)-3-10 {
		t.Errorf("left out %v, want 3 excluded and %d beyond the limit", counts, len(all)-13)
	}
	if got := sel.Record(); !strings.Contains(got, "--exclude keep.txt --limit 10") || !strings.Contains(got, "the exclude list held 4 IDs") || !strings.Contains(got, "regions ap-guangzhou,ap-singapore") {
		t.Errorf("Record() = %q, want the exclusion, the limit and the regions", got)
	}
}

func TestSelectNothing(t *testing.T) {
	t.Parallel()
	f := newSelectFleet(t, fleetOf(50, "ap-guangzhou"), nil)
	c := f.cloud(t)
	sel, err := Selector{Regions: []string{"ap-guangzhou"}, Filters: []lighthouse.Filter{{Name: lighthouse.FilterTag("env"), Values: []string{"nowhere"}}}, BlueprintID: bpTarget}.Resolve(t.Context(), c, time.Now())
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	if sel.Matched != 0 || len(sel.Jobs) != 0 {
		t.Errorf("Matched, jobs = %d, %d, want 0, 0", sel.Matched, len(sel.Jobs))
	}
	// Through the Tag service: no region holds such an instance.
	sel, err = Selector{AllRegions: true, Filters: []lighthouse.Filter{{Name: lighthouse.FilterTag("env"), Values: []string{"nowhere"}}}, BlueprintID: bpTarget}.Resolve(t.Context(), c, time.Now())
	if err != nil || sel.Matched != 0 || len(sel.Regions) != 0 {
		t.Errorf("Resolve() = %+v, %v, want nothing matched in no region", sel, err)
	}
}

func TestSelectInvalid(t *testing.T) {
	t.Parallel()
	f := newSelectFleet(t, fleetOf(10, "ap-guangzhou"), nil)
	c := f.cloud(t)
	for _, tc := range []struct {
		name string
		sel  Selector
		code string
	}{
		{"UnknownFilterName", Selector{Filters: []lighthouse.Filter{{Name: "instance-id", Values: []string{"lhins-00000000"}}}, BlueprintID: bpTarget}, "InvalidParameter.InvalidFilterNotSupportedName"},
		{"MalformedIP", Selector{Filters: []lighthouse.Filter{{Name: lighthouse.FilterPrivateIPAddress, Values: []string{"10.0.0"}}}, BlueprintID: bpTarget}, "InvalidParameterValue.InvalidIpFormat"},
		{"TooManyValues", Selector{Filters: []lighthouse.Filter{{Name: lighthouse.FilterInstanceName, Values: make([]string, 101)}}, BlueprintID: bpTarget}, "ClientError.InvalidParameter"}, // the client's check of the documented limit
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.sel.Regions = []string{"ap-guangzhou"}
			for i, v := range tc.sel.Filters[0].Values {
				if v == "" {
					tc.sel.Filters[0].Values[i] = fmt.Sprint("n", i)
				}
			}
			_, err := tc.sel.Resolve(t.Context(), c, time.Now())
			ae, ok := errors.AsType[*lighthouse.APIError](err)
			if !ok || ae.Code != tc.code || ae.Action != lighthouse.ActionDescribeInstances {
				t.Fatalf("Resolve() = %v, want DescribeInstances' %s", err, tc.code)
			}
			if !strings.Contains(err.Error(), "ap-guangzhou") {
				t.Errorf("error %q does not name the region", err)
			}
		})
	}
	t.Run("UnknownBlueprint", func(t *testing.T) {
		t.Parallel()
		_, err := Selector{Regions: []string{"ap-guangzhou"}, BlueprintID: "lhbp-nosuch00"}.Resolve(t.Context(), c, time.Now())
		if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "blueprint lhbp-nosuch00 in ap-guangzhou: not found") {
			t.Errorf("Resolve() = %v, want the blueprint named missing", err)
		}
	})
}

// shiftingAPI serves a listing that loses its first instance after the
// first page of the first scan: the second page then repeats one instance
// and the scan holds one fewer than TotalCount said.
type shiftingAPI struct {
	API
	insts   []lighthouse.Instance
	shifted bool
	calls   int
}

func (s *shiftingAPI) DescribeInstancesPage(_ context.Context, region string, _ []lighthouse.Filter, offset, limit int) (int, []lighthouse.Instance, error) {
	s.calls++
	total := len(s.insts)
	page := s.insts[min(offset, total):min(offset+limit, total)]
	if offset == 0 && !s.shifted {
		s.shifted = true
		s.insts = s.insts[1:]
	}
	return total, slices.Clone(page), nil
}

func TestFilterInstancesFleetChanged(t *testing.T) {
	t.Parallel()
	var insts []lighthouse.Instance
	for i := range 150 {
		insts = append(insts, lighthouse.Instance{InstanceID: fmt.Sprintf("lhins-%08d", i), Region: "ap-guangzhou"})
	}
	api := &shiftingAPI{insts: insts}
	c, err := NewCloud(CloudConfig{API: api, DescribeRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.FilterInstances(t.Context(), "ap-guangzhou", nil)
	if err != nil {
		t.Fatalf("FilterInstances() = %v", err)
	}
	if len(got) != 149 || api.calls != 4 {
		t.Errorf("FilterInstances() = %d instances in %d calls, want the 149 left, scanned twice (4 calls)", len(got), api.calls)
	}
}

// fiveRegions are the regions of the large-fleet test and benchmark.
var fiveRegions = []string{"ap-guangzhou", "ap-shanghai", "ap-singapore", "eu-frankfurt", "na-siliconvalley"}

// TestSelectLargeFleet selects from 20,000 instances in 5 regions at the
// documented DescribeInstances limit, by region and through the Tag
// service, and checks that the emulator saw no call over any limit.
func TestSelectLargeFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("pages 20,000 instances at the API's limits")
	}
	t.Parallel()
	insts := fleetOf(20000, fiveRegions...)
	f := newSelectFleet(t, insts, nil)
	c := f.cloud(t)
	sel, err := Selector{Regions: fiveRegions, SameImage: true}.Resolve(t.Context(), c, time.Now())
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	if len(sel.Jobs) != len(insts) {
		t.Errorf("%d selected, want all %d", len(sel.Jobs), len(insts))
	}
	sel, err = Selector{AllRegions: true, Filters: []lighthouse.Filter{{Name: lighthouse.FilterTag("env"), Values: []string{"staging"}}}, BlueprintID: bpTarget}.Resolve(t.Context(), c, time.Now())
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	if diff := cmp.Diff(truth(insts, func(in emulator.Instance) bool { return hasTag(in, "env", "staging") }), jobIDs(sel.Jobs)); diff != "" {
		t.Errorf("selected (-want +got):\n%s", diff)
	}
	f.checkLimits(t)
}

// BenchmarkSelect measures selecting from 20,000 instances in 5 regions:
// every instance by region, and a tag across all regions (the Tag service
// finds the regions), at the default and at the documented
// DescribeInstances rate. It reports the calls of each action per
// selection; the emulator's limits are the documented ones.
func BenchmarkSelect(b *testing.B) {
	insts := fleetOf(20000, fiveRegions...)
	f := newSelectFleet(b, insts, nil)
	for _, rate := range []float64{DefaultDescribeRate, lighthouse.DescribeInstancesRateLimit} {
		for _, tc := range []struct {
			name string
			sel  Selector
		}{
			{"every-instance", Selector{Regions: fiveRegions, SameImage: true}},
			{"tag-all-regions", Selector{AllRegions: true, Filters: []lighthouse.Filter{{Name: lighthouse.FilterTag("env"), Values: []string{"staging"}}}, BlueprintID: bpTarget}},
		} {
			b.Run(fmt.Sprintf("%s/describe-rate=%g", tc.name, rate), func(b *testing.B) {
				before := f.emu.Stats().Actions
				selected := 0
				for b.Loop() {
					sel, err := tc.sel.Resolve(b.Context(), f.cloudAt(b, rate), time.Now())
					if err != nil {
						b.Fatal(err)
					}
					selected = len(sel.Jobs)
				}
				b.ReportMetric(float64(selected), "selected")
				for action, as := range f.emu.Stats().Actions {
					if n := as.Calls - before[action].Calls; n > 0 {
						b.ReportMetric(float64(n)/float64(b.N), action+"/op")
					}
				}
				f.checkLimits(b)
			})
		}
	}
}
