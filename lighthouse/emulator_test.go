package lighthouse

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// End-to-end tests against the emulator, over real HTTP with real signing,
// for the actions beyond the four the runner's tests cover.

const (
	emuSecretID  = "AKIDemulatortest"
	emuSecretKey = "emulator-test-key-NEVER-PRINTED"
	emuRoleARN   = "qcs::cam::uin/100000000001:roleName/emulator"
	emuBlueprint = "lhbp-aaaa1111"
	emuKeyPair   = "lhkp-kkkk1111"
)

// setupEmulator starts an emulator for cfg (its Credentials are set here)
// and returns a Client that assumes emuRoleARN through it.
func setupEmulator(t *testing.T, cfg emulator.Config, role Role) (*Client, *emulator.Server) {
	t.Helper()
	cfg.Credentials = map[string]string{emuSecretID: emuSecretKey}
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("emulator.New = %v", err)
	}
	t.Cleanup(emu.Close)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	c, err := New(Config{Endpoint: srv.URL, Credential: Credential{SecretID: emuSecretID, SecretKey: emuSecretKey}, Role: role})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, emu
}

// eventually calls check every 10ms until it reports done, failing the test
// after 10s.
func eventually(t *testing.T, what string, check func() (done bool)) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !check() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not done after 10s", what)
		}
	}
}

