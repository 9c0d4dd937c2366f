package lighthouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testSecretID  = "AKIDtestsecretid"
	testSecretKey = "sk-test-THIS-MUST-NEVER-BE-PRINTED"
	testRegion    = "ap-guangzhou"
)

// testBundle is what setup returns.
type testBundle struct {
	client *Client
	server *apiServer
}

// setup starts an apiServer answering with respond (nil: the fixtures) and
// a Client pointed at it.
func setup(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, c apiCall)) *testBundle {
	t.Helper()
	srv := &apiServer{t: t, id: testSecretID, key: testSecretKey, respond: respond}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testBundle{client: newTestClient(t, Config{Endpoint: ts.URL}), server: srv}
}

// newTestClient returns a Client for cfg with the test credential.
func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.Credential = Credential{SecretID: testSecretID, SecretKey: testSecretKey}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

var fixtureInstance = Instance{
	InstanceID:       "lhins-ruy9d2tw",
	BlueprintID:      "lhbp-5e8807lo",
	BundleID:         "bundle_bw_small1_1",
	Zone:             "ap-guangzhou-3",
	InstanceName:     "lighthouse-test",
	CPU:              1,
	Memory:           1,
	OsName:           "CentOS 7.6 64bit",
	Platform:         "CENTOS",
	PlatformType:     "LINUX_UNIX",
	SystemDisk:       SystemDisk{DiskType: "CLOUD_PREMIUM", DiskSize: 50, DiskID: "lhdisk-gayq6kyd"},
	PrivateAddresses: []string{"10.0.0.5"},
	PublicAddresses:  []string{"170.106.15.201"},
	LoginSettings:    LoginSettings{KeyIDs: []string{}},
	Tags:             []Tag{{Key: "lighthouse", Value: "great"}},
	InstanceState:    "RUNNING",

	LatestOperation:          "StartInstances",
	LatestOperationState:     "SUCCESS",
	LatestOperationRequestID: "6b9a6dac-888a-4b4d-9739-0d0b66cbfa88",
	Region:                   testRegion,
}

