package runner_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
)

// TestCloudReadsEveryPage checks that a Cloud reads every page of the paged
// actions from the emulator, each page a call that took a rate slot of its
// own: the 150 tasks of one invocation (two pages of at most 100), and the
// reset verdicts for 7 blueprint IDs (two calls of at most 5) and for every
// blueprint the region offers (more than 100: two pages).
func TestCloudReadsEveryPage(t *testing.T) {
	t.Parallel()
	const region = "ap-guangzhou"
	instances, blueprints := emulator.GenerateFleet(150, emulator.FleetOptions{Seed: 1, Regions: []string{region}})
	for i := range 120 {
		blueprints = append(blueprints, emulator.Blueprint{ID: fmt.Sprintf("lhbp-%08d", i)})
	}
	emu, err := emulator.New(emulator.Config{
		Credentials: map[string]string{testSecretID: testSecretKey},
		Instances:   instances,
		Blueprints:  blueprints,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	log := new(callLog)
	ts := httptest.NewServer(log.handler(emu))
	client, err := lighthouse.New(lighthouse.Config{Endpoint: ts.URL, Credential: lighthouse.Credential{SecretID: testSecretID, SecretKey: testSecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		emu.Close()
		client.CloseIdleConnections()
		ts.Close()
	})
	cloud, err := runner.NewCloud(runner.CloudConfig{API: client, Shared: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	calls := func(action string) int { return emu.Stats().Actions[action].Calls }

	var ids []string
	for _, in := range instances {
		ids = append(ids, in.ID)
	}
	inv, err := cloud.RunCommand(ctx, region, lighthouse.RunCommandRequest{Content: []byte("true"), InstanceIDs: ids})
	if err != nil {
		t.Fatalf("RunCommand(150 instances) = %v", err)
	}
	tasks, err := cloud.InvocationTasks(ctx, region, inv)
	if err != nil {
		t.Fatalf("InvocationTasks(150 tasks) = %v", err)
	}
	var taskIDs []string
	for _, task := range tasks {
		taskIDs = append(taskIDs, task.InstanceID)
	}
	if diff := cmp.Diff(sorted(ids), sorted(taskIDs)); diff != "" {
		t.Errorf("InvocationTasks(150 tasks) instances mismatch (-want +got):\n%s", diff)
	}
	if n := calls(lighthouse.ActionDescribeInvocationTasks); n != 2 {
		t.Errorf("InvocationTasks(150 tasks) made %d calls, want 2 pages", n)
	}

	ask := []string{"lhbp-00000003", "lhbp-00000010", "lhbp-00000011", "lhbp-00000050", "lhbp-00000051", "lhbp-00000098", "lhbp-00000119"}
	rbs, err := cloud.ResetBlueprints(ctx, region, instances[0].ID, ask)
	if err != nil {
		t.Fatalf("ResetBlueprints(7 IDs) = %v", err)
	}
	if diff := cmp.Diff(ask, verdictIDs(rbs)); diff != "" {
		t.Errorf("ResetBlueprints(7 IDs) mismatch (-want +got):\n%s", diff)
	}
	if n := calls(lighthouse.ActionDescribeResetInstanceBlueprints); n != 2 {
		t.Errorf("ResetBlueprints(7 IDs) made %d calls, want 2 (5 IDs, then 2)", n)
	}

	rbs, err = cloud.ResetBlueprints(ctx, region, instances[0].ID, nil)
	if err != nil {
		t.Fatalf("ResetBlueprints(no IDs) = %v", err)
	}
	var offered []string
	for _, bp := range blueprints {
		if bp.Region == "" || bp.Region == region {
			offered = append(offered, bp.ID)
		}
	}
	if len(offered) <= lighthouse.MaxIDsPerCall {
		t.Fatalf("the region offers %d blueprints, want more than one page", len(offered))
	}
	if diff := cmp.Diff(sorted(offered), sorted(verdictIDs(rbs))); diff != "" {
		t.Errorf("ResetBlueprints(no IDs) mismatch (-want +got):\n%s", diff)
	}
	if n := calls(lighthouse.ActionDescribeResetInstanceBlueprints) - 2; n != 2 {
		t.Errorf("ResetBlueprints(no IDs) made %d calls, want 2 pages", n)
	}

	for _, action := range []string{lighthouse.ActionDescribeInvocationTasks, lighthouse.ActionDescribeResetInstanceBlueprints} {
		if n := log.callsWithSlots(t, action); n != calls(action) {
			t.Errorf("%s: the emulator got %d calls, the log %d", action, calls(action), n)
		}
	}
}

func verdictIDs(rbs []lighthouse.ResetInstanceBlueprint) []string {
	var ids []string
	for _, rb := range rbs {
		ids = append(ids, rb.BlueprintInfo.BlueprintID)
	}
	return ids
}

func sorted(s []string) []string {
	return slices.Sorted(slices.Values(s))
}

// callLog is a runner.SharedLimits whose slots are free, which logs, in
// order, the slots a Cloud takes and the calls that reach the emulator. It
// is safe for concurrent use.
type callLog struct {
	mu     sync.Mutex
	events []string // "slot <action>" or "call <action>"
}

func (l *callLog) add(kind, action string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, kind+" "+action)
}

// SlotSource returns action's slots, each logged.
func (l *callLog) SlotSource(action string, _ time.Duration) runner.SlotSource {
	return loggedSlots{log: l, action: action}
}

// Guard returns runner.DefaultGuard.
func (l *callLog) Guard() time.Duration { return runner.DefaultGuard }

// handler logs each call's action (X-TC-Action) and passes it to next.
func (l *callLog) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.add("call", r.Header.Get("X-TC-Action"))
		next.ServeHTTP(w, r)
	})
}

// callsWithSlots returns how many calls of action were logged, and fails
// the test for each that no slot of its own preceded: no slot was taken
// since the action's call before it.
func (l *callLog) callsWithSlots(t *testing.T, action string) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	calls, slots := 0, 0
	for _, e := range l.events {
		switch e {
		case "slot " + action:
			slots++
		case "call " + action:
			calls++
			if slots == 0 {
				t.Errorf("%s call %d went out without a slot of its own", action, calls)
			}
			slots = 0
		}
	}
	return calls
}

// loggedSlots are the slots of one action: free at once, and logged.
type loggedSlots struct {
	log    *callLog
	action string
}

func (s loggedSlots) Reserve(context.Context) (time.Duration, error) {
	s.log.add("slot", s.action)
	return 0, nil
}