// TestEmulatorFleet selects instances by tag across regions, resets one with
// a key pair, waits for its agent and runs a command on it, all signed with
// a role's temporary key.
func TestEmulatorFleet(t *testing.T) {
	t.Parallel()
	prod := []Tag{{Key: "env", Value: "prod"}}
	c, emu := setupEmulator(t, emulator.Config{
		Instances: []emulator.Instance{
			{ID: "lhins-prod0001", Region: "ap-guangzhou", BlueprintID: emuBlueprint, Tags: []emulator.Tag{{Key: "env", Value: "prod"}}},
			{ID: "lhins-prod0002", Region: "ap-singapore", BlueprintID: emuBlueprint, Tags: []emulator.Tag{{Key: "env", Value: "prod"}}},
			{ID: "lhins-dev00001", Region: "ap-guangzhou", BlueprintID: emuBlueprint, Tags: []emulator.Tag{{Key: "env", Value: "dev"}}},
		},
		Blueprints:       []emulator.Blueprint{{ID: emuBlueprint}},
		KeyPairs:         []emulator.KeyPair{{ID: emuKeyPair, Name: "ops", Region: "ap-guangzhou"}},
		ResetDuration:    emulator.Duration{Min: time.Nanosecond},
		AgentOnlineAfter: time.Nanosecond,
		CommandDuration:  emulator.Duration{Min: time.Millisecond},
	}, Role{ARN: emuRoleARN, SessionName: "e2e"})
	ctx := t.Context()
	const region, id = "ap-guangzhou", "lhins-prod0001"

	key, err := c.CurrentCredential(ctx)
	if err != nil || key.SecretID == emuSecretID || key.Token == "" {
		t.Fatalf("CurrentCredential() = %v, %v; want a temporary key", key, err)
	}

	regions, err := c.DescribeRegions(ctx)
	if err != nil {
		t.Fatalf("DescribeRegions = %v", err)
	}
	if !slices.ContainsFunc(regions, func(r Region) bool { return r.Region == region && r.RegionState == RegionAvailable }) {
		t.Errorf("DescribeRegions = %+v, want %s available", regions, region)
	}

	resources, err := resourcesAll(ctx, c, []TagFilter{{TagKey: "env", TagValues: []string{"prod"}}})
	if err != nil {
		t.Fatalf("GetResources = %v", err)
	}
	var tagged []string
	for _, r := range resources {
		if r.Name.LighthouseInstance() {
			tagged = append(tagged, r.Name.Region+"/"+r.Name.ResourceID)
		}
	}
	slices.Sort(tagged)
	if diff := cmp.Diff([]string{"ap-guangzhou/lhins-prod0001", "ap-singapore/lhins-prod0002"}, tagged); diff != "" {
		t.Errorf("GetResources(env=prod) instances mismatch (-want +got):\n%s", diff)
	}

	insts, err := filterAll(ctx, c, region, []Filter{{Name: FilterTag("env"), Values: []string{"prod"}}})
	if err != nil {
		t.Fatalf("FilterInstances = %v", err)
	}
	if len(insts) != 1 || insts[0].InstanceID != id || insts[0].Region != region || !cmp.Equal(insts[0].Tags, prod) ||
		!strings.HasPrefix(insts[0].Zone, region) || len(insts[0].PrivateAddresses) != 1 {
		t.Errorf("FilterInstances(tag:env=prod) = %+v, want %s with its tags, zone and address", insts, id)
	}

	pairs, err := c.DescribeKeyPairs(ctx, region, []string{emuKeyPair})
	if err != nil || len(pairs) != 1 || pairs[0].KeyID != emuKeyPair || pairs[0].KeyName != "ops" {
		t.Fatalf("DescribeKeyPairs = %+v, %v; want %s", pairs, err, emuKeyPair)
	}

	requestID, err := c.ResetInstance(ctx, region, ResetInstanceRequest{
		InstanceID:         id,
		BlueprintID:        emuBlueprint,
		LoginConfiguration: &LoginConfiguration{KeyIDs: []string{emuKeyPair}},
	})
	if err != nil {
		t.Fatalf("ResetInstance = %v", err)
	}
	var in Instance
	eventually(t, "reset", func() bool {
		got, err := c.DescribeInstances(ctx, region, []string{id})
		if err != nil {
			t.Fatalf("DescribeInstances = %v", err)
		}
		in = got[0]
		return in.LatestOperationRequestID == requestID && in.LatestOperationState != OperationOperating
	})
	if in.LatestOperationState != OperationSuccess || !slices.Contains(in.LoginSettings.KeyIDs, emuKeyPair) {
		t.Errorf("after the reset: %s, key pairs %v; want SUCCESS with %s bound", in.LatestOperationState, in.LoginSettings.KeyIDs, emuKeyPair)
	}

	eventually(t, "agent online", func() bool {
		agents, err := c.DescribeAutomationAgentStatus(ctx, region, []string{id})
		if err != nil {
			t.Fatalf("DescribeAutomationAgentStatus = %v", err)
		}
		return len(agents) == 1 && agents[0].AgentStatus == AgentOnline
	})

	invocation, err := c.RunCommand(ctx, region, RunCommandRequest{Content: []byte("systemctl is-system-running"), InstanceIDs: []string{id}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("RunCommand = %v", err)
	}
	var task InvocationTask
	eventually(t, "command", func() bool {
		n, tasks, err := c.DescribeInvocationTasksPage(ctx, region, invocation, 0)
		if err != nil {
			t.Fatalf("DescribeInvocationTasksPage = %v", err)
		}
		if n != 1 || len(tasks) != 1 {
			t.Fatalf("DescribeInvocationTasksPage = TotalCount %d, %d tasks; want 1", n, len(tasks))
		}
		task = tasks[0]
		return task.Done()
	})
	out, err := task.TaskResult.DecodedOutput()
	if task.TaskStatus != TaskSuccess || task.TaskResult.ExitCode != 0 || task.InstanceID != id || err != nil || !strings.Contains(string(out), id) {
		t.Errorf("task = %+v, output %q (%v); want SUCCESS, exit 0, output naming %s", task, out, err, id)
	}

	stats := emu.Stats()
	if n := len(stats.AssumedRoles); n != 1 {
		t.Errorf("emulator saw %d AssumeRole calls, want 1", n)
	}
	if log := stats.ResetLog[id]; len(log) != 1 || !slices.Equal(log[0].KeyIDs, []string{emuKeyPair}) {
		t.Errorf("emulator reset log %+v, want one reset binding %s", log, emuKeyPair)
	}
	if inv := stats.Invocations; len(inv) != 1 {
		t.Errorf("emulator saw %d invocations, want 1", len(inv))
	}
}

// TestEmulatorRoleExpiry moves the emulator's clock past the temporary
// key's end while the client's stands still: the emulator refuses the
// token, and the client assumes the role again and resends. Then both
// clocks move, and the client replaces the key before it expires.
func TestEmulatorRoleExpiry(t *testing.T) {
	t.Parallel()
	start := time.Now()
	emuClock, clientClock := &fakeClock{now: start}, &fakeClock{now: start}
	c, emu := setupEmulator(t, emulator.Config{
		Now:                emuClock.Now,
		CredentialLifetime: 3 * time.Minute,
		Instances:          []emulator.Instance{{ID: "lhins-expiry01", BlueprintID: emuBlueprint}},
	}, Role{ARN: emuRoleARN})
	c.now = clientClock.Now
	ctx := t.Context()
	describe := func(what string) {
		t.Helper()
		if _, err := c.DescribeInstances(ctx, "ap-guangzhou", []string{"lhins-expiry01"}); err != nil {
			t.Fatalf("DescribeInstances %s = %v", what, err)
		}
	}

	describe("first")
	emuClock.Advance(3*time.Minute + 5*time.Second)
	describe("with a key the emulator holds expired")
	if n := len(emu.Stats().AssumedRoles); n != 2 {
		t.Errorf("after a refused token: %d AssumeRole calls, want 2", n)
	}
	if s := emu.Stats().Actions[ActionDescribeInstances]; s.Calls != 3 || s.Errors != 1 {
		t.Errorf("DescribeInstances calls %+v, want 3 with 1 refused", s)
	}

	// The second key lasts until start+6m05s by the emulator's clock, which
	// the client's catches up with; it is replaced with a minute left.
	clientClock.Advance(3*time.Minute + 5*time.Second)
	emuClock.Advance(time.Minute + 10*time.Second)
	clientClock.Advance(time.Minute + 10*time.Second)
	describe("near the second key's end")
	if n := len(emu.Stats().AssumedRoles); n != 3 {
		t.Errorf("near expiry: %d AssumeRole calls, want 3", n)
	}
	if s := emu.Stats().Actions[ActionDescribeInstances]; s.Errors != 1 {
		t.Errorf("DescribeInstances calls %+v, want no new refusal", s)
	}
}

// TestEmulatorLoginRefusals checks that the emulator's answers to bad login
// settings are permanent for the instance and never show the password.
func TestEmulatorLoginRefusals(t *testing.T) {
	t.Parallel()
	c, _ := setupEmulator(t, emulator.Config{
		Instances: []emulator.Instance{{ID: "lhins-login001", BlueprintID: emuBlueprint}},
		KeyPairs:  []emulator.KeyPair{{ID: "lhkp-sgp00001", Region: "ap-singapore"}},
	}, Role{})
	const password = "short1!"
	for _, lc := range []LoginConfiguration{
		{KeyIDs: []string{"lhkp-sgp00001"}}, // another region's
		{Password: password},
	} {
		_, err := c.ResetInstance(t.Context(), "ap-guangzhou", ResetInstanceRequest{InstanceID: "lhins-login001", LoginConfiguration: &lc})
		ae, ok := errors.AsType[*APIError](err)
		if !ok || ae.Class != ClassPermanent {
			t.Errorf("ResetInstance(%v) = %v, want a permanent *APIError", lc, err)
			continue
		}
		t.Logf("ResetInstance(%v): %v", lc, ae)
		if strings.Contains(ae.Error(), password) {
			t.Errorf("ResetInstance error %q shows the password", ae)
		}
	}
}

// TestEmulatorFilterPaging checks that FilterInstances reads every page.
func TestEmulatorFilterPaging(t *testing.T) {
	t.Parallel()
	instances, blueprints := emulator.GenerateFleet(250, emulator.FleetOptions{Seed: 7})
	c, _ := setupEmulator(t, emulator.Config{Instances: instances, Blueprints: blueprints}, Role{})
	got, err := filterAll(context.Background(), c, "ap-guangzhou", []Filter{{Name: FilterInstanceState, Values: []string{StateRunning, StateStopped}}})
	if err != nil {
		t.Fatalf("FilterInstances = %v", err)
	}
	want := 0
	for _, in := range instances {
		if in.State == "" || in.State == StateRunning || in.State == StateStopped {
			want++
		}
	}
	if len(got) != want || want <= MaxIDsPerCall {
		t.Errorf("FilterInstances = %d instances, want %d (more than a page)", len(got), want)
	}
}
