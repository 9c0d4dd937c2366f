package emulator_test

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

var (
	instanceIDPattern  = regexp.MustCompile(`^lhins-[a-z0-9]{8}$`)
	blueprintIDPattern = regexp.MustCompile(`^lhbp-[a-z0-9]{8}$`)
)

// fleetCounts counts the categories FleetOptions makes.
type fleetCounts struct {
	Instances, Busy, Stopped, Windows int
	Regions                           map[string]int
}

func countFleet(t *testing.T, instances []emulator.Instance, blueprints []emulator.Blueprint) fleetCounts {
	t.Helper()
	c := fleetCounts{Instances: len(instances), Regions: map[string]int{}}
	seen := map[string]bool{}
	for _, in := range instances {
		if !instanceIDPattern.MatchString(in.ID) || seen[in.ID] {
			t.Errorf("instance ID %q malformed or repeated", in.ID)
		}
		seen[in.ID] = true
		if in.BusyFor > 0 {
			c.Busy++
		}
		if in.State == "STOPPED" {
			c.Stopped++
		}
		if in.PlatformType == "WINDOWS" {
			c.Windows++
		}
		c.Regions[in.Region]++
	}
	for _, b := range blueprints {
		if !blueprintIDPattern.MatchString(b.ID) {
			t.Errorf("blueprint ID %q malformed", b.ID)
		}
	}
	return c
}

