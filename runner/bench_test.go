package runner_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// Benchmark credentials; the emulator checks every signature.
const (
	benchSecretID  = "AKIDrunnerbench"
	benchSecretKey = "runner-bench-secret-key-0123456789"
)

// benchEnv is one benchmark run's real parts: an emulator over real HTTP, a
// signing client and the jobs of its fleet. The CSV store is opened by the
// run itself.
type benchEnv struct {
	emu    *emulator.Server
	client *lighthouse.Client
	jobs   []store.Job
	close  func()
}

// newBenchEnv builds a fleet of n instances and an emulator for it; edit
// adjusts the emulator's Config. Call close when the run is over.
func newBenchEnv(b *testing.B, n int, regions []string, edit func(*emulator.Config)) *benchEnv {
	return newBenchEnvWrapped(b, n, regions, edit, nil)
}

// newBenchEnvWrapped is newBenchEnv with wrap, if set, between the client
// and the emulator (a network path, say).
func newBenchEnvWrapped(b *testing.B, n int, regions []string, edit func(*emulator.Config), wrap func(http.Handler) http.Handler) *benchEnv {
	b.Helper()
	instances, blueprints := emulator.GenerateFleet(n, emulator.FleetOptions{Seed: 1, Regions: regions})
	jobs := make([]store.Job, len(instances))
	for i, in := range instances {
		jobs[i] = store.Job{ID: int64(i + 2), InstanceID: in.ID, BlueprintID: blueprints[0].ID, Region: in.Region, Status: store.StatusPending}
	}
	cfg := emulator.Config{
		Credentials: map[string]string{benchSecretID: benchSecretKey},
		Instances:   instances,
		Blueprints:  blueprints,
		Seed:        7,
	}
	if edit != nil {
		edit(&cfg)
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var h http.Handler = emu
	if wrap != nil {
		h = wrap(emu)
	}
	ts := httptest.NewServer(h)
	client, err := lighthouse.New(lighthouse.Config{
		Endpoint:   ts.URL,
		Credential: lighthouse.Credential{SecretID: benchSecretID, SecretKey: benchSecretKey},
		Timeout:    10 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{emu: emu, client: client, jobs: jobs, close: func() {
		client.CloseIdleConnections()
		ts.Close()
		emu.Close()
	}}
}

// openStore opens a fresh crash-safe CSV journal for the jobs in dir.
func (e *benchEnv) openStore(b *testing.B, dir string) *csvstore.Store {
	b.Helper()
	return openCSV(b, filepath.Join(dir, "results.csv.state"), e.jobs)
}

// acceptClock is the runner's API with a stopwatch on ResetInstance: it
// records when the first and the last accepted call came back, which bounds
// the submission phase as the API saw it.
type acceptClock struct {
	runner.API

	mu          sync.Mutex
	accepted    int
	first, last time.Time
}

func (a *acceptClock) ResetInstance(ctx context.Context, region string, req lighthouse.ResetInstanceRequest) (string, error) {
	id, err := a.API.ResetInstance(ctx, region, req)
	if err == nil {
		now := time.Now()
		a.mu.Lock()
		if a.accepted == 0 {
			a.first = now
		}
		a.last = now
		a.accepted++
		a.mu.Unlock()
	}
	return id, err
}

// rate returns accepted calls per second over the submission phase: the
// accepted-1 gaps between the first and the last.
func (a *acceptClock) rate() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.accepted < 2 {
		return 0
	}
	return float64(a.accepted-1) / a.last.Sub(a.first).Seconds()
}

// BenchmarkRunAtLimit runs a fleet at the real limit: the emulator and the
// runner both at 10 ResetInstance/s, resets lasting 2–5s with 3% ending
// FAILED, the default poll interval (5s) and worker count, and the CSV
// journal. It reports
//
//   - accept/limit: accepted ResetInstance per second over the submission
//     phase (first to last accepted call) divided by the limit;
//   - rejected/call: calls the emulator answered RequestLimitExceeded, as a
//     fraction of all ResetInstance calls;
//   - makespan-s, and makespan/bound: Run's wall time over the lower bound
//     (N−1)/limit + the longest reset + one poll interval;
//   - describe/reset: DescribeInstances calls per job;
//   - failed/job: the share of resets that ended FAILED.
//
// N=2000 takes about four minutes.
func BenchmarkRunAtLimit(b *testing.B) {
	const (
		limit    = lighthouse.ResetInstanceRateLimit
		resetMin = 2 * time.Second
		resetMax = 5 * time.Second
		poll     = 5 * time.Second // runner.Config's default, stated for the bound
	)
	for _, tc := range []struct{ n, regions int }{{300, 1}, {2000, 1}, {300, 2}, {1000, 2}, {300, 4}, {1000, 4}} {
		n := tc.n
		name := fmt.Sprintf("N=%d", n)
		if tc.regions > 1 {
			name += fmt.Sprintf("/regions=%d", tc.regions)
		}
		regions := []string{"ap-guangzhou", "ap-shanghai", "ap-singapore", "eu-frankfurt"}[:tc.regions]
		b.Run(name, func(b *testing.B) {
			var acceptRatio, rejected, makespan, bound, describes, failed float64
			for b.Loop() {
				b.StopTimer()
				env := newBenchEnv(b, n, regions, func(c *emulator.Config) {
					c.RateLimits = map[string]int{lighthouse.ActionResetInstance: limit}
					c.ResetDuration = emulator.Duration{Min: resetMin, Max: resetMax}
					c.FailureRate = 0.03
				})
				st := env.openStore(b, b.TempDir())
				api := &acceptClock{API: env.client}
				r, err := runner.New(runner.Config{API: api, Store: st, Rate: limit})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()

				start := time.Now()
				sum, err := r.Run(context.Background())
				elapsed := time.Since(start)

				b.StopTimer()
				if err != nil {
					b.Fatalf("Run() error = %v", err)
				}
				if err := st.Close(); err != nil {
					b.Fatal(err)
				}
				stats := env.emu.Stats().Actions
				env.close()
				rs := stats[lighthouse.ActionResetInstance]
				lower := time.Duration(float64(n-1)/limit*float64(time.Second)) + resetMax + poll
				acceptRatio += api.rate() / limit
				rejected += float64(rs.Rejected) / float64(max(rs.Calls, 1))
				makespan += elapsed.Seconds()
				bound += elapsed.Seconds() / lower.Seconds()
				describes += float64(stats[lighthouse.ActionDescribeInstances].Calls) / float64(n)
				failed += float64(sum.Totals[store.StatusFailed]) / float64(n)
				b.StartTimer()
			}
			runs := float64(b.N)
			b.ReportMetric(acceptRatio/runs, "accept/limit")
			b.ReportMetric(rejected/runs, "rejected/call")
			b.ReportMetric(makespan/runs, "makespan-s")
			b.ReportMetric(bound/runs, "makespan/bound")
			b.ReportMetric(describes/runs, "describe/reset")
			b.ReportMetric(failed/runs, "failed/job")
		})
	}
}

// BenchmarkRunUnlimited measures the runner's own throughput: the
// emulator's limits are lifted, resets finish at once, and the runner runs
// at an effectively unlimited rate with 64 workers and a 1s poll, journaling
// every step to the CSV store exactly as in production (the intent is
// fsynced before every call; concurrent saves share an fsync). The emulator,
// the HTTP server and both ends of every signed call share the process, and
// its CPU. It reports
//
//   - jobs/s: jobs finished per second of Run;
//   - cpu-µs/job: CPU time (user and system, emulator included) per job,
//     which unlike jobs/s does not depend on what else the machine runs:
//     cores available ÷ cpu-µs/job bounds jobs/s;
//   - cpu-cores: that CPU time per second of Run;
//   - peak-rss-MB: the process's peak resident set (VmHWM) during Run,
//     above its resident set when Run started, emulator included;
//   - peak-heap-MB: the largest heap in use sampled during Run, garbage and
//     emulator included;
//   - emulator-MB: the live heap the emulator holds after the run (fleet,
//     state and the ledger of every reset), with the runner, the store and
//     the jobs gone;
//   - runner-live-MB: the largest live heap (as of a collection) during Run
//     less emulator-MB: the runner, the store and the job list. It is a
//     lower bound: the emulator is counted at its largest.
func BenchmarkRunUnlimited(b *testing.B) {
	for _, n := range []int{100_000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var jobsPerSec, cpuPerJob, cores, rss, heap, emuMB, runnerMB float64
			for b.Loop() {
				b.StopTimer()
				base := liveHeap()
				env := newBenchEnv(b, n, nil, func(c *emulator.Config) {
					c.RateLimits = map[string]int{
						lighthouse.ActionResetInstance:                   -1,
						lighthouse.ActionDescribeInstances:               -1,
						lighthouse.ActionDescribeBlueprints:              -1,
						lighthouse.ActionDescribeResetInstanceBlueprints: -1,
					}
					c.ResetDuration = emulator.Duration{Min: time.Nanosecond}
				})
				st := env.openStore(b, b.TempDir())
				r, err := runner.New(runner.Config{
					API:          env.client,
					Store:        st,
					Rate:         1e6,
					DescribeRate: 1e6,
					Workers:      64,
					PollInterval: time.Second,
				})
				if err != nil {
					b.Fatal(err)
				}
				rssStart := resetPeakRSS(b)
				sampler := sampleHeap()
				cpuStart := cpuTime(b)
				b.StartTimer()

				start := time.Now()
				sum, err := r.Run(context.Background())
				elapsed := time.Since(start)

				b.StopTimer()
				used := cpuTime(b) - cpuStart
				peak := sampler()
				peakRSS := readStatusKB(b, "VmHWM")
				if err != nil {
					b.Fatalf("Run() error = %v", err)
				}
				if got := sum.Totals[store.StatusSucceeded]; got != n {
					b.Errorf("Run() succeeded %d of %d jobs: %v", got, n, sum.Totals)
				}
				if err := st.Close(); err != nil {
					b.Fatal(err)
				}
				// b.Loop keeps the loop's variables alive: drop all but the
				// emulator before weighing it.
				r, st, env.jobs, sum = nil, nil, nil, runner.Summary{}
				emu := float64(liveHeap()-base) / (1 << 20)
				env.close()

				jobsPerSec += float64(n) / elapsed.Seconds()
				cpuPerJob += float64(used.Microseconds()) / float64(n)
				cores += used.Seconds() / elapsed.Seconds()
				rss += float64(peakRSS-rssStart) / 1024
				heap += float64(peak.heap) / (1 << 20)
				emuMB += emu
				runnerMB += float64(peak.live-base)/(1<<20) - emu
				b.StartTimer()
			}
			runs := float64(b.N)
			b.ReportMetric(jobsPerSec/runs, "jobs/s")
			b.ReportMetric(cpuPerJob/runs, "cpu-µs/job")
			b.ReportMetric(cores/runs, "cpu-cores")
			b.ReportMetric(rss/runs, "peak-rss-MB")
			b.ReportMetric(heap/runs, "peak-heap-MB")
			b.ReportMetric(emuMB/runs, "emulator-MB")
			b.ReportMetric(runnerMB/runs, "runner-live-MB")
		})
	}
}

