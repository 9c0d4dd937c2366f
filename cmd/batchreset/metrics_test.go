package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
)

// TestMetrics scrapes the metrics of a real (small) run: the runner's
// counters and the API call latency by action and result.
func TestMetrics(t *testing.T) {
	t.Parallel()
	instances, blueprints := emulator.GenerateFleet(3, emulator.FleetOptions{Seed: 3, OtherPlatform: 1})
	emu, err := emulator.New(emulator.Config{
		Credentials:   map[string]string{"AKIDmetrics": "metrics-secret"},
		Instances:     instances,
		Blueprints:    blueprints,
		ResetDuration: emulator.Duration{Min: 50 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(func() { emu.Close(); srv.Close() })
	client, err := lighthouse.New(lighthouse.Config{Endpoint: srv.URL, Credential: lighthouse.Credential{SecretID: "AKIDmetrics", SecretKey: "metrics-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	// Every call goes through the one API path, which tells the metrics.
	cloud, err := runner.NewCloud(runner.CloudConfig{API: client, Observe: m.call})
	if err != nil {
		t.Fatal(err)
	}
	var st runner.Stats
	m.observe(&st)
	ctx := context.Background()
	for _, in := range instances {
		slot, err := cloud.WaitReset(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cloud.Reset(ctx, slot, in.Region, lighthouse.ResetInstanceRequest{InstanceID: in.ID, BlueprintID: blueprints[0].ID}) // one is refused: another platform
	}
	if _, err := cloud.Describe(ctx, instances[0].Region, []string{instances[0].ID}); err != nil {
		t.Fatal(err)
	}

	scrape := httptest.NewServer(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	defer scrape.Close()
	resp, err := http.Get(scrape.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`batchreset_api_call_duration_seconds_count{action="ResetInstance",result="ok"} 2`,
		`batchreset_api_call_duration_seconds_count{action="ResetInstance",result="InvalidParameterValue.NotAllowToChangePlatformType"} 1`,
		`batchreset_api_call_duration_seconds_count{action="DescribeInstances",result="ok"} 1`,
		"batchreset_resets_succeeded_total 0",
		"batchreset_resets_in_flight 0",
		"batchreset_throttled_total 0",
		"batchreset_limiter_wait_seconds_total",
		"batchreset_run_paused 0",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
