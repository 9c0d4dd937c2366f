package runner_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
)

// The fault matrix: one test per way a call can go wrong, each judged by
// verify against the emulator's ledger. Scenarios in which the store takes
// part (its rate bucket, its write latency, leases, Settle) run on the CSV
// journal and on Postgres; those that only exercise how the runner reads
// the API (storeAgnostic) run on the CSV journal alone, to keep the suite
// fast where -parallel (GOMAXPROCS) is small.
//
// Scenarios are small: tens of instances, resets of a few hundred
// milliseconds, PollInterval 100ms, SettleTime 1.5s and client timeouts of
// 0.3–1s. Unless a scenario is about the rate limit, the emulator allows 50
// ResetInstance calls a second and the runner sends at half that, so that
// scheduling jitter under -race never decides a result.

// storeAgnostic are the backends of scenarios the store takes no part in.
var storeAgnostic = []backend{csvBackend}

// relaxed is the runner configuration of scenarios not about the rate
// limit: half the emulator's limit.
func relaxed(c *runner.Config) { c.Rate = 25 }

// every returns every k-th of ids, starting with the first.
func every(ids []string, k int) []string {
	var out []string
	for i := 0; i < len(ids); i += k {
		out = append(out, ids[i])
	}
	return out
}

// instanceIDs returns the IDs of a configured fleet.
func instanceIDs(c *emulator.Config) []string {
	ids := make([]string, len(c.Instances))
	for i, in := range c.Instances {
		ids[i] = in.ID
	}
	return ids
}

// jobIDs returns the instance IDs of jobs.
func jobIDs(jobs []store.Job) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.InstanceID
	}
	return ids
}

// set makes a set of ids.
func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// chance is a seeded source of coin flips that several goroutines share.
type chance struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func newChance(seed uint64) *chance { return &chance{rng: rand.New(rand.NewPCG(seed, seed))} }

func (c *chance) flip(p float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.Float64() < p
}

// resetCalls returns how many ResetInstance calls reached the emulator.
func resetCalls(b *bundle) emulator.ActionStats {
	return b.emu.Stats().Actions[lighthouse.ActionResetInstance]
}

// Scenario 1. The reset is applied but the answer is lost: the runner
// cannot know, so it must reconcile, find its reset and adopt the
// RequestId, and never send a second one.
func TestFaultAnswerLostAfterApply(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			var named []string
			b := setup(t, scenario{n: 40, limit: 50, emu: func(c *emulator.Config) {
				// Every tenth instance always loses the answer (so the
				// scenario is never empty, and a second reset of it would
				// be applied too), the rest with probability 0.1.
				named = every(instanceIDs(c), 10)
				c.Faults = []emulator.Fault{
					{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultDropAfterApply, Instances: named},
					{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultDropAfterApply, Probability: 0.1},
				}
			}})
			_, jobs := b.runOn(t, be, relaxed)
			rs := resetCalls(b)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			if rs.Faults < len(named) {
				t.Errorf("emulator dropped %d answers, want at least %d", rs.Faults, len(named))
			}
			// Every lost answer belonged to an applied reset, so nothing is
			// ever proven absent: exactly one call per instance.
			if rs.Calls != len(b.jobs) {
				t.Errorf("emulator saw %d ResetInstance calls, want exactly %d (one per instance)", rs.Calls, len(b.jobs))
			}
		})
	}
}

