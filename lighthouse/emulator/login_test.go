package emulator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

const (
	keyGZ1   = "lhkp-gz000001"
	keyGZ2   = "lhkp-gz000002"
	keyOther = "lhkp-sh000001" // in ap-shanghai
	bpDocker = "lhbp-docker00"
	bpNoAuto = "lhbp-noauto00"
	bpPortal = "lhbp-portal00"

	// goodPassword meets both platforms' rules. Tests check it never shows
	// in the ledger, stats or logs.
	goodPassword = "Emu-Secret-7731x"
)

func loginKeyPairs() []emulator.KeyPair {
	return []emulator.KeyPair{
		{ID: keyGZ1, Name: "ops", Region: testRegion},
		{ID: keyGZ2, Name: "deploy-bot", Region: testRegion},
		{ID: "lhkp-gz000003", Name: "spare", Region: testRegion},
		{ID: "lhkp-gz000004", Name: "spare2", Region: testRegion},
		{ID: "lhkp-gz000005", Name: "spare3", Region: testRegion},
		{ID: "lhkp-gz000006", Name: "spare4", Region: testRegion},
		{ID: keyOther, Name: "ops", Region: "ap-shanghai"},
	}
}

func loginBlueprints() []emulator.Blueprint {
	return append(testBlueprints(),
		emulator.Blueprint{ID: bpDocker, Name: "Docker CE", Type: "DOCKER"},
		emulator.Blueprint{ID: bpNoAuto, Name: "No auto password", NoAutoGeneratePassword: true},
		emulator.Blueprint{ID: bpPortal, Name: "Portal", Type: "GAME_PORTAL"})
}