func TestGenerateFleet(t *testing.T) {
	t.Parallel()
	opts := emulator.FleetOptions{Seed: 7, Regions: []string{"ap-guangzhou", "ap-singapore"}, Missing: 5, Busy: 4, Stopped: 3, OtherPlatform: 2, BusyFor: time.Minute}
	instances, blueprints := emulator.GenerateFleet(100, opts)

	want := fleetCounts{Instances: 95, Busy: 4, Stopped: 3, Windows: 2, Regions: map[string]int{}}
	all, _ := emulator.GenerateFleet(100, emulator.FleetOptions{Seed: 7, Regions: opts.Regions})
	missing := map[string]bool{}
	for _, in := range all {
		missing[in.ID] = true
	}
	for _, in := range instances {
		delete(missing, in.ID)
		want.Regions[in.Region]++
	}
	if diff := cmp.Diff(want, countFleet(t, instances, blueprints)); diff != "" {
		t.Errorf("GenerateFleet(100, %+v) mismatch (-want +got):\n%s", opts, diff)
	}
	if len(missing) != 5 {
		t.Errorf("GenerateFleet with Missing 5 left out %d of the IDs the full fleet has, want 5", len(missing))
	}
	if got := countFleet(t, all, nil).Regions; got["ap-guangzhou"] != 50 || got["ap-singapore"] != 50 {
		t.Errorf("GenerateFleet regions = %v, want 50 each", got)
	}
	for _, in := range instances {
		if in.BusyFor > 0 && in.BusyFor != time.Minute {
			t.Errorf("busy instance %s BusyFor = %v, want 1m", in.ID, in.BusyFor)
		}
	}

	again, againBlueprints := emulator.GenerateFleet(100, opts)
	if diff := cmp.Diff(instances, again); diff != "" {
		t.Errorf("GenerateFleet is not deterministic (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(blueprints, againBlueprints); diff != "" {
		t.Errorf("GenerateFleet blueprints are not deterministic (-first +second):\n%s", diff)
	}
	other, _ := emulator.GenerateFleet(100, emulator.FleetOptions{Seed: 8})
	if other[0].ID == all[0].ID {
		t.Errorf("GenerateFleet with seeds 7 and 8 gave the same first ID %s", all[0].ID)
	}

	if got, _ := emulator.GenerateFleet(3, emulator.FleetOptions{Missing: 10}); len(got) != 0 {
		t.Errorf("GenerateFleet(3, Missing 10) = %d instances, want 0", len(got))
	}
	if got, _ := emulator.GenerateFleet(-1, emulator.FleetOptions{}); len(got) != 0 {
		t.Errorf("GenerateFleet(-1) = %d instances, want 0", len(got))
	}
	if got, _ := emulator.GenerateFleet(1, emulator.FleetOptions{}); got[0].Region != "ap-guangzhou" {
		t.Errorf("GenerateFleet default region = %s, want ap-guangzhou", got[0].Region)
	}
}

// TestGenerateFleetServes resets every generated instance to Blueprints[0]:
// each category gets its documented answer.
func TestGenerateFleetServes(t *testing.T) {
	t.Parallel()
	opts := emulator.FleetOptions{Seed: 3, Missing: 2, Busy: 3, Stopped: 4, OtherPlatform: 5}
	instances, blueprints := emulator.GenerateFleet(40, opts)
	all, _ := emulator.GenerateFleet(40, emulator.FleetOptions{Seed: 3})
	b := setup(t, emulator.Config{Instances: instances, Blueprints: blueprints, RateLimits: noLimits()})
	got := map[string]int{}
	for _, in := range all {
		_, err := reset(t, b.client, in.ID, blueprints[0].ID)
		got[code(err)]++
	}
	want := map[string]int{
		"":                                    40 - 2 - 3 - 5,
		"ResourceNotFound.InstanceIdNotFound": 2,
		"UnsupportedOperation.LatestOperationUnfinished":     3,
		"InvalidParameterValue.NotAllowToChangePlatformType": 5,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resets of a generated fleet mismatch (-want +got):\n%s", diff)
	}
}

func TestSeedFleet(t *testing.T) {
	t.Parallel()
	seeds := []emulator.Seed{
		{InstanceID: "lhins-aaaaaaa1", BlueprintID: "lhbp-target01"},
		{InstanceID: "lhins-aaaaaaa2", BlueprintID: "lhbp-target01"},
		{InstanceID: "lhins-aaaaaaa3", BlueprintID: "lhbp-target02", Region: "ap-singapore"},
		{InstanceID: "lhins-aaaaaaa1", BlueprintID: "lhbp-target03"}, // repeated instance: adds its blueprint only
		{InstanceID: "lhins-aaaaaaa4"},                               // reinstall
		{InstanceID: "not-an-id", BlueprintID: "lhbp-target01"},      // skipped
		{InstanceID: "lhins-aaaaaaa5", BlueprintID: "bad"},           // blueprint skipped
	}
	instances, blueprints := emulator.SeedFleet(seeds, emulator.FleetOptions{Seed: 1, Regions: []string{"ap-tokyo"}})
	var gotIDs, gotBlueprints []string
	regions := map[string]string{}
	for _, in := range instances {
		gotIDs = append(gotIDs, in.ID)
		regions[in.ID] = in.Region
	}
	for _, bp := range blueprints {
		gotBlueprints = append(gotBlueprints, bp.ID)
	}
	if diff := cmp.Diff([]string{"lhins-aaaaaaa1", "lhins-aaaaaaa2", "lhins-aaaaaaa3", "lhins-aaaaaaa4", "lhins-aaaaaaa5"}, gotIDs); diff != "" {
		t.Errorf("SeedFleet instances mismatch (-want +got):\n%s", diff)
	}
	if len(gotBlueprints) != 5 || !slices.Equal(gotBlueprints[:3], []string{"lhbp-target01", "lhbp-target02", "lhbp-target03"}) {
		t.Errorf("SeedFleet blueprints = %v, want the three named and two generated", gotBlueprints)
	}
	if regions["lhins-aaaaaaa3"] != "ap-singapore" || regions["lhins-aaaaaaa1"] != "ap-tokyo" {
		t.Errorf("SeedFleet regions = %v, want the seed's region or the first of Regions", regions)
	}

	// Every seed's reset succeeds, and the instance shows the target after.
	clock := newFakeClock()
	b := setup(t, emulator.Config{Instances: instances, Blueprints: blueprints, Now: clock.Now, ResetDuration: emulator.Duration{Min: time.Second}})
	clients := map[string]*common.Client{
		"ap-tokyo":     newClient(t, b.srv, testSecretID, testSecretKey, "ap-tokyo", nil),
		"ap-singapore": newClient(t, b.srv, testSecretID, testSecretKey, "ap-singapore", nil),
	}
	for _, sd := range seeds[:3] {
		if _, err := reset(t, clients[regions[sd.InstanceID]], sd.InstanceID, sd.BlueprintID); err != nil {
			t.Errorf("ResetInstance(%s, %s) error: %v", sd.InstanceID, sd.BlueprintID, err)
		}
	}
	clock.Add(time.Second)
	if in := describe(t, clients["ap-tokyo"], "lhins-aaaaaaa2"); in.BlueprintID != "lhbp-target01" || in.LatestOperationState != "SUCCESS" {
		t.Errorf("seeded instance after its reset = %s on %s, want SUCCESS on lhbp-target01", in.LatestOperationState, in.BlueprintID)
	}
}

func TestSeedFleetOptions(t *testing.T) {
	t.Parallel()
	seeds := make([]emulator.Seed, 30)
	for i, id := range ids(30) {
		seeds[i] = emulator.Seed{InstanceID: id, BlueprintID: bpTarget}
	}
	opts := emulator.FleetOptions{Seed: 9, Missing: 3, Busy: 4, Stopped: 5, OtherPlatform: 6}
	instances, blueprints := emulator.SeedFleet(seeds, opts)
	want := fleetCounts{Instances: 27, Busy: 4, Stopped: 5, Windows: 6, Regions: map[string]int{"ap-guangzhou": 27}}
	if diff := cmp.Diff(want, countFleet(t, instances, blueprints)); diff != "" {
		t.Errorf("SeedFleet(%+v) mismatch (-want +got):\n%s", opts, diff)
	}
	again, _ := emulator.SeedFleet(seeds, opts)
	if diff := cmp.Diff(instances, again); diff != "" {
		t.Errorf("SeedFleet is not deterministic (-first +second):\n%s", diff)
	}

	b := setup(t, emulator.Config{Instances: instances, Blueprints: blueprints, RateLimits: noLimits()})
	got := map[string]int{}
	for _, sd := range seeds {
		_, err := reset(t, b.client, sd.InstanceID, sd.BlueprintID)
		got[code(err)]++
	}
	wantCodes := map[string]int{
		"":                                    30 - 3 - 4 - 6,
		"ResourceNotFound.InstanceIdNotFound": 3,
		"UnsupportedOperation.LatestOperationUnfinished":     4,
		"InvalidParameterValue.NotAllowToChangePlatformType": 6,
	}
	if diff := cmp.Diff(wantCodes, got); diff != "" {
		t.Errorf("resets of a seeded fleet mismatch (-want +got):\n%s", diff)
	}
}

func TestParseTagShares(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec    string
		want    []emulator.TagShare
		wantErr bool
	}{
		{spec: "env=staging:30%,env=prod:70%", want: []emulator.TagShare{{Key: "env", Value: "staging", Percent: 30}, {Key: "env", Value: "prod", Percent: 70}}},
		{spec: "team=web:12.5%, env=prod:100%", want: []emulator.TagShare{{Key: "team", Value: "web", Percent: 12.5}, {Key: "env", Value: "prod", Percent: 100}}},
		{spec: "env=:10%", want: []emulator.TagShare{{Key: "env", Percent: 10}}},
		{spec: "env=staging:60%,env=prod:70%", wantErr: true},
		{spec: "env=prod", wantErr: true},
		{spec: "env:30%", wantErr: true},
		{spec: "=prod:30%", wantErr: true},
		{spec: "env=prod:30", wantErr: true},
		{spec: "env=prod:-1%", wantErr: true},
		{spec: "env=prod:x%", wantErr: true},
		{spec: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := emulator.ParseTagShares(tt.spec)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTagShares(%q) error = %v, want error %v", tt.spec, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseTagShares(%q) mismatch (-want +got):\n%s", tt.spec, diff)
		}
	}
}

