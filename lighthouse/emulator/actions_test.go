package emulator_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// shape flattens a JSON document into path → JSON type. Array elements
// share the path "name[]".
func shape(v any, path string, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		out[path] = "object"
		for k, e := range v {
			shape(e, path+"."+k, out)
		}
	case []any:
		out[path] = "array"
		for _, e := range v {
			shape(e, path+"[]", out)
		}
	case string:
		out[path] = "string"
	case float64:
		out[path] = "number"
	case bool:
		out[path] = "bool"
	case nil:
		out[path] = "null"
	}
}

func shapeOf(t *testing.T, doc []byte) map[string]string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	out := map[string]string{}
	shape(v, "", out)
	return out
}

// compareShape checks that got has every field of the example file, with the
// same JSON type, and no field beyond those and extras. Fields inside an
// array that is empty in got are not required.
func compareShape(t *testing.T, example string, got []byte, extras ...string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("testdata", "examples", example))
	if err != nil {
		t.Fatal(err)
	}
	want, have := shapeOf(t, doc), shapeOf(t, got)
	var problems []string
	for path, typ := range want {
		if path == ".Response.RequestId" || strings.HasSuffix(path, "[]") && have[strings.TrimSuffix(path, "[]")] == "array" {
			continue
		}
		if h, ok := have[path]; !ok {
			if i := strings.LastIndex(path, "[]"); i >= 0 && have[path[:i]] == "array" && have[path[:i]+"[]"] == "" {
				continue // inside an array that is empty here
			}
			problems = append(problems, "missing "+path)
		} else if h != typ {
			problems = append(problems, path+" is "+h+", want "+typ)
		}
	}
	for path := range have {
		if _, ok := want[path]; !ok && !slices.ContainsFunc(extras, func(e string) bool { return strings.HasSuffix(path, "."+e) }) {
			problems = append(problems, "extra "+path)
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("response does not have the shape of %s:\n%s\n%s", example, strings.Join(problems, "\n"), got)
	}
}

// TestShapes compares every response with the reference's example bodies.
func TestShapes(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(1), Blueprints: testBlueprints()})
	raw := func(action, body string) []byte {
		t.Helper()
		r := rawRequest{action: action, body: body}.do(t, b.srv)
		return r.body
	}
	compareShape(t, "DescribeInstances.json", raw("DescribeInstances", `{}`), "LatestOperationStartedTime")
	compareShape(t, "DescribeBlueprints.json", raw("DescribeBlueprints", `{"BlueprintIds": ["lhbp-windows0"]}`),
		"AppDefaultPort", "BlueprintShared", "CreateSource", "DockerVersion", "SupportIpv6")
	compareShape(t, "DescribeResetInstanceBlueprints.json", raw("DescribeResetInstanceBlueprints",
		`{"InstanceId": "lhins-t0000000", "Filters": [{"Name": "blueprint-id", "Values": ["lhbp-windows0"]}]}`))
	compareShape(t, "ResetInstance.json", raw("ResetInstance", `{"InstanceId": "lhins-t0000000", "BlueprintId": "lhbp-target00"}`))
	compareShape(t, "error.json", raw("ResetInstance", `{"InstanceId": "lhins-t0000000", "BlueprintId": "lhbp-target00"}`))
}

