package emulator_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

func TestInitialOperation(t *testing.T) {
	t.Parallel()
	instances := fleet(1)
	instances = append(instances, emulator.Instance{ID: "lhins-busy0000", BlueprintID: bpCurrent, BusyFor: time.Minute})
	b := setup(t, emulator.Config{Instances: instances, Blueprints: testBlueprints()})

	in := describe(t, b.client, "lhins-t0000000")
	if in.LatestOperation != "StartInstances" || in.LatestOperationState != "SUCCESS" || !requestIDPattern.MatchString(in.LatestOperationRequestID) {
		t.Errorf("new instance's latest operation = %s %s %q, want StartInstances SUCCESS with a RequestId",
			in.LatestOperation, in.LatestOperationState, in.LatestOperationRequestID)
	}
	if _, err := time.Parse("2006-01-02T15:04:05Z", in.LatestOperationStartedTime); err != nil {
		t.Errorf("LatestOperationStartedTime %q is not ISO 8601 UTC: %v", in.LatestOperationStartedTime, err)
	}
	want := instance{InstanceID: "lhins-t0000000", BlueprintID: bpCurrent, Zone: "ap-guangzhou-3", OsName: "CentOS 7.6 64bit",
		Platform: "CENTOS", PlatformType: "LINUX_UNIX", InstanceState: "RUNNING", LatestOperation: "StartInstances", LatestOperationState: "SUCCESS",
		LatestOperationRequestID: in.LatestOperationRequestID, LatestOperationStartedTime: in.LatestOperationStartedTime}
	if diff := cmp.Diff(want, in); diff != "" {
		t.Errorf("DescribeInstances mismatch (-want +got):\n%s", diff)
	}
	if again := describe(t, b.client, "lhins-t0000000"); again != in {
		t.Errorf("DescribeInstances is not stable: %+v, then %+v", in, again)
	}

	busy := describe(t, b.client, "lhins-busy0000")
	if busy.LatestOperation != "RebootInstances" || busy.LatestOperationState != "OPERATING" {
		t.Errorf("busy instance's latest operation = %s %s, want RebootInstances OPERATING", busy.LatestOperation, busy.LatestOperationState)
	}
}