// cpuTime returns the CPU time, user and system, the process has used.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// heapPeaks are the largest heap figures seen while sampling.
type heapPeaks struct {
	heap uint64 // heap objects in use, garbage included
	live uint64 // live heap as of the latest collection
}

// sampleHeap samples the heap every 20ms until the returned function is
// called, which returns the largest samples.
func sampleHeap() (stop func() heapPeaks) {
	done := make(chan struct{})
	result := make(chan heapPeaks)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
		var peak heapPeaks
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak.heap = max(peak.heap, s[0].Value.Uint64())
			peak.live = max(peak.live, s[1].Value.Uint64())
			select {
			case <-tick.C:
			case <-done:
				result <- peak
				return
			}
		}
	}()
	return func() heapPeaks {
		close(done)
		return <-result
	}
}

// resetPeakRSS resets the process's peak resident set (VmHWM) to its
// current resident set and returns that, in KiB.
func resetPeakRSS(b *testing.B) uint64 {
	b.Helper()
	// "5" resets the peak RSS (Linux 4.0+; proc(5), /proc/pid/clear_refs).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset VmHWM (%v): peak-rss-MB is the peak since the process started", err)
	}
	return readStatusKB(b, "VmRSS")
}

// readStatusKB returns a "kB" field of /proc/self/status.
func readStatusKB(b *testing.B, field string) uint64 {
	b.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(name) != field {
			continue
		}
		kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
		if err != nil {
			b.Fatalf("/proc/self/status %s: %v", field, err)
		}
		return kb
	}
	b.Fatalf("/proc/self/status has no %s", field)
	return 0
}