// Scenario 2. The request never arrives: the connection is refused (the
// dial fails, so the client knows nothing left) or a gateway answers 502
// before the API sees it (the client cannot know). Refused calls are
// retried at once; 502s are reconciled, proven absent after SettleTime,
// and sent again. Every instance ends succeeded, reset exactly once.
func TestFaultRequestNeverArrives(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			var refusedFirst, gatewayFirst, lostFirst map[string]bool
			nw, wrap := newNetwork(func(c call) fate {
				if c.action == lighthouse.ActionResetInstance && c.n == 1 && gatewayFirst[c.instances[0]] {
					return badGateway
				}
				if c.action == lighthouse.ActionResetInstance && c.n == 1 && lostFirst[c.instances[0]] {
					// The client cannot tell this from an answer lost after
					// the reset: it must reconcile, prove the call absent,
					// and send once more.
					return lostBefore
				}
				return deliver
			})
			b := setup(t, scenario{n: 30, limit: 50, wrap: wrap, emu: func(c *emulator.Config) {
				c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultUnavailable, Probability: 0.1}}
			}})
			ids := jobIDs(b.jobs)
			refusedFirst, gatewayFirst, lostFirst = set(every(ids, 10)), set(every(ids[5:], 10)), set(every(ids[3:], 10))
			coin := newChance(11)
			var mu sync.Mutex
			done := map[string]bool{}
			api := newRefusingAPI(t, b.client, func(action, id string) bool {
				mu.Lock()
				defer mu.Unlock()
				if action == lighthouse.ActionResetInstance && refusedFirst[id] && !done[id] {
					done[id] = true // the first call of each named instance
					return true
				}
				return coin.flip(0.1)
			})
			wantRefused := len(refusedFirst)
			_, jobs := b.runOn(t, be, func(c *runner.Config) {
				relaxed(c)
				c.API = api
				// A job fails by design after MaxAttempts rejected calls;
				// with 10% refused and 10% 502 that may happen to one of 30
				// jobs by chance, which is not this scenario's concern.
				c.MaxAttempts = 10
			})
			rs := resetCalls(b)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			if got := api.count.Load(); got < int64(wantRefused) {
				t.Errorf("%d calls refused, want at least %d", got, wantRefused)
			}
			if got := nw.count(badGateway.name); got < len(gatewayFirst) {
				t.Errorf("%d calls answered 502 by the gateway, want at least %d", got, len(gatewayFirst))
			}
			if got := nw.count(lostBefore.name); got != len(lostFirst) {
				t.Errorf("%d calls dropped before the emulator, want %d", got, len(lostFirst))
			}
			// Every call that reached the emulator was either a 502 before
			// applying or the one accepted reset of its instance.
			if rs.Calls != len(b.jobs)+rs.Faults {
				t.Errorf("emulator saw %d ResetInstance calls with %d injected 502s, want %d + 502s", rs.Calls, rs.Faults, len(b.jobs))
			}
		})
	}
}

// Scenario 3. The answer comes after the client's timeout fired; the reset
// was applied. The runner reconciles and adopts it, never resends.
func TestFaultAnswerAfterTimeout(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			var named []string
			b := setup(t, scenario{n: 30, limit: 50, timeout: 500 * time.Millisecond, emu: func(c *emulator.Config) {
				named = every(instanceIDs(c), 10)
				slow := 2 * time.Second // four client timeouts
				c.Faults = []emulator.Fault{
					{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultLatency, Latency: slow, Instances: named},
					{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultLatency, Latency: slow, Probability: 0.1},
				}
			}})
			_, jobs := b.runOn(t, be, relaxed)
			rs := resetCalls(b)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			if rs.Faults < len(named) {
				t.Errorf("emulator delayed %d answers, want at least %d", rs.Faults, len(named))
			}
			if rs.Calls != len(b.jobs) {
				t.Errorf("emulator saw %d ResetInstance calls, want exactly %d (one per instance)", rs.Calls, len(b.jobs))
			}
			if !strings.Contains(b.logs.String(), "reset outcome unknown; reconciling before any resend") {
				t.Error("no call was reported in doubt: the timeouts did not happen")
			}
		})
	}
}

// Scenario 4. RequestLimitExceeded, at random and in a storm. The runner
// backs off without amplification: the emulator never sees more than the
// limit in any second (verify), nothing fails because of throttling, and
// the run finishes once the storm is over.
func TestFaultThrottled(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be)+"/Random30", func(t *testing.T) {
			t.Parallel()
			// Few jobs: every throttle pauses all senders, and a streak of
			// throttled probes doubles the pause each time (0.3^n).
			b := setup(t, scenario{n: 12, limit: 10, emu: func(c *emulator.Config) {
				c.Faults = []emulator.Fault{{Kind: emulator.FaultThrottle, Probability: 0.3}} // every action
			}})
			sum, jobs := b.runOn(t, be, nil) // at the emulator's limit: this scenario is about it
			rs := resetCalls(b)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			if rs.Rejected == 0 || sum.Throttled == 0 {
				t.Errorf("emulator throttled %d ResetInstance calls, runner counted %d; want some", rs.Rejected, sum.Throttled)
			}
			if rs.Calls != len(b.jobs)+rs.Rejected {
				t.Errorf("emulator saw %d ResetInstance calls, %d throttled; want %d + throttled", rs.Calls, rs.Rejected, len(b.jobs))
			}
		})
		t.Run(string(be)+"/Storm", func(t *testing.T) {
			t.Parallel()
			// The issue describes a 30s storm; 3s stands for it here, long
			// enough for the backoff to grow several times.
			const storm = 3 * time.Second
			var (
				once       sync.Once
				b          *bundle
				stormStats = make(chan [2]emulator.ActionStats, 1)
			)
			_, wrap := newNetwork(func(c call) fate {
				// The storm starts when the fifth reset arrives, so that the
				// run is in full swing.
				if c.action == lighthouse.ActionResetInstance && c.n == 1 {
					if calls := resetCalls(b).Calls; calls >= 4 {
						once.Do(func() {
							before := resetCalls(b)
							b.emu.SetFaults([]emulator.Fault{{Kind: emulator.FaultThrottle, Probability: 1}})
							time.AfterFunc(storm, func() {
								b.emu.SetFaults(nil)
								stormStats <- [2]emulator.ActionStats{before, resetCalls(b)}
							})
						})
					}
				}
				return deliver
			})
			b = setup(t, scenario{n: 14, limit: 10, wrap: wrap})
			sum, jobs := b.runOn(t, be, nil)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			var during [2]emulator.ActionStats
			select {
			case during = <-stormStats:
			case <-time.After(10 * time.Second):
				t.Fatal("the storm never ended")
			}
			calls := during[1].Calls - during[0].Calls
			throttled := during[1].Rejected - during[0].Rejected
			t.Logf("storm of %v: %d ResetInstance calls, %d throttled; run throttled %d in all", storm, calls, throttled, sum.Throttled)
			if throttled == 0 {
				t.Error("no call was throttled during the storm")
			}
			// No amplification: the shared backoff pauses every sender, so
			// the storm sees a handful of probes, far below the limit's
			// 10/s × 3s = 30.
			if max := b.limit * int(storm/time.Second) / 3; calls > max {
				t.Errorf("%d ResetInstance calls during a %v storm, want at most %d: throttling does not pause the senders", calls, storm, max)
			}
		})
	}
}