// TestClientDecodesFixtures runs each method against the documentation's
// example responses and checks both what was sent and what was decoded.
func TestClientDecodesFixtures(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		noRegion   bool // the call names no region
		call       func(ctx context.Context, c *Client) (any, error)
		want       any
		wantParams map[string]any
	}{
		{
			name: "ResetInstance",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ResetInstance(ctx, testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw", BlueprintID: "lhbp-5e8807lo"})
			},
			want:       "cb7aaa99-b31a-4767-9d41-4ebdbdf3ba9c",
			wantParams: map[string]any{"InstanceId": "lhins-ruy9d2tw", "BlueprintId": "lhbp-5e8807lo"},
		},
		{
			name: "ResetInstanceCurrentBlueprint",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ResetInstance(ctx, testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
			},
			want:       "cb7aaa99-b31a-4767-9d41-4ebdbdf3ba9c",
			wantParams: map[string]any{"InstanceId": "lhins-ruy9d2tw"},
		},
		{
			name: "DescribeInstances",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.DescribeInstances(ctx, testRegion, []string{"lhins-ruy9d2tw"})
			},
			want:       []Instance{fixtureInstance},
			wantParams: map[string]any{"InstanceIds": []any{"lhins-ruy9d2tw"}, "Limit": 1.0},
		},
		{
			name: "ListInstances",
			call: func(ctx context.Context, c *Client) (any, error) {
				total, instances, err := c.DescribeInstancesPage(ctx, testRegion, nil, 40, 20)
				return fmt.Sprint(total, instances), err
			},
			want:       fmt.Sprint(1, []Instance{fixtureInstance}),
			wantParams: map[string]any{"Offset": 40.0, "Limit": 20.0},
		},
		{
			name: "DescribeBlueprints",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.DescribeBlueprints(ctx, testRegion, []string{"lhbp-5e8807sc"})
			},
			want: []Blueprint{{
				BlueprintID:            "lhbp-5e8807sc",
				BlueprintName:          "Wordpress",
				BlueprintType:          "APP_OS",
				BlueprintState:         "NORMAL",
				OsName:                 "CentOS-7.6-64bit",
				Platform:               "CENTOS",
				PlatformType:           "LINUX_UNIX",
				RequiredSystemDiskSize: 50,
				RequiredMemorySize:     1,
			}},
			wantParams: map[string]any{"BlueprintIds": []any{"lhbp-5e8807sc"}, "Limit": 1.0},
		},
		{
			name: "DescribeResetInstanceBlueprints",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.DescribeResetInstanceBlueprints(ctx, testRegion, "lhins-ruy9d2tw", []string{"lhbp-m1g6ap11"})
			},
			want: []ResetInstanceBlueprint{{
				BlueprintInfo: Blueprint{
					BlueprintID:            "lhbp-m1g6ap11",
					BlueprintName:          "docker-debian12",
					BlueprintType:          "DOCKER",
					BlueprintState:         "NORMAL",
					OsName:                 "Windows Server 2022 DataCenter 64bit CN",
					Platform:               "WINDOWS",
					PlatformType:           "WINDOWS",
					RequiredSystemDiskSize: 50,
					RequiredMemorySize:     2,
				},
				IsResettable:         false,
				NonResettableMessage: "Switching between Linux and Windows is not supported outside the Chinese mainland.",
			}},
			wantParams: map[string]any{
				"InstanceId": "lhins-ruy9d2tw",
				"Limit":      100.0,
				"Filters":    []any{map[string]any{"Name": "blueprint-id", "Values": []any{"lhbp-m1g6ap11"}}},
			},
		},
		{
			name: "ResetInstanceLogin",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ResetInstance(ctx, testRegion, ResetInstanceRequest{
					InstanceID:         "lhins-ruy9d2tw",
					BlueprintID:        "lhbp-5e8807lo",
					LoginConfiguration: &LoginConfiguration{KeyIDs: []string{"lhkp-omd12oc1"}, AutoGeneratePassword: AutoGeneratePasswordNo},
					Containers: []ContainerConfiguration{{
						ContainerImage: "nginx:1.27", ContainerName: "web", RestartPolicy: "always",
						Envs:         []ContainerEnv{{Key: "MODE", Value: "prod"}},
						PublishPorts: []ContainerPublishing{{HostPort: 80, ContainerPort: 8080, Protocol: "tcp"}},
						Volumes:      []ContainerVolume{{ContainerPath: "/data", HostPath: "/srv/data"}},
					}},
				})
			},
			want: "cb7aaa99-b31a-4767-9d41-4ebdbdf3ba9c",
			wantParams: map[string]any{
				"InstanceId":         "lhins-ruy9d2tw",
				"BlueprintId":        "lhbp-5e8807lo",
				"LoginConfiguration": map[string]any{"KeyIds": []any{"lhkp-omd12oc1"}, "AutoGeneratePassword": "NO"},
				"Containers": []any{map[string]any{
					"ContainerImage": "nginx:1.27", "ContainerName": "web", "RestartPolicy": "always",
					"Envs":         []any{map[string]any{"Key": "MODE", "Value": "prod"}},
					"PublishPorts": []any{map[string]any{"HostPort": 80.0, "ContainerPort": 8080.0, "Protocol": "tcp"}},
					"Volumes":      []any{map[string]any{"ContainerPath": "/data", "HostPath": "/srv/data"}},
				}},
			},
		},
		{
			name: "FilterInstances",
			call: func(ctx context.Context, c *Client) (any, error) {
				return filterAll(ctx, c, testRegion, []Filter{{Name: FilterTag("lighthouse"), Values: []string{"great"}}, {Name: FilterZone, Values: []string{"ap-guangzhou-3"}}})
			},
			want: []Instance{fixtureInstance},
			wantParams: map[string]any{
				"Limit": 100.0,
				"Filters": []any{
					map[string]any{"Name": "tag:lighthouse", "Values": []any{"great"}},
					map[string]any{"Name": "zone", "Values": []any{"ap-guangzhou-3"}},
				},
			},
		},
		{
			name: "DescribeKeyPairs",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.DescribeKeyPairs(ctx, testRegion, []string{"lhkp-omd12oc1"})
			},
			want:       []KeyPair{{KeyID: "lhkp-omd12oc1", KeyName: "test", AssociatedInstanceIDs: []string{}, CreatedTime: "2020-04-28T23:01:47Z"}},
			wantParams: map[string]any{"KeyIds": []any{"lhkp-omd12oc1"}, "Limit": 1.0},
		},
		{
			name:     "DescribeRegions",
			noRegion: true,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.DescribeRegions(ctx)
			},
			want: []Region{
				{Region: "ap-guangzhou", RegionName: "South China(Guangzhou)", RegionState: RegionAvailable, IsChinaMainland: true},
				{Region: "ap-hongkong", RegionName: "Hong Kong, Macau and Taiwan (China)(Hong Kong, China)", RegionState: RegionAvailable},
			},
			wantParams: map[string]any{},
		},
		{
			name:     "GetResources",
			noRegion: true,
			call: func(ctx context.Context, c *Client) (any, error) {
				return resourcesAll(ctx, c, []TagFilter{{TagKey: "env", TagValues: []string{"prod"}}})
			},
			want: []TaggedResource{
				{
					Name: ResourceName{Service: "lighthouse", Region: "ap-guangzhou", Account: "100000000001", ResourceType: "instance", ResourceID: "lhins-ruy9d2tw"},
					Tags: []Tag{{Key: "env", Value: "prod"}},
				},
				{
					Name: ResourceName{Service: "cvm", Region: "ap-singapore", Account: "100000000001", ResourceType: "instance", ResourceID: "ins-2zvpghhn"},
					Tags: []Tag{{Key: "env", Value: "prod"}, {Key: "team", Value: "web"}},
				},
			},
			wantParams: map[string]any{"MaxResults": 200.0, "TagFilters": []any{map[string]any{"TagKey": "env", "TagValue": []any{"prod"}}}},
		},
		{
			name: "DescribeAutomationAgentStatus",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.DescribeAutomationAgentStatus(ctx, testRegion, []string{"lhins-ruy9d2tw"})
			},
			want: []AutomationAgent{{
				InstanceID: "lhins-ruy9d2tw", Version: "1.0.0", LastHeartbeatTime: "2021-03-08T02:44:19Z",
				AgentStatus: AgentOnline, Environment: "Linux", SupportFeatures: []string{},
			}},
			wantParams: map[string]any{"InstanceIds": []any{"lhins-ruy9d2tw"}, "Limit": 1.0},
		},
		{
			name: "RunCommand",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.RunCommand(ctx, testRegion, RunCommandRequest{
					Content: []byte("echo healthy"), InstanceIDs: []string{"lhins-ruy9d2tw"},
					Timeout: 30 * time.Second, Username: "root", CommandName: "health",
				})
			},
			want: "inv-3ahsgwpf",
			wantParams: map[string]any{
				"Content": "ZWNobyBoZWFsdGh5", "InstanceIds": []any{"lhins-ruy9d2tw"}, "CommandType": "SHELL",
				"Timeout": 30.0, "Username": "root", "CommandName": "health", "SaveCommand": false,
			},
		},
		{
			name: "DescribeInvocationTasks",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.DescribeInvocationTasks(ctx, testRegion, "inv-3ahsgwpf")
			},
			want: []InvocationTask{{
				InvocationTaskID: "invt-ltoam8lf", InvocationID: "inv-3ahsgwpf", InstanceID: "lhins-ruy9d2tw", TaskStatus: TaskSuccess,
				TaskResult: TaskResult{Output: "aGVhbHRoeQo=", ExecStartTime: "2021-03-08T02:44:20Z", ExecEndTime: "2021-03-08T02:44:21Z"},
			}},
			wantParams: map[string]any{
				"Filters": []any{map[string]any{"Name": "invocation-id", "Values": []any{"inv-3ahsgwpf"}}},
				"Limit":   100.0, "HideOutput": false,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)

			got, err := tt.call(t.Context(), b.client)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s result mismatch (-want +got):\n%s", tt.name, diff)
			}
			calls := b.server.Calls()
			if len(calls) != 1 {
				t.Fatalf("%s made %d calls, want 1", tt.name, len(calls))
			}
			wantRegion := testRegion
			if tt.noRegion {
				wantRegion = ""
			}
			if calls[0].Region != wantRegion || calls[0].Language != DefaultLanguage {
				t.Errorf("%s: region %q, language %q; want %q, %q", tt.name, calls[0].Region, calls[0].Language, wantRegion, DefaultLanguage)
			}
			if diff := cmp.Diff(tt.wantParams, calls[0].Params); diff != "" {
				t.Errorf("%s parameters mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

// TestDescribeInstancesOneCall checks that MaxIDsPerCall IDs take one call
// whose Limit is raised to them, and come back in order with Region set;
// that one ID more fails before sending, with InvalidParameter; and that no
// IDs make no call (the API would answer with every instance).
func TestDescribeInstancesOneCall(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
		var set []map[string]any
		for _, id := range c.Params["InstanceIds"].([]any) {
			set = append(set, map[string]any{"InstanceId": id, "InstanceState": "RUNNING"})
		}
		writeJSON(w, map[string]any{"Response": map[string]any{"TotalCount": len(set), "InstanceSet": set, "RequestId": "r"}})
	})

	var ids []string
	var want []Instance
	for i := range MaxIDsPerCall + 1 {
		id := fmt.Sprintf("lhins-%08d", i)
		ids = append(ids, id)
		want = append(want, Instance{InstanceID: id, InstanceState: StateRunning, Region: "ap-tokyo"})
	}
	got, err := b.client.DescribeInstances(t.Context(), "ap-tokyo", ids[:MaxIDsPerCall])
	if err != nil {
		t.Fatalf("DescribeInstances(100 IDs) = %v", err)
	}
	if diff := cmp.Diff(want[:MaxIDsPerCall], got); diff != "" {
		t.Errorf("DescribeInstances(100 IDs) mismatch (-want +got):\n%s", diff)
	}
	calls := b.server.Calls()
	if len(calls) != 1 || calls[0].Params["Limit"] != float64(MaxIDsPerCall) {
		t.Errorf("DescribeInstances(100 IDs) made %d calls (%v), want one with Limit 100", len(calls), calls)
	}

	got, err = b.client.DescribeInstances(t.Context(), "ap-tokyo", ids)
	if ae, ok := errors.AsType[*APIError](err); !ok || ae.Code != CodeInvalidParameter || got != nil {
		t.Errorf("DescribeInstances(101 IDs) = %d instances, %v; want InvalidParameter", len(got), err)
	}
	got, err = b.client.DescribeInstances(t.Context(), "ap-tokyo", nil)
	if got != nil || err != nil {
		t.Errorf("DescribeInstances(no IDs) = %v, %v; want nil, nil", got, err)
	}
	if n := len(b.server.Calls()); n != 1 {
		t.Errorf("DescribeInstances(101 IDs, then none) called the API: %d calls in all, want 1", n)
	}
}

