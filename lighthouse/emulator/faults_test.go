package emulator_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// faultSignal is a slog.Handler that reports each injected fault, so a test
// can wait for a call to reach its fault instead of sleeping.
type faultSignal chan struct{}

func (h faultSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h faultSignal) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h faultSignal) WithGroup(string) slog.Handler            { return h }
func (h faultSignal) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "emulator fault" {
		select {
		case h <- struct{}{}:
		default:
		}
	}
	return nil
}

func TestFaultDropAfterApply(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{
		Instances:  fleet(1),
		Blueprints: testBlueprints(),
		Faults:     []emulator.Fault{{Action: "ResetInstance", Kind: emulator.FaultDropAfterApply}},
	})
	const id = "lhins-t0000000"
	_, err := reset(t, b.client, id, bpTarget)
	if code(err) != "ClientError.NetworkError" {
		t.Fatalf("ResetInstance with a dropped connection = %v, want ClientError.NetworkError", err)
	}
	st := b.emu.Stats()
	if len(st.Resets[id]) != 1 {
		t.Fatalf("Stats().Resets[%s] = %v, want the reset applied before the drop", id, st.Resets[id])
	}
	if in := describe(t, b.client, id); in.LatestOperation != "ResetInstance" || in.LatestOperationRequestID != st.Resets[id][0] {
		t.Errorf("instance after the dropped reset = %s %s, want ResetInstance %s", in.LatestOperation, in.LatestOperationRequestID, st.Resets[id][0])
	}
	want := emulator.ActionStats{Calls: 1, Faults: 1, MaxPerSecond: 1}
	if diff := cmp.Diff(want, st.Actions["ResetInstance"]); diff != "" {
		t.Errorf("Stats().Actions[ResetInstance] mismatch (-want +got):\n%s", diff)
	}
}

func TestFaultUnavailable(t *testing.T) {
	t.Parallel()
	for name, status := range map[string]int{"DefaultBadGateway": 0, "ServiceUnavailable": http.StatusServiceUnavailable} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, emulator.Config{
				Instances:  fleet(1),
				Blueprints: testBlueprints(),
				Faults:     []emulator.Fault{{Kind: emulator.FaultUnavailable, StatusCode: status}},
			})
			_, err := reset(t, b.client, "lhins-t0000000", bpTarget)
			if !strings.HasPrefix(code(err), "ClientError.") {
				t.Errorf("ResetInstance during an outage = %v, want a ClientError", err)
			}
			raw := rawRequest{action: "DescribeInstances", body: "{}"}.do(t, b.srv)
			wantStatus := orDefaultInt(status, http.StatusBadGateway)
			if raw.status != wantStatus || !strings.HasPrefix(raw.header.Get("Content-Type"), "text/html") || !strings.Contains(string(raw.body), "<html>") {
				t.Errorf("raw call during an outage = %d %q %s, want %d with an HTML page", raw.status, raw.header.Get("Content-Type"), raw.body, wantStatus)
			}
			st := b.emu.Stats()
			if len(st.Resets) != 0 {
				t.Errorf("Stats().Resets = %v, want nothing applied", st.Resets)
			}
			if got := st.Actions["ResetInstance"]; got.Errors != 1 || got.Faults != 1 {
				t.Errorf("Stats().Actions[ResetInstance] = %+v, want 1 error, 1 fault", got)
			}
		})
	}
}

func orDefaultInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	signal := make(faultSignal, 1)
	b := setup(t, emulator.Config{
		Instances:  fleet(1),
		Blueprints: testBlueprints(),
		Faults:     []emulator.Fault{{Kind: emulator.FaultLatency, Latency: time.Hour}},
		Logger:     slog.New(signal),
	})
	const id = "lhins-t0000000"

	t.Run("AfterApply", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		err := sendContext(ctx, t, b.client, "2020-03-24", "ResetInstance", map[string]any{"InstanceId": id, "BlueprintId": bpTarget}, nil)
		if code(err) != "ClientError.NetworkError" || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ResetInstance slower than its deadline = %v, want ClientError.NetworkError wrapping context.DeadlineExceeded", err)
		}
		if got := b.emu.Stats().Resets[id]; len(got) != 1 {
			t.Errorf("Stats().Resets[%s] = %v, want the reset applied before the delay", id, got)
		}
		<-signal
	})

	t.Run("EndsOnClose", func(t *testing.T) {
		result := make(chan error, 1)
		go func() { result <- send(t, b.client, "DescribeInstances", nil, nil) }()
		select {
		case <-signal:
		case <-time.After(10 * time.Second):
			t.Fatal("the call never reached its latency fault")
		}
		b.emu.Close()
		select {
		case err := <-result:
			if err != nil {
				t.Errorf("delayed DescribeInstances after Close = %v, want success", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not end the latency wait")
		}
	})
}

func TestFaultError(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{
		Instances:  fleet(1),
		Blueprints: testBlueprints(),
		Faults: []emulator.Fault{
			{Action: "ResetInstance", Kind: emulator.FaultError, Code: "InternalError.DescribeInstanceStatus", Message: "Try again later."},
			{Action: "DescribeBlueprints", Kind: emulator.FaultError, Code: "FailedOperation"},
		},
	})
	const id = "lhins-t0000000"
	before := describe(t, b.client, id)
	_, err := reset(t, b.client, id, bpTarget)
	if code(err) != "InternalError.DescribeInstanceStatus" || !strings.Contains(err.Error(), "Try again later.") {
		t.Errorf("ResetInstance with an error fault = %v, want InternalError.DescribeInstanceStatus: Try again later.", err)
	}
	if err := send(t, b.client, "DescribeBlueprints", nil, nil); code(err) != "FailedOperation" {
		t.Errorf("DescribeBlueprints with an error fault = %v, want FailedOperation", err)
	}
	if diff := cmp.Diff(before, describe(t, b.client, id)); diff != "" {
		t.Errorf("instance after a failed reset changed (-before +after):\n%s", diff)
	}
	st := b.emu.Stats()
	if len(st.Resets) != 0 {
		t.Errorf("Stats().Resets = %v, want nothing applied", st.Resets)
	}
	if got := st.Actions["ResetInstance"]; got.Errors != 1 || got.Faults != 1 || got.Rejected != 0 {
		t.Errorf("Stats().Actions[ResetInstance] = %+v, want 1 error, 1 fault", got)
	}
}