// TestResetLoginConfiguration runs ResetInstance's login and container
// rules (more-apis §1b) one by one.
func TestResetLoginConfiguration(t *testing.T) {
	t.Parallel()
	instances := []emulator.Instance{
		{ID: "lhins-linux000", BlueprintID: bpCurrent, BusyFor: 1 << 40},
		{ID: "lhins-windows0", BlueprintID: bpWindows, BusyFor: 1 << 40},
		{ID: "lhins-portal00", BlueprintID: bpPortal, BusyFor: 1 << 40},
	}
	// Every instance is busy, so a call that passes every login check ends
	// at LatestOperationUnfinished and nothing is applied.
	const passed = "UnsupportedOperation.LatestOperationUnfinished"
	b := setup(t, emulator.Config{Instances: instances, Blueprints: loginBlueprints(), KeyPairs: loginKeyPairs(), RateLimits: noLimits()})
	lc := func(v map[string]any) map[string]any { return map[string]any{"LoginConfiguration": v} }
	tests := []struct {
		name      string
		instance  string
		blueprint string
		params    map[string]any
		want      string
	}{
		{"Keys", "lhins-linux000", bpTarget, lc(map[string]any{"KeyIds": []string{keyGZ1, keyGZ2}}), passed},
		{"FiveKeys", "lhins-linux000", bpTarget, lc(map[string]any{"KeyIds": []string{keyGZ1, keyGZ2, "lhkp-gz000003", "lhkp-gz000004", "lhkp-gz000005"}}), passed},
		{"SixKeys", "lhins-linux000", bpTarget, lc(map[string]any{"KeyIds": []string{keyGZ1, keyGZ2, "lhkp-gz000003", "lhkp-gz000004", "lhkp-gz000005", "lhkp-gz000006"}}), "InvalidParameterValue.LimitExceeded"},
		{"DuplicateKey", "lhins-linux000", bpTarget, lc(map[string]any{"KeyIds": []string{keyGZ1, keyGZ1}}), "InvalidParameterValue.Duplicated"},
		{"UnknownKey", "lhins-linux000", bpTarget, lc(map[string]any{"KeyIds": []string{"lhkp-zzzzzzzz"}}), "ResourceNotFound.KeyPairNotFound"},
		{"KeyInOtherRegion", "lhins-linux000", bpTarget, lc(map[string]any{"KeyIds": []string{keyOther}}), "ResourceNotFound.KeyPairNotFound"},
		{"MalformedKey", "lhins-linux000", bpTarget, lc(map[string]any{"KeyIds": []string{"key-1"}}), "ResourceNotFound.KeyPairNotFound"},
		{"KeysOnWindows", "lhins-windows0", "", lc(map[string]any{"KeyIds": []string{keyGZ1}}), "InvalidParameterValue.InvalidParameterCombination"},
		{"KeysAndPassword", "lhins-linux000", bpTarget, lc(map[string]any{"KeyIds": []string{keyGZ1}, "Password": goodPassword}), "InvalidParameterValue.InvalidParameterCombination"},
		{"AutoAndPassword", "lhins-linux000", bpTarget, lc(map[string]any{"AutoGeneratePassword": "YES", "Password": goodPassword}), "InvalidParameterValue.InvalidParameterCombination"},
		{"Auto", "lhins-linux000", bpTarget, lc(map[string]any{"AutoGeneratePassword": "YES"}), passed},
		{"AutoRefused", "lhins-linux000", bpNoAuto, lc(map[string]any{"AutoGeneratePassword": "YES"}), "UnsupportedOperation.OperationNotSupportAutoGeneratePassword"},
		{"AutoBadValue", "lhins-linux000", bpTarget, lc(map[string]any{"AutoGeneratePassword": "yes"}), "InvalidParameterValue"},
		{"NothingToLogIn", "lhins-linux000", bpTarget, lc(map[string]any{"AutoGeneratePassword": "NO"}), "MissingParameter"},
		{"Empty", "lhins-linux000", bpTarget, lc(map[string]any{}), "MissingParameter"},
		{"NotObject", "lhins-linux000", bpTarget, map[string]any{"LoginConfiguration": "YES"}, "InvalidParameter"},
		{"UnknownField", "lhins-linux000", bpTarget, lc(map[string]any{"Password": goodPassword, "UserName": "root"}), "UnknownParameter"},
		{"Password", "lhins-linux000", bpTarget, lc(map[string]any{"AutoGeneratePassword": "NO", "Password": goodPassword}), passed},
		{"PasswordLinuxShortest", "lhins-linux000", bpTarget, lc(map[string]any{"Password": "Ab1-defg"}), passed},
		{"PasswordLinuxTooShort", "lhins-linux000", bpTarget, lc(map[string]any{"Password": "Ab1-def"}), "InvalidParameterValue.InvalidPassword"},
		{"PasswordWindowsTooShort", "lhins-windows0", "", lc(map[string]any{"Password": "Ab1-defghij"}), "InvalidParameterValue.InvalidPassword"},
		{"PasswordWindows", "lhins-windows0", "", lc(map[string]any{"Password": "Ab1-defghijk"}), passed},
		{"PasswordTooLong", "lhins-linux000", bpTarget, lc(map[string]any{"Password": "Ab1-" + strings.Repeat("x", 27)}), "InvalidParameterValue.InvalidPassword"},
		{"PasswordTwoClasses", "lhins-linux000", bpTarget, lc(map[string]any{"Password": "abcdefgh123"}), "InvalidParameterValue.InvalidPassword"},
		{"PasswordLeadingSlash", "lhins-linux000", bpTarget, lc(map[string]any{"Password": "/Abcdefg123"}), "InvalidParameterValue.InvalidPassword"},
		{"PasswordBadChar", "lhins-linux000", bpTarget, lc(map[string]any{"Password": "Abc defg123"}), "InvalidParameterValue.InvalidPassword"},
		{"ContainersOnDocker", "lhins-linux000", bpDocker, map[string]any{"Containers": []any{map[string]any{"ContainerImage": "nginx", "RestartPolicy": "on-failure:3"}}}, passed},
		{"ContainersNotDocker", "lhins-linux000", bpTarget, map[string]any{"Containers": []any{map[string]any{"ContainerImage": "nginx"}}}, "UnsupportedOperation.BlueprintTypeNotSupportOperation"},
		{"ContainerNoImage", "lhins-linux000", bpDocker, map[string]any{"Containers": []any{map[string]any{"ContainerName": "web"}}}, "MissingParameter"},
		{"ContainerBadPolicy", "lhins-linux000", bpDocker, map[string]any{"Containers": []any{map[string]any{"ContainerImage": "nginx", "RestartPolicy": "sometimes"}}}, "InvalidParameterValue"},
		{"ContainerUnknownField", "lhins-linux000", bpDocker, map[string]any{"Containers": []any{map[string]any{"ContainerImage": "nginx", "Privileged": true}}}, "UnknownParameter"},
		{"ContainersNotList", "lhins-linux000", bpDocker, map[string]any{"Containers": map[string]any{}}, "InvalidParameter"},
		{"GamePortalOtherImage", "lhins-portal00", bpTarget, nil, "InvalidParameter.GamePortalInstanceOnlySupportCurrentBlueprint"},
		{"GamePortalCurrentImage", "lhins-portal00", bpPortal, nil, passed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := map[string]any{"InstanceId": tt.instance}
			if tt.blueprint != "" {
				p["BlueprintId"] = tt.blueprint
			}
			for k, v := range tt.params {
				p[k] = v
			}
			if err := send(t, b.client, "ResetInstance", p, nil); code(err) != tt.want {
				t.Errorf("ResetInstance(%s) = %v, want code %q", tt.name, err, tt.want)
			}
		})
	}
}