// TestDescribeBlueprintsOneCall checks that DescribeBlueprints makes one
// call of at most MaxIDsPerCall IDs, and refuses more before sending.
func TestDescribeBlueprintsOneCall(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
		var set []map[string]any
		for _, id := range c.Params["BlueprintIds"].([]any) {
			set = append(set, map[string]any{"BlueprintId": id})
		}
		writeJSON(w, map[string]any{"Response": map[string]any{"TotalCount": len(set), "BlueprintSet": set, "RequestId": "r"}})
	})

	var ids []string
	for i := range MaxIDsPerCall + 1 {
		ids = append(ids, fmt.Sprintf("lhbp-%08d", i))
	}
	got, err := b.client.DescribeBlueprints(t.Context(), testRegion, ids[:MaxIDsPerCall])
	if err != nil {
		t.Fatalf("DescribeBlueprints(100 IDs) = %v", err)
	}
	if len(got) != MaxIDsPerCall || got[99].BlueprintID != ids[99] {
		t.Errorf("DescribeBlueprints(100 IDs) returned %d blueprints, want 100 in order", len(got))
	}
	got, err = b.client.DescribeBlueprints(t.Context(), testRegion, ids)
	if ae, ok := errors.AsType[*APIError](err); !ok || ae.Code != CodeInvalidParameter || got != nil {
		t.Errorf("DescribeBlueprints(101 IDs) = %d blueprints, %v; want InvalidParameter", len(got), err)
	}
	if n := len(b.server.Calls()); n != 1 {
		t.Errorf("DescribeBlueprints(100 IDs, then 101) made %d calls, want 1", n)
	}
}