// slowStore delays the Saves that record the intent to send (status
// submitting), as a busy database or a retried write does.
type slowStore struct {
	runner.Store
	delay time.Duration
}

func (s *slowStore) Save(ctx context.Context, j *store.Job) error {
	if j.Status == store.StatusSubmitting {
		t := time.NewTimer(s.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Store.Save(ctx, j)
}

// Scenario 5. LatestOperationUnfinished on a re-send: the runner sent
// again after concluding, wrongly or rightly, that its earlier call did
// not land, and the API says an operation is running. That is treated as
// "ours may be running": reconciled, never a failure by itself, and with
// SettleTime > visibility lag + call timeout (the documented requirement)
// never a double reset.
func TestFaultBusyOnResend(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		// Lag (1s) + call timeout (0.4s) < SettleTime (1.5s): a lost
		// answer is always adopted, never re-sent, even when recording
		// the intent to send is slow (1s): SettleTime counts from the
		// call, not from the intent.
		for _, slow := range []time.Duration{0, time.Second} {
			t.Run(fmt.Sprintf("%s/LagShorterThanSettle/IntentSave%v", be, slow), func(t *testing.T) {
				t.Parallel()
				var victims map[string]bool
				nw, wrap := newNetwork(func(c call) fate {
					if c.action == lighthouse.ActionResetInstance && c.n == 1 && victims[c.instances[0]] {
						return lostAfter
					}
					return deliver
				})
				b := setup(t, scenario{n: 12, limit: 50, timeout: 400 * time.Millisecond, wrap: wrap, emu: func(c *emulator.Config) {
					c.VisibilityLag = time.Second
				}})
				victims = set(every(jobIDs(b.jobs), 3))
				_, jobs := b.runOn(t, be, func(c *runner.Config) {
					relaxed(c)
					if slow > 0 {
						c.Store = &slowStore{Store: c.Store, delay: slow}
					}
				})
				totals := b.verify(t, jobs, verdict{})
				if totals[store.StatusSucceeded] != len(b.jobs) {
					t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
				}
				for id := range victims {
					if got := nw.calls(lighthouse.ActionResetInstance, id); got != 1 {
						t.Errorf("%s: %d ResetInstance calls, want 1: the lost answer's reset is adopted", id, got)
					}
				}
			})
		}
	}
	for _, be := range storeAgnostic {
		// Lag (2.5s) longer than SettleTime (1.5s): the runner wrongly
		// proves the lost call absent and sends again while its reset is
		// still running (3.5s), so the API refuses the re-send; the runner
		// reconciles and adopts the reset once the lag is over. (With
		// resets shorter than the lag the re-send would be accepted: a
		// double reset, which is why SettleTime must exceed the lag.)
		t.Run(string(be)+"/LagLongerThanSettle", func(t *testing.T) {
			t.Parallel()
			var victims map[string]bool
			nw, wrap := newNetwork(func(c call) fate {
				if c.action == lighthouse.ActionResetInstance && c.n == 1 && victims[c.instances[0]] {
					return lostAfter
				}
				return deliver
			})
			b := setup(t, scenario{n: 12, limit: 50, timeout: 500 * time.Millisecond, wrap: wrap, emu: func(c *emulator.Config) {
				c.VisibilityLag = 2500 * time.Millisecond
				c.ResetDuration = emulator.Duration{Min: 3500 * time.Millisecond, Max: 4 * time.Second}
			}})
			victims = set(every(jobIDs(b.jobs), 3))
			_, jobs := b.runOn(t, be, relaxed)
			rs := resetCalls(b)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			resent := 0
			for id := range victims {
				if nw.calls(lighthouse.ActionResetInstance, id) > 1 {
					resent++
				}
			}
			if resent == 0 || rs.Errors == 0 {
				t.Errorf("%d victims re-sent, %d ResetInstance errors at the emulator; want the re-send refused as unfinished", resent, rs.Errors)
			}
		})
		// No lag; the lost call did not land (502), and the re-send meets
		// LatestOperationUnfinished once (another operation, or a lagging
		// view of our own): the runner reconciles, proves absence again
		// and sends a third time.
		t.Run(string(be)+"/TransientBusy", func(t *testing.T) {
			t.Parallel()
			var victims map[string]bool
			nw, wrap := newNetwork(func(c call) fate {
				if c.action != lighthouse.ActionResetInstance || !victims[c.instances[0]] {
					return deliver
				}
				switch c.n {
				case 1:
					return badGateway
				case 2:
					return busy
				}
				return deliver
			})
			b := setup(t, scenario{n: 12, limit: 50, wrap: wrap})
			victims = set(every(jobIDs(b.jobs), 3))
			_, jobs := b.runOn(t, be, relaxed)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			for id := range victims {
				if got := nw.calls(lighthouse.ActionResetInstance, id); got != 3 {
					t.Errorf("%s: %d ResetInstance calls, want 3 (502, unfinished, accepted)", id, got)
				}
			}
		})
		// Lag (3s) far above SettleTime (0.4s), against the documented
		// requirement: the runner proves the lost call absent again and
		// again, and every re-send meets LatestOperationUnfinished (its own
		// reset, still running unseen). When MaxAttempts is spent the job
		// ends unknown, not failed: busy answers are never a failure by
		// themselves. Once the reset shows, Reconcile settles it.
		t.Run(string(be)+"/LagFarAboveSettle", func(t *testing.T) {
			t.Parallel()
			_, wrap := newNetwork(func(c call) fate {
				if c.action == lighthouse.ActionResetInstance && c.n == 1 {
					return lostAfter
				}
				return deliver
			})
			b := setup(t, scenario{n: 3, limit: 50, timeout: 300 * time.Millisecond, wrap: wrap, emu: func(c *emulator.Config) {
				c.VisibilityLag = 3 * time.Second
				c.ResetDuration = emulator.Duration{Min: 3500 * time.Millisecond}
			}})
			_, jobs := b.run(t, func(c *runner.Config) {
				relaxed(c)
				c.SettleTime = 400 * time.Millisecond
				c.MaxAttempts = 3
			})
			why := map[string]string{}
			for _, j := range jobs {
				why[j.InstanceID] = "SettleTime below the visibility lag: the reset stays invisible until after the runner gave up"
				if j.Status != store.StatusUnknown {
					t.Errorf("%s: %s %s %q, want unknown", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage)
				}
			}
			b.verify(t, jobs, verdict{unknown: why})
			b.waitUntil(t, func(in lighthouse.Instance) bool {
				return in.LatestOperation == lighthouse.ActionResetInstance && in.LatestOperationState == lighthouse.OperationSuccess
			})
			changed, _, err := runner.Reconcile(t.Context(), b.cloud(t), jobs, b.config(t, nil).SettleTime)
			if err != nil {
				t.Fatal(err)
			}
			totals := b.verify(t, changed, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("after Reconcile totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
		})
		// ResetInstance always answers LatestOperationUnfinished for some
		// instances while DescribeInstances shows them idle. The runner
		// waits for them at most ResetTimeout, then fails them (nothing
		// was applied); the run ends.
		t.Run(string(be)+"/BusyWhileIdle", func(t *testing.T) {
			t.Parallel()
			var named []string
			b := setup(t, scenario{n: 12, limit: 50, emu: func(c *emulator.Config) {
				named = every(instanceIDs(c), 4)
				c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultError,
					Code: "UnsupportedOperation.LatestOperationUnfinished", Instances: named}}
			}})
			_, jobs := b.runOn(t, be, func(c *runner.Config) { relaxed(c); c.ResetTimeout = 2 * time.Second })
			totals := b.verify(t, jobs, verdict{})
			byID := map[string]store.Job{}
			for _, j := range jobs {
				byID[j.InstanceID] = j
			}
			for _, id := range named {
				if j := byID[id]; j.Status != store.StatusFailed {
					t.Errorf("%s: status %s (%s), want failed: the instance never became free", id, j.Status, j.ErrorMessage)
				}
			}
			if totals[store.StatusSucceeded] != len(b.jobs)-len(named) {
				t.Errorf("totals = %v, want %d succeeded", totals, len(b.jobs)-len(named))
			}
		})
	}
}

// Scenario 6. Visibility lag: for a while after a reset is accepted,
// DescribeInstances still shows the previous operation, here the SUCCESS
// of an earlier reset of the same instance. That stale SUCCESS never ends
// tracking early, and never passes for an in-doubt call's reset. The issue
// asks for lags up to 30s; 1.5s keeps the test fast, with SettleTime (2.5s)
// above lag + call timeout (0.5s) as required.
func TestFaultVisibilityLag(t *testing.T) {
	t.Parallel()
	const lag = 1500 * time.Millisecond
	for _, be := range storeAgnostic {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			var (
				victims map[string]bool
				second  atomic.Bool
			)
			nw, wrap := newNetwork(func(c call) fate {
				// In the second run, a third of the calls lose their answer.
				if second.Load() && c.action == lighthouse.ActionResetInstance && c.n == 2 && victims[c.instances[0]] {
					return lostAfter
				}
				return deliver
			})
			b := setup(t, scenario{n: 15, limit: 50, timeout: 500 * time.Millisecond, wrap: wrap, emu: func(c *emulator.Config) {
				c.VisibilityLag = lag
				c.ResetDuration = emulator.Duration{Min: 300 * time.Millisecond, Max: 800 * time.Millisecond}
			}})
			victims = set(every(jobIDs(b.jobs), 3))
			edit := func(c *runner.Config) { relaxed(c); c.SettleTime = 2500 * time.Millisecond }
			// The first run leaves every instance with a ResetInstance
			// SUCCESS as its latest operation.
			_, jobs := b.runOn(t, be, edit)
			b.verify(t, jobs, verdict{})
			b.baseline()
			b.statePath += ".second"
			second.Store(true)
			_, jobs = b.runOn(t, be, edit)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			for _, j := range jobs {
				// The new operation is invisible for lag after it was
				// accepted, and accepted after SubmittedAt: any success
				// recorded sooner was read from the stale operation.
				if d := j.FinishedAt.Sub(j.SubmittedAt); d < lag {
					t.Errorf("%s: succeeded %v after submission, before the lag (%v) let its operation show", j.InstanceID, d, lag)
				}
				if victims[j.InstanceID] {
					if got := nw.calls(lighthouse.ActionResetInstance, j.InstanceID); got != 2 {
						t.Errorf("%s: %d ResetInstance calls over both runs, want 2", j.InstanceID, got)
					}
				}
			}
		})
	}
}