// logBuffer is a concurrency-safe sink for a text slog handler.
type logBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newLogBuffer() *logBuffer { return &logBuffer{mu: make(chan struct{}, 1)} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.buf.String()
}

// TestResetLoginApplied checks what a reset with login settings leaves: the
// keys bound once it succeeds, the ledger entry, and no password anywhere.
func TestResetLoginApplied(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	logs := newLogBuffer()
	instances := fleet(2)
	instances[1].KeyIDs = []string{keyGZ2}
	b := setup(t, emulator.Config{Instances: instances, Blueprints: loginBlueprints(), KeyPairs: loginKeyPairs(), Now: clock.Now,
		ResetDuration: emulator.Duration{Min: 10 * time.Second}, Logger: slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	const withKeys, withPassword = "lhins-t0000000", "lhins-t0000001"

	loginKeys := func(id string) []string {
		t.Helper()
		var r struct {
			InstanceSet []struct{ LoginSettings struct{ KeyIds []string } }
		}
		if err := send(t, b.client, "DescribeInstances", map[string]any{"InstanceIds": []string{id}}, &r); err != nil || len(r.InstanceSet) != 1 {
			t.Fatalf("DescribeInstances(%s) = %v, %v", id, r, err)
		}
		return r.InstanceSet[0].LoginSettings.KeyIds
	}
	if got := loginKeys(withPassword); !cmp.Equal(got, []string{keyGZ2}) {
		t.Errorf("configured LoginSettings.KeyIds = %v, want [%s]", got, keyGZ2)
	}

	var keysReset, passwordReset struct{ RequestId string }
	if err := send(t, b.client, "ResetInstance", map[string]any{"InstanceId": withKeys, "BlueprintId": bpTarget,
		"LoginConfiguration": map[string]any{"KeyIds": []string{keyGZ1, keyGZ2}}}, &keysReset); err != nil {
		t.Fatalf("ResetInstance with KeyIds: %v", err)
	}
	if err := send(t, b.client, "ResetInstance", map[string]any{"InstanceId": withPassword,
		"LoginConfiguration": map[string]any{"AutoGeneratePassword": "NO", "Password": goodPassword}}, &passwordReset); err != nil {
		t.Fatalf("ResetInstance with Password: %v", err)
	}
	if got := loginKeys(withKeys); len(got) != 0 {
		t.Errorf("LoginSettings.KeyIds while the reset runs = %v, want the old (none)", got)
	}
	clock.Add(10 * time.Second)
	if got := loginKeys(withKeys); !cmp.Equal(got, []string{keyGZ1, keyGZ2}) {
		t.Errorf("LoginSettings.KeyIds after the reset = %v, want [%s %s]", got, keyGZ1, keyGZ2)
	}
	if got := loginKeys(withPassword); len(got) != 0 {
		t.Errorf("LoginSettings.KeyIds after a password reset = %v, want none", got)
	}

	var kp struct {
		TotalCount int
		KeyPairSet []struct {
			KeyId, KeyName        string
			AssociatedInstanceIds []string
		}
	}
	if err := send(t, b.client, "DescribeKeyPairs", map[string]any{"KeyIds": []string{keyGZ1, keyOther}}, &kp); err != nil {
		t.Fatal(err)
	}
	if kp.TotalCount != 1 || kp.KeyPairSet[0].KeyId != keyGZ1 || !cmp.Equal(kp.KeyPairSet[0].AssociatedInstanceIds, []string{withKeys}) {
		t.Errorf("DescribeKeyPairs(%s, %s) = %+v, want %s alone (the other is in ap-shanghai), bound to %s", keyGZ1, keyOther, kp, keyGZ1, withKeys)
	}

	st := b.emu.Stats()
	want := map[string][]emulator.ResetRecord{
		withKeys: {{RequestID: keysReset.RequestId, Account: rootUIN, SignedBy: rootUIN, BlueprintID: bpTarget,
			KeyIDs: []string{keyGZ1, keyGZ2}}},
		withPassword: {{RequestID: passwordReset.RequestId, Account: rootUIN, SignedBy: rootUIN, BlueprintID: bpCurrent,
			PasswordSet: true}},
	}
	if diff := cmp.Diff(want, st.ResetLog, cmpopts.IgnoreFields(emulator.ResetRecord{}, "At", "Ends")); diff != "" {
		t.Errorf("Stats().ResetLog mismatch (-want +got):\n%s", diff)
	}
	doc, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.srv.Client().Get(b.srv.URL + emulator.StatsPath)
	if err != nil {
		t.Fatal(err)
	}
	served, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v", emulator.StatsPath, resp.StatusCode, err)
	}
	for name, text := range map[string]string{"Stats() JSON": string(doc), "GET " + emulator.StatsPath: string(served), "logs": logs.String()} {
		if strings.Contains(text, goodPassword) {
			t.Errorf("%s holds the password", name)
		}
	}
	if !strings.Contains(logs.String(), "password_set=true") {
		t.Errorf("logs = %q, want the reset logged with password_set=true (the check above must see the reset's line)", logs.String())
	}
}

func TestResetLoginIntlSite(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(1), Blueprints: loginBlueprints(), KeyPairs: loginKeyPairs(), IntlSite: true})
	err := send(t, b.client, "ResetInstance", map[string]any{"InstanceId": "lhins-t0000000", "LoginConfiguration": map[string]any{"KeyIds": []string{keyGZ1}}}, nil)
	if code(err) != "UnknownParameter" {
		t.Errorf("ResetInstance with LoginConfiguration on the intl site = %v, want UnknownParameter", err)
	}
	if err := send(t, b.client, "ResetInstance", map[string]any{"InstanceId": "lhins-t0000000", "BlueprintId": bpDocker,
		"Containers": []any{map[string]any{"ContainerImage": "nginx"}}}, nil); err != nil {
		t.Errorf("ResetInstance with Containers on the intl site = %v, want success", err)
	}
}