func TestDescribeInstancesPaging(t *testing.T) {
	t.Parallel()
	instances := fleet(45)
	for i, id := range []string{"lhins-sh000000", "lhins-sh000001"} {
		instances = append(instances, emulator.Instance{ID: id, Region: "ap-shanghai", BlueprintID: bpCurrent, Name: "sh" + string(rune('0'+i))})
	}
	b := setup(t, emulator.Config{Instances: instances, Blueprints: testBlueprints()})

	describeAll := func(params map[string]any) describeInstancesResponse {
		t.Helper()
		var r describeInstancesResponse
		if err := send(t, b.client, "DescribeInstances", params, &r); err != nil {
			t.Fatalf("DescribeInstances(%v) error: %v", params, err)
		}
		return r
	}
	idsOf := func(set []instance) []string {
		out := make([]string, len(set))
		for i, in := range set {
			out[i] = in.InstanceID
		}
		return out
	}

	t.Run("Pages", func(t *testing.T) {
		t.Parallel()
		var got []string
		for offset := 0; offset < 60; offset += 20 {
			r := describeAll(map[string]any{"Offset": offset, "Limit": 20})
			if r.TotalCount != 45 {
				t.Errorf("DescribeInstances(Offset %d).TotalCount = %d, want 45", offset, r.TotalCount)
			}
			got = append(got, idsOf(r.InstanceSet)...)
		}
		if diff := cmp.Diff(ids(45), got); diff != "" {
			t.Errorf("paged DescribeInstances mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("DefaultLimit", func(t *testing.T) {
		t.Parallel()
		if r := describeAll(nil); len(r.InstanceSet) != 20 || r.TotalCount != 45 {
			t.Errorf("DescribeInstances() = %d instances of %d, want 20 of 45", len(r.InstanceSet), r.TotalCount)
		}
	})
	t.Run("MaxLimit", func(t *testing.T) {
		t.Parallel()
		if r := describeAll(map[string]any{"Limit": 100}); len(r.InstanceSet) != 45 {
			t.Errorf("DescribeInstances(Limit 100) = %d instances, want 45", len(r.InstanceSet))
		}
	})
	t.Run("PastTheEnd", func(t *testing.T) {
		t.Parallel()
		got := rawRequest{action: "DescribeInstances", body: `{"Offset": 100}`}.do(t, b.srv)
		if !strings.Contains(string(got.body), `"TotalCount":45,"InstanceSet":[]`) {
			t.Errorf("DescribeInstances(Offset 100) = %s, want an empty InstanceSet array and TotalCount 45", got.body)
		}
	})
	t.Run("OtherRegion", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, b.srv, testSecretID, testSecretKey, "ap-shanghai", nil)
		var r describeInstancesResponse
		if err := send(t, c, "DescribeInstances", nil, &r); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"lhins-sh000000", "lhins-sh000001"}, idsOf(r.InstanceSet)); diff != "" || r.TotalCount != 2 {
			t.Errorf("DescribeInstances in ap-shanghai mismatch (TotalCount %d) (-want +got):\n%s", r.TotalCount, diff)
		}
	})
	t.Run("ByID", func(t *testing.T) {
		t.Parallel()
		// Unknown well-formed IDs, and IDs in another region, are left out.
		r := describeAll(map[string]any{"InstanceIds": []string{"lhins-t0000044", "lhins-zzzzzzzz", "lhins-sh000000", "lhins-t0000003"}})
		if diff := cmp.Diff([]string{"lhins-t0000044", "lhins-t0000003"}, idsOf(r.InstanceSet)); diff != "" || r.TotalCount != 2 {
			t.Errorf("DescribeInstances(InstanceIds) mismatch (TotalCount %d) (-want +got):\n%s", r.TotalCount, diff)
		}
	})
	t.Run("ByIDPaged", func(t *testing.T) {
		t.Parallel()
		// Limit defaults to 20 for InstanceIds too; a client asking for more
		// must say so.
		r := describeAll(map[string]any{"InstanceIds": ids(45)})
		if len(r.InstanceSet) != 20 || r.TotalCount != 45 {
			t.Errorf("DescribeInstances(45 InstanceIds) = %d instances of %d, want 20 of 45", len(r.InstanceSet), r.TotalCount)
		}
	})
}