// BenchmarkRunWithHooks runs a fleet at the real limit (10 ResetInstance/s
// at the emulator and the runner, resets of 2–5s, the default poll and
// workers, the CSV journal) with an exec: before-hook that sleeps for
// BATCHRESET_BENCH_HOOK (default 30s) and an after-hook that returns at
// once, HookConcurrency = limit × hook + 20%. Before-hooks run ahead of the
// rate slot, so the resets go out at the limit once the first hooks end. It
// reports accept/limit as BenchmarkRunAtLimit does, makespan-s, and
// makespan/bound: the makespan over the lower bound of a run without hooks,
// (n-1)/limit + resetMax + poll, plus one hook duration.
//
// Run one size with -bench 'RunWithHooks/N=1000' -benchtime 1x; each run
// takes over two minutes, and holds about 360 sleeping hook processes.
func BenchmarkRunWithHooks(b *testing.B) {
	const (
		limit    = lighthouse.ResetInstanceRateLimit
		resetMin = 2 * time.Second
		resetMax = 5 * time.Second
		poll     = 5 * time.Second
	)
	hook := 30 * time.Second
	if v := os.Getenv("BATCHRESET_BENCH_HOOK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		hook = d
	}
	dir := b.TempDir()
	before := filepath.Join(dir, "before.sh")
	after := filepath.Join(dir, "after.sh")
	if err := os.WriteFile(before, fmt.Appendf(nil, "#!/bin/sh\nexec sleep %g\n", hook.Seconds()), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(after, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{300, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var acceptRatio, makespan, bound, failedHooks float64
			for b.Loop() {
				b.StopTimer()
				env := newBenchEnv(b, n, nil, func(c *emulator.Config) {
					c.RateLimits = map[string]int{lighthouse.ActionResetInstance: limit}
					c.ResetDuration = emulator.Duration{Min: resetMin, Max: resetMax}
				})
				st := env.openStore(b, b.TempDir())
				api := &acceptClock{API: env.client}
				r, err := runner.New(runner.Config{API: api, Store: st, Rate: limit, Hooks: runner.Hooks{
					Before:      &runner.Hook{Kind: runner.HookExec, Path: before},
					After:       &runner.Hook{Kind: runner.HookExec, Path: after},
					Timeout:     hook + time.Minute,
					Concurrency: int(limit*hook.Seconds()*1.2) + 1,
				}})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()

				start := time.Now()
				sum, err := r.Run(context.Background())
				elapsed := time.Since(start)

				b.StopTimer()
				if err != nil {
					b.Fatalf("Run() error = %v", err)
				}
				if got := sum.Totals[store.StatusSucceeded]; got != n {
					b.Fatalf("%d of %d succeeded: %v", got, n, sum.Totals)
				}
				if err := st.Close(); err != nil {
					b.Fatal(err)
				}
				env.close()
				lower := time.Duration(float64(n-1)/limit*float64(time.Second)) + resetMax + poll
				acceptRatio += api.rate() / limit
				makespan += elapsed.Seconds()
				bound += elapsed.Seconds() / (lower + hook).Seconds()
				failedHooks += float64(r.Stats().HookFailures.Load())
				b.StartTimer()
			}
			runs := float64(b.N)
			b.ReportMetric(acceptRatio/runs, "accept/limit")
			b.ReportMetric(makespan/runs, "makespan-s")
			b.ReportMetric(bound/runs, "makespan/bound")
			b.ReportMetric(failedHooks/runs, "failed-hooks")
		})
	}
}

