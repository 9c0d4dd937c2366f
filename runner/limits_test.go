package runner_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// The third promise: every call of every command under its action's limit,
// whoever made the calls before, whatever the network does. Each test
// checks the emulator's busiest second of every action (verify does so for
// all of them).

// TestEveryActionUnderItsLimit runs preflight over 60 jobs with 60 distinct
// target blueprints: DescribeBlueprints stays under its own limit of 10/s.
func TestEveryActionUnderItsLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 60, limit: 50, emu: func(c *emulator.Config) {
		base := c.Blueprints[0]
		for i := range c.Instances {
			bp := base
			bp.ID = fmt.Sprintf("lhbp-%08d", i)
			c.Blueprints = append(c.Blueprints, bp)
		}
	}})
	for i := range b.jobs {
		b.jobs[i].BlueprintID = fmt.Sprintf("lhbp-%08d", i)
	}
	_, jobs := b.run(t, func(c *runner.Config) {
		relaxed(c)
		c.Rollout = &runner.Rollout{Preflight: true, MaxFailures: -1}
	})
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusSucceeded] != len(b.jobs) {
		t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
	}
	if n := b.emu.Stats().Actions[lighthouse.ActionDescribeBlueprints].Calls; n == 0 {
		t.Error("preflight made no DescribeBlueprints call")
	}
}

// TestReconcileUnderLimit reconciles 20,000 unknown jobs while a tenth of
// the DescribeInstances calls are throttled: every call through the Cloud,
// never over the limit, and the command finishes.
func TestReconcileUnderLimit(t *testing.T) {
	t.Parallel()
	const n = 20000
	b := setup(t, scenario{n: n, limit: 50, fleet: emulator.FleetOptions{Regions: []string{"ap-guangzhou", "ap-shanghai"}}, emu: func(c *emulator.Config) {
		c.RateLimits[lighthouse.ActionDescribeInstances] = runner.DefaultDescribeRate
		c.Faults = []emulator.Fault{{Action: lighthouse.ActionDescribeInstances, Kind: emulator.FaultThrottle, Probability: 0.1}}
	}})
	jobs := slices.Clone(b.jobs)
	for i := range jobs {
		jobs[i].Status, jobs[i].ErrorMessage = store.StatusUnknown, "left unknown by a run"
	}
	cloud := b.cloud(t)
	changed, undescribed, err := runner.Reconcile(t.Context(), cloud, jobs, time.Second)
	if err != nil {
		t.Fatalf("Reconcile() error = %v", err)
	}
	if undescribed != 0 {
		t.Errorf("Reconcile() left %d jobs undescribed, want 0", undescribed)
	}
	t.Logf("%d changed; %d DescribeInstances calls, %d throttled", len(changed), cloud.Describes.Load(), cloud.Throttled.Load())
	st := b.emu.Stats().Actions[lighthouse.ActionDescribeInstances]
	if st.Calls < n/lighthouse.MaxIDsPerCall || st.Rejected == 0 {
		t.Errorf("DescribeInstances: %d calls, %d throttled; want at least %d calls and some throttled", st.Calls, st.Rejected, n/lighthouse.MaxIDsPerCall)
	}
	if st.OverLimit != 0 || st.MaxPerSecond > runner.DefaultDescribeRate {
		t.Errorf("DescribeInstances: %d calls over the limit, busiest second %d; want 0 and at most %d", st.OverLimit, st.MaxPerSecond, runner.DefaultDescribeRate)
	}
}

// TestPlanUnderLimit plans 80 jobs, one DescribeResetInstanceBlueprints each
// (limit 20/s), and 5,000 without: every action under its limit.
func TestPlanUnderLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n          int
		resettable bool
	}{{80, true}, {5000, false}} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: tc.n, limit: 50})
			items, err := runner.Plan(t.Context(), b.cloud(t), b.jobs, runner.Login{}, tc.resettable)
			if err != nil {
				t.Fatalf("Plan() error = %v", err)
			}
			if len(items) != tc.n {
				t.Errorf("Plan() gave %d items, want %d", len(items), tc.n)
			}
			runnertest.CheckRates(t, b.emu.Stats().Actions, b.limits)
		})
	}
}

