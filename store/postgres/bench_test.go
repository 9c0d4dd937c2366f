package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

// BenchmarkImport imports 100,000 jobs per iteration, each into a new run.
func BenchmarkImport(b *testing.B) {
	const rows = 100_000
	tb := setup(b)
	jobs := makeJobs(0, rows)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		n, err := tb.store.Import(ctx, fmt.Sprintf("bench-%d", i), jobs, time.Time{})
		if err != nil || n != rows {
			b.Fatalf("Import() = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkClaimSave measures a job's whole life in the store as a runner
// lives it: claim, save the intent (submitting), save the request ID
// (submitted), save the outcome (succeeded). It reports the statements per
// job and the 99th-percentile latency of one statement and of one job, with
// one worker and with eight sharing a Queue as a runner's workers do.
func BenchmarkClaimSave(b *testing.B) {
	for _, workers := range []int{1, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			tb := setup(b)
			ctx := context.Background()
			// The jobs are imported first, so the loop below uses b.N, not
			// b.Loop, whose iteration count is not known in advance.
			if _, err := tb.store.Import(ctx, "bench", makeJobs(0, b.N), time.Time{}); err != nil {
				b.Fatal(err)
			}
			q := tb.store.Queue("bench", "bench-runner", time.Minute)

			var (
				mu      sync.Mutex
				stmts   int
				stmtLat []time.Duration
				jobLat  []time.Duration
			)
			life := func() error {
				var lat [4]time.Duration
				n := 0
				start := time.Now()
				var j store.Job
				for {
					t0 := time.Now()
					got, _, err := q.Claim(ctx, 1)
					if err != nil {
						return err
					}
					if len(got) == 1 {
						lat[0] = time.Since(t0)
						n++
						j = got[0]
						break
					}
					// Every unclaimed job was locked by another worker's
					// claim: Claim also ran its waiting query. Try again.
					n += 2
				}
				for i, s := range []store.Status{store.StatusSubmitting, store.StatusSubmitted, store.StatusSucceeded} {
					j.Status = s
					t0 := time.Now()
					if err := q.Save(ctx, &j); err != nil {
						return err
					}
					lat[i+1] = time.Since(t0)
					n++
				}
				total := time.Since(start)
				mu.Lock()
				stmts += n
				stmtLat = append(stmtLat, lat[:]...)
				jobLat = append(jobLat, total)
				mu.Unlock()
				return nil
			}

			b.ReportAllocs()
			b.ResetTimer()
			if workers == 1 {
				for range b.N {
					if err := life(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(max(1, workers/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := life(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(stmts)/float64(len(jobLat)), "stmts/job")
			b.ReportMetric(float64(p99(stmtLat).Microseconds()), "p99-stmt-µs")
			b.ReportMetric(float64(p99(jobLat).Microseconds()), "p99-job-µs")
			b.ReportMetric(float64(len(jobLat))/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// p99 returns the 99th percentile of d.
func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[(len(d)*99)/100]
}