// The pre-send snapshot fails (DescribeInstances answers 502 three times
// in a row). Without it the runner does not know the instance's previous
// operation, so it must not send: a later in-doubt call could otherwise be
// "reconciled" against an earlier reset of the same instance. Here the
// instances were reset by an earlier run, LatestOperationStartedTime is
// absent (the international site does not return it), and some calls of
// the second run die at a gateway before reaching the API.
func TestFaultSnapshotLost(t *testing.T) {
	t.Parallel()
	for _, be := range storeAgnostic {
		for _, preflight := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/Preflight%v", be, preflight), func(t *testing.T) {
				t.Parallel()
				var (
					victims  map[string]bool
					second   atomic.Bool
					failures atomic.Int32
				)
				intl := rewrite("international", true, stripOperation(nil, "LatestOperationStartedTime"))
				nw, wrap := newNetwork(func(c call) fate {
					if !second.Load() {
						return deliver
					}
					switch c.action {
					case lighthouse.ActionDescribeInstances:
						if failures.Add(1) <= 3 {
							return badGateway
						}
						return intl
					case lighthouse.ActionResetInstance:
						if c.n == 2 && victims[c.instances[0]] {
							return badGateway
						}
					}
					return deliver
				})
				b := setup(t, scenario{n: 12, limit: 50, wrap: wrap})
				victims = set(every(jobIDs(b.jobs), 3))
				_, jobs := b.runOn(t, be, relaxed)
				b.verify(t, jobs, verdict{})
				b.baseline()
				b.statePath += ".second"
				second.Store(true)
				_, jobs = b.runOn(t, be, func(c *runner.Config) {
					relaxed(c)
					if preflight {
						c.Rollout = &runner.Rollout{Preflight: true, MaxFailures: -1}
					}
				})
				totals := b.verify(t, jobs, verdict{})
				if totals[store.StatusSucceeded] != len(b.jobs) {
					t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
				}
				if got := nw.count(badGateway.name); got < 3+len(victims) {
					t.Errorf("%d calls answered 502, want at least %d", got, 3+len(victims))
				}
			})
		}
	}
}

