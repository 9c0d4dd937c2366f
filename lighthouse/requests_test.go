package lighthouse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestInvalidRequests checks that requests breaking the documented limits
// fail before anything is sent, as ClientError.InvalidParameter.
func TestInvalidRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()
	values := func(n int) []string {
		v := make([]string, n)
		for i := range v {
			v[i] = fmt.Sprint(i)
		}
		return v
	}
	reset := func(lc LoginConfiguration) func() error {
		return func() error {
			_, err := b.client.ResetInstance(ctx, testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw", LoginConfiguration: &lc})
			return err
		}
	}
	run := func(req RunCommandRequest) func() error {
		return func() error { _, err := b.client.RunCommand(ctx, testRegion, req); return err }
	}
	okRun := RunCommandRequest{Content: []byte("true"), InstanceIDs: []string{"lhins-ruy9d2tw"}}
	with := func(f func(*RunCommandRequest)) RunCommandRequest { r := okRun; f(&r); return r }
	filters := func(fs []Filter) func() error {
		return func() error { _, err := filterAll(ctx, b.client, testRegion, fs); return err }
	}
	tags := func(fs []TagFilter) func() error {
		return func() error { _, err := resourcesAll(ctx, b.client, fs); return err }
	}
	tests := []struct {
		name, action, message string
		call                  func() error
	}{
		{"SixKeyPairs", ActionResetInstance, "6 key pairs", reset(LoginConfiguration{KeyIDs: values(6)})},
		{"KeysAndPassword", ActionResetInstance, "exclude", reset(LoginConfiguration{KeyIDs: values(1), Password: "Passw0rd!x"})},
		{"PasswordAndGenerated", ActionResetInstance, "exclude", reset(LoginConfiguration{Password: "Passw0rd!x", AutoGeneratePassword: AutoGeneratePasswordYes})},
		{"AutoGenerateMaybe", ActionResetInstance, "YES or NO", reset(LoginConfiguration{AutoGeneratePassword: "maybe"})},
		{"EmptyContent", ActionRunCommand, "empty", run(with(func(r *RunCommandRequest) { r.Content = nil }))},
		{"ContentTooLong", ActionRunCommand, "base64", run(with(func(r *RunCommandRequest) { r.Content = make([]byte, 49153) }))},
		{"NoInstances", ActionRunCommand, "0 instances", run(with(func(r *RunCommandRequest) { r.InstanceIDs = nil }))},
		{"TooManyInstances", ActionRunCommand, "201 instances", run(with(func(r *RunCommandRequest) { r.InstanceIDs = values(201) }))},
		{"TimeoutTooLong", ActionRunCommand, "timeout", run(with(func(r *RunCommandRequest) { r.Timeout = 86401 * time.Second }))},
		{"TimeoutFraction", ActionRunCommand, "timeout", run(with(func(r *RunCommandRequest) { r.Timeout = 1500 * time.Millisecond }))},
		{"CommandType", ActionRunCommand, "command type", run(with(func(r *RunCommandRequest) { r.CommandType = "PYTHON" }))},
		{"ElevenFilters", ActionDescribeInstances, "11 filters", filters(make([]Filter, 11))},
		{"TooManyValues", ActionDescribeInstances, "101 filter values", filters([]Filter{{Name: FilterZone, Values: values(60)}, {Name: FilterInstanceName, Values: values(41)}})},
		{"EmptyFilter", ActionDescribeInstances, "at least one value", filters([]Filter{{Name: FilterZone}})},
		{"SixTagFilters", ActionGetResources, "6 tag filters", tags(make([]TagFilter, 6))},
		{"ElevenTagValues", ActionGetResources, "at most 10 values", tags([]TagFilter{{TagKey: "env", TagValues: values(11)}})},
		{"NoInvocation", ActionDescribeInvocationTasks, "empty", func() error { _, _, err := b.client.DescribeInvocationTasksPage(ctx, testRegion, "", 0); return err }},
		{"SixBlueprintIDs", ActionDescribeResetInstanceBlueprints, "6 blueprint IDs", func() error {
			_, _, err := b.client.DescribeResetInstanceBlueprintsPage(ctx, testRegion, "lhins-ruy9d2tw", values(6), 0)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAPIError(t, tt.call(), tt.action, APIError{Code: CodeInvalidParameter, Class: ClassFatal}, tt.message)
		})
	}
	if n := len(b.server.Calls()); n != 0 {
		t.Errorf("server got %d calls, want 0", n)
	}

	// The limits themselves pass.
	for _, call := range []func() error{
		reset(LoginConfiguration{KeyIDs: values(5), AutoGeneratePassword: AutoGeneratePasswordNo}),
		run(with(func(r *RunCommandRequest) {
			r.Content, r.InstanceIDs, r.Timeout = make([]byte, 49152), values(200), MaxCommandTimeout
		})),
		filters([]Filter{{Name: FilterZone, Values: values(60)}, {Name: FilterInstanceName, Values: values(40)}}),
	} {
		if err := call(); err != nil {
			t.Errorf("call at the limits = %v", err)
		}
	}
}

