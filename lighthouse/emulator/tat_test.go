package emulator_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

type agentInfo struct {
	InstanceId, AgentStatus, LastHeartbeatTime, Environment string
}

func agents(t *testing.T, b *bundle, params map[string]any) ([]agentInfo, error) {
	t.Helper()
	var r struct {
		AutomationAgentSet []agentInfo
		TotalCount         int
	}
	err := sendService(t.Context(), t, b.client, "tat", tatVersion, "DescribeAutomationAgentStatus", params, &r)
	return r.AutomationAgentSet, err
}

func agentOf(t *testing.T, b *bundle, id string) agentInfo {
	t.Helper()
	set, err := agents(t, b, map[string]any{"InstanceIds": []string{id}})
	if err != nil || len(set) != 1 {
		t.Fatalf("DescribeAutomationAgentStatus(%s) = %v, %v; want one agent", id, set, err)
	}
	return set[0]
}

// TestAgentAfterReset follows the agent through a reset: Online before,
// Offline while it runs and until AgentOnlineAfter past its end, then
// Online with a heartbeat after the reset; lost agents stay Offline.
func TestAgentAfterReset(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	instances := fleet(3)
	instances[2].State = "STOPPED"
	b := setup(t, emulator.Config{Instances: instances, Blueprints: testBlueprints(), Now: clock.Now,
		ResetDuration: emulator.Duration{Min: 20 * time.Second}, AgentOnlineAfter: 15 * time.Second,
		AgentLostInstances: []string{"lhins-t0000001"}})
	const ok, lost, stopped = "lhins-t0000000", "lhins-t0000001", "lhins-t0000002"
	if a := agentOf(t, b, ok); a.AgentStatus != "Online" || a.Environment != "Linux" {
		t.Errorf("agent before any reset = %+v, want Online on Linux", a)
	}
	if a := agentOf(t, b, stopped); a.AgentStatus != "Offline" {
		t.Errorf("agent of a STOPPED instance = %+v, want Offline", a)
	}
	for _, id := range []string{ok, lost} {
		if _, err := reset(t, b.client, id, bpTarget); err != nil {
			t.Fatal(err)
		}
	}
	resetEnds := clock.Now().Add(20 * time.Second)
	for _, step := range []struct {
		after time.Duration
		want  string
	}{{0, "Offline"}, {20 * time.Second, "Offline"}, {14 * time.Second, "Offline"}, {time.Second, "Online"}} {
		clock.Add(step.after)
		a := agentOf(t, b, ok)
		if a.AgentStatus != step.want {
			t.Errorf("agent %v after the reset's start = %s, want %s", clock.Now().Sub(resetEnds.Add(-20*time.Second)), a.AgentStatus, step.want)
		}
		if step.want == "Online" {
			hb, err := time.Parse("2006-01-02T15:04:05Z", a.LastHeartbeatTime)
			if err != nil || !hb.After(resetEnds) {
				t.Errorf("LastHeartbeatTime %q once Online, want ISO 8601 after the reset ended (%v)", a.LastHeartbeatTime, resetEnds)
			}
		}
	}
	if a := agentOf(t, b, lost); a.AgentStatus != "Offline" {
		t.Errorf("lost agent after the reset = %+v, want Offline for good", a)
	}
	set, err := agents(t, b, map[string]any{"Filters": []any{filterOf("agent-status", "Offline")}})
	if err != nil || len(set) != 2 {
		t.Errorf("DescribeAutomationAgentStatus(agent-status Offline) = %v, %v; want the lost and the stopped", set, err)
	}
}