// TestDescribeResetInstanceBlueprintsFilters checks that blueprint IDs go in
// filters of at most 5 values, and that without IDs there is no filter and
// every page is read.
func TestDescribeResetInstanceBlueprintsFilters(t *testing.T) {
	t.Parallel()
	const total = 150 // blueprints offered when unfiltered
	b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
		var ids []any
		if filters, ok := c.Params["Filters"].([]any); ok {
			ids = filters[0].(map[string]any)["Values"].([]any)
		} else {
			offset, _ := c.Params["Offset"].(float64)
			for i := int(offset); i < min(total, int(offset)+int(c.Params["Limit"].(float64))); i++ {
				ids = append(ids, fmt.Sprintf("lhbp-%08d", i))
			}
		}
		var set []map[string]any
		for _, id := range ids {
			set = append(set, map[string]any{"BlueprintInfo": map[string]any{"BlueprintId": id}, "IsResettable": true, "NonResettableMessage": ""})
		}
		count := total
		if _, ok := c.Params["Filters"]; ok {
			count = len(set)
		}
		writeJSON(w, map[string]any{"Response": map[string]any{"TotalCount": count, "ResetInstanceBlueprintSet": set, "RequestId": "r"}})
	})

	ids := []string{"lhbp-a", "lhbp-b", "lhbp-c", "lhbp-d", "lhbp-e", "lhbp-f", "lhbp-g"}
	got, err := b.client.DescribeResetInstanceBlueprints(t.Context(), testRegion, "lhins-ruy9d2tw", ids)
	if err != nil {
		t.Fatalf("DescribeResetInstanceBlueprints(7 IDs) = %v", err)
	}
	var gotIDs []string
	for _, rb := range got {
		gotIDs = append(gotIDs, rb.BlueprintInfo.BlueprintID)
	}
	if diff := cmp.Diff(ids, gotIDs); diff != "" {
		t.Errorf("DescribeResetInstanceBlueprints(7 IDs) mismatch (-want +got):\n%s", diff)
	}
	var sizes []int
	for _, c := range b.server.Calls() {
		f := c.Params["Filters"].([]any)[0].(map[string]any)
		if f["Name"] != "blueprint-id" {
			t.Errorf("filter name %v, want blueprint-id", f["Name"])
		}
		sizes = append(sizes, len(f["Values"].([]any)))
	}
	if diff := cmp.Diff([]int{5, 2}, sizes); diff != "" {
		t.Errorf("values per filter mismatch (-want +got):\n%s", diff)
	}

	got, err = b.client.DescribeResetInstanceBlueprints(t.Context(), testRegion, "lhins-ruy9d2tw", nil)
	if err != nil {
		t.Fatalf("DescribeResetInstanceBlueprints(no IDs) = %v", err)
	}
	if len(got) != total {
		t.Errorf("DescribeResetInstanceBlueprints(no IDs) returned %d, want %d", len(got), total)
	}
	calls := b.server.Calls()[2:]
	if len(calls) != 2 {
		t.Fatalf("DescribeResetInstanceBlueprints(no IDs) made %d calls, want 2 pages", len(calls))
	}
	for _, c := range calls {
		if _, ok := c.Params["Filters"]; ok {
			t.Errorf("DescribeResetInstanceBlueprints(no IDs) sent Filters: %v", c.Params)
		}
	}
}