func TestDescribeKeyPairs(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{KeyPairs: loginKeyPairs()})
	tests := []struct {
		name   string
		params map[string]any
		want   []string
		code   string
	}{
		{name: "All", want: []string{keyGZ1, keyGZ2, "lhkp-gz000003", "lhkp-gz000004", "lhkp-gz000005", "lhkp-gz000006"}},
		{name: "Paged", params: map[string]any{"Offset": 1, "Limit": 2}, want: []string{keyGZ2, "lhkp-gz000003"}},
		{name: "NameFuzzy", params: map[string]any{"Filters": []any{filterOf("key-name", "spare")}}, want: []string{"lhkp-gz000003", "lhkp-gz000004", "lhkp-gz000005", "lhkp-gz000006"}},
		{name: "ID", params: map[string]any{"Filters": []any{filterOf("key-id", keyGZ2)}}, want: []string{keyGZ2}},
		{name: "Tag", params: map[string]any{"Filters": []any{filterOf("tag:env", "prod")}}},
		{name: "Malformed", params: map[string]any{"KeyIds": []string{"key-1"}}, code: "InvalidParameterValue.KeyPairIdMalformed"},
		{name: "Conflict", params: map[string]any{"KeyIds": []string{keyGZ1}, "Filters": []any{filterOf("key-id", keyGZ2)}}, code: "InvalidParameter.ParameterConflict"},
		{name: "SixValues", params: map[string]any{"Filters": []any{filterOf("key-name", "a", "b", "c", "d", "e", "f")}}, code: "InvalidParameter.FilterValueLimitExceeded"},
		{name: "BadFilter", params: map[string]any{"Filters": []any{filterOf("region", "x")}}, code: "InvalidParameter.InvalidFilterNotSupportedName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r struct {
				TotalCount int
				KeyPairSet []struct{ KeyId string }
			}
			err := send(t, b.client, "DescribeKeyPairs", tt.params, &r)
			if code(err) != tt.code {
				t.Fatalf("DescribeKeyPairs(%s) = %v, want code %q", tt.name, err, tt.code)
			}
			var got []string
			for _, k := range r.KeyPairSet {
				got = append(got, k.KeyId)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DescribeKeyPairs(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

// TestTransitionalState checks an instance STOPPING for a while: the runner
// sees it STOPPING with StopInstances OPERATING, a reset is refused, and
// once the state settles the instance is STOPPED and can be reset.
func TestTransitionalState(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	instances := []emulator.Instance{
		{ID: "lhins-stopping", BlueprintID: bpCurrent, State: "STOPPING", StateFor: 30 * time.Second},
		{ID: "lhins-starting", BlueprintID: bpCurrent, State: "STARTING", StateFor: 30 * time.Second},
		{ID: "lhins-reboot00", BlueprintID: bpCurrent, State: "REBOOTING", StateFor: 30 * time.Second, StateThen: "STOPPED"},
	}
	b := setup(t, emulator.Config{Instances: instances, Blueprints: testBlueprints(), Now: clock.Now, RateLimits: noLimits()})
	tests := []struct{ id, during, op, after string }{
		{"lhins-stopping", "STOPPING", "StopInstances", "STOPPED"},
		{"lhins-starting", "STARTING", "StartInstances", "RUNNING"},
		{"lhins-reboot00", "REBOOTING", "RebootInstances", "STOPPED"},
	}
	for _, tt := range tests {
		in := describe(t, b.client, tt.id)
		if in.InstanceState != tt.during || in.LatestOperation != tt.op || in.LatestOperationState != "OPERATING" {
			t.Errorf("%s at first = %s %s %s, want %s %s OPERATING", tt.id, in.InstanceState, in.LatestOperation, in.LatestOperationState, tt.during, tt.op)
		}
		if _, err := reset(t, b.client, tt.id, bpTarget); code(err) != "UnsupportedOperation.InvalidInstanceState" {
			t.Errorf("ResetInstance(%s) while %s = %v, want UnsupportedOperation.InvalidInstanceState", tt.id, tt.during, err)
		}
	}
	var r describeInstancesResponse
	if err := send(t, b.client, "DescribeInstances", map[string]any{"Filters": []any{filterOf("instance-state", "STOPPING")}}, &r); err != nil || r.TotalCount != 1 {
		t.Errorf("DescribeInstances(instance-state STOPPING) = %d, %v; want 1", r.TotalCount, err)
	}
	clock.Add(30 * time.Second)
	for _, tt := range tests {
		in := describe(t, b.client, tt.id)
		if in.InstanceState != tt.after || in.LatestOperation != tt.op || in.LatestOperationState != "SUCCESS" {
			t.Errorf("%s after 30s = %s %s %s, want %s %s SUCCESS", tt.id, in.InstanceState, in.LatestOperation, in.LatestOperationState, tt.after, tt.op)
		}
		if _, err := reset(t, b.client, tt.id, bpTarget); err != nil {
			t.Errorf("ResetInstance(%s) once %s = %v, want success", tt.id, tt.after, err)
		}
	}
}