// BenchmarkRunJitter runs 400 resets at the real limit over a path that
// delays each ResetInstance by a random 0–70ms on its way to the API, as
// BenchmarkRunAtLimit does otherwise. It reports accept/limit (as there),
// over-limit: calls the emulator counted in a second already at the limit
// (goal 0), and guard-ms: the jitter allowance the run ended with. The
// bound is 1/(1+0.070) = 0.935 of the limit.
func BenchmarkRunJitter(b *testing.B) {
	const (
		n      = 400
		limit  = lighthouse.ResetInstanceRateLimit
		jitter = 70 * time.Millisecond
	)
	var acceptRatio, over, guard float64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		env := newBenchEnvWrapped(b, n, nil, func(c *emulator.Config) {
			c.RateLimits = map[string]int{lighthouse.ActionResetInstance: limit}
			c.ResetDuration = emulator.Duration{Min: time.Second, Max: 2 * time.Second}
		}, jitteryNetwork(jitter, uint64(i+1)))
		st := env.openStore(b, b.TempDir())
		api := &acceptClock{API: env.client}
		r, err := runner.New(runner.Config{API: api, Store: st, Rate: limit, PollInterval: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sum, err := r.Run(context.Background())
		b.StopTimer()
		if err != nil {
			b.Fatalf("Run() error = %v", err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		rs := env.emu.Stats().Actions[lighthouse.ActionResetInstance]
		env.close()
		acceptRatio += api.rate() / limit
		over += float64(rs.OverLimit)
		guard += float64(sum.JitterGuard) / float64(time.Millisecond)
		b.StartTimer()
	}
	runs := float64(b.N)
	b.ReportMetric(acceptRatio/runs, "accept/limit")
	b.ReportMetric(over/runs, "over-limit")
	b.ReportMetric(guard/runs, "guard-ms")
}

// BenchmarkAccounts runs 1, 2 and 4 accounts of 300 instances each side by
// side in one Group (runner.Group, the CSV store's Views), each account at
// the real limit of 10 resets a second, against one emulator serving them
// all. It reports
//
//   - account-min and account-max: the lowest and highest of the accounts'
//     accepted resets per second (first to last, on the emulator's clock)
//     divided by one account's limit;
//   - aggregate: all accepted resets per second divided by one account's
//     limit (the ideal is the number of accounts);
//   - over-limit: calls any account made in a second already at its limit
//     (goal 0).
func BenchmarkAccounts(b *testing.B) {
	for _, k := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("accounts=%d", k), func(b *testing.B) {
			names := []string{"alpha", "bravo", "charlie", "delta"}[:k]
			var lo, hi, aggregate, over float64
			for b.Loop() {
				b.StopTimer()
				f := newAccountsFixture(b, names, 300, nil)
				st := openCSV(b, filepath.Join(b.TempDir(), "results.csv.state"), f.jobs)
				ro := &runner.Rollout{MaxFailures: -1}
				g, err := runner.NewGroup(f.accounts(b, func(name string) runner.Store { return st.View(name) }, -1, ro), nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				sum, err := g.Run(context.Background())
				b.StopTimer()
				if err != nil {
					b.Fatalf("Run() error = %v", err)
				}
				if got := sum.Totals[store.StatusSucceeded]; got != len(f.jobs) {
					b.Fatalf("%d of %d succeeded: %v", got, len(f.jobs), sum.Totals)
				}
				st.Close()
				stats := f.emu.Stats()
				byUIN, all := f.rates(b, stats)
				limit := float64(f.limit)
				min, max := 1e9, 0.0
				for _, r := range byUIN {
					min, max = math.Min(min, r/limit), math.Max(max, r/limit)
				}
				lo, hi, aggregate = lo+min, hi+max, aggregate+all/limit
				for _, acts := range stats.ByAccount {
					over += float64(acts[lighthouse.ActionResetInstance].OverLimit)
				}
				b.StartTimer()
			}
			runs := float64(b.N)
			b.ReportMetric(lo/runs, "account-min")
			b.ReportMetric(hi/runs, "account-max")
			b.ReportMetric(aggregate/runs, "aggregate")
			b.ReportMetric(over/runs, "over-limit")
		})
	}
}