func TestAgentLossRate(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const n = 200
	b := setup(t, emulator.Config{Instances: fleet(n), Blueprints: testBlueprints(), Now: clock.Now, RateLimits: noLimits(),
		ResetDuration: emulator.Duration{Min: time.Second}, AgentOnlineAfter: time.Second, AgentLossRate: 0.25})
	for _, id := range ids(n) {
		if _, err := reset(t, b.client, id, bpTarget); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(3 * time.Second)
	offline := 0
	for offset := 0; offset < n; offset += 100 {
		set, err := agents(t, b, map[string]any{"Offset": offset, "Limit": 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range set {
			if a.AgentStatus == "Offline" {
				offline++
			}
		}
	}
	if offline < 25 || offline > 75 {
		t.Errorf("%d of %d agents lost with AgentLossRate 0.25, want about 50", offline, n)
	}
}

type invocationTask struct {
	InvocationId, InvocationTaskId, CommandId, TaskStatus, InstanceId string
	TaskResult                                                        struct {
		ExitCode    int
		Output      string
		ExecEndTime *string
		Dropped     int
	}
	CommandDocument struct {
		Content     string
		CommandType string
		Timeout     int
	}
}

func tasks(t *testing.T, b *bundle, params map[string]any) ([]invocationTask, int) {
	t.Helper()
	var r struct {
		TotalCount        int
		InvocationTaskSet []invocationTask
	}
	if err := sendService(t.Context(), t, b.client, "tat", tatVersion, "DescribeInvocationTasks", params, &r); err != nil {
		t.Fatalf("DescribeInvocationTasks(%v) error: %v", params, err)
	}
	return r.InvocationTaskSet, r.TotalCount
}

func runCommand(t *testing.T, b *bundle, params map[string]any) (string, error) {
	t.Helper()
	var r struct{ CommandId, InvocationId string }
	err := sendService(t.Context(), t, b.client, "tat", tatVersion, "RunCommand", params, &r)
	return r.InvocationId, err
}

// TestRunCommand runs a probe on four instances: one succeeds, one exits
// non-zero, one times out, and its tasks finish on the clock.
func TestRunCommand(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, emulator.Config{Instances: fleet(4), Blueprints: testBlueprints(), Now: clock.Now,
		CommandDuration:         emulator.Duration{Min: 2 * time.Second},
		CommandFailInstances:    []string{"lhins-t0000001"},
		CommandTimeoutInstances: []string{"lhins-t0000002"},
		CommandOutputFunc: func(id string, script []byte, exit int) string {
			if id == "lhins-t0000003" {
				return strings.Repeat("x", 30<<10)
			}
			return fmt.Sprintf("%s ran %q: %d", id, script, exit)
		}})
	script := "systemctl is-active sshd"
	content := base64.StdEncoding.EncodeToString([]byte(script))
	inv, err := runCommand(t, b, map[string]any{"Content": content, "InstanceIds": ids(4), "Timeout": 5, "CommandName": "probe"})
	if err != nil || !strings.HasPrefix(inv, "inv-") {
		t.Fatalf("RunCommand = %q, %v; want an inv- ID", inv, err)
	}
	byInvocation := map[string]any{"Filters": []any{filterOf("invocation-id", inv)}, "HideOutput": false}
	running, total := tasks(t, b, byInvocation)
	if total != 4 {
		t.Fatalf("DescribeInvocationTasks(invocation %s) = %d tasks, want 4", inv, total)
	}
	for _, tk := range running {
		if tk.TaskStatus != "RUNNING" || tk.TaskResult.ExecEndTime != nil || tk.CommandDocument.Content != content || tk.CommandDocument.Timeout != 5 {
			t.Errorf("task at once = %+v, want RUNNING, no end time, the command's document", tk)
		}
	}
	clock.Add(2 * time.Second)
	type outcome struct {
		Status string
		Exit   int
		Output string
	}
	got := map[string]outcome{}
	for _, tk := range mustTasks(t, b, byInvocation) {
		out, err := base64.StdEncoding.DecodeString(tk.TaskResult.Output)
		if err != nil {
			t.Errorf("task %s Output %q is not base64", tk.InvocationTaskId, tk.TaskResult.Output)
		}
		if len(out) > 100 {
			out = []byte(fmt.Sprintf("%d bytes, %d dropped", len(out), tk.TaskResult.Dropped))
		}
		got[tk.InstanceId] = outcome{tk.TaskStatus, tk.TaskResult.ExitCode, string(out)}
	}
	want := map[string]outcome{
		"lhins-t0000000": {"SUCCESS", 0, `lhins-t0000000 ran "systemctl is-active sshd": 0`},
		"lhins-t0000001": {"FAILED", 1, `lhins-t0000001 ran "systemctl is-active sshd": 1`},
		"lhins-t0000002": {"RUNNING", 0, ""},
		"lhins-t0000003": {"SUCCESS", 0, fmt.Sprintf("%d bytes, %d dropped", 24<<10, 6<<10)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tasks after 2s mismatch (-want +got):\n%s", diff)
	}
	clock.Add(3 * time.Second)
	if tk := mustTasks(t, b, map[string]any{"Filters": []any{filterOf("instance-id", "lhins-t0000002")}}); len(tk) != 1 || tk[0].TaskStatus != "TIMEOUT" || tk[0].TaskResult.Output != "" {
		t.Errorf("timed-out task after its 5 s timeout = %+v, want TIMEOUT with the output hidden (HideOutput defaults to true)", tk)
	}

	st := b.emu.Stats().Invocations
	if len(st) != 1 || st[0].InvocationID != inv || st[0].Script != script || st[0].CommandType != "SHELL" || st[0].Timeout != 5*time.Second || len(st[0].InstanceIDs) != 4 {
		t.Errorf("Stats().Invocations = %+v, want the one invocation", st)
	}
}

// TestCommandFailBeforeReset: commands on an instance of
// CommandFailBeforeResetInstances exit 1 on the old system and run as usual
// once it has been reset; the ledger says when each invocation was
// accepted, when each task ends, and which ran on the old system, and when
// each reset was accepted and ends.
func TestCommandFailBeforeReset(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, emulator.Config{Instances: fleet(2), Blueprints: testBlueprints(), Now: clock.Now,
		ResetDuration: emulator.Duration{Min: 10 * time.Second}, AgentOnlineAfter: time.Second,
		CommandDuration:                 emulator.Duration{Min: 2 * time.Second},
		CommandFailBeforeResetInstances: []string{"lhins-t0000000"}})
	content := base64.StdEncoding.EncodeToString([]byte("drain"))
	status := func(inv, id string) string {
		tk := mustTasks(t, b, map[string]any{"Filters": []any{filterOf("invocation-id", inv), filterOf("instance-id", id)}})
		if len(tk) != 1 {
			t.Fatalf("tasks of %s on %s = %+v, want one", inv, id, tk)
		}
		return tk[0].TaskStatus
	}
	start := clock.Now()
	before, err := runCommand(t, b, map[string]any{"Content": content, "InstanceIds": ids(2), "Timeout": 5})
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Second)
	if a, b := status(before, "lhins-t0000000"), status(before, "lhins-t0000001"); a != "FAILED" || b != "SUCCESS" {
		t.Errorf("on the old system: %s, %s; want FAILED for the listed instance, SUCCESS for the other", a, b)
	}
	resetAt := clock.Now()
	if _, err := reset(t, b.client, "lhins-t0000000", bpTarget); err != nil {
		t.Fatal(err)
	}
	clock.Add(12 * time.Second)
	after, err := runCommand(t, b, map[string]any{"Content": content, "InstanceIds": []string{"lhins-t0000000"}, "Timeout": 5})
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Second)
	if s := status(after, "lhins-t0000000"); s != "SUCCESS" {
		t.Errorf("on the new system: %s, want SUCCESS", s)
	}
	st := b.emu.Stats()
	invs := st.Invocations
	if len(invs) != 2 || !invs[0].Created.Equal(start) || !invs[0].Ends["lhins-t0000000"].Equal(start.Add(2*time.Second)) ||
		len(invs[0].OldSystem) != 2 || len(invs[1].OldSystem) != 0 {
		t.Errorf("Stats().Invocations = %+v, want the drain on the old system of both, then one on the new", invs)
	}
	rs := st.ResetLog["lhins-t0000000"]
	if len(rs) != 1 || !rs[0].At.Equal(resetAt) || !rs[0].Ends.Equal(resetAt.Add(10*time.Second)) {
		t.Errorf("ResetLog = %+v, want the reset accepted at %s, ending 10s later", rs, resetAt)
	}
}