// TestClientErrors checks what each kind of failed reply becomes, for
// ResetInstance (which may be ambiguous) and DescribeInstances (which never is).
func TestClientErrors(t *testing.T) {
	t.Parallel()

	body := func(status int, contentType, s string) func(http.ResponseWriter, *http.Request, apiCall) {
		return func(w http.ResponseWriter, r *http.Request, c apiCall) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			w.Write([]byte(s))
		}
	}
	tests := []struct {
		name          string
		respond       func(http.ResponseWriter, *http.Request, apiCall)
		want          APIError // Action, Message and Err are not compared
		wantMessage   string   // a substring of Message
		describeClass Class    // want.Class is ResetInstance's
	}{
		{
			name: "ErrorEnvelope",
			respond: func(w http.ResponseWriter, r *http.Request, c apiCall) {
				writeFixture(t, w, "error.json")
			},
			want: APIError{
				Code:      "UnsupportedOperation.LatestOperationUnfinished",
				RequestID: "ed93f3cb-f35e-473f-b9f3-0d451b8b79c6",
				Class:     ClassBusy,
			},
			wantMessage:   "The latest operation of the instance is unfinished.",
			describeClass: ClassBusy,
		},
		{
			name: "Throttled",
			respond: func(w http.ResponseWriter, r *http.Request, c apiCall) {
				writeAPIError(w, http.StatusOK, "RequestLimitExceeded.UinLimitExceeded", "slow down")
			},
			want:          APIError{Code: "RequestLimitExceeded.UinLimitExceeded", RequestID: "err-RequestLimitExceeded.UinLimitExceeded", Class: ClassRetryable},
			wantMessage:   "slow down",
			describeClass: ClassRetryable,
		},
		{
			name: "AuthFailure",
			respond: func(w http.ResponseWriter, r *http.Request, c apiCall) {
				writeAPIError(w, http.StatusOK, "AuthFailure.SignatureFailure", "bad signature")
			},
			want:          APIError{Code: "AuthFailure.SignatureFailure", RequestID: "err-AuthFailure.SignatureFailure", Class: ClassFatal},
			describeClass: ClassFatal,
		},
		{
			name: "InternalError500",
			respond: func(w http.ResponseWriter, r *http.Request, c apiCall) {
				writeAPIError(w, http.StatusInternalServerError, "InternalError", "oops")
			},
			want:          APIError{Code: "InternalError", RequestID: "err-InternalError", Class: ClassAmbiguous},
			wantMessage:   "oops",
			describeClass: ClassRetryable,
		},
		{
			name:          "HTML502",
			respond:       body(http.StatusBadGateway, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"),
			want:          APIError{Code: CodeParseJSONError, Class: ClassAmbiguous},
			wantMessage:   "502 Bad Gateway",
			describeClass: ClassRetryable,
		},
		{
			name:          "JSON500WithoutError",
			respond:       body(http.StatusInternalServerError, "application/json", `{"Response":{"RequestId":"r"}}`),
			want:          APIError{Code: CodeHTTPStatusCodeError, Class: ClassAmbiguous},
			wantMessage:   "500",
			describeClass: ClassRetryable,
		},
		{
			name:          "MalformedJSON",
			respond:       body(http.StatusOK, "application/json", `{"Response": {"RequestId": "r",`),
			want:          APIError{Code: CodeParseJSONError, Class: ClassAmbiguous},
			describeClass: ClassRetryable,
		},
		{
			name:          "WrongTypes",
			respond:       body(http.StatusOK, "application/json", `{"Response": {"TotalCount": "x", "InstanceSet": "x", "RequestId": 7}}`),
			want:          APIError{Code: CodeParseJSONError, Class: ClassAmbiguous},
			wantMessage:   "cannot unmarshal",
			describeClass: ClassRetryable,
		},
		{
			name:          "ResponseNotObject",
			respond:       body(http.StatusOK, "application/json", `{"Response": "x"}`),
			want:          APIError{Code: CodeParseJSONError, Class: ClassAmbiguous},
			describeClass: ClassRetryable,
		},
		{
			name:          "NullResponse",
			respond:       body(http.StatusOK, "application/json", `{"Response": null}`),
			want:          APIError{Code: CodeParseJSONError, Class: ClassAmbiguous},
			wantMessage:   "no RequestId",
			describeClass: ClassRetryable,
		},
		{
			name:          "NoRequestID",
			respond:       body(http.StatusOK, "application/json", `{"Response": {"TotalCount": 0, "InstanceSet": []}}`),
			want:          APIError{Code: CodeParseJSONError, Class: ClassAmbiguous},
			wantMessage:   "no RequestId",
			describeClass: ClassRetryable,
		},
		{
			name: "GzipJunk",
			respond: func(w http.ResponseWriter, r *http.Request, c apiCall) {
				w.Header().Set("Content-Encoding", "gzip")
				writeBody(w, http.StatusOK, []byte("this is not gzip"))
			},
			want:          APIError{Code: CodeParseJSONError, Class: ClassAmbiguous},
			wantMessage:   "gzip",
			describeClass: ClassRetryable,
		},
		{
			name:          "EventStream",
			respond:       body(http.StatusOK, "text/event-stream", `{"Response":{"RequestId":"r"}}`),
			want:          APIError{Code: CodeParseJSONError, Class: ClassAmbiguous},
			wantMessage:   "text/event-stream",
			describeClass: ClassRetryable,
		},
		{
			name: "UnsupportedEncoding",
			respond: func(w http.ResponseWriter, r *http.Request, c apiCall) {
				w.Header().Set("Content-Encoding", "br")
				writeBody(w, http.StatusOK, []byte("junk"))
			},
			want:          APIError{Code: CodeIOError, Class: ClassAmbiguous},
			wantMessage:   "br",
			describeClass: ClassRetryable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.respond)

			_, err := b.client.ResetInstance(t.Context(), testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
			checkAPIError(t, err, ActionResetInstance, tt.want, tt.wantMessage)

			want := tt.want
			want.Class = tt.describeClass
			_, err = b.client.DescribeInstances(t.Context(), testRegion, []string{"lhins-ruy9d2tw"})
			checkAPIError(t, err, ActionDescribeInstances, want, tt.wantMessage)
		})
	}
}