// Scenario 10. Resets that end FAILED are recorded failed with code
// OperationFailed and their RequestId. Resets that outlast ResetTimeout
// end unknown with the last observed state, and runner.Reconcile, once the
// emulator has finished them, settles them without sending anything.
func TestFaultFailedAndUnfinished(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be)+"/Failed", func(t *testing.T) {
			t.Parallel()
			var named []string
			b := setup(t, scenario{n: 15, limit: 50, emu: func(c *emulator.Config) {
				named = every(instanceIDs(c), 5)
				c.FailInstances = named
			}})
			_, jobs := b.runOn(t, be, relaxed)
			totals := b.verify(t, jobs, verdict{})
			failed := set(named)
			for _, j := range jobs {
				if failed[j.InstanceID] && (j.Status != store.StatusFailed || j.ErrorCode != "OperationFailed" || j.RequestID == "") {
					t.Errorf("%s: %s %s request %q, want failed OperationFailed with the RequestId", j.InstanceID, j.Status, j.ErrorCode, j.RequestID)
				}
			}
			if totals[store.StatusSucceeded] != len(b.jobs)-len(named) {
				t.Errorf("totals = %v, want %d succeeded", totals, len(b.jobs)-len(named))
			}
		})
		t.Run(string(be)+"/UnfinishedThenReconciled", func(t *testing.T) {
			t.Parallel()
			var named []string
			b := setup(t, scenario{n: 10, limit: 50, emu: func(c *emulator.Config) {
				named = every(instanceIDs(c), 5)
				c.FailInstances = named
				c.ResetDuration = emulator.Duration{Min: 1800 * time.Millisecond, Max: 2 * time.Second}
			}})
			var pg *pgRun
			var jobs []store.Job
			edit := func(c *runner.Config) { relaxed(c); c.ResetTimeout = 800 * time.Millisecond }
			if be == pgBackend {
				pg = b.importPG(t, "unfinished")
				b.runPG(t, pg, "runner-1", 30*time.Second, edit)
				jobs = pg.jobs(t)
			} else {
				_, jobs = b.run(t, edit)
			}
			stats := b.emu.Stats()
			b.verify(t, jobs, verdict{allowUnknown: true})
			for _, j := range jobs {
				applied := b.applied(stats, j.InstanceID)
				if j.Status != store.StatusUnknown || j.ErrorCode != "ResetTimeout" || len(applied) != 1 ||
					!strings.Contains(j.ErrorMessage, "LatestOperationState=OPERATING") ||
					!strings.Contains(j.ErrorMessage, "LatestOperationRequestId="+applied[0]) {
					t.Errorf("%s: %s %s %q, want unknown ResetTimeout naming the last state seen, OPERATING %v", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage, applied)
				}
			}

			b.waitUntil(t, func(in lighthouse.Instance) bool { return in.LatestOperationState != lighthouse.OperationOperating })
			calls := resetCalls(b).Calls
			var unknown []store.Job
			for _, j := range jobs {
				if j.Status == store.StatusUnknown {
					unknown = append(unknown, j)
				}
			}
			changed, _, err := runner.Reconcile(t.Context(), b.cloud(t), unknown, b.config(t, nil).SettleTime)
			if err != nil {
				t.Fatal(err)
			}
			if len(changed) != len(unknown) {
				t.Errorf("Reconcile() changed %d jobs, want all %d unknown ones", len(changed), len(unknown))
			}
			if pg != nil {
				for i := range changed {
					if err := pg.st.Settle(t.Context(), &changed[i]); err != nil {
						t.Fatal(err)
					}
				}
				jobs = pg.jobs(t)
			} else {
				byID := map[int64]store.Job{}
				for _, j := range changed {
					byID[j.ID] = j
				}
				for i, j := range jobs {
					if c, ok := byID[j.ID]; ok {
						jobs[i] = c
					}
				}
			}
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusFailed] != len(named) || totals[store.StatusSucceeded] != len(b.jobs)-len(named) {
				t.Errorf("after Reconcile totals = %v, want %d failed and the rest succeeded", totals, len(named))
			}
			if after := resetCalls(b).Calls; after != calls {
				t.Errorf("Reconcile sent %d ResetInstance calls, want none", after-calls)
			}
		})
	}
}

