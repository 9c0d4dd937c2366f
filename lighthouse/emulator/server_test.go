package emulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(1), Blueprints: testBlueprints()})

	t.Run("SDK", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name            string
			secretID, key   string
			unsignedPayload bool
			want            string
		}{
			{name: "Valid", secretID: testSecretID, key: testSecretKey},
			{name: "UnsignedPayload", secretID: testSecretID, key: testSecretKey, unsignedPayload: true},
			{name: "WrongKey", secretID: testSecretID, key: "wrong", want: "AuthFailure.SignatureFailure"},
			{name: "UnknownSecretID", secretID: "AKIDunknown", key: testSecretKey, want: "AuthFailure.SecretIdNotFound"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				c := newClient(t, b.srv, tt.secretID, tt.key, testRegion, func(p *profile.ClientProfile) { p.UnsignedPayload = tt.unsignedPayload })
				err := send(t, c, "DescribeInstances", nil, nil)
				if got := code(err); got != tt.want {
					t.Errorf("DescribeInstances with %s = %v, want code %q", tt.name, err, tt.want)
				}
			})
		}
	})

	t.Run("Raw", func(t *testing.T) {
		t.Parallel()
		host := strings.TrimPrefix(b.srv.URL, "http://")
		hostname := host[:strings.LastIndex(host, ":")]
		tests := []struct {
			name string
			req  rawRequest
			want string
		}{
			{name: "Valid", req: rawRequest{}},
			{name: "CharsetContentType", req: rawRequest{contentType: "application/json; charset=utf-8"}},
			// The Node SDKs sign the host without its port and take the
			// scope's service from the endpoint's first label.
			{name: "NodeStyleHost", req: rawRequest{signedHost: hostname, service: "127"}},
			{name: "StaleTimestamp", req: rawRequest{signedAt: time.Now().Add(-10 * time.Minute)}, want: "AuthFailure.SignatureExpire"},
			{name: "FutureTimestamp", req: rawRequest{signedAt: time.Now().Add(10 * time.Minute)}, want: "AuthFailure.SignatureExpire"},
			{name: "OtherHost", req: rawRequest{signedHost: "lighthouse.tencentcloudapi.com"}, want: "AuthFailure.SignatureFailure"},
			{name: "WrongKey", req: rawRequest{secretKey: "wrong"}, want: "AuthFailure.SignatureFailure"},
			{name: "UnknownSecretID", req: rawRequest{secretID: "AKIDunknown"}, want: "AuthFailure.SecretIdNotFound"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				tt.req.action, tt.req.body = "DescribeInstances", "{}"
				got := tt.req.do(t, b.srv)
				if got.status != http.StatusOK || got.env.Response.Error.Code != tt.want {
					t.Errorf("DescribeInstances (%s) = %d %s, want 200 and code %q", tt.name, got.status, got.body, tt.want)
				}
			})
		}
	})

	t.Run("NoAuthorization", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.URL+"/", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-TC-Action", "DescribeInstances")
		resp, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env struct {
			Response struct{ Error struct{ Code string } }
		}
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || env.Response.Error.Code != "AuthFailure.InvalidAuthorization" {
			t.Errorf("unsigned call = %d %q, want 200 AuthFailure.InvalidAuthorization", resp.StatusCode, env.Response.Error.Code)
		}
	})
}