// TestUnreadBodyFreesConnection checks that a reply the SDK leaves unclosed
// (it does so for an unsupported Content-Encoding) does not hold its
// connection: with one connection allowed, later calls still get through.
func TestUnreadBodyFreesConnection(t *testing.T) {
	t.Parallel()
	srv := &apiServer{t: t, id: testSecretID, key: testSecretKey}
	var mu sync.Mutex
	n := 0
	srv.respond = func(w http.ResponseWriter, r *http.Request, c apiCall) {
		mu.Lock()
		n++
		first := n <= 2
		mu.Unlock()
		if first {
			w.Header().Set("Content-Encoding", "br")
			writeBody(w, http.StatusOK, []byte("junk"))
			return
		}
		writeFixture(t, w, "ResetInstance.json")
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	c := newTestClient(t, Config{Endpoint: ts.URL, MaxIdleConnsPerHost: 1, Timeout: 10 * time.Second})

	for range 2 {
		if _, err := c.ResetInstance(t.Context(), testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"}); err == nil {
			t.Fatal("ResetInstance with an unreadable reply succeeded")
		}
	}
	if _, err := c.ResetInstance(t.Context(), testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"}); err != nil {
		t.Errorf("ResetInstance after unreadable replies = %v", err)
	}
}

// TestDecodeWrongTypes checks that a reply the SDK accepts but whose fields
// have the wrong types is a clear error, for every Describe method.
func TestDecodeWrongTypes(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
		writeJSON(w, map[string]any{"Response": map[string]any{
			"TotalCount":                "x",
			"InstanceSet":               "x",
			"BlueprintSet":              map[string]any{},
			"ResetInstanceBlueprintSet": []any{map[string]any{"IsResettable": "yes"}},
			"RequestId":                 "r",
		}})
	})
	ctx := t.Context()
	tests := []struct {
		action string
		call   func() error
	}{
		{ActionDescribeInstances, func() error { _, err := b.client.DescribeInstances(ctx, testRegion, []string{"lhins-1"}); return err }},
		{ActionDescribeInstances, func() error { _, _, err := b.client.DescribeInstancesPage(ctx, testRegion, nil, 0, 10); return err }},
		{ActionDescribeBlueprints, func() error { _, err := b.client.DescribeBlueprints(ctx, testRegion, []string{"lhbp-1"}); return err }},
		{ActionDescribeResetInstanceBlueprints, func() error {
			_, err := b.client.DescribeResetInstanceBlueprints(ctx, testRegion, "lhins-1", nil)
			return err
		}},
	}
	for _, tt := range tests {
		checkAPIError(t, tt.call(), tt.action, APIError{Code: CodeParseJSONError, Class: ClassRetryable}, "decode response: json: cannot unmarshal")
	}
}