// TestGenerateFleetTags checks exact shares per key, keys independent, and
// that tags change nothing else of the fleet.
func TestGenerateFleetTags(t *testing.T) {
	t.Parallel()
	shares, err := emulator.ParseTagShares("env=staging:30%,env=prod:70%,team=web:25%,team=db:25%")
	if err != nil {
		t.Fatal(err)
	}
	opts := emulator.FleetOptions{Seed: 9, Regions: []string{"ap-guangzhou", "ap-tokyo"}, Busy: 3, Stopped: 5}
	plain, _ := emulator.GenerateFleet(1000, opts)
	opts.Tags = shares
	tagged, _ := emulator.GenerateFleet(1000, opts)
	counts := map[emulator.Tag]int{}
	for i, in := range tagged {
		for _, tg := range in.Tags {
			counts[tg]++
		}
		in.Tags = nil
		if diff := cmp.Diff(plain[i], in); diff != "" {
			t.Fatalf("instance %d differs beyond its tags (-plain +tagged):\n%s", i, diff)
		}
	}
	want := map[emulator.Tag]int{{Key: "env", Value: "staging"}: 300, {Key: "env", Value: "prod"}: 700, {Key: "team", Value: "web"}: 250, {Key: "team", Value: "db"}: 250}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("tag counts mismatch (-want +got):\n%s", diff)
	}
}