// TestAuthBeforeRateLimit checks that calls failing authentication do not
// use the action's budget.
func TestAuthBeforeRateLimit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, emulator.Config{Instances: fleet(1), Now: clock.Now, RateLimits: map[string]int{"DescribeInstances": 1}})
	bad := newClient(t, b.srv, testSecretID, "wrong", testRegion, nil)
	for range 3 {
		if err := send(t, bad, "DescribeInstances", nil, nil); code(err) != "AuthFailure.SignatureFailure" {
			t.Fatalf("DescribeInstances with a wrong key = %v, want AuthFailure.SignatureFailure", err)
		}
	}
	if err := send(t, b.client, "DescribeInstances", nil, nil); err != nil {
		t.Errorf("DescribeInstances after failed logins = %v, want success", err)
	}
	got := b.emu.Stats().Actions["DescribeInstances"]
	want := emulator.ActionStats{Calls: 4, Errors: 3, MaxPerSecond: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats().Actions[DescribeInstances] mismatch (-want +got):\n%s", diff)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(3), Blueprints: testBlueprints(), RateLimits: noLimits()})
	tooMany := fmt.Sprintf(`{"InstanceIds": %s}`, mustJSON(t, ids(101)))
	filter := func(name string, values ...string) string {
		return fmt.Sprintf(`{"Name": %q, "Values": %s}`, name, mustJSON(t, values))
	}
	elevenFilters := `{"Filters": [` + strings.TrimSuffix(strings.Repeat(filter("zone", "ap-guangzhou-3")+",", 11), ",") + `]}`
	tests := []struct {
		name string
		req  rawRequest
		want string
	}{
		{"MalformedJSON", rawRequest{action: "DescribeInstances", body: `{"InstanceIds": [`}, "InvalidParameter"},
		{"BodyNotObject", rawRequest{action: "DescribeInstances", body: `[]`}, "InvalidParameter"},
		{"BodyNull", rawRequest{action: "DescribeInstances", body: `null`}, "InvalidParameter"},
		{"EmptyBody", rawRequest{action: "DescribeInstances", body: ``}, "InvalidParameter"},
		{"TrailingData", rawRequest{action: "DescribeInstances", body: `{}{}`}, "InvalidParameter"},
		{"UnknownAction", rawRequest{action: "RebootInstances", body: `{}`}, "InvalidAction"},
		{"MissingAction", rawRequest{action: "", body: `{}`}, "MissingParameter"},
		{"WrongVersion", rawRequest{action: "DescribeInstances", version: "2017-03-12", body: `{}`}, "NoSuchVersion"},
		{"MissingRegion", rawRequest{action: "DescribeInstances", region: "-", body: `{}`}, "MissingParameter"},
		{"UnknownRegion", rawRequest{action: "DescribeInstances", region: "xx-nowhere", body: `{}`}, "UnsupportedRegion"},
		{"WrongContentType", rawRequest{action: "DescribeInstances", contentType: "text/plain", body: `{}`}, "UnsupportedProtocol"},
		{"GetMethod", rawRequest{action: "DescribeInstances", method: http.MethodGet}, "UnsupportedProtocol"},
		{"ResetMissingInstanceID", rawRequest{action: "ResetInstance", body: `{}`}, "MissingParameter"},
		{"ResetNullInstanceID", rawRequest{action: "ResetInstance", body: `{"InstanceId": null}`}, "MissingParameter"},
		{"ResetUnknownParameter", rawRequest{action: "ResetInstance", body: `{"InstanceId": "lhins-t0000000", "ClientToken": "x"}`}, "UnknownParameter"},
		{"ResetLowerCaseParameter", rawRequest{action: "ResetInstance", body: `{"instanceId": "lhins-t0000000"}`}, "UnknownParameter"},
		{"ResetInstanceIDNumber", rawRequest{action: "ResetInstance", body: `{"InstanceId": 5}`}, "InvalidParameter"},
		{"ResetInstanceIDList", rawRequest{action: "ResetInstance", body: `{"InstanceId": ["lhins-t0000000"]}`}, "InvalidParameter"},
		{"ResetMalformedInstanceID", rawRequest{action: "ResetInstance", body: `{"InstanceId": "ins-123"}`}, "InvalidParameterValue.InstanceIdMalformed"},
		{"ResetUpperCaseInstanceID", rawRequest{action: "ResetInstance", body: `{"InstanceId": "lhins-T0000000"}`}, "InvalidParameterValue.InstanceIdMalformed"},
		{"ResetMalformedBlueprintID", rawRequest{action: "ResetInstance", body: `{"InstanceId": "lhins-t0000000", "BlueprintId": "img-1"}`}, "InvalidParameterValue.BlueprintIdMalformed"},
		{"ResetEmptyBlueprintID", rawRequest{action: "ResetInstance", body: `{"InstanceId": "lhins-t0000000", "BlueprintId": ""}`}, "InvalidParameterValue.BlueprintIdMalformed"},
		{"DescribeTooManyIDs", rawRequest{action: "DescribeInstances", body: tooMany}, "InvalidParameterValue.LimitExceeded"},
		{"DescribeIDsNotList", rawRequest{action: "DescribeInstances", body: `{"InstanceIds": "lhins-t0000000"}`}, "InvalidParameter"},
		{"DescribeIDNotString", rawRequest{action: "DescribeInstances", body: `{"InstanceIds": [1]}`}, "InvalidParameter"},
		{"DescribeMalformedID", rawRequest{action: "DescribeInstances", body: `{"InstanceIds": ["lhins-t0000000", "nope"]}`}, "InvalidParameterValue.InstanceIdMalformed"},
		{"DescribeDuplicateID", rawRequest{action: "DescribeInstances", body: `{"InstanceIds": ["lhins-t0000000", "lhins-t0000000"]}`}, "InvalidParameterValue.Duplicated"},
		{"DescribeLimitString", rawRequest{action: "DescribeInstances", body: `{"Limit": "10"}`}, "InvalidParameter"},
		{"DescribeLimitFraction", rawRequest{action: "DescribeInstances", body: `{"Limit": 1.5}`}, "InvalidParameter"},
		{"DescribeLimitHuge", rawRequest{action: "DescribeInstances", body: `{"Limit": 1e30}`}, "InvalidParameterValue.OutOfRange"},
		{"DescribeLimitTooBig", rawRequest{action: "DescribeInstances", body: `{"Limit": 101}`}, "InvalidParameterValue.OutOfRange"},
		{"DescribeLimitZero", rawRequest{action: "DescribeInstances", body: `{"Limit": 0}`}, "InvalidParameterValue.OutOfRange"},
		{"DescribeOffsetNegative", rawRequest{action: "DescribeInstances", body: `{"Offset": -1}`}, "InvalidParameterValue.Negative"},
		{"DescribeIDsAndFilters", rawRequest{action: "DescribeInstances", body: `{"InstanceIds": ["lhins-t0000000"], "Filters": [` + filter("zone", "ap-guangzhou-3") + `]}`}, "InvalidParameter.ParameterConflict"},
		{"DescribeFiltersNotList", rawRequest{action: "DescribeInstances", body: `{"Filters": {}}`}, "InvalidParameter"},
		{"DescribeFilterNotObject", rawRequest{action: "DescribeInstances", body: `{"Filters": ["zone"]}`}, "InvalidParameter.InvalidFilterNotDict"},
		{"DescribeFilterBadKey", rawRequest{action: "DescribeInstances", body: `{"Filters": [{"Name": "zone", "Value": ["x"]}]}`}, "InvalidParameter.InvalidFilterInvalidKey"},
		{"DescribeFilterNameNotString", rawRequest{action: "DescribeInstances", body: `{"Filters": [{"Name": 1, "Values": ["x"]}]}`}, "InvalidParameter.InvalidFilterInvalidNameNotStr"},
		{"DescribeFilterValuesNotList", rawRequest{action: "DescribeInstances", body: `{"Filters": [{"Name": "zone", "Values": "x"}]}`}, "InvalidParameter.InvalidFilterInvalidValuesNotList"},
		{"DescribeFilterUnsupported", rawRequest{action: "DescribeInstances", body: `{"Filters": [` + filter("color", "blue") + `]}`}, "InvalidParameter.InvalidFilterNotSupportedName"},
		{"DescribeTooManyFilters", rawRequest{action: "DescribeInstances", body: elevenFilters}, "InvalidParameterValue.LimitExceeded"},
		{"DescribeUnknownParameter", rawRequest{action: "DescribeInstances", body: `{"OrderField": "EXPIRED_TIME"}`}, "UnknownParameter"},
		{"BlueprintsBadType", rawRequest{action: "DescribeBlueprints", body: `{"Filters": [` + filter("blueprint-type", "VM") + `]}`}, "InvalidParameterValue.InvalidBlueprintType"},
		{"BlueprintsBadPlatform", rawRequest{action: "DescribeBlueprints", body: `{"Filters": [` + filter("platform-type", "MAC") + `]}`}, "InvalidParameterValue.InvalidBlueprintPlatformType"},
		{"BlueprintsBadState", rawRequest{action: "DescribeBlueprints", body: `{"Filters": [` + filter("blueprint-state", "BROKEN") + `]}`}, "InvalidParameterValue.InvalidBlueprintState"},
		{"BlueprintsMalformedID", rawRequest{action: "DescribeBlueprints", body: `{"BlueprintIds": ["lhins-t0000000"]}`}, "InvalidParameterValue.BlueprintIdMalformed"},
		{"BlueprintsIDsAndFilters", rawRequest{action: "DescribeBlueprints", body: `{"BlueprintIds": ["lhbp-target00"], "Filters": [` + filter("platform-type", "WINDOWS") + `]}`}, "InvalidParameter.ParameterConflict"},
		{"ResetBlueprintsMissingInstance", rawRequest{action: "DescribeResetInstanceBlueprints", body: `{}`}, "MissingParameter"},
		{"ResetBlueprintsTooManyValues", rawRequest{action: "DescribeResetInstanceBlueprints", body: `{"InstanceId": "lhins-t0000000", "Filters": [` + filter("blueprint-id", "lhbp-a0000000", "lhbp-a0000001", "lhbp-a0000002", "lhbp-a0000003", "lhbp-a0000004", "lhbp-a0000005") + `]}`}, "InvalidParameter.FilterValueLimitExceeded"},
		{"ResetBlueprintsUnsupportedFilter", rawRequest{action: "DescribeResetInstanceBlueprints", body: `{"InstanceId": "lhins-t0000000", "Filters": [` + filter("scene-id", "x") + `]}`}, "InvalidParameter.InvalidFilterNotSupportedName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.req.do(t, b.srv)
			if got.status != http.StatusOK {
				t.Fatalf("%s: status %d, want 200; body %s", tt.name, got.status, got.body)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q, want application/json", tt.name, ct)
			}
			if c := got.env.Response.Error.Code; c != tt.want {
				t.Errorf("%s: code %q (%s), want %q", tt.name, c, got.env.Response.Error.Message, tt.want)
			}
			if got.env.Response.Error.Message == "" {
				t.Errorf("%s: empty error message", tt.name)
			}
			if id := got.env.Response.RequestID; !requestIDPattern.MatchString(id) {
				t.Errorf("%s: RequestId %q is not a lowercase UUID v4", tt.name, id)
			}
		})
	}
	t.Run("NothingApplied", func(t *testing.T) {
		t.Parallel()
		// Resets rejected for bad input never reach the ledger. (The other
		// subtests run concurrently, but none is a valid reset.)
		if r := b.emu.Stats().Resets; len(r) != 0 {
			t.Errorf("Stats().Resets = %v, want none", r)
		}
	})
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzAPI sends arbitrary signed bodies to every action: the answer is
// always HTTP 200 with a JSON envelope, never a panic or a 500.
func FuzzAPI(f *testing.F) {
	for _, body := range []string{`{}`, `{"InstanceIds":["lhins-t0000000"]}`, `{"InstanceId":"lhins-t0000000","BlueprintId":"lhbp-target00"}`,
		`{"Filters":[{"Name":"zone","Values":["ap-guangzhou-3"]}],"Limit":100,"Offset":1}`, `{"Limit":-1}`, `[`, `{"Filters":[null]}`,
		`{"InstanceIds":null,"Filters":[{"Name":"tag:x","Values":[]}]}`, `{"BlueprintIds":[""]}`, "\xff"} {
		for action := range 4 {
			f.Add(action, body)
		}
	}
	emu, err := emulator.New(emulator.Config{
		Credentials:   map[string]string{testSecretID: testSecretKey},
		Instances:     fleet(5),
		Blueprints:    testBlueprints(),
		RateLimits:    noLimits(),
		ResetDuration: emulator.Duration{Min: time.Nanosecond},
		Seed:          1,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(emu.Close)
	actions := []string{"ResetInstance", "DescribeInstances", "DescribeBlueprints", "DescribeResetInstanceBlueprints"}
	f.Fuzz(func(t *testing.T, action int, body string) {
		req := httptest.NewRequest(http.MethodPost, "http://lighthouse.emu.test/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-TC-Action", actions[(action%4+4)%4])
		req.Header.Set("X-TC-Version", "2020-03-24")
		req.Header.Set("X-TC-Region", testRegion)
		emulator.SignTC3(req, []byte(body), testSecretID, testSecretKey, time.Now(), "lighthouse.emu.test", "lighthouse")
		w := httptest.NewRecorder()
		emu.ServeHTTP(w, req)
		var env struct {
			Response map[string]json.RawMessage
		}
		if w.Code != http.StatusOK {
			t.Fatalf("status %d for %q", w.Code, body)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Response == nil {
			t.Fatalf("answer %q for %q is not an envelope: %v", w.Body, body, err)
		}
		if _, ok := env.Response["RequestId"]; !ok {
			t.Fatalf("answer %q for %q has no RequestId", w.Body, body)
		}
	})
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(2), Blueprints: testBlueprints()})
	if _, err := reset(t, b.client, "lhins-t0000000", bpTarget); err != nil {
		t.Fatalf("ResetInstance error: %v", err)
	}

	t.Run("Stats", func(t *testing.T) {
		resp, err := b.srv.Client().Get(b.srv.URL + emulator.StatsPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got emulator.Stats
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(b.emu.Stats(), got); diff != "" {
			t.Errorf("GET %s mismatch (-Stats() +got):\n%s", emulator.StatsPath, diff)
		}
		if len(got.Resets["lhins-t0000000"]) != 1 {
			t.Errorf("GET %s Resets = %v, want one reset of lhins-t0000000", emulator.StatsPath, got.Resets)
		}
	})

	t.Run("Faults", func(t *testing.T) {
		body := `[{"Action": "DescribeInstances", "Kind": "throttle"}, {"Kind": "latency", "Latency": "1.5s", "Instances": ["lhins-t0000001"]}]`
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, b.srv.URL+emulator.FaultsPath, strings.NewReader(body))
		resp, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PUT %s = %d, want 204", emulator.FaultsPath, resp.StatusCode)
		}
		want := []emulator.Fault{
			{Action: "DescribeInstances", Kind: emulator.FaultThrottle},
			{Kind: emulator.FaultLatency, Latency: 1500 * time.Millisecond, Instances: []string{"lhins-t0000001"}},
		}
		if diff := cmp.Diff(want, b.emu.Faults()); diff != "" {
			t.Errorf("Faults() after PUT mismatch (-want +got):\n%s", diff)
		}
		if err := send(t, b.client, "DescribeInstances", nil, nil); code(err) != "RequestLimitExceeded" {
			t.Errorf("DescribeInstances under a throttle fault = %v, want RequestLimitExceeded", err)
		}

		resp, err = b.srv.Client().Get(b.srv.URL + emulator.FaultsPath)
		if err != nil {
			t.Fatal(err)
		}
		var got []emulator.Fault
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET %s mismatch (-want +got):\n%s", emulator.FaultsPath, diff)
		}

		for _, bad := range []string{`[{"Kind": "explode"}]`, `[{"Kind": "error"}]`, `[{"Kind": "throttle", "Probability": 2}]`, `{`, `[{"Kind": "throttle", "Colour": "red"}]`} {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, b.srv.URL+emulator.FaultsPath, strings.NewReader(bad))
			resp, err := b.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("PUT %s %s = %d, want 400", emulator.FaultsPath, bad, resp.StatusCode)
			}
		}
		if len(b.emu.Faults()) != 2 {
			t.Errorf("Faults() after invalid PUTs = %v, want the previous two", b.emu.Faults())
		}
	})

	t.Run("WrongMethod", func(t *testing.T) {
		resp, err := b.srv.Client().Post(b.srv.URL+emulator.StatsPath, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s = %d, want 405", emulator.StatsPath, resp.StatusCode)
		}
	})
}