// checkAPIError checks that err is an *APIError for action like want, with
// wantMessage in its Message.
func checkAPIError(t *testing.T, err error, action string, want APIError, wantMessage string) *APIError {
	t.Helper()
	var got *APIError
	if !errors.As(err, &got) {
		t.Fatalf("%s error = %#v, want an *APIError", action, err)
	}
	t.Logf("%s error: %v [%v]", action, got, got.Class)
	want.Action = action
	if diff := cmp.Diff(&want, got, cmpopts.IgnoreFields(APIError{}, "Message", "Err")); diff != "" {
		t.Errorf("%s error mismatch (-want +got):\n%s", action, diff)
	}
	if !strings.Contains(got.Message, wantMessage) {
		t.Errorf("%s error message = %q, want it to contain %q", action, got.Message, wantMessage)
	}
	if got.Message == "" || len(got.Message) > maxMessageLen+len("...") {
		t.Errorf("%s error message length %d, want 1..%d", action, len(got.Message), maxMessageLen+3)
	}
	return got
}

// TestConnectionRefused checks that a request that could not connect is
// retryable even for ResetInstance: it provably never left.
func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	endpoint := ts.URL
	ts.Close()
	c := newTestClient(t, Config{Endpoint: endpoint})

	_, err := c.ResetInstance(t.Context(), testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
	checkAPIError(t, err, ActionResetInstance, APIError{Code: CodeNetworkError, Class: ClassRetryable}, "connection refused")
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Errorf("ResetInstance error = %v, want a dial *net.OpError in its chain", err)
	}
}

// blockUntilGone returns a handler that reports each request on arrived and
// answers only once the client has gone away.
func blockUntilGone(arrived chan<- struct{}) func(http.ResponseWriter, *http.Request, apiCall) {
	return func(w http.ResponseWriter, r *http.Request, c apiCall) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}
}

// TestTimeout checks that a call the server never answers ends at the
// client's timeout, as ambiguous for ResetInstance.
func TestTimeout(t *testing.T) {
	t.Parallel()
	srv := &apiServer{t: t, id: testSecretID, key: testSecretKey, respond: blockUntilGone(nil)}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	c := newTestClient(t, Config{Endpoint: ts.URL, Timeout: 200 * time.Millisecond})

	_, err := c.ResetInstance(t.Context(), testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
	e := checkAPIError(t, err, ActionResetInstance, APIError{Code: CodeNetworkError, Class: ClassAmbiguous}, "call timeout 200ms")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false, want true", e.Err)
	}

	_, err = c.DescribeInstances(t.Context(), testRegion, []string{"lhins-ruy9d2tw"})
	checkAPIError(t, err, ActionDescribeInstances, APIError{Code: CodeNetworkError, Class: ClassRetryable}, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false, want true", err)
	}
}

