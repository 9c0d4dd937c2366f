package emulator_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

const testRole = "qcs::cam::uin/100000000001:roleName/reset-operator"

type assumeRoleResponse struct {
	Credentials struct {
		Token, TmpSecretId, TmpSecretKey string
	}
	ExpiredTime int64
	Expiration  string
}

// assumeRole calls STS AssumeRole as the official SDK's role provider does:
// service sts, version 2018-08-13, signed with the caller's long-term key.
func assumeRole(t *testing.T, b *bundle, params map[string]any) (assumeRoleResponse, error) {
	t.Helper()
	var r assumeRoleResponse
	err := sendService(t.Context(), t, b.client, "sts", stsVersion, "AssumeRole", params, &r)
	return r, err
}

func TestAssumeRole(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, emulator.Config{Instances: fleet(1), Blueprints: testBlueprints(), Roles: []string{testRole},
		CredentialLifetime: 2 * time.Minute, Now: clock.Now})

	r, err := assumeRole(t, b, map[string]any{"RoleArn": testRole, "RoleSessionName": "batchreset-1", "DurationSeconds": 900})
	if err != nil {
		t.Fatalf("AssumeRole error: %v", err)
	}
	c := r.Credentials
	if !strings.HasPrefix(c.TmpSecretId, "AKID") || c.TmpSecretKey == "" || c.Token == "" {
		t.Fatalf("AssumeRole credentials = id %q, key set %v, token set %v; want an AKID… id, a key and a token", c.TmpSecretId, c.TmpSecretKey != "", c.Token != "")
	}
	wantExpiry := clock.Now().Add(2 * time.Minute).Truncate(time.Second)
	if r.ExpiredTime != wantExpiry.Unix() || r.Expiration != wantExpiry.UTC().Format("2006-01-02T15:04:05Z") {
		t.Errorf("AssumeRole expiry = %d %q, want %d %q (CredentialLifetime overrides DurationSeconds)",
			r.ExpiredTime, r.Expiration, wantExpiry.Unix(), wantExpiry.UTC().Format("2006-01-02T15:04:05Z"))
	}

	temp := newCredentialClient(t, b.srv, common.NewTokenCredential(c.TmpSecretId, c.TmpSecretKey, c.Token), testRegion, nil)
	if err := send(t, temp, "DescribeInstances", nil, nil); err != nil {
		t.Errorf("DescribeInstances with temporary credentials = %v, want success", err)
	}
	if err := sendService(t.Context(), t, temp, "tat", tatVersion, "DescribeAutomationAgentStatus", nil, nil); err != nil {
		t.Errorf("TAT call with temporary credentials = %v, want success", err)
	}
	for name, cred := range map[string]common.CredentialIface{
		"WrongToken":          common.NewTokenCredential(c.TmpSecretId, c.TmpSecretKey, c.Token+"x"),
		"NoToken":             common.NewCredential(c.TmpSecretId, c.TmpSecretKey),
		"TokenOnPermanentKey": common.NewTokenCredential(testSecretID, testSecretKey, c.Token),
	} {
		if err := send(t, newCredentialClient(t, b.srv, cred, testRegion, nil), "DescribeInstances", nil, nil); code(err) != "AuthFailure.TokenFailure" {
			t.Errorf("DescribeInstances (%s) = %v, want AuthFailure.TokenFailure", name, err)
		}
	}

	clock.Add(2*time.Minute + time.Second)
	if err := send(t, temp, "DescribeInstances", nil, nil); code(err) != "AuthFailure.TokenFailure" {
		t.Errorf("DescribeInstances with expired credentials = %v, want AuthFailure.TokenFailure", err)
	}
	if err := send(t, b.client, "DescribeInstances", nil, nil); err != nil {
		t.Errorf("DescribeInstances with the long-term key after expiry = %v, want success", err)
	}

	st := b.emu.Stats()
	if len(st.AssumedRoles) != 1 || st.AssumedRoles[0].RoleARN != testRole || st.AssumedRoles[0].SessionName != "batchreset-1" ||
		st.AssumedRoles[0].TmpSecretID != c.TmpSecretId || !st.AssumedRoles[0].Expires.Equal(wantExpiry) {
		t.Errorf("Stats().AssumedRoles = %+v, want the one call", st.AssumedRoles)
	}
	if got := st.Actions["AssumeRole"].Calls; got != 1 {
		t.Errorf("Stats().Actions[AssumeRole].Calls = %d, want 1", got)
	}
	doc, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc), c.TmpSecretKey) || strings.Contains(string(doc), c.Token) {
		t.Errorf("Stats() JSON holds the temporary key or token")
	}
}