// TestPasswordNeverShown checks that a password is kept out of printed
// requests and out of an error that quotes it.
func TestPasswordNeverShown(t *testing.T) {
	t.Parallel()
	const password = "Secr3t-PASSWORD-never!"
	b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
		lc := c.Params["LoginConfiguration"].(map[string]any)
		if lc["Password"] != password {
			t.Errorf("request password %v, want it sent as is", lc["Password"])
		}
		writeAPIError(w, http.StatusOK, "InvalidParameterValue.InvalidPassword", "password `"+password+"` is too weak")
	})
	req := ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw", LoginConfiguration: &LoginConfiguration{Password: password}}
	_, err := b.client.ResetInstance(t.Context(), testRegion, req)
	checkAPIError(t, err, ActionResetInstance, APIError{Code: "InvalidParameterValue.InvalidPassword", RequestID: "err-InvalidParameterValue.InvalidPassword", Class: ClassPermanent}, "too weak")

	var out bytes.Buffer
	for _, v := range []any{req, *req.LoginConfiguration, req.LoginConfiguration, err} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
	}
	js, jsErr := json.Marshal(req)
	if jsErr != nil {
		t.Fatal(jsErr)
	}
	out.Write(js)
	slog.New(slog.NewTextHandler(&out, nil)).Info("reset", "req", req, "err", err)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("reset", "req", req, "err", err)
	if strings.Contains(out.String(), password) {
		t.Errorf("output shows the password:\n%s", out.String())
	}
	if !strings.Contains(out.String(), redacted) {
		t.Errorf("output does not say a password is set:\n%s", out.String())
	}
}

// TestPaging checks that the paged calls read every page and stop.
func TestPaging(t *testing.T) {
	t.Parallel()

	t.Run("FilterInstances", func(t *testing.T) {
		t.Parallel()
		const total = 230
		b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
			o, _ := c.Params["Offset"].(float64) // absent on the first page
			offset := int(o)
			var set []map[string]any
			for i := offset; i < min(total, offset+int(c.Params["Limit"].(float64))); i++ {
				set = append(set, map[string]any{"InstanceId": fmt.Sprintf("lhins-%08d", i)})
			}
			writeJSON(w, map[string]any{"Response": map[string]any{"TotalCount": total, "InstanceSet": set, "RequestId": "r"}})
		})
		got, err := filterAll(t.Context(), b.client, testRegion, []Filter{{Name: FilterInstanceState, Values: []string{StateRunning}}})
		if err != nil {
			t.Fatalf("FilterInstances = %v", err)
		}
		if len(got) != total || got[len(got)-1].InstanceID != "lhins-00000229" || got[0].Region != testRegion {
			t.Errorf("FilterInstances = %d instances ending %s, want %d", len(got), got[len(got)-1].InstanceID, total)
		}
		var offsets []float64
		for _, c := range b.server.Calls() {
			o, _ := c.Params["Offset"].(float64)
			offsets = append(offsets, o)
		}
		if diff := cmp.Diff([]float64{0, 100, 200}, offsets); diff != "" {
			t.Errorf("offsets mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("GetResources", func(t *testing.T) {
		t.Parallel()
		pages := map[string]string{"": "p2", "p2": "p3", "p3": ""}
		b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
			token, _ := c.Params["PaginationToken"].(string)
			name := fmt.Sprintf("qcs::lighthouse:ap-tokyo:uin/1:instance/lhins-page%s", token)
			writeJSON(w, map[string]any{"Response": map[string]any{
				"PaginationToken":        pages[token],
				"ResourceTagMappingList": []any{map[string]any{"Resource": name, "Tags": []any{}}},
				"RequestId":              "r",
			}})
		})
		got, err := resourcesAll(t.Context(), b.client, nil)
		if err != nil {
			t.Fatalf("GetResources = %v", err)
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, r.Name.ResourceID)
		}
		if diff := cmp.Diff([]string{"lhins-page", "lhins-pagep2", "lhins-pagep3"}, ids); diff != "" {
			t.Errorf("GetResources pages mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("GetResourcesStuckToken", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
			writeJSON(w, map[string]any{"Response": map[string]any{"PaginationToken": "same", "ResourceTagMappingList": []any{}, "RequestId": "r"}})
		})
		if _, err := resourcesAll(t.Context(), b.client, nil); err != nil {
			t.Fatalf("GetResources = %v", err)
		}
		if n := len(b.server.Calls()); n != 2 {
			t.Errorf("GetResources with a token that never moves made %d calls, want 2", n)
		}
	})

	t.Run("GetResourcesBadName", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
			writeJSON(w, map[string]any{"Response": map[string]any{"ResourceTagMappingList": []any{map[string]any{"Resource": "lhins-ruy9d2tw"}}, "RequestId": "r"}})
		})
		_, err := resourcesAll(t.Context(), b.client, nil)
		checkAPIError(t, err, ActionGetResources, APIError{Code: CodeParseJSONError, RequestID: "r", Class: ClassFatal}, "lhins-ruy9d2tw")
	})

	t.Run("DescribeInvocationTasks", func(t *testing.T) {
		t.Parallel()
		const total = 150
		b := setup(t, func(w http.ResponseWriter, r *http.Request, c apiCall) {
			offset, _ := c.Params["Offset"].(float64)
			var set []map[string]any
			for i := int(offset); i < min(total, int(offset)+int(c.Params["Limit"].(float64))); i++ {
				set = append(set, map[string]any{"InvocationTaskId": fmt.Sprintf("invt-%08d", i), "TaskStatus": TaskRunning})
			}
			writeJSON(w, map[string]any{"Response": map[string]any{"TotalCount": total, "InvocationTaskSet": set, "RequestId": "r"}})
		})
		// Each call is one page: the first, then the rest.
		for i, want := range []struct{ offset, n int }{{0, MaxIDsPerCall}, {MaxIDsPerCall, total - MaxIDsPerCall}} {
			n, got, err := b.client.DescribeInvocationTasksPage(context.Background(), testRegion, "inv-3ahsgwpf", want.offset)
			if err != nil || n != total || len(got) != want.n || got[0].Done() {
				t.Errorf("DescribeInvocationTasksPage(offset %d) = TotalCount %d, %d tasks, %v; want %d, %d, not done", want.offset, n, len(got), err, total, want.n)
			}
			calls := b.server.Calls()
			if len(calls) != i+1 {
				t.Fatalf("DescribeInvocationTasksPage(offset %d) made %d calls, want 1", want.offset, len(calls)-i)
			}
			if offset, _ := calls[i].Params["Offset"].(float64); int(offset) != want.offset {
				t.Errorf("DescribeInvocationTasksPage(offset %d) sent Offset %v", want.offset, calls[i].Params["Offset"])
			}
		}
	})
}