func TestFleetJobs(t *testing.T) {
	t.Parallel()
	opts := emulator.FleetOptions{Seed: 4, Regions: []string{"ap-guangzhou", "ap-seoul"}, Missing: 2}
	jobs := emulator.FleetJobs(5, opts)
	instances, blueprints := emulator.GenerateFleet(5, opts)
	all, _ := emulator.GenerateFleet(5, emulator.FleetOptions{Seed: 4, Regions: opts.Regions})
	if len(jobs) != 5 || len(instances) != 3 {
		t.Fatalf("FleetJobs = %d jobs, GenerateFleet = %d instances; want 5 jobs (the missing included) for 3 instances", len(jobs), len(instances))
	}
	for i, in := range all {
		want := emulator.Seed{InstanceID: in.ID, BlueprintID: blueprints[0].ID, Region: in.Region}
		if jobs[i] != want {
			t.Errorf("FleetJobs[%d] = %+v, want %+v", i, jobs[i], want)
		}
	}
}

// TestConfigGenerate serves a generated fleet beside configured instances.
func TestConfigGenerate(t *testing.T) {
	t.Parallel()
	shares, err := emulator.ParseTagShares("env=prod:50%")
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, emulator.Config{Instances: fleet(2), Blueprints: testBlueprints(), Generate: 40,
		Fleet: emulator.FleetOptions{Seed: 2, Tags: shares}})
	var r describeInstancesResponse
	if err := send(t, b.client, "DescribeInstances", map[string]any{"Limit": 100}, &r); err != nil {
		t.Fatal(err)
	}
	if r.TotalCount != 42 || r.InstanceSet[0].InstanceID != "lhins-t0000000" {
		t.Errorf("DescribeInstances = %d instances starting %s, want the 2 configured then 40 generated", r.TotalCount, r.InstanceSet[0].InstanceID)
	}
	if err := send(t, b.client, "DescribeInstances", map[string]any{"Filters": []any{map[string]any{"Name": "tag:env", "Values": []string{"prod"}}}}, &r); err != nil || r.TotalCount != 20 {
		t.Errorf("DescribeInstances(tag:env=prod) = %d, %v; want 20 of the generated", r.TotalCount, err)
	}
}
