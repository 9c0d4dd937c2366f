package postgres_test

import (
	"cmp"
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// BenchmarkRunnersUnlimited runs 1 and 4 runners, each with its own Store,
// Queue and API client as separate processes would have, over one run of
// 20,000 jobs against an emulator with its limits lifted and resets ending
// at once: what the database costs when nothing else limits a run. It
// reports
//
//   - jobs/s: jobs finished per second across all runners, from the start
//     until the last runner returned;
//   - stmts/job: statements (database round trips) of every runner per job,
//     claims, saves, renewals, rate-bucket reservations and counts included;
//   - bucket-stmts/call: rate-bucket statements per API call.
func BenchmarkRunnersUnlimited(b *testing.B) {
	const jobs = 20_000
	for _, runners := range []int{1, 4} {
		b.Run(fmt.Sprintf("runners=%d", runners), func(b *testing.B) {
			var jobsPerSec, stmtsPerJob, bucketPerCall float64
			for b.Loop() {
				b.StopTimer()
				url := postgrestest.NewSchema(b)
				instances, blueprints := emulator.GenerateFleet(jobs, emulator.FleetOptions{Seed: 1})
				js := make([]store.Job, len(instances))
				for i, in := range instances {
					js[i] = store.Job{InstanceID: in.ID, BlueprintID: blueprints[0].ID, Region: cmp.Or(in.Region, "ap-guangzhou")}
				}
				emu, err := emulator.New(emulator.Config{
					Credentials:   map[string]string{benchSecretID: benchSecretKey},
					Instances:     instances,
					Blueprints:    blueprints,
					ResetDuration: emulator.Duration{Min: time.Nanosecond},
					RateLimits: map[string]int{
						lighthouse.ActionResetInstance:                   -1,
						lighthouse.ActionDescribeInstances:               -1,
						lighthouse.ActionDescribeBlueprints:              -1,
						lighthouse.ActionDescribeResetInstanceBlueprints: -1,
					},
					Seed: 7,
				})
				if err != nil {
					b.Fatal(err)
				}
				ts := httptest.NewServer(emu)

				ctx := context.Background()
				rs := make([]*runner.Runner, runners)
				counters := make([]*postgres.Counter, runners)
				var cleanup []func()
				for i := range rs {
					s, c, err := postgres.OpenCounted(ctx, url)
					if err != nil {
						b.Fatal(err)
					}
					counters[i] = c
					if i == 0 {
						if _, err := s.Import(ctx, "bench", js, time.Time{}); err != nil {
							b.Fatal(err)
						}
						c.Reset()
					}
					client, err := lighthouse.New(lighthouse.Config{
						Endpoint:   ts.URL,
						Credential: lighthouse.Credential{SecretID: benchSecretID, SecretKey: benchSecretKey},
						Timeout:    10 * time.Second,
					})
					if err != nil {
						b.Fatal(err)
					}
					cleanup = append(cleanup, client.CloseIdleConnections, s.Close)
					rs[i], err = runner.New(runner.Config{
						API:          client,
						Store:        s.Queue("bench", fmt.Sprintf("bench-runner-%d", i), time.Minute),
						Shared:       s.Limits("bench-account"),
						Rate:         1e6,
						DescribeRate: 1e6,
						Workers:      64,
						PollInterval: 100 * time.Millisecond,
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()

				start := time.Now()
				var g errgroup.Group
				done := make([]int, runners)
				for i, r := range rs {
					g.Go(func() error {
						sum, err := r.Run(ctx)
						done[i] = sum.Totals[store.StatusSucceeded]
						return err
					})
				}
				err = g.Wait()
				elapsed := time.Since(start)

				b.StopTimer()
				if err != nil {
					b.Fatalf("Run() error = %v", err)
				}
				total := 0
				for _, n := range done {
					total += n
				}
				if total != jobs {
					b.Errorf("runners succeeded %d of %d jobs", total, jobs)
				}
				var stmts, bucket int64
				for _, c := range counters {
					stmts += c.Statements()
					bucket += c.BucketStatements()
				}
				st := emu.Stats().Actions
				calls := st[lighthouse.ActionResetInstance].Calls + st[lighthouse.ActionDescribeInstances].Calls
				for _, f := range cleanup {
					f()
				}
				ts.Close()
				emu.Close()
				jobsPerSec += float64(jobs) / elapsed.Seconds()
				stmtsPerJob += float64(stmts) / float64(jobs)
				bucketPerCall += float64(bucket) / float64(max(calls, 1))
				b.StartTimer()
			}
			runs := float64(b.N)
			b.ReportMetric(jobsPerSec/runs, "jobs/s")
			b.ReportMetric(stmtsPerJob/runs, "stmts/job")
			b.ReportMetric(bucketPerCall/runs, "bucket-stmts/call")
		})
	}
}