func TestDescribeInstancesFilters(t *testing.T) {
	t.Parallel()
	instances := []emulator.Instance{
		{ID: "lhins-a0000001", Zone: "ap-guangzhou-1", BlueprintID: bpCurrent, Name: "web-1"},
		{ID: "lhins-a0000002", Zone: "ap-guangzhou-2", BlueprintID: bpCurrent, Name: "web-2", State: "STOPPED"},
		{ID: "lhins-a0000003", Zone: "ap-guangzhou-3", BlueprintID: bpCurrent, Name: "db-1"},
		{ID: "lhins-a0000004", Zone: "ap-guangzhou-3", BlueprintID: bpCurrent, Name: "db-2", State: "STOPPED"},
	}
	b := setup(t, emulator.Config{Instances: instances, Blueprints: testBlueprints()})
	f := func(name string, values ...string) map[string]any {
		return map[string]any{"Name": name, "Values": values}
	}
	tests := []struct {
		name    string
		filters []map[string]any
		want    []string
	}{
		{"Zone", []map[string]any{f("zone", "ap-guangzhou-3")}, []string{"lhins-a0000003", "lhins-a0000004"}},
		{"ZonesORed", []map[string]any{f("zone", "ap-guangzhou-1", "ap-guangzhou-2")}, []string{"lhins-a0000001", "lhins-a0000002"}},
		{"State", []map[string]any{f("instance-state", "STOPPED")}, []string{"lhins-a0000002", "lhins-a0000004"}},
		{"ZoneAndState", []map[string]any{f("zone", "ap-guangzhou-3"), f("instance-state", "RUNNING")}, []string{"lhins-a0000003"}},
		{"Name", []map[string]any{f("instance-name", "web-2")}, []string{"lhins-a0000002"}},
		{"NoTags", []map[string]any{f("tag-key", "team")}, nil},
		{"TagPrefix", []map[string]any{f("tag:team", "ops")}, nil},
		{"NoMatch", []map[string]any{f("zone", "ap-guangzhou-7")}, nil},
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
}

type blueprintInfo struct {
	BlueprintID    string `json:"BlueprintId"`
	PlatformType   string
	BlueprintState string
	BlueprintType  string
}

func TestDescribeBlueprints(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(1), Blueprints: testBlueprints()})
	type response struct {
		TotalCount   int
		BlueprintSet []blueprintInfo
	}
	f := func(name string, values ...string) map[string]any {
		return map[string]any{"Name": name, "Values": values}
	}
	tests := []struct {
		name   string
		region string
		params map[string]any
		want   []string
		total  int
	}{
		{name: "All", want: []string{bpCurrent, bpTarget, bpWindows, bpBig, bpSyncing}},
		{name: "OtherRegion", region: "ap-shanghai", want: []string{bpCurrent, bpTarget, bpWindows, bpBig, bpSyncing, bpOtherRegion}},
		{name: "ByID", params: map[string]any{"BlueprintIds": []string{bpWindows, "lhbp-zzzzzzzz", bpOtherRegion}}, want: []string{bpWindows}},
		{name: "PlatformType", params: map[string]any{"Filters": []any{f("platform-type", "WINDOWS")}}, want: []string{bpWindows}},
		{name: "State", params: map[string]any{"Filters": []any{f("blueprint-state", "SYNCING")}}, want: []string{bpSyncing}},
		{name: "Type", params: map[string]any{"Filters": []any{f("blueprint-type", "PURE_OS")}}, want: []string{bpCurrent, bpTarget, bpBig}},
		{name: "IDFilter", params: map[string]any{"Filters": []any{f("blueprint-id", bpTarget, bpBig)}}, want: []string{bpTarget, bpBig}},
		{name: "Name", params: map[string]any{"Filters": []any{f("blueprint-name", "Ubuntu")}}, want: []string{bpTarget}},
		{name: "Scene", params: map[string]any{"Filters": []any{f("scene-id", "lhscene-1")}}},
		{name: "Paged", params: map[string]any{"Offset": 1, "Limit": 2}, want: []string{bpTarget, bpWindows}, total: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := b.client
			if tt.region != "" {
				c = newClient(t, b.srv, testSecretID, testSecretKey, tt.region, nil)
			}
			var r response
			if err := send(t, c, "DescribeBlueprints", tt.params, &r); err != nil {
				t.Fatalf("DescribeBlueprints(%v) error: %v", tt.params, err)
			}
			var got []string
			for _, bp := range r.BlueprintSet {
				got = append(got, bp.BlueprintID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DescribeBlueprints(%v) mismatch (-want +got):\n%s", tt.params, diff)
			}
			if want := max(tt.total, len(tt.want)); r.TotalCount != want {
				t.Errorf("DescribeBlueprints(%v).TotalCount = %d, want %d", tt.params, r.TotalCount, want)
			}
		})
	}
}

