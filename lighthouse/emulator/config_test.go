package emulator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

func TestNewErrors(t *testing.T) {
	t.Parallel()
	creds := map[string]string{testSecretID: testSecretKey}
	in := func(id string) emulator.Instance { return emulator.Instance{ID: id, BlueprintID: bpCurrent} }
	tests := []struct {
		name string
		cfg  emulator.Config
		want string
	}{
		{"NoCredentials", emulator.Config{}, "no credentials"},
		{"EmptySecretKey", emulator.Config{Credentials: map[string]string{"AKID": ""}}, "empty SecretId or SecretKey"},
		{"MalformedInstanceID", emulator.Config{Instances: []emulator.Instance{in("ins-1")}}, "malformed ID"},
		{"DuplicateInstance", emulator.Config{Instances: []emulator.Instance{in("lhins-aaaaaaaa"), in("lhins-aaaaaaaa")}}, "duplicate ID"},
		{"DuplicateAcrossRegions", emulator.Config{Instances: []emulator.Instance{in("lhins-aaaaaaaa"), {ID: "lhins-aaaaaaaa", Region: "ap-tokyo", BlueprintID: bpCurrent}}}, "duplicate ID"},
		{"NoBlueprint", emulator.Config{Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa"}}}, "malformed blueprint ID"},
		{"UnknownState", emulator.Config{Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpCurrent, State: "SLEEPING"}}}, "unknown state"},
		{"ZoneOutsideRegion", emulator.Config{Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpCurrent, Zone: "ap-tokyo-1"}}}, "not in region"},
		{"InstancePlatformType", emulator.Config{Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpCurrent, PlatformType: "MAC"}}}, "unknown platform type"},
		{"NegativeBusy", emulator.Config{Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpCurrent, BusyFor: -1}}}, "negative BusyFor"},
		{"MalformedBlueprintID", emulator.Config{Blueprints: []emulator.Blueprint{{ID: "img-1"}}}, "malformed ID"},
		{"DuplicateBlueprint", emulator.Config{Blueprints: []emulator.Blueprint{{ID: bpTarget}, {ID: bpTarget, Region: "ap-tokyo"}}}, "duplicate ID"},
		{"BlueprintType", emulator.Config{Blueprints: []emulator.Blueprint{{ID: bpTarget, Type: "VM"}}}, "unknown type"},
		{"BlueprintState", emulator.Config{Blueprints: []emulator.Blueprint{{ID: bpTarget, State: "BROKEN"}}}, "unknown state"},
		{"BlueprintRequirement", emulator.Config{Blueprints: []emulator.Blueprint{{ID: bpTarget, RequiredMemory: -1}}}, "negative requirement"},
		{"UnknownRateLimitAction", emulator.Config{RateLimits: map[string]int{"RebootInstances": 1}}, "unknown action"},
		{"ResetDurationRange", emulator.Config{ResetDuration: emulator.Duration{Min: 2 * time.Second, Max: time.Second}}, "invalid range"},
		{"FailureRate", emulator.Config{FailureRate: 1.5}, "not in 0..1"},
		{"VisibilityLag", emulator.Config{VisibilityLag: -time.Second}, "negative"},
		{"FailUnknownInstance", emulator.Config{FailInstances: []string{"lhins-zzzzzzzz"}}, "unknown instance"},
		{"BadFault", emulator.Config{Faults: []emulator.Fault{{Kind: emulator.FaultError}}}, "without a Code"},
		{"RoleARN", emulator.Config{Roles: []string{"arn:aws:iam::1:role/x"}}, "malformed ARN"},
		{"UIN", emulator.Config{UIN: "root"}, "not a number"},
		{"UserUnknownKey", emulator.Config{Users: map[string]string{"AKIDnobody": "200000000002"}}, "has no credential"},
		{"UserUIN", emulator.Config{Users: map[string]string{testSecretID: "alice"}}, "not a number"},
		{"KeyPairID", emulator.Config{KeyPairs: []emulator.KeyPair{{ID: "skey-1"}}}, "malformed ID"},
		{"DuplicateKeyPair", emulator.Config{KeyPairs: []emulator.KeyPair{{ID: "lhkp-aaaaaaaa"}, {ID: "lhkp-aaaaaaaa", Region: "ap-tokyo"}}}, "duplicate ID"},
		{"KeyPairOtherRegion", emulator.Config{KeyPairs: []emulator.KeyPair{{ID: "lhkp-aaaaaaaa", Region: "ap-tokyo"}},
			Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpCurrent, KeyIDs: []string{"lhkp-aaaaaaaa"}}}}, "not in region"},
		{"EmptyTagKey", emulator.Config{Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpCurrent, Tags: []emulator.Tag{{Value: "x"}}}}}, "tag key"},
		{"RepeatedTagKey", emulator.Config{Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpCurrent, Tags: []emulator.Tag{{Key: "a"}, {Key: "a"}}}}}, "tag key"},
		{"StateThen", emulator.Config{Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpCurrent, StateFor: time.Second, StateThen: "NAPPING"}}}, "unknown state"},
		{"NegativeStateFor", emulator.Config{Instances: []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpCurrent, StateFor: -1}}}, "negative StateFor"},
		{"AgentLossRate", emulator.Config{AgentLossRate: -0.1}, "not in 0..1"},
		{"CommandTimeoutRate", emulator.Config{CommandTimeoutRate: 2}, "not in 0..1"},
		{"CommandDuration", emulator.Config{CommandDuration: emulator.Duration{Min: -time.Second}}, "invalid range"},
		{"AgentLostUnknown", emulator.Config{AgentLostInstances: []string{"lhins-zzzzzzzz"}}, "unknown instance"},
		{"CommandFailUnknown", emulator.Config{CommandFailInstances: []string{"lhins-zzzzzzzz"}}, "unknown instance"},
		{"CredentialLifetime", emulator.Config{CredentialLifetime: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.cfg.Credentials == nil && tt.name != "NoCredentials" {
				tt.cfg.Credentials = creds
			}
			_, err := emulator.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	// The same blueprint ID may exist in two regions, as a private image
	// copied to another region may.
	_, err := emulator.New(emulator.Config{
		Credentials: map[string]string{testSecretID: testSecretKey},
		Blueprints:  []emulator.Blueprint{{ID: bpTarget, Region: "ap-tokyo"}, {ID: bpTarget, Region: "ap-seoul"}},
	})
	if err != nil {
		t.Errorf("New with one blueprint ID in two regions: %v", err)
	}

	// An instance takes its image from its configured blueprint.
	b := setup(t, emulator.Config{
		Instances:  []emulator.Instance{{ID: "lhins-aaaaaaaa", BlueprintID: bpWindows}},
		Blueprints: testBlueprints(),
	})
	in := describe(t, b.client, "lhins-aaaaaaaa")
	want := instance{InstanceID: "lhins-aaaaaaaa", BlueprintID: bpWindows, Zone: "ap-guangzhou-3", OsName: "Windows Server 2022 DataCenter 64bit CN",
		Platform: "WINDOWS", PlatformType: "WINDOWS", InstanceState: "RUNNING", LatestOperation: "StartInstances", LatestOperationState: "SUCCESS",
		LatestOperationRequestID: in.LatestOperationRequestID, LatestOperationStartedTime: in.LatestOperationStartedTime}
	if in != want {
		t.Errorf("instance with defaults = %+v, want %+v", in, want)
	}
}