// TestCanceled checks that cancelling the caller's context is visible
// through errors.Is, and that a call cancelled before it was sent is
// retryable.
func TestCanceled(t *testing.T) {
	t.Parallel()

	t.Run("InFlight", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{}, 1)
		b := setup(t, blockUntilGone(arrived))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			<-arrived
			cancel()
		}()

		_, err := b.client.ResetInstance(ctx, testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
		checkAPIError(t, err, ActionResetInstance, APIError{Code: CodeNetworkError, Class: ClassAmbiguous}, "")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled) = false, want true", err)
		}
	})

	t.Run("BeforeSend", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()

		_, err := b.client.ResetInstance(ctx, testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
		checkAPIError(t, err, ActionResetInstance, APIError{Code: CodeNetworkError, Class: ClassRetryable}, "")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled) = false, want true", err)
		}
		if n := len(b.server.Calls()); n != 0 {
			t.Errorf("server got %d calls, want 0", n)
		}
	})
}

// TestEmptyRegion checks that a call without a region is refused before
// sending: without X-TC-Region the API would pick a region itself.
func TestEmptyRegion(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	_, err := b.client.ResetInstance(t.Context(), "", ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
	checkAPIError(t, err, ActionResetInstance, APIError{Code: CodeInvalidParameter, Class: ClassFatal}, "region")
	if n := len(b.server.Calls()); n != 0 {
		t.Errorf("server got %d calls, want 0", n)
	}
}

// TestConcurrentRegions calls from many goroutines across regions (run with
// -race) and checks that each call carried its own region.
func TestConcurrentRegions(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
		id := c.Params["InstanceIds"].([]any)[0].(string)
		if !strings.HasPrefix(id, c.Region+"/") {
			t.Errorf("instance %s asked in region %s", id, c.Region)
		}
		writeJSON(w, map[string]any{"Response": map[string]any{"InstanceSet": []any{map[string]any{"InstanceId": id}}, "RequestId": "r"}})
	})

	regions := []string{"ap-guangzhou", "ap-singapore", "eu-frankfurt"}
	const perRegion = 20
	var wg sync.WaitGroup
	for _, region := range regions {
		for i := range perRegion {
			wg.Go(func() {
				id := fmt.Sprintf("%s/%d", region, i)
				got, err := b.client.DescribeInstances(t.Context(), region, []string{id})
				if err != nil {
					t.Errorf("DescribeInstances(%s, %s) = %v", region, id, err)
					return
				}
				if len(got) != 1 || got[0].InstanceID != id || got[0].Region != region {
					t.Errorf("DescribeInstances(%s, %s) = %+v", region, id, got)
				}
			})
		}
	}
	wg.Wait()
	if n := len(b.server.Calls()); n != len(regions)*perRegion {
		t.Errorf("server got %d calls, want %d", n, len(regions)*perRegion)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	cred := Credential{SecretID: testSecretID, SecretKey: testSecretKey}

	c, err := New(Config{Credential: cred})
	if err != nil {
		t.Fatalf("New(defaults) = %v", err)
	}
	got := struct {
		Scheme, Host, Language string
		Timeout                time.Duration
		MaxIdle, MaxConns      int
	}{c.scheme, c.host, c.language, c.timeout, c.transport.MaxIdleConnsPerHost, c.transport.MaxConnsPerHost}
	want := struct {
		Scheme, Host, Language string
		Timeout                time.Duration
		MaxIdle, MaxConns      int
	}{"https", "lighthouse.tencentcloudapi.com", "en-US", 30 * time.Second, 64, 64}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("New(defaults) mismatch (-want +got):\n%s", diff)
	}

	c, err = New(Config{Credential: cred, Endpoint: "http://127.0.0.1:8080/"})
	if err != nil || c.scheme != "http" || c.host != "127.0.0.1:8080" {
		t.Errorf("New(http://127.0.0.1:8080/) = %v; scheme %q host %q", err, c.scheme, c.host)
	}

	for _, cfg := range []Config{
		{Credential: cred, Endpoint: "ftp://lighthouse.tencentcloudapi.com"},
		{Credential: cred, Endpoint: "lighthouse.tencentcloudapi.com"},
		{Credential: cred, Endpoint: "https://lighthouse.tencentcloudapi.com/v3"},
		{Credential: cred, Endpoint: "https://lighthouse.tencentcloudapi.com/?x=1"},
		{Credential: cred, Endpoint: "https://"},
		{Credential: cred, Timeout: -time.Second},
		{Credential: Credential{SecretID: testSecretID}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error, want an error", cfg)
		} else if strings.Contains(err.Error(), testSecretKey) {
			t.Errorf("New error %q contains the secret key", err)
		}
	}
}
