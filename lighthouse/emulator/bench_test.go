package emulator_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// BenchmarkServer measures the emulator's throughput in calls per second
// through real HTTP with signed requests and rate limits lifted, from
// parallel clients: DescribeInstances of 100 IDs, and ResetInstance of
// instances in turn (resets finish at once, so no instance is ever busy).
func BenchmarkServer(b *testing.B) {
	const n = 10_000
	instances, blueprints := emulator.GenerateFleet(n, emulator.FleetOptions{Seed: 1})
	emu, err := emulator.New(emulator.Config{
		Credentials:   map[string]string{testSecretID: testSecretKey},
		Instances:     instances,
		Blueprints:    blueprints,
		RateLimits:    noLimits(),
		ResetDuration: emulator.Duration{Min: time.Nanosecond},
		Seed:          1,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	b.Cleanup(func() {
		emu.Close()
		srv.Close()
	})
	idList := make([]string, 100)
	for i := range idList {
		idList[i] = instances[i*(n/100)].ID
	}
	target := blueprints[0].ID

	describeBody := mustJSON(b, map[string]any{"InstanceIds": idList, "Limit": 100})
	tests := []struct {
		name string
		body func(i int64) (action, body string)
	}{
		{"DescribeInstances", func(int64) (string, string) { return "DescribeInstances", describeBody }},
		{"ResetInstance", func(i int64) (string, string) {
			return "ResetInstance", fmt.Sprintf(`{"InstanceId":%q,"BlueprintId":%q}`, instances[i%n].ID, target)
		}},
	}
	for _, tt := range tests {
		// HTTP signs each call and discards the answer unread: it measures
		// the emulator. SDK adds the official client, whose JSON decoding
		// of a 100-instance answer costs more than the emulator's work.
		b.Run(tt.name+"/HTTP", func(b *testing.B) {
			b.ReportAllocs()
			var next atomic.Int64
			client := srv.Client()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					action, body := tt.body(next.Add(1))
					req, err := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-TC-Action", action)
					req.Header.Set("X-TC-Version", "2020-03-24")
					req.Header.Set("X-TC-Region", testRegion)
					emulator.SignTC3(req, []byte(body), testSecretID, testSecretKey, time.Now(), req.URL.Host, "lighthouse")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || resp.ContentLength == 0 {
						b.Errorf("%s: status %d", action, resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
		b.Run(tt.name+"/SDK", func(b *testing.B) {
			b.ReportAllocs()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				c := newClient(b, srv, testSecretID, testSecretKey, testRegion, nil)
				for pb.Next() {
					action, body := tt.body(next.Add(1))
					req := tchttp.NewCommonRequest("lighthouse", "2020-03-24", action)
					if err := req.SetActionParameters(body); err != nil {
						b.Error(err)
						return
					}
					if err := c.Send(req, tchttp.NewCommonResponse()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
	if st := emu.Stats().Actions; st["ResetInstance"].Errors+st["DescribeInstances"].Errors > 0 {
		b.Errorf("calls failed: %+v", st)
	}
}

// BenchmarkNew measures building an emulator for a generated fleet: state
// is computed lazily, so a large fleet costs only its records.
func BenchmarkNew(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			instances, blueprints := emulator.GenerateFleet(n, emulator.FleetOptions{Seed: 1})
			cfg := emulator.Config{Credentials: map[string]string{testSecretID: testSecretKey}, Instances: instances, Blueprints: blueprints, Seed: 1}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := emulator.New(cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