// waitUntil waits until DescribeInstances shows every instance of the
// fleet as done wants.
func (b *bundle) waitUntil(t *testing.T, done func(lighthouse.Instance) bool) {
	t.Helper()
	ids := jobIDs(b.jobs)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	for {
		insts, err := runnertest.DescribeInstances(t.Context(), b.direct, b.jobs[0].Region, ids)
		if err != nil {
			t.Fatal(err)
		}
		waiting := len(ids) - len(insts)
		for _, in := range insts {
			if !done(in) {
				waiting++
			}
		}
		if waiting == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%d instances still not as wanted after 15s", waiting)
		}
	}
}

// Scenario 11. Malformed answers from the endpoint: invalid JSON, HTML,
// empty bodies, missing and mistyped fields, a gzip body that is not gzip,
// a body cut short, a stream content type. No panic, a clear error for
// each, nothing half-done, and no double reset.
func TestFaultMalformedAnswers(t *testing.T) {
	t.Parallel()
	for _, be := range storeAgnostic {
		// The first ResetInstance of a third of the instances gets one of
		// the malformed answers, half of them after the reset was applied
		// (adopted by reconciliation), half instead of forwarding (proven
		// absent and sent again); a fifth of DescribeInstances answers are
		// malformed too (retried). Every truth is knowable: all succeed.
		t.Run(string(be)+"/Answers", func(t *testing.T) {
			t.Parallel()
			victim := map[string]int{}
			coin := newChance(5)
			nw, wrap := newNetwork(func(c call) fate {
				switch c.action {
				case lighthouse.ActionResetInstance:
					if i, ok := victim[c.instances[0]]; ok && c.n == 1 {
						m := malformed[i%len(malformed)]
						return fate{name: "malformed", forward: i%2 == 0, reply: m.reply}
					}
				case lighthouse.ActionDescribeInstances:
					if coin.flip(0.2) {
						m := malformed[c.n%len(malformed)]
						return fate{name: "malformed-describe", forward: true, reply: m.reply}
					}
				}
				return deliver
			})
			b := setup(t, scenario{n: 2 * 3 * len(malformed), limit: 50, wrap: wrap})
			for i, id := range every(jobIDs(b.jobs), 3) {
				victim[id] = i
			}
			_, jobs := b.runOn(t, be, relaxed)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			logs := b.logs.String()
			for id, i := range victim {
				want := 1 // applied: adopted
				if i%2 == 1 {
					want = 2 // never arrived: proven absent, sent again
				}
				if got := nw.calls(lighthouse.ActionResetInstance, id); got != want {
					t.Errorf("%s (%s, forwarded %v): %d ResetInstance calls, want %d", id, malformed[i%len(malformed)].name, i%2 == 0, got, want)
				}
				if !strings.Contains(logs, "reset outcome unknown; reconciling before any resend\" instance_id="+id+" attempt=1 code=ClientError.") {
					t.Errorf("%s (%s): no in-doubt log line with a ClientError code", id, malformed[i%len(malformed)].name)
				}
			}
			if nw.count("malformed-describe") == 0 {
				t.Error("no DescribeInstances answer was malformed")
			}
		})
		// DescribeInstances answers without the LatestOperation fields
		// (which the API documents as possibly null) for some instances,
		// whose first ResetInstance answer is lost after the reset was
		// applied. Nothing the API says can settle those calls, so they
		// must end unknown, never sent again. A later Reconcile, with
		// DescribeInstances whole again, settles them.
		t.Run(string(be)+"/DescribeWithoutOperation", func(t *testing.T) {
			t.Parallel()
			var victims []string
			nw, wrap := newNetwork(func(c call) fate {
				switch c.action {
				case lighthouse.ActionResetInstance:
					if c.n == 1 && set(victims)[c.instances[0]] {
						return lostAfter
					}
				case lighthouse.ActionDescribeInstances:
					return rewrite("stripped", true, stripOperation(victims))
				}
				return deliver
			})
			b := setup(t, scenario{n: 12, limit: 50, wrap: wrap})
			victims = every(jobIDs(b.jobs), 4)
			why := map[string]string{}
			for _, id := range victims {
				why[id] = "DescribeInstances never reports this instance's operation: whether the reset landed cannot be known"
			}
			_, jobs := b.runOn(t, be, func(c *runner.Config) { relaxed(c); c.ResetTimeout = 2 * time.Second })
			totals := b.verify(t, jobs, verdict{unknown: why})
			for _, id := range victims {
				if got := nw.calls(lighthouse.ActionResetInstance, id); got != 1 {
					t.Errorf("%s: %d ResetInstance calls, want 1: absence was never proven", id, got)
				}
			}
			if totals[store.StatusSucceeded] != len(b.jobs)-len(victims) {
				t.Errorf("totals = %v, want %d succeeded", totals, len(b.jobs)-len(victims))
			}
		})
	}
}