func TestParseResourceName(t *testing.T) {
	t.Parallel()
	good := map[string]ResourceName{
		"qcs::lighthouse:ap-guangzhou:uin/100001:instance/lhins-ruy9d2tw": {Service: "lighthouse", Region: "ap-guangzhou", Account: "100001", ResourceType: "instance", ResourceID: "lhins-ruy9d2tw"},
		"qcs::cam::uin/100001:role/4611686018427397919":                   {Service: "cam", Account: "100001", ResourceType: "role", ResourceID: "4611686018427397919"},
	}
	for s, want := range good {
		got, err := ParseResourceName(s)
		if err != nil || got != want {
			t.Errorf("ParseResourceName(%q) = %+v, %v; want %+v", s, got, err, want)
		}
		if got.String() != s {
			t.Errorf("ParseResourceName(%q).String() = %q", s, got.String())
		}
	}
	for _, s := range []string{
		"", "lhins-ruy9d2tw", "qcs:lighthouse:ap-guangzhou:uin/1:instance/lhins-x", "qcs:::ap-guangzhou:uin/1:instance/x",
		"qcs::lighthouse:ap-guangzhou:100001:instance/x", "qcs::lighthouse:ap-guangzhou:uin/:instance/x",
		"qcs::lighthouse:ap-guangzhou:uin/1:instance", "qcs::lighthouse:ap-guangzhou:uin/1:instance/", "qcs::lighthouse:ap-guangzhou:uin/1:instance/x:y",
	} {
		if got, err := ParseResourceName(s); err == nil {
			t.Errorf("ParseResourceName(%q) = %+v, want an error", s, got)
		}
	}
}

// TestSTSReplyNeverQuoted checks that a broken AssumeRole reply, which
// holds a secret key, is not quoted in the error.
func TestSTSReplyNeverQuoted(t *testing.T) {
	t.Parallel()
	const secret = "tmp-SECRET-in-a-broken-reply"
	b := setupRole(t, time.Hour, nil)
	inner := b.server.respond
	b.server.respond = func(w http.ResponseWriter, r *http.Request, c apiCall) {
		if c.Action == ActionAssumeRole {
			writeBody(w, http.StatusOK, []byte(`{"Response":{"Credentials":{"TmpSecretKey":"`+secret+`",`))
			return
		}
		inner(w, r, c)
	}
	_, err := b.client.DescribeRegions(t.Context())
	checkAPIError(t, err, ActionDescribeRegions, APIError{Code: CodeParseJSONError, Class: ClassRetryable}, "assume role")
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q quotes the reply", err)
	}
}