func TestAssumeRoleDuration(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, emulator.Config{Now: clock.Now})
	// Nil Roles means the one default role of the default UIN.
	r, err := assumeRole(t, b, map[string]any{"RoleArn": "qcs::cam::uin/100000000001:roleName/emulator", "RoleSessionName": "s1"})
	if err != nil {
		t.Fatalf("AssumeRole(default role) error: %v", err)
	}
	if want := clock.Now().Add(7200 * time.Second).Truncate(time.Second).Unix(); r.ExpiredTime != want {
		t.Errorf("AssumeRole without DurationSeconds: ExpiredTime %d, want now + 7200 s (%d)", r.ExpiredTime, want)
	}
}

func TestAssumeRoleErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Roles: []string{testRole, "qcs::cam::uin/100000000001:role/4611686018427397919"}, RateLimits: map[string]int{"AssumeRole": -1}})
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"RoleByID", map[string]any{"RoleArn": "qcs::cam::uin/100000000001:role/4611686018427397919", "RoleSessionName": "ok"}, ""},
		{"UnknownRole", map[string]any{"RoleArn": "qcs::cam::uin/100000000001:roleName/other", "RoleSessionName": "ok"}, "ResourceNotFound.RoleNotFound"},
		{"MalformedARN", map[string]any{"RoleArn": "arn:aws:iam::1:role/x", "RoleSessionName": "ok"}, "InvalidParameter.ResouceError"},
		{"NoRole", map[string]any{"RoleSessionName": "ok"}, "MissingParameter"},
		{"NoSession", map[string]any{"RoleArn": testRole}, "MissingParameter"},
		{"ShortSession", map[string]any{"RoleArn": testRole, "RoleSessionName": "x"}, "InvalidParameter.ParamError"},
		{"BadSessionChar", map[string]any{"RoleArn": testRole, "RoleSessionName": "a b"}, "InvalidParameter.ParamError"},
		{"TooLong", map[string]any{"RoleArn": testRole, "RoleSessionName": "ok", "DurationSeconds": 43201}, "InvalidParameter.OverTimeError"},
		{"Longest", map[string]any{"RoleArn": testRole, "RoleSessionName": "ok", "DurationSeconds": 43200}, ""},
		{"ZeroDuration", map[string]any{"RoleArn": testRole, "RoleSessionName": "ok", "DurationSeconds": 0}, "InvalidParameter.ParamError"},
		{"UnknownParameter", map[string]any{"RoleArn": testRole, "RoleSessionName": "ok", "Region": "x"}, "UnknownParameter"},
		{"Optional", map[string]any{"RoleArn": testRole, "RoleSessionName": "ok", "Policy": "{}", "ExternalId": "e", "Tags": []any{}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := assumeRole(t, b, tt.params); code(err) != tt.want {
				t.Errorf("AssumeRole(%v) = %v, want code %q", tt.params, err, tt.want)
			}
		})
	}
}

// TestServiceRouting checks that a call names its service by host or
// credential scope, and that each service has its own version.
func TestServiceRouting(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(1), Blueprints: testBlueprints()})
	body := `{"RoleArn": "qcs::cam::uin/100000000001:roleName/emulator", "RoleSessionName": "s1"}`
	tests := []struct {
		name string
		req  rawRequest
		want string
	}{
		{"STSByScope", rawRequest{action: "AssumeRole", version: stsVersion, service: "sts", body: body}, ""},
		// The Node SDKs sign the endpoint's first label ("127"): the action
		// names the service.
		{"STSByAction", rawRequest{action: "AssumeRole", version: stsVersion, service: "127", body: body}, ""},
		{"STSNoRegion", rawRequest{action: "AssumeRole", version: stsVersion, service: "sts", region: "-", body: body}, ""},
		{"STSOnLighthouse", rawRequest{action: "AssumeRole", version: stsVersion, service: "lighthouse", body: body}, "InvalidAction"},
		{"STSWrongVersion", rawRequest{action: "AssumeRole", version: "2020-03-24", service: "sts", body: body}, "NoSuchVersion"},
		{"LighthouseOnTAT", rawRequest{action: "DescribeInstances", version: "2020-03-24", service: "tat", body: `{}`}, "InvalidAction"},
		{"TATVersion", rawRequest{action: "DescribeAutomationAgentStatus", version: tatVersion, service: "tat", body: `{}`}, ""},
		{"TATWrongVersion", rawRequest{action: "DescribeAutomationAgentStatus", version: "2020-03-24", service: "tat", body: `{}`}, "NoSuchVersion"},
		{"TATNeedsRegion", rawRequest{action: "RunCommand", version: tatVersion, service: "tat", region: "-", body: `{}`}, "MissingParameter"},
		{"TagNoRegion", rawRequest{action: "GetResources", version: tagVersion, service: "tag", region: "-", body: `{}`}, ""},
		{"RegionsNoRegion", rawRequest{action: "DescribeRegions", region: "-", body: `{}`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.req.do(t, b.srv)
			if c := got.env.Response.Error.Code; c != tt.want {
				t.Errorf("%s %s (scope %q) = %s, want code %q", tt.req.action, tt.req.version, tt.req.service, got.body, tt.want)
			}
		})
	}
}