func TestDescribeResetInstanceBlueprints(t *testing.T) {
	t.Parallel()
	instances := append(fleet(1), emulator.Instance{ID: "lhins-sh000000", Region: "ap-shanghai", BlueprintID: bpCurrent})
	b := setup(t, emulator.Config{Instances: instances, Blueprints: testBlueprints()})
	type entry struct {
		BlueprintInfo        blueprintInfo
		IsResettable         bool
		NonResettableMessage string
	}
	type response struct {
		TotalCount                int
		ResetInstanceBlueprintSet []entry
	}
	describe := func(params map[string]any) (response, error) {
		var r response
		err := send(t, b.client, "DescribeResetInstanceBlueprints", params, &r)
		return r, err
	}

	r, err := describe(map[string]any{"InstanceId": "lhins-t0000000"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range r.ResetInstanceBlueprintSet {
		if e.IsResettable != (e.NonResettableMessage == "") {
			t.Errorf("%s: IsResettable %v with message %q", e.BlueprintInfo.BlueprintID, e.IsResettable, e.NonResettableMessage)
		}
		got[e.BlueprintInfo.BlueprintID] = "ok"
		if !e.IsResettable {
			got[e.BlueprintInfo.BlueprintID] = e.NonResettableMessage
		}
	}
	want := map[string]string{
		bpCurrent: "ok",
		bpTarget:  "ok",
		bpWindows: "Switching between Linux and Windows is not supported outside the Chinese mainland.",
		bpBig:     "The configuration of instance `lhins-t0000000` (2 GB memory, 50 GB system disk) does not meet the requirements of image `lhbp-bigdisk0` (1 GB memory, 100 GB system disk).",
		bpSyncing: "The image `lhbp-syncing0` is not available (state SYNCING).",
	}
	if diff := cmp.Diff(want, got); diff != "" || r.TotalCount != 5 {
		t.Errorf("DescribeResetInstanceBlueprints mismatch (TotalCount %d) (-want +got):\n%s", r.TotalCount, diff)
	}

	r, err = describe(map[string]any{"InstanceId": "lhins-t0000000", "Filters": []any{map[string]any{"Name": "blueprint-id", "Values": []string{bpTarget}}}})
	if err != nil || len(r.ResetInstanceBlueprintSet) != 1 || !r.ResetInstanceBlueprintSet[0].IsResettable {
		t.Errorf("DescribeResetInstanceBlueprints(blueprint-id %s) = %+v, %v; want it alone, resettable", bpTarget, r, err)
	}
	for _, id := range []string{"lhins-zzzzzzzz", "lhins-sh000000"} {
		if _, err := describe(map[string]any{"InstanceId": id}); code(err) != "ResourceNotFound.InstanceIdNotFound" {
			t.Errorf("DescribeResetInstanceBlueprints(%s) = %v, want ResourceNotFound.InstanceIdNotFound", id, err)
		}
	}
}

// TestResetInstanceChecks runs each ResetInstance rule, and pairs of them to
// check which wins.
func TestResetInstanceChecks(t *testing.T) {
	t.Parallel()
	instances := []emulator.Instance{
		{ID: "lhins-ok000000", BlueprintID: bpCurrent},
		{ID: "lhins-stopped0", BlueprintID: bpCurrent, State: "STOPPED"},
		{ID: "lhins-stopping", BlueprintID: bpCurrent, State: "STOPPING"},
		{ID: "lhins-busy0000", BlueprintID: bpCurrent, BusyFor: 1 << 40},
		{ID: "lhins-small000", BlueprintID: bpCurrent, DiskSize: 20, Memory: 1},
		{ID: "lhins-noreinst", BlueprintID: "lhbp-unlisted"},
		{ID: "lhins-sh000000", BlueprintID: bpCurrent, Region: "ap-shanghai"},
	}
	b := setup(t, emulator.Config{Instances: instances, Blueprints: testBlueprints(), Now: newFakeClock().Now, RateLimits: noLimits()})
	tests := []struct {
		name, instance, blueprint, want string
	}{
		{"Accepted", "lhins-ok000000", bpTarget, ""},
		{"Stopped", "lhins-stopped0", bpTarget, ""},
		{"ReinstallCurrent", "lhins-small000", "", ""},
		{"ReinstallUnlisted", "lhins-noreinst", "", ""},
		{"UnknownInstance", "lhins-zzzzzzzz", bpTarget, "ResourceNotFound.InstanceIdNotFound"},
		{"InstanceInOtherRegion", "lhins-sh000000", bpTarget, "ResourceNotFound.InstanceIdNotFound"},
		{"UnknownBlueprint", "lhins-stopping", "lhbp-zzzzzzzz", "ResourceNotFound.BlueprintIdNotFound"},
		{"BlueprintInOtherRegion", "lhins-stopping", bpOtherRegion, "ResourceNotFound.BlueprintIdNotFound"},
		{"BlueprintUnavailable", "lhins-stopping", bpSyncing, "ResourceUnavailable.BlueprintUnavailable"},
		{"OtherPlatform", "lhins-stopping", bpWindows, "InvalidParameterValue.NotAllowToChangePlatformType"},
		{"ConfigNotMatch", "lhins-stopping", bpBig, "InvalidParameterValue.BlueprintConfigNotMatch"},
		{"SmallInstance", "lhins-small000", bpBig, "InvalidParameterValue.BlueprintConfigNotMatch"},
		{"InvalidState", "lhins-stopping", bpTarget, "UnsupportedOperation.InvalidInstanceState"},
		{"Busy", "lhins-busy0000", bpTarget, "UnsupportedOperation.LatestOperationUnfinished"},
		{"BusyAndOtherPlatform", "lhins-busy0000", bpWindows, "InvalidParameterValue.NotAllowToChangePlatformType"},
		{"MalformedBlueprintBeatsUnknownInstance", "lhins-zzzzzzzz", "lhbp-x", "InvalidParameterValue.BlueprintIdMalformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := reset(t, b.client, tt.instance, tt.blueprint)
			if got := code(err); got != tt.want {
				t.Errorf("ResetInstance(%s, %q) = %v, want code %q", tt.instance, tt.blueprint, err, tt.want)
			}
		})
	}
}