func TestResetLifecycle(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	instances := fleet(3)
	instances[2].State = "STOPPED"
	b := setup(t, emulator.Config{
		Instances:     instances,
		Blueprints:    testBlueprints(),
		ResetDuration: emulator.Duration{Min: 10 * time.Second, Max: 10 * time.Second},
		FailInstances: []string{"lhins-t0000001"},
		Now:           clock.Now,
	})
	const ok, failing, stopped = "lhins-t0000000", "lhins-t0000001", "lhins-t0000002"

	started := clock.Now()
	first, err := reset(t, b.client, ok, bpTarget)
	if err != nil {
		t.Fatalf("ResetInstance(%s) error: %v", ok, err)
	}
	if !requestIDPattern.MatchString(first) {
		t.Errorf("ResetInstance RequestId %q is not a lowercase UUID v4", first)
	}
	operating := instance{InstanceID: ok, BlueprintID: bpCurrent, Zone: "ap-guangzhou-3", OsName: "CentOS 7.6 64bit", Platform: "CENTOS",
		PlatformType: "LINUX_UNIX", InstanceState: "RUNNING", LatestOperation: "ResetInstance", LatestOperationState: "OPERATING",
		LatestOperationRequestID: first, LatestOperationStartedTime: started.UTC().Format("2006-01-02T15:04:05Z")}
	if diff := cmp.Diff(operating, describe(t, b.client, ok)); diff != "" {
		t.Errorf("instance right after ResetInstance mismatch (-want +got):\n%s", diff)
	}
	if _, err := reset(t, b.client, ok, bpTarget); code(err) != "UnsupportedOperation.LatestOperationUnfinished" {
		t.Errorf("second ResetInstance while OPERATING = %v, want UnsupportedOperation.LatestOperationUnfinished", err)
	}

	clock.Add(10*time.Second - time.Nanosecond)
	if diff := cmp.Diff(operating, describe(t, b.client, ok)); diff != "" {
		t.Errorf("instance just before the reset ends mismatch (-want +got):\n%s", diff)
	}
	clock.Add(time.Nanosecond)
	done := operating
	done.LatestOperationState, done.BlueprintID, done.OsName, done.Platform = "SUCCESS", bpTarget, "Ubuntu Server 22.04 LTS 64bit", "UBUNTU"
	if diff := cmp.Diff(done, describe(t, b.client, ok)); diff != "" {
		t.Errorf("instance after the reset mismatch (-want +got):\n%s", diff)
	}

	// Once finished, the instance can be reset again, back to the old image.
	second, err := reset(t, b.client, ok, bpCurrent)
	if err != nil {
		t.Fatalf("ResetInstance(%s) after success error: %v", ok, err)
	}
	clock.Add(10 * time.Second)
	if in := describe(t, b.client, ok); in.LatestOperationRequestID != second || in.LatestOperationState != "SUCCESS" || in.BlueprintID != bpCurrent {
		t.Errorf("instance after the second reset = %+v, want SUCCESS of %s on %s", in, second, bpCurrent)
	}

	// A failed reset changes nothing but the operation.
	failed, err := reset(t, b.client, failing, bpTarget)
	if err != nil {
		t.Fatalf("ResetInstance(%s) error: %v", failing, err)
	}
	clock.Add(10 * time.Second)
	if in := describe(t, b.client, failing); in.LatestOperationState != "FAILED" || in.LatestOperationRequestID != failed || in.BlueprintID != bpCurrent {
		t.Errorf("instance after a failed reset = %+v, want FAILED of %s, still on %s", in, failed, bpCurrent)
	}

	// A stopped instance can be reset and is RUNNING afterwards.
	if _, err := reset(t, b.client, stopped, bpTarget); err != nil {
		t.Fatalf("ResetInstance(%s) error: %v", stopped, err)
	}
	if in := describe(t, b.client, stopped); in.InstanceState != "STOPPED" {
		t.Errorf("stopped instance during its reset is %s, want STOPPED", in.InstanceState)
	}
	clock.Add(10 * time.Second)
	if in := describe(t, b.client, stopped); in.InstanceState != "RUNNING" || in.LatestOperationState != "SUCCESS" {
		t.Errorf("stopped instance after its reset = %s %s, want RUNNING SUCCESS", in.InstanceState, in.LatestOperationState)
	}

	got := b.emu.Stats().Resets
	if diff := cmp.Diff([]string{first, second}, got[ok]); diff != "" {
		t.Errorf("Stats().Resets[%s] mismatch (-want +got):\n%s", ok, diff)
	}
	if len(got) != 3 || len(got[failing]) != 1 || got[failing][0] != failed {
		t.Errorf("Stats().Resets = %v, want 3 instances, %s once with %s", got, failing, failed)
	}
}

func TestResetDurationRange(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const n = 40
	b := setup(t, emulator.Config{
		Instances:     fleet(n),
		Blueprints:    testBlueprints(),
		ResetDuration: emulator.Duration{Min: 2 * time.Second, Max: 4 * time.Second},
		RateLimits:    noLimits(),
		Now:           clock.Now,
	})
	for _, id := range ids(n) {
		if _, err := reset(t, b.client, id, bpTarget); err != nil {
			t.Fatalf("ResetInstance(%s) error: %v", id, err)
		}
	}
	count := func() (operating int) {
		var r describeInstancesResponse
		if err := send(t, b.client, "DescribeInstances", map[string]any{"Limit": 100}, &r); err != nil {
			t.Fatal(err)
		}
		for _, in := range r.InstanceSet {
			if in.LatestOperationState == "OPERATING" {
				operating++
			}
		}
		return operating
	}
	clock.Add(2*time.Second - time.Nanosecond)
	if got := count(); got != n {
		t.Errorf("before Min, %d of %d resets are OPERATING, want all", got, n)
	}
	clock.Add(time.Second)
	if got := count(); got == 0 || got == n {
		t.Errorf("between Min and Max, %d of %d resets are OPERATING, want some", got, n)
	}
	clock.Add(time.Second + time.Nanosecond)
	if got := count(); got != 0 {
		t.Errorf("after Max, %d of %d resets are OPERATING, want none", got, n)
	}
}