// TestHostLimitsAcrossProcesses has two processes' worth of HostLimits on
// one directory take slots in turns, the second starting right after the
// first took a burst (as a process started just after another died): the
// slots of both, together, are spaced by the interval.
func TestHostLimitsAcrossProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	interval := runner.Interval(10, runner.DefaultGuard)
	var slots []time.Time
	take := func(src store.SlotSource, n int) {
		for range n {
			wait, err := src.Reserve(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			slots = append(slots, time.Now().Add(wait))
		}
	}
	first, err := runner.NewHostLimits(dir)
	if err != nil {
		t.Fatal(err)
	}
	take(first.SlotSource(lighthouse.ActionResetInstance, interval), 10) // a burst, then it "dies"
	second, err := runner.NewHostLimits(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, bb := first.SlotSource(lighthouse.ActionResetInstance, interval), second.SlotSource(lighthouse.ActionResetInstance, interval)
	take(bb, 5)
	for range 5 {
		take(a, 1)
		take(bb, 1)
	}
	slices.SortFunc(slots, time.Time.Compare)
	for i := 1; i < len(slots); i++ {
		// Reserve's wait is measured a little after the slot was decided.
		if gap := slots[i].Sub(slots[i-1]); gap < interval-5*time.Millisecond {
			t.Errorf("slots %d and %d are %v apart, want at least %v", i-1, i, gap, interval)
		}
	}
	other, _ := runner.NewHostLimits(t.TempDir())
	if w, _ := other.SlotSource(lighthouse.ActionResetInstance, interval).Reserve(t.Context()); w != 0 {
		t.Errorf("another account's first slot waits %v, want none", w)
	}
}

// TestHostLimitsOverDatabase takes, in turns, the slots of a Postgres
// runner (the host's limits over the database's), of a CSV run on the same
// host (the host's alone) and of a Postgres runner on another host (its
// host's over the database's): the slots of this host, and those of the
// database, are each spaced by the interval, whatever order they come in.
// (A CSV run on one host and a runner on another share nothing.)
func TestHostLimitsOverDatabase(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs Postgres")
	}
	interval := runner.Interval(10, 100*time.Millisecond)
	db := openPG(t, postgrestest.NewSchema(t)).Limits("account")
	host, err := runner.NewHostLimits(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := runner.NewHostLimits(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if g := host.Over(db).Guard(); g != 100*time.Millisecond {
		t.Errorf("Guard() = %v, want the database's 100ms", g)
	}
	const pgHere, csvHere, pgThere = "postgres here", "csv here", "postgres elsewhere"
	srcs := map[string]store.SlotSource{
		pgHere:  host.Over(db).SlotSource(lighthouse.ActionResetInstance, interval),
		csvHere: host.SlotSource(lighthouse.ActionResetInstance, interval),
		pgThere: elsewhere.Over(db).SlotSource(lighthouse.ActionResetInstance, interval),
	}
	// A slot as this side knows it: the source decided it somewhere
	// during the call, so it lies within half the call's round trip of
	// the middle, where Reserve reckons the wait from.
	type slot struct {
		at    time.Time
		error time.Duration
	}
	slots := map[string][]slot{}
	for _, who := range []string{csvHere, csvHere, pgHere, pgHere, csvHere, pgThere, pgHere, csvHere, pgThere, pgThere, pgHere, csvHere, pgHere} {
		asked := time.Now()
		wait, err := srcs[who].Reserve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		rtt := time.Since(asked)
		slots[who] = append(slots[who], slot{at: asked.Add(rtt / 2).Add(wait), error: rtt / 2})
	}
	for name, group := range map[string][]string{"this host": {pgHere, csvHere}, "the database": {pgHere, pgThere}} {
		var all []slot
		for _, who := range group {
			all = append(all, slots[who]...)
		}
		slices.SortFunc(all, func(a, b slot) int { return a.at.Compare(b.at) })
		for i := 1; i < len(all); i++ {
			gap, slack := all[i].at.Sub(all[i-1].at), all[i].error+all[i-1].error+time.Millisecond
			if gap < interval-slack {
				t.Errorf("%s: slots %d and %d are %v apart (± %v), want at least %v", name, i-1, i, gap, slack, interval)
			}
		}
	}
}

// delayedSends delays every ResetInstance by d after its slot, as a runner
// farther from the API would see it arrive later.
type delayedSends struct {
	runner.API
	d time.Duration
}

func (a delayedSends) ResetInstance(ctx context.Context, region string, req lighthouse.ResetInstanceRequest) (string, error) {
	time.Sleep(a.d)
	return a.API.ResetInstance(ctx, region, req)
}

// TestSharedLimitUnevenPaths runs two Postgres runners at the full limit,
// one of them 60ms farther from the API: the shared bucket's jitter
// allowance holds the limit for both together.
func TestSharedLimitUnevenPaths(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 50, limit: 10})
	pg := b.importPG(t, "uneven")
	var wg sync.WaitGroup
	for i, delay := range []time.Duration{0, 60 * time.Millisecond} {
		cfg := b.configPG(t, openPG(t, pg.url), pg.run, fmt.Sprintf("runner-%d", i), 30*time.Second, nil)
		cfg.Sender = delayedSends{API: b.client, d: delay}
		wg.Go(func() { b.runWith(t, cfg) })
	}
	wg.Wait()
	totals := b.verify(t, pg.jobs(t), verdict{})
	if totals[store.StatusSucceeded] != len(b.jobs) {
		t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
	}
}

