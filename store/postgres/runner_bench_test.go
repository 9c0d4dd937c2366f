package postgres_test

import (
	"cmp"
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
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

// Benchmark credentials; the emulator checks every signature.
const (
	benchSecretID  = "AKIDpostgresbench"
	benchSecretKey = "postgres-bench-secret-key-0123456789"
)

// BenchmarkSharedLimit runs several runners at once on one run, as several
// processes would: each has its own Store (connection pool), Queue and API
// client, and all share the account-wide limit through the Postgres
// buckets, ResetInstance at the real 10/s and DescribeInstances at half of
// its 100/s. They reset 300 instances of one emulator enforcing the real
// limits, resets lasting 1–2s, 3% ending FAILED. It reports
//
//   - accept/limit: accepted ResetInstance per second across all runners,
//     over the submission phase (first to last accepted call), divided by
//     the limit;
//   - rejected: ResetInstance calls the emulator answered
//     RequestLimitExceeded;
//   - max-per-s: the most ResetInstance calls the emulator saw in one
//     one-second window;
//   - makespan-s: from the runners' start until the last one returned;
//   - busiest-share: the share of ResetInstance calls the busiest runner
//     sent (1/runners when the work is spread evenly).
func BenchmarkSharedLimit(b *testing.B) {
	const (
		jobs  = 300
		limit = lighthouse.ResetInstanceRateLimit
		guard = 20 * time.Millisecond // as cmd/batchreset passes
	)
	for _, runners := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("runners=%d", runners), func(b *testing.B) {
			var acceptRatio, rejected, maxPerSecond, makespan, share float64
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
					ResetDuration: emulator.Duration{Min: time.Second, Max: 2 * time.Second},
					FailureRate:   0.03,
					Seed:          7,
				})
				if err != nil {
					b.Fatal(err)
				}
				ts := httptest.NewServer(emu)

				ctx := context.Background()
				clock := &acceptClock{}
				rs := make([]*runner.Runner, runners)
				var cleanup []func()
				for i := range rs {
					s, err := postgres.Open(ctx, url)
					if err != nil {
						b.Fatal(err)
					}
					if i == 0 {
						if _, err := s.Import(ctx, "bench", js, time.Time{}); err != nil {
							b.Fatal(err)
						}
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
						API:          clockedAPI{API: client, clock: clock},
						Store:        s.Queue("bench", fmt.Sprintf("bench-runner-%d", i), time.Minute),
						Shared:       s.Limits("bench-account"),
						Rate:         limit,
						Guard:        guard,
						PollInterval: time.Second,
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()

				start := time.Now()
				var g errgroup.Group
				calls := make([]int64, runners)
				for i, r := range rs {
					g.Go(func() error {
						sum, err := r.Run(ctx)
						calls[i] = sum.Calls
						return err
					})
				}
				err = g.Wait()
				elapsed := time.Since(start)

				b.StopTimer()
				if err != nil {
					b.Fatalf("Run() error = %v", err)
				}
				st := emu.Stats().Actions[lighthouse.ActionResetInstance]
				for _, f := range cleanup {
					f()
				}
				ts.Close()
				emu.Close()
				acceptRatio += clock.rate() / limit
				rejected += float64(st.Rejected)
				maxPerSecond += float64(st.MaxPerSecond)
				makespan += elapsed.Seconds()
				share += float64(slices.Max(calls)) / float64(max(st.Calls, 1))
				b.StartTimer()
			}
			runs := float64(b.N)
			b.ReportMetric(acceptRatio/runs, "accept/limit")
			b.ReportMetric(rejected/runs, "rejected")
			b.ReportMetric(maxPerSecond/runs, "max-per-s")
			b.ReportMetric(makespan/runs, "makespan-s")
			b.ReportMetric(share/runs, "busiest-share")
		})
	}
}

// acceptClock records when the first and the last accepted ResetInstance
// came back, across every runner using it.
type acceptClock struct {
	mu          sync.Mutex
	accepted    int
	first, last time.Time
}

// rate returns accepted calls per second over the submission phase: the
// accepted-1 gaps between the first and the last.
func (c *acceptClock) rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.accepted < 2 {
		return 0
	}
	return float64(c.accepted-1) / c.last.Sub(c.first).Seconds()
}

// clockedAPI is one runner's API with its accepted resets timed by clock.
type clockedAPI struct {
	runner.API
	clock *acceptClock
}

func (a clockedAPI) ResetInstance(ctx context.Context, region string, req lighthouse.ResetInstanceRequest) (string, error) {
	id, err := a.API.ResetInstance(ctx, region, req)
	if err == nil {
		now := time.Now()
		c := a.clock
		c.mu.Lock()
		if c.accepted == 0 {
			c.first = now
		}
		c.last = now
		c.accepted++
		c.mu.Unlock()
	}
	return id, err
}