func TestResetFailureRate(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, emulator.Config{
		Instances:     fleet(2),
		Blueprints:    testBlueprints(),
		ResetDuration: emulator.Duration{Min: time.Second},
		FailureRate:   1,
		Now:           clock.Now,
	})
	for _, id := range ids(2) {
		if _, err := reset(t, b.client, id, bpTarget); err != nil {
			t.Fatalf("ResetInstance(%s) error: %v", id, err)
		}
	}
	clock.Add(time.Second)
	for _, id := range ids(2) {
		if in := describe(t, b.client, id); in.LatestOperationState != "FAILED" || in.BlueprintID != bpCurrent {
			t.Errorf("%s after a reset with FailureRate 1 = %s on %s, want FAILED on %s", id, in.LatestOperationState, in.BlueprintID, bpCurrent)
		}
	}
}

func TestVisibilityLag(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, emulator.Config{
		Instances:     fleet(1),
		Blueprints:    testBlueprints(),
		ResetDuration: emulator.Duration{Min: 10 * time.Second},
		VisibilityLag: 5 * time.Second,
		Now:           clock.Now,
	})
	const id = "lhins-t0000000"
	before := describe(t, b.client, id)
	requestID, err := reset(t, b.client, id, bpTarget)
	if err != nil {
		t.Fatal(err)
	}
	// Within the lag DescribeInstances still shows the previous operation…
	if diff := cmp.Diff(before, describe(t, b.client, id)); diff != "" {
		t.Errorf("instance within the visibility lag mismatch (-before +got):\n%s", diff)
	}
	var stopped describeInstancesResponse
	if err := send(t, b.client, "DescribeInstances", map[string]any{"Filters": []any{map[string]any{"Name": "instance-state", "Values": []string{"RUNNING"}}}}, &stopped); err != nil || stopped.TotalCount != 1 {
		t.Errorf("DescribeInstances(instance-state RUNNING) within the lag = %d, %v; want 1", stopped.TotalCount, err)
	}
	// …but ResetInstance already sees the reset.
	if _, err := reset(t, b.client, id, bpTarget); code(err) != "UnsupportedOperation.LatestOperationUnfinished" {
		t.Errorf("second ResetInstance within the lag = %v, want UnsupportedOperation.LatestOperationUnfinished", err)
	}
	clock.Add(5 * time.Second)
	if in := describe(t, b.client, id); in.LatestOperation != "ResetInstance" || in.LatestOperationState != "OPERATING" || in.LatestOperationRequestID != requestID {
		t.Errorf("instance after the lag = %s %s %s, want ResetInstance OPERATING %s", in.LatestOperation, in.LatestOperationState, in.LatestOperationRequestID, requestID)
	}
	clock.Add(5 * time.Second)
	if in := describe(t, b.client, id); in.LatestOperationState != "SUCCESS" || in.BlueprintID != bpTarget {
		t.Errorf("instance after the reset = %s on %s, want SUCCESS on %s", in.LatestOperationState, in.BlueprintID, bpTarget)
	}
}

func TestBusyInstance(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	instances := fleet(1)
	instances[0].BusyFor = 30 * time.Second
	b := setup(t, emulator.Config{Instances: instances, Blueprints: testBlueprints(), Now: clock.Now})
	const id = "lhins-t0000000"
	if _, err := reset(t, b.client, id, bpTarget); code(err) != "UnsupportedOperation.LatestOperationUnfinished" {
		t.Errorf("ResetInstance on a busy instance = %v, want UnsupportedOperation.LatestOperationUnfinished", err)
	}
	clock.Add(30 * time.Second)
	if in := describe(t, b.client, id); in.LatestOperation != "RebootInstances" || in.LatestOperationState != "SUCCESS" {
		t.Errorf("busy instance after BusyFor = %s %s, want RebootInstances SUCCESS", in.LatestOperation, in.LatestOperationState)
	}
	if _, err := reset(t, b.client, id, bpTarget); err != nil {
		t.Errorf("ResetInstance after BusyFor = %v, want success", err)
	}
}
