package emulator_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// selectFleet returns four instances with distinct zones, names, bundles,
// addresses and tags, in testRegion.
func selectFleet() []emulator.Instance {
	return []emulator.Instance{
		{ID: "lhins-s0000001", Zone: "ap-guangzhou-1", BlueprintID: bpCurrent, Name: "web-1", BundleID: "bundle_a", PrivateIP: "10.0.0.1", PublicIP: "170.106.0.1",
			Tags: []emulator.Tag{{Key: "env", Value: "prod"}, {Key: "team", Value: "web"}}},
		{ID: "lhins-s0000002", Zone: "ap-guangzhou-2", BlueprintID: bpCurrent, Name: "web-2", BundleID: "bundle_a", PrivateIP: "10.0.0.2", PublicIP: "170.106.0.2",
			State: "STOPPED", Tags: []emulator.Tag{{Key: "env", Value: "staging"}, {Key: "team", Value: "web"}}},
		{ID: "lhins-s0000003", Zone: "ap-guangzhou-3", BlueprintID: bpCurrent, Name: "db-1", BundleID: "bundle_b", PrivateIP: "10.0.0.3", PublicIP: "170.106.0.3",
			Tags: []emulator.Tag{{Key: "env", Value: "prod"}, {Key: "owner", Value: "staging"}}},
		{ID: "lhins-s0000004", Zone: "ap-guangzhou-3", BlueprintID: bpCurrent, Name: "db-2", BundleID: "bundle_b", PrivateIP: "10.0.0.4", PublicIP: "170.106.0.4"},
	}
}

func filterOf(name string, values ...string) map[string]any {
	return map[string]any{"Name": name, "Values": values}
}

// TestDescribeInstancesEveryFilter runs each documented filter name (more-apis
// §1a) with the API's semantics: filters ANDed, values ORed.
func TestDescribeInstancesEveryFilter(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: selectFleet(), Blueprints: testBlueprints()})
	const i1, i2, i3, i4 = "lhins-s0000001", "lhins-s0000002", "lhins-s0000003", "lhins-s0000004"
	tests := []struct {
		name    string
		filters []map[string]any
		want    []string
	}{
		{"InstanceName", []map[string]any{filterOf("instance-name", "web-2", "db-2")}, []string{i2, i4}},
		{"InstanceNameIsExact", []map[string]any{filterOf("instance-name", "web")}, nil},
		{"PrivateIP", []map[string]any{filterOf("private-ip-address", "10.0.0.3")}, []string{i3}},
		{"PublicIP", []map[string]any{filterOf("public-ip-address", "170.106.0.1", "170.106.0.4")}, []string{i1, i4}},
		{"Zone", []map[string]any{filterOf("zone", "ap-guangzhou-3")}, []string{i3, i4}},
		{"InstanceState", []map[string]any{filterOf("instance-state", "STOPPED")}, []string{i2}},
		{"BundleID", []map[string]any{filterOf("bundle-id", "bundle_b")}, []string{i3, i4}},
		{"TagKey", []map[string]any{filterOf("tag-key", "team", "owner")}, []string{i1, i2, i3}},
		{"TagValue", []map[string]any{filterOf("tag-value", "staging")}, []string{i2, i3}},
		{"TagPair", []map[string]any{filterOf("tag:env", "prod")}, []string{i1, i3}},
		{"TagPairValuesORed", []map[string]any{filterOf("tag:env", "prod", "staging")}, []string{i1, i2, i3}},
		{"TagPairOtherKey", []map[string]any{filterOf("tag:owner", "prod")}, nil},
		{"TagPairUnknownKey", []map[string]any{filterOf("tag:nope", "prod")}, nil},
		{"ANDed", []map[string]any{filterOf("tag:env", "prod"), filterOf("zone", "ap-guangzhou-3"), filterOf("instance-state", "RUNNING")}, []string{i3}},
		{"EmptyValues", []map[string]any{{"Name": "zone", "Values": []string{}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r describeInstancesResponse
			if err := send(t, b.client, "DescribeInstances", map[string]any{"Filters": tt.filters}, &r); err != nil {
				t.Fatalf("DescribeInstances(%v) error: %v", tt.filters, err)
			}
			var got []string
			for _, in := range r.InstanceSet {
				got = append(got, in.InstanceID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || r.TotalCount != len(tt.want) {
				t.Errorf("DescribeInstances(%v) mismatch (TotalCount %d) (-want +got):\n%s", tt.filters, r.TotalCount, diff)
			}
		})
	}

	t.Run("Shown", func(t *testing.T) {
		t.Parallel()
		got := rawRequest{action: "DescribeInstances", body: `{"InstanceIds": ["lhins-s0000001"]}`}.do(t, b.srv)
		for _, want := range []string{`"BundleId":"bundle_a"`, `"PrivateAddresses":["10.0.0.1"]`, `"PublicAddresses":["170.106.0.1"]`,
			`"Tags":[{"Key":"env","Value":"prod"},{"Key":"team","Value":"web"}]`, `"Zone":"ap-guangzhou-1"`, `"InstanceName":"web-1"`} {
			if !strings.Contains(string(got.body), want) {
				t.Errorf("DescribeInstances = %s, want it to hold %s", got.body, want)
			}
		}
	})
}

func TestDescribeInstancesFilterErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: selectFleet(), Blueprints: testBlueprints(), RateLimits: noLimits()})
	values := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("web-%d", i)
		}
		return out
	}
	filters := func(n int) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = filterOf("zone", "ap-guangzhou-3")
		}
		return out
	}
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"InstanceIDFilter", map[string]any{"Filters": []any{filterOf("instance-id", "lhins-s0000001")}}, "InvalidParameter.InvalidFilterNotSupportedName"},
		{"UnknownFilter", map[string]any{"Filters": []any{filterOf("blueprint-id", "lhbp-current0")}}, "InvalidParameter.InvalidFilterNotSupportedName"},
		{"BareTagPrefix", map[string]any{"Filters": []any{filterOf("tag:", "x")}}, "InvalidParameter.InvalidFilterNotSupportedName"},
		{"TenFilters", map[string]any{"Filters": filters(10)}, ""},
		{"ElevenFilters", map[string]any{"Filters": filters(11)}, "InvalidParameterValue.LimitExceeded"},
		{"HundredValues", map[string]any{"Filters": []any{filterOf("instance-name", values(100)...)}}, ""},
		{"HundredOneValues", map[string]any{"Filters": []any{filterOf("instance-name", values(101)...)}}, "InvalidParameter.FilterValueLimitExceeded"},
		{"IDsAndFilters", map[string]any{"InstanceIds": []string{"lhins-s0000001"}, "Filters": []any{filterOf("zone", "ap-guangzhou-3")}}, "InvalidParameter.ParameterConflict"},
		{"BadPrivateIP", map[string]any{"Filters": []any{filterOf("private-ip-address", "10.0.0")}}, "InvalidParameterValue.InvalidIpFormat"},
		{"BadPublicIP", map[string]any{"Filters": []any{filterOf("public-ip-address", "::1")}}, "InvalidParameterValue.InvalidIpFormat"},
		{"BadZone", map[string]any{"Filters": []any{filterOf("zone", "guangzhou")}}, "InvalidParameterValue.InvalidZone"},
		{"LongName", map[string]any{"Filters": []any{filterOf("instance-name", strings.Repeat("n", 61))}}, "InvalidParameterValue.InstanceNameTooLong"},
		{"LimitOver100", map[string]any{"Limit": 101}, "InvalidParameterValue.OutOfRange"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := send(t, b.client, "DescribeInstances", tt.params, nil); code(err) != tt.want {
				t.Errorf("DescribeInstances(%s) = %v, want code %q", tt.name, err, tt.want)
			}
		})
	}
}