func mustTasks(t *testing.T, b *bundle, params map[string]any) []invocationTask {
	t.Helper()
	set, _ := tasks(t, b, params)
	return set
}

func TestRunCommandErrors(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	instances := append(fleet(2), emulator.Instance{ID: "lhins-stopped0", BlueprintID: bpCurrent, State: "STOPPED"},
		emulator.Instance{ID: "lhins-sh000000", BlueprintID: bpCurrent, Region: "ap-shanghai"})
	b := setup(t, emulator.Config{Instances: instances, Blueprints: testBlueprints(), Now: clock.Now, RateLimits: noLimits(),
		ResetDuration: emulator.Duration{Min: time.Hour}})
	if _, err := reset(t, b.client, "lhins-t0000001", bpTarget); err != nil {
		t.Fatal(err)
	}
	ok := base64.StdEncoding.EncodeToString([]byte("true"))
	many := make([]string, 201)
	for i := range many {
		many[i] = fmt.Sprintf("lhins-m%07d", i)
	}
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"OK", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-t0000000"}}, ""},
		{"NoContent", map[string]any{"InstanceIds": []string{"lhins-t0000000"}}, "MissingParameter"},
		{"NotBase64", map[string]any{"Content": "not base64!", "InstanceIds": []string{"lhins-t0000000"}}, "InvalidParameterValue.CommandContentInvalid"},
		{"TooBig", map[string]any{"Content": base64.StdEncoding.EncodeToString(make([]byte, 64<<10)), "InstanceIds": []string{"lhins-t0000000"}}, "InvalidParameterValue.CommandContentInvalid"},
		{"NoInstances", map[string]any{"Content": ok}, "MissingParameter"},
		{"TooManyInstances", map[string]any{"Content": ok, "InstanceIds": many}, "InvalidParameterValue.Range"},
		{"MalformedInstance", map[string]any{"Content": ok, "InstanceIds": []string{"i-123"}}, "InvalidParameterValue.InvalidInstanceId"},
		{"UnknownInstance", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-t0000000", "lhins-zzzzzzzz"}}, "ResourceNotFound.InstanceNotFound"},
		{"OtherRegion", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-sh000000"}}, "ResourceNotFound.InstanceNotFound"},
		{"Stopped", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-stopped0"}}, "ResourceUnavailable.InstanceStateNotRunning"},
		{"AgentOfflineDuringReset", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-t0000001"}}, "ResourceUnavailable.AgentStatusNotOnline"},
		{"Timeout0", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-t0000000"}, "Timeout": 0}, "InvalidParameterValue.Range"},
		{"Timeout86401", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-t0000000"}, "Timeout": 86401}, "InvalidParameterValue.Range"},
		{"CommandType", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-t0000000"}, "CommandType": "PYTHON"}, "InvalidParameterValue"},
		{"PowerShell", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-t0000000"}, "CommandType": "POWERSHELL"}, ""},
		{"LongName", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-t0000000"}, "CommandName": strings.Repeat("n", 61)}, "InvalidParameterValue.InvalidCommandName"},
		{"Unknown", map[string]any{"Content": ok, "InstanceIds": []string{"lhins-t0000000"}, "InstanceId": "x"}, "UnknownParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := runCommand(t, b, tt.params); code(err) != tt.want {
				t.Errorf("RunCommand(%s) = %v, want code %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestTATDescribeErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(1), RateLimits: noLimits(), Blueprints: testBlueprints()})
	tests := []struct {
		action string
		params map[string]any
		want   string
	}{
		{"DescribeAutomationAgentStatus", map[string]any{"InstanceIds": ids(100)}, ""},
		{"DescribeAutomationAgentStatus", map[string]any{"InstanceIds": ids(101)}, "InvalidParameterValue.Range"},
		{"DescribeAutomationAgentStatus", map[string]any{"InstanceIds": []string{"x"}}, "InvalidParameterValue.InvalidInstanceId"},
		{"DescribeAutomationAgentStatus", map[string]any{"InstanceIds": []string{"lhins-t0000000"}, "Filters": []any{filterOf("agent-status", "Online")}}, "InvalidParameter.ConflictParameter"},
		{"DescribeAutomationAgentStatus", map[string]any{"Filters": []any{filterOf("zone", "x")}}, "InvalidParameterValue.InvalidFilter"},
		{"DescribeAutomationAgentStatus", map[string]any{"Filters": []any{filterOf("agent-status", "a", "b", "c", "d", "e", "f")}}, "InvalidParameterValue.InvalidFilter"},
		{"DescribeAutomationAgentStatus", map[string]any{"Limit": 101}, "InvalidParameterValue.Range"},
		{"DescribeInvocationTasks", map[string]any{"InvocationTaskIds": []string{"invt-zzzzzzzz"}}, ""},
		{"DescribeInvocationTasks", map[string]any{"InvocationTaskIds": []string{"inv-zzzzzzzz"}}, "InvalidParameterValue.InvalidInvocationTaskId"},
		{"DescribeInvocationTasks", map[string]any{"InvocationTaskIds": []string{"invt-zzzzzzzz"}, "Filters": []any{filterOf("instance-id", "lhins-t0000000")}}, "InvalidParameter.ConflictParameter"},
		{"DescribeInvocationTasks", map[string]any{"Filters": []any{filterOf("task-status", "SUCCESS")}}, "InvalidParameterValue.InvalidFilter"},
		{"DescribeInvocationTasks", map[string]any{"Offset": -1}, "InvalidParameterValue.Range"},
		{"DescribeInvocationTasks", map[string]any{"HideOutput": "no"}, "InvalidParameter"},
	}
	for _, tt := range tests {
		if err := sendService(t.Context(), t, b.client, "tat", tatVersion, tt.action, tt.params, nil); code(err) != tt.want {
			t.Errorf("%s(%v) = %v, want code %q", tt.action, tt.params, err, tt.want)
		}
	}
}

// TestInvocationTasksPaging pages 250 tasks of two invocations.
func TestInvocationTasksPaging(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(150), Blueprints: testBlueprints(), RateLimits: noLimits()})
	content := base64.StdEncoding.EncodeToString([]byte("uptime"))
	first, err := runCommand(t, b, map[string]any{"Content": content, "InstanceIds": ids(150)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runCommand(t, b, map[string]any{"Content": content, "InstanceIds": ids(100)}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for offset := 0; offset < 300; offset += 100 {
		set, total := tasks(t, b, map[string]any{"Offset": offset, "Limit": 100})
		if total != 250 {
			t.Fatalf("TotalCount = %d, want 250", total)
		}
		for _, tk := range set {
			seen[tk.InvocationTaskId] = true
		}
	}
	if len(seen) != 250 {
		t.Errorf("paging saw %d distinct tasks, want 250", len(seen))
	}
	if _, total := tasks(t, b, map[string]any{"Filters": []any{filterOf("invocation-id", first)}}); total != 150 {
		t.Errorf("tasks of the first invocation = %d, want 150", total)
	}
}