// TestSlowReadsNeverDelaySends: with two workers and DescribeInstances
// answers slow enough to hold every read connection, a sender that has its
// rate slot still sends at once, on connections of its own.
func TestSlowReadsNeverDelaySends(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 40, limit: 10, emu: func(c *emulator.Config) {
		c.Faults = []emulator.Fault{{Action: lighthouse.ActionDescribeInstances, Kind: emulator.FaultLatency, Latency: 400 * time.Millisecond}}
	}})
	reads, err := lighthouse.New(lighthouse.Config{Endpoint: b.url, Credential: lighthouse.Credential{SecretID: testSecretID, SecretKey: testSecretKey},
		Timeout: 5 * time.Second, MaxIdleConnsPerHost: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer reads.CloseIdleConnections()
	_, jobs := b.run(t, func(c *runner.Config) {
		c.API, c.Sender, c.Workers = reads, b.client, 2
	})
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusSucceeded] != len(b.jobs) {
		t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
	}
}

// TestTransitionalStateWaits: an instance that is STOPPING (or STARTING,
// REBOOTING) when its job is claimed is waited for, like a busy one, and
// then reset; nothing fails because of a state that passes.
func TestTransitionalStateWaits(t *testing.T) {
	t.Parallel()
	var held []string
	b := setup(t, scenario{n: 9, limit: 50, emu: func(c *emulator.Config) {
		for i, state := range []string{"STOPPING", "STARTING", "REBOOTING"} {
			c.Instances[i].State, c.Instances[i].StateFor, c.Instances[i].StateThen = state, 1500*time.Millisecond, lighthouse.StateRunning
			held = append(held, c.Instances[i].ID)
		}
	}})
	_, jobs := b.run(t, relaxed)
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusSucceeded] != len(b.jobs) {
		t.Errorf("totals = %v, want all %d succeeded (transitional instances waited for)", totals, len(b.jobs))
	}
	for _, j := range jobs {
		if slices.Contains(held, j.InstanceID) && j.Attempts != 1 {
			t.Errorf("%s: %d attempts, want 1 (sent once the state passed)", j.InstanceID, j.Attempts)
		}
	}
}

// TestBadRegionRow: a job naming a region the API does not know fails with
// the API's code; the other jobs go on and the run is not fatal.
func TestBadRegionRow(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 10, limit: 50})
	bad := store.Job{ID: 99, InstanceID: "lhins-nowhere1", Region: "ap-nowhere", Status: store.StatusPending}
	b.jobs = append(b.jobs, bad)
	_, jobs := b.run(t, relaxed)
	for _, j := range jobs {
		switch {
		case j.InstanceID == bad.InstanceID:
			if j.Status != store.StatusFailed || j.ErrorCode != "UnsupportedRegion" {
				t.Errorf("%s in %s: %s %s %q, want failed with UnsupportedRegion", j.InstanceID, j.Region, j.Status, j.ErrorCode, j.ErrorMessage)
			}
		case j.Status != store.StatusSucceeded:
			t.Errorf("%s: %s %s %q, want succeeded", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage)
		}
	}
}

// TestUnreachableEndpoint: a run against a closed port stops by itself once
// no call has had an answer for Unreachable, with ErrUnreachable, sending
// nothing and leaving every job for a rerun.
func TestUnreachableEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 5})
	dead := httptest.NewServer(nil)
	url := dead.URL
	dead.Close()
	client, err := lighthouse.New(lighthouse.Config{Endpoint: url, Credential: lighthouse.Credential{SecretID: testSecretID, SecretKey: testSecretKey}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st := b.open(t)
	defer st.Close()
	cfg := b.config(t, st)
	cfg.API, cfg.Unreachable = client, 2*time.Second
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := r.Run(ctx); !errors.Is(err, runner.ErrUnreachable) {
		t.Fatalf("Run() error = %v, want %v", err, runner.ErrUnreachable)
	}
	if ctx.Err() != nil {
		t.Fatal("the run did not stop by itself")
	}
	for _, j := range st.Jobs() {
		if j.Status != store.StatusPending || j.Attempts != 0 {
			t.Errorf("%s: %s after %d attempts, want pending and untouched", j.InstanceID, j.Status, j.Attempts)
		}
	}
}

// jitteryNetwork delays each ResetInstance on its way to the server by a
// random 0–max, as a path with that much jitter does.
func jitteryNetwork(maxDelay time.Duration, seed uint64) func(http.Handler) http.Handler {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-TC-Action") == lighthouse.ActionResetInstance {
				mu.Lock()
				d := time.Duration(rng.Int64N(int64(maxDelay)))
				mu.Unlock()
				time.Sleep(d)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestJitterAdapts runs at the limit over a path with 70ms of arrival
// jitter, more than the 20ms the limiter starts with: it measures the spread
// of its calls' latencies and spaces for it, so that no server second holds
// more than the limit; the summary reports the allowance.
func TestJitterAdapts(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 120, limit: 10, wrap: jitteryNetwork(70*time.Millisecond, 3)})
	sum, jobs := b.run(t, nil)
	totals := b.verify(t, jobs, verdict{})
	if totals[store.StatusSucceeded] != len(b.jobs) {
		t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
	}
	if sum.JitterGuard < 50*time.Millisecond {
		t.Errorf("Summary.JitterGuard = %v, want the measured spread (about 70ms)", sum.JitterGuard)
	}
	t.Logf("jitter allowance %v: rate × %.3f", sum.JitterGuard, 1/(1+sum.JitterGuard.Seconds()))
}