// Scenario 12. The SecretKey never shows: verify checks the logs and the
// results file of every scenario; this one makes the credentials fail, so
// that errors about them are logged, returned and recorded.
func TestFaultSecretsStayOut(t *testing.T) {
	t.Parallel()
	const wrongKey = "wrong-secret-key-for-this-test-987654"
	b := setup(t, scenario{n: 5, limit: 50})
	wrong, err := lighthouse.New(lighthouse.Config{
		Endpoint:   b.url,
		Credential: lighthouse.Credential{SecretID: testSecretID, SecretKey: wrongKey},
		Timeout:    time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.CloseIdleConnections()
	st := b.open(t)
	defer st.Close()
	cfg := b.config(t, st)
	cfg.API = wrong
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(t.Context())
	var ae *lighthouse.APIError
	if !errors.As(err, &ae) || !strings.HasPrefix(ae.Code, "AuthFailure") {
		t.Fatalf("Run() error = %v, want an AuthFailure", err)
	}
	for what, text := range map[string]string{"the Run error": err.Error(), "the logs": b.logs.String()} {
		if strings.Contains(text, wrongKey) || strings.Contains(text, testSecretKey) {
			t.Errorf("%s contain a SecretKey", what)
		}
	}
	if !strings.Contains(b.logs.String(), "AuthFailure") {
		t.Error("the logs do not say why the run stopped")
	}
	b.checkSecrets(t, st.Jobs())
	if got := len(b.emu.Stats().Resets); got != 0 {
		t.Errorf("%d instances reset with wrong credentials", got)
	}
}

// Busy instances (another operation OPERATING) are waited for and then
// reset once: the pre-send snapshot sees them busy, so no call is even
// refused.
func TestFaultBusyInstances(t *testing.T) {
	t.Parallel()
	for _, be := range storeAgnostic {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 20, limit: 50, fleet: emulator.FleetOptions{Busy: 4, BusyFor: 1500 * time.Millisecond}})
			_, jobs := b.runOn(t, be, relaxed)
			rs := resetCalls(b)
			totals := b.verify(t, jobs, verdict{})
			if totals[store.StatusSucceeded] != len(b.jobs) {
				t.Errorf("totals = %v, want all %d succeeded", totals, len(b.jobs))
			}
			if rs.Calls != len(b.jobs) || rs.Errors != 0 {
				t.Errorf("emulator saw %d ResetInstance calls, %d refused; want %d, none refused", rs.Calls, rs.Errors, len(b.jobs))
			}
		})
	}
}