func TestFaultThrottle(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{
		Instances:  fleet(2),
		Blueprints: testBlueprints(),
		Faults: []emulator.Fault{
			{Action: "ResetInstance", Kind: emulator.FaultThrottle, Instances: []string{"lhins-t0000001"}, Code: "RequestLimitExceeded.UinLimitExceeded"},
			{Action: "ResetInstance", Kind: emulator.FaultThrottle},
		},
	})
	for id, want := range map[string]string{"lhins-t0000000": "RequestLimitExceeded", "lhins-t0000001": "RequestLimitExceeded.UinLimitExceeded"} {
		if _, err := reset(t, b.client, id, bpTarget); code(err) != want {
			t.Errorf("ResetInstance(%s) under a throttle fault = %v, want %s", id, err, want)
		}
	}
	st := b.emu.Stats()
	if len(st.Resets) != 0 {
		t.Errorf("Stats().Resets = %v, want nothing applied", st.Resets)
	}
	want := emulator.ActionStats{Calls: 2, Rejected: 2, Faults: 2, MaxPerSecond: 2}
	if diff := cmp.Diff(want, st.Actions["ResetInstance"]); diff != "" {
		t.Errorf("Stats().Actions[ResetInstance] mismatch (-want +got):\n%s", diff)
	}
}

func TestFaultMatching(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{
		Instances:  fleet(3),
		Blueprints: testBlueprints(),
		RateLimits: noLimits(),
		Faults:     []emulator.Fault{{Kind: emulator.FaultError, Code: "FailedOperation", Instances: []string{"lhins-t0000001"}}},
	})

	t.Run("Instances", func(t *testing.T) {
		tests := []struct {
			action string
			params map[string]any
			want   string
		}{
			{"ResetInstance", map[string]any{"InstanceId": "lhins-t0000000", "BlueprintId": bpTarget}, ""},
			{"ResetInstance", map[string]any{"InstanceId": "lhins-t0000001", "BlueprintId": bpTarget}, "FailedOperation"},
			{"DescribeInstances", map[string]any{"InstanceIds": []string{"lhins-t0000002", "lhins-t0000001"}}, "FailedOperation"},
			{"DescribeInstances", nil, ""}, // names no instance
			{"DescribeResetInstanceBlueprints", map[string]any{"InstanceId": "lhins-t0000001"}, "FailedOperation"},
			{"DescribeBlueprints", nil, ""},
		}
		for _, tt := range tests {
			if err := send(t, b.client, tt.action, tt.params, nil); code(err) != tt.want {
				t.Errorf("%s(%v) = %v, want code %q", tt.action, tt.params, err, tt.want)
			}
		}
	})

	t.Run("Probability", func(t *testing.T) {
		if err := b.emu.SetFaults([]emulator.Fault{{Action: "DescribeBlueprints", Kind: emulator.FaultThrottle, Probability: 0.5}}); err != nil {
			t.Fatal(err)
		}
		const n = 200
		throttled := 0
		for range n {
			switch err := send(t, b.client, "DescribeBlueprints", nil, nil); code(err) {
			case "RequestLimitExceeded":
				throttled++
			case "":
			default:
				t.Fatalf("DescribeBlueprints error: %v", err)
			}
		}
		if throttled < n/4 || throttled > 3*n/4 {
			t.Errorf("%d of %d calls throttled at probability 0.5", throttled, n)
		}
	})

	t.Run("SetFaults", func(t *testing.T) {
		storm := []emulator.Fault{{Action: "DescribeInstances", Kind: emulator.FaultThrottle}}
		if err := b.emu.SetFaults(storm); err != nil {
			t.Fatal(err)
		}
		if err := send(t, b.client, "DescribeInstances", nil, nil); code(err) != "RequestLimitExceeded" {
			t.Errorf("DescribeInstances during a storm = %v, want RequestLimitExceeded", err)
		}
		if err := send(t, b.client, "DescribeBlueprints", nil, nil); err != nil {
			t.Errorf("DescribeBlueprints during a DescribeInstances storm = %v, want success", err)
		}
		if err := b.emu.SetFaults(nil); err != nil {
			t.Fatal(err)
		}
		if err := send(t, b.client, "DescribeInstances", nil, nil); err != nil {
			t.Errorf("DescribeInstances after the storm = %v, want success", err)
		}
		for _, bad := range []emulator.Fault{
			{Kind: "explode"},
			{Kind: emulator.FaultError},
			{Kind: emulator.FaultLatency},
			{Kind: emulator.FaultUnavailable, StatusCode: 404},
			{Kind: emulator.FaultThrottle, Probability: -0.1},
			{Kind: emulator.FaultThrottle, Action: "RebootInstances"},
		} {
			if err := b.emu.SetFaults([]emulator.Fault{bad}); err == nil {
				t.Errorf("SetFaults(%+v) succeeded, want an error", bad)
			}
		}
		if len(b.emu.Faults()) != 0 {
			t.Errorf("Faults() after invalid SetFaults = %v, want none", b.emu.Faults())
		}
	})
}