// tagFleet generates n instances over two regions, 30% tagged env=staging
// and 70% env=prod, with a team tag on half of them.
func tagFleet(t *testing.T, n int) ([]emulator.Instance, []emulator.Blueprint) {
	t.Helper()
	shares, err := emulator.ParseTagShares("env=staging:30%,env=prod:70%,team=web:50%")
	if err != nil {
		t.Fatal(err)
	}
	return emulator.GenerateFleet(n, emulator.FleetOptions{Seed: 3, Regions: []string{"ap-guangzhou", "ap-singapore"}, Tags: shares})
}

// TestDescribeInstancesPagingLarge pages a tag filter past 100 and 1,000
// matches with the largest Limit.
func TestDescribeInstancesPagingLarge(t *testing.T) {
	t.Parallel()
	instances, blueprints := tagFleet(t, 3000)
	b := setup(t, emulator.Config{Instances: instances, Blueprints: blueprints, RateLimits: noLimits()})
	var want []string
	for _, in := range instances {
		if in.Region == testRegion && hasTag(in, "env", "prod") {
			want = append(want, in.ID)
		}
	}
	if len(want) < 1000 {
		t.Fatalf("fleet has %d prod instances in %s, want over 1,000 for this test", len(want), testRegion)
	}
	var got []string
	for offset := 0; ; offset += 100 {
		var r describeInstancesResponse
		p := map[string]any{"Filters": []any{filterOf("tag:env", "prod")}, "Offset": offset, "Limit": 100}
		if err := send(t, b.client, "DescribeInstances", p, &r); err != nil {
			t.Fatalf("DescribeInstances(Offset %d) error: %v", offset, err)
		}
		if r.TotalCount != len(want) {
			t.Fatalf("DescribeInstances(Offset %d).TotalCount = %d, want %d", offset, r.TotalCount, len(want))
		}
		if len(r.InstanceSet) == 0 {
			break
		}
		for _, in := range r.InstanceSet {
			got = append(got, in.InstanceID)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged DescribeInstances(tag:env=prod) mismatch (-want +got):\n%s", diff)
	}
}

func hasTag(in emulator.Instance, key, value string) bool {
	for _, tg := range in.Tags {
		if tg.Key == key && tg.Value == value {
			return true
		}
	}
	return false
}

type resourceMapping struct {
	Resource string
	Tags     []struct{ TagKey, TagValue string }
}

type getResourcesResponse struct {
	PaginationToken        string
	ResourceTagMappingList []resourceMapping
}

// TestGetResources scans every region of a 3,000-instance fleet by tag, in
// pages of 200, as a cross-region selector would.
func TestGetResources(t *testing.T) {
	t.Parallel()
	instances, blueprints := tagFleet(t, 3000)
	b := setup(t, emulator.Config{Instances: instances, Blueprints: blueprints, RateLimits: noLimits(), UIN: "2000123"})
	name := regexp.MustCompile(`^qcs::lighthouse:(ap-guangzhou|ap-singapore):uin/2000123:instance/(lhins-[a-z0-9]{8})$`)

	scan := func(t *testing.T, params map[string]any) []string {
		t.Helper()
		var out []string
		for pages := 0; ; pages++ {
			var r getResourcesResponse
			if err := sendService(t.Context(), t, b.client, "tag", tagVersion, "GetResources", params, &r); err != nil {
				t.Fatalf("GetResources(%v) error: %v", params, err)
			}
			if pages > 100 {
				t.Fatal("GetResources never ends")
			}
			for _, m := range r.ResourceTagMappingList {
				sub := name.FindStringSubmatch(m.Resource)
				if sub == nil {
					t.Fatalf("resource %q is not a six-segment Lighthouse instance name", m.Resource)
				}
				out = append(out, sub[2])
			}
			if r.PaginationToken == "" {
				return out
			}
			params["PaginationToken"] = r.PaginationToken
		}
	}
	want := func(keep func(emulator.Instance) bool) []string {
		var out []string
		for _, in := range instances {
			if keep(in) {
				out = append(out, in.ID)
			}
		}
		return out
	}

	tests := []struct {
		name   string
		params map[string]any
		want   []string
	}{
		// Each scan but ANDed finds over 1,000 resources.
		{"ProdEverywhere", map[string]any{"TagFilters": []any{map[string]any{"TagKey": "env", "TagValue": []string{"prod"}}}, "MaxResults": 200},
			want(func(in emulator.Instance) bool { return hasTag(in, "env", "prod") })},
		{"KeyOnly", map[string]any{"TagFilters": []any{map[string]any{"TagKey": "team"}}},
			want(func(in emulator.Instance) bool { return hasTag(in, "team", "web") })},
		{"ANDed", map[string]any{"TagFilters": []any{map[string]any{"TagKey": "env", "TagValue": []string{"staging"}}, map[string]any{"TagKey": "team", "TagValue": []string{"web"}}}, "MaxResults": 200},
			want(func(in emulator.Instance) bool { return hasTag(in, "env", "staging") && hasTag(in, "team", "web") })},
		{"ValuesORed", map[string]any{"TagFilters": []any{map[string]any{"TagKey": "env", "TagValue": []string{"staging", "prod"}}}, "MaxResults": 200},
			want(func(in emulator.Instance) bool { return hasTag(in, "env", "staging") || hasTag(in, "env", "prod") })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := scan(t, tt.params)
			if len(got) <= 1000 && tt.name != "ANDed" {
				t.Errorf("GetResources(%s) found %d, want a test over 1,000", tt.name, len(got))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GetResources(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}

	t.Run("ResourceList", func(t *testing.T) {
		t.Parallel()
		first := instances[0]
		list := []string{fmt.Sprintf("qcs::lighthouse:%s:uin/2000123:instance/%s", first.Region, first.ID), "qcs::lighthouse:ap-tokyo:uin/2000123:instance/lhins-zzzzzzzz"}
		var r getResourcesResponse
		if err := sendService(t.Context(), t, b.client, "tag", tagVersion, "GetResources", map[string]any{"ResourceList": list, "MaxResults": 1}, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.ResourceTagMappingList) != 1 || r.ResourceTagMappingList[0].Resource != list[0] || len(r.ResourceTagMappingList[0].Tags) != len(first.Tags) {
			t.Errorf("GetResources(ResourceList) = %+v, want %s alone with its %d tags", r, list[0], len(first.Tags))
		}
	})
}

func TestGetResourcesErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: selectFleet(), Blueprints: testBlueprints(), RateLimits: noLimits()})
	tf := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"TagKey": fmt.Sprint("k", i)}
		}
		return out
	}
	list := make([]string, 11)
	for i := range list {
		list[i] = fmt.Sprintf("qcs::lighthouse:ap-guangzhou:uin/100000000001:instance/lhins-s000000%d", i%10)
	}
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"SixFilters", map[string]any{"TagFilters": tf(6)}, ""},
		{"SevenFilters", map[string]any{"TagFilters": tf(7)}, "InvalidParameterValue.TagFiltersLengthExceeded"},
		{"EmptyKey", map[string]any{"TagFilters": []any{map[string]any{"TagKey": ""}}}, "InvalidParameterValue.TagKeyEmpty"},
		{"ElevenValues", map[string]any{"TagFilters": []any{map[string]any{"TagKey": "env", "TagValue": strings.Split("a,b,c,d,e,f,g,h,i,j,k", ",")}}}, "InvalidParameterValue.TagFilters"},
		{"BadToken", map[string]any{"PaginationToken": "not a token"}, "InvalidParameter.PaginationTokenInvalid"},
		{"MaxResults201", map[string]any{"MaxResults": 201}, "InvalidParameter"},
		{"ElevenResources", map[string]any{"ResourceList": list}, "LimitExceeded.ResourceNumPerRequest"},
		{"BadResource", map[string]any{"ResourceList": []string{"lhins-s0000001"}}, "InvalidParameterValue.ResourceDescriptionError"},
		{"Unknown", map[string]any{"Limit": 1}, "UnknownParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := sendService(t.Context(), t, b.client, "tag", tagVersion, "GetResources", tt.params, nil); code(err) != tt.want {
				t.Errorf("GetResources(%s) = %v, want code %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestDescribeRegions(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: []emulator.Instance{{ID: "lhins-x0000001", Region: "ap-mumbai", BlueprintID: bpCurrent}}})
	var r struct {
		TotalCount int
		RegionSet  []struct {
			Region, RegionName, RegionState string
			IsChinaMainland                 bool
		}
	}
	if err := send(t, b.client, "DescribeRegions", nil, &r); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, reg := range r.RegionSet {
		if reg.RegionState != "AVAILABLE" || reg.RegionName == "" {
			t.Errorf("region %+v, want AVAILABLE with a name", reg)
		}
		got[reg.Region] = reg.IsChinaMainland
	}
	if r.TotalCount != 16 || len(got) != 16 || !got["ap-guangzhou"] || got["ap-singapore"] || got["na-ashburn"] {
		t.Errorf("DescribeRegions = %+v, want the 15 documented regions and ap-mumbai, Guangzhou in the mainland, Singapore not", r)
	}
	if err := send(t, b.client, "DescribeRegions", map[string]any{"Offset": 0}, nil); code(err) != "UnknownParameter" {
		t.Errorf("DescribeRegions(Offset) = %v, want UnknownParameter", err)
	}
}

// TestNewActionLimits checks each new action's documented limit in one
// window of a stopped clock.
func TestNewActionLimits(t *testing.T) {
	t.Parallel()
	want := map[string]int{"ResetInstance": 10, "DescribeInstances": 100, "DescribeBlueprints": 10, "DescribeResetInstanceBlueprints": 20,
		"DescribeRegions": 10, "DescribeKeyPairs": 100, "AssumeRole": 600, "GetCallerIdentity": 20, "GetResources": 20,
		"DescribeAutomationAgentStatus": 60, "RunCommand": 20, "DescribeInvocationTasks": 20}
	if diff := cmp.Diff(want, emulator.DefaultRateLimits()); diff != "" {
		t.Errorf("DefaultRateLimits() mismatch (-want +got):\n%s", diff)
	}
	clock := newFakeClock()
	b := setup(t, emulator.Config{Now: clock.Now})
	for _, tt := range []struct {
		service, version, action string
		limit                    int
	}{{"lighthouse", "2020-03-24", "DescribeRegions", 10}, {"tag", tagVersion, "GetResources", 20}, {"tat", tatVersion, "DescribeInvocationTasks", 20}} {
		for i := range tt.limit + 1 {
			err := sendService(t.Context(), t, b.client, tt.service, tt.version, tt.action, nil, nil)
			if wantCode := map[bool]string{true: "RequestLimitExceeded"}[i == tt.limit]; code(err) != wantCode {
				t.Errorf("%s call %d in one second = %v, want code %q", tt.action, i+1, err, wantCode)
			}
		}
	}
	if got := b.emu.Stats().Actions["GetResources"]; got.Calls != 21 || got.OverLimit != 1 {
		t.Errorf("Stats().Actions[GetResources] = %+v, want 21 calls, 1 over the limit", got)
	}
}