// MaxInFlight caps the resets in progress: sampled from the emulator
// during the run, never more than MaxInFlight instances are OPERATING a
// ResetInstance at once.
func TestFaultMaxInFlight(t *testing.T) {
	t.Parallel()
	const maxInFlight = 3
	for _, be := range storeAgnostic {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 15, limit: 50, emu: func(c *emulator.Config) {
				c.ResetDuration = emulator.Duration{Min: 300 * time.Millisecond, Max: 500 * time.Millisecond}
			}})
			stop := b.sampleOperating(t)
			_, jobs := b.runOn(t, be, func(c *runner.Config) {
				relaxed(c)
				c.MaxInFlight = maxInFlight
				c.DescribeRate = 20 // leaves room for the sampler under the emulator's 100/s
			})
			most := stop()
			b.verify(t, jobs, verdict{})
			if most > maxInFlight {
				t.Errorf("up to %d resets OPERATING at once, want at most MaxInFlight = %d", most, maxInFlight)
			}
			if most == 0 {
				t.Error("the sampler never saw a reset in progress")
			}
		})
	}
}

// sampleOperating counts, every 50ms until the returned function is
// called, the fleet's instances OPERATING a ResetInstance; the function
// returns the most seen at once.
func (b *bundle) sampleOperating(t *testing.T) func() int {
	ids := jobIDs(b.jobs)
	done := make(chan struct{})
	result := make(chan int)
	go func() {
		most := 0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				result <- most
				return
			case <-tick.C:
			}
			insts, err := runnertest.DescribeInstances(context.Background(), b.direct, b.jobs[0].Region, ids)
			if err != nil {
				t.Errorf("sample: %v", err)
				continue
			}
			n := 0
			for _, in := range insts {
				if in.LatestOperation == lighthouse.ActionResetInstance && in.LatestOperationState == lighthouse.OperationOperating {
					n++
				}
			}
			most = max(most, n)
		}
	}()
	return func() int {
		close(done)
		return <-result
	}
}

// A run whose context ends before its resets are settled says so: Run
// returns the context's error, not nil, and the jobs stay in flight for the
// next run to reconcile.
func TestFaultRunCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 4, limit: 50, emu: func(c *emulator.Config) {
		c.ResetDuration = emulator.Duration{Min: 30 * time.Second}
	}})
	st := b.open(t)
	defer st.Close()
	cfg := b.config(t, st)
	relaxed(&cfg)
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := r.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run() error = %v, want %v", err, context.DeadlineExceeded)
	}
	for _, j := range st.Jobs() {
		if j.Status != store.StatusSubmitted {
			t.Errorf("%s: %s, want submitted (still in flight)", j.InstanceID, j.Status)
		}
	}
	b.checkSecrets(t, st.Jobs())
}
