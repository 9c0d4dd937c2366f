package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/batchreset/batchreset/store"
)

// Defaults of Config; the command's flags point at them.
const (
	DefaultWorkers            = 8
	DefaultPollInterval       = 5 * time.Second
	DefaultResetTimeout       = 30 * time.Minute
	DefaultSettleTime         = 90 * time.Second
	DefaultMaxAttempts        = 5
	DefaultLeaseRenewInterval = 10 * time.Second
)

// Config configures a Runner. Zero fields take the defaults given; negative
// durations and counts are errors.
type Config struct {
	API   API   // required; every call goes through the runner's Cloud
	Store Store // required
	// Sender, if set, makes the ResetInstance calls (see CloudConfig.Sender).
	Sender API

	// Rate is ResetInstance calls per second; default DefaultRate.
	Rate float64
	// DescribeRate is DescribeInstances calls per second; default
	// DefaultDescribeRate.
	DescribeRate float64
	// Shared, if set, are the rate limits shared with other processes of
	// the same Identity (HostLimits, the Postgres store's Limits, or both
	// through HostLimits.Over). Nil: limiters of this process alone.
	Shared SharedLimits
	// Guard is the jitter allowance of the limiters; default DefaultGuard,
	// or Shared's.
	Guard time.Duration

	// Workers is how many ResetInstance calls may be outstanding at once;
	// default DefaultWorkers.
	Workers int
	// MaxInFlight caps resets in progress (sent and not yet finished);
	// 0 means no cap.
	MaxInFlight int
	// PollInterval is how often in-flight resets are checked; default 5s.
	PollInterval time.Duration
	// ResetTimeout is how long a submitted reset is tracked before it ends
	// unknown; it also bounds how long a busy instance is waited for.
	// Default 30m.
	ResetTimeout time.Duration
	// SettleTime is how long after a call of ambiguous outcome the runner
	// waits before it may conclude, from DescribeInstances, that the reset
	// never landed. It must exceed the API's visibility lag plus
	// RequestTimeout; default 90s.
	SettleTime time.Duration
	// RequestTimeout bounds one ResetInstance call on top of the client's
	// own timeout; 0 leaves it to the client. A call never outlives the
	// job's lease either (see Leaser).
	RequestTimeout time.Duration
	// MaxAttempts caps ResetInstance calls proven absent for one job before
	// it fails; default 5. Rejected calls do not count.
	MaxAttempts int
	// LeaseRenewInterval is how often Store.Renew runs; default 10s.
	LeaseRenewInterval time.Duration
	// Unreachable is how long no API call may get an answer before the run
	// stops with ErrUnreachable; default DefaultUnreachable.
	Unreachable time.Duration

	// Holds, if set, is asked before every save that puts a job in flight
	// or takes it out: another run's hold on the instance refuses the
	// intent (store.ErrHeld). The store may hold instances itself too (the
	// Postgres store does, for the runs of one database).
	Holds Holds

	// SkipResetSince, if positive, skips (CodeRecentlyReset) an instance
	// whose latest operation, when the run first looks at it, is a
	// ResetInstance that the cloud started within SkipResetSince, widened
	// by the 300 s its clock may differ from ours (or whose start the cloud
	// does not give). Without it such instances are reset, and counted in
	// Summary.RecentlyReset.
	SkipResetSince time.Duration

	// Rollout decides which jobs may start; nil starts every job.
	Rollout *Rollout

	// Login is the login setting of every reset whose job names none; the
	// zero value sends none. Health is the check after each reset; the zero
	// value checks nothing.
	Login  Login
	Health Health
	// Hooks are the lifecycle hooks around each reset (hooks.go); the zero
	// value runs none.
	Hooks Hooks

	// WaitPaused makes a runner started while the run is paused wait for a
	// person's resume or cancel, saying so (an operator at a terminal);
	// without it such a runner ends once it holds nothing, having sent
	// nothing (a run started by cron).
	WaitPaused bool

	// OnEvent, if set, is told of the run's moments (see EventKind), from
	// the runner's goroutines. It must return at once (hand the event off),
	// or it holds up what reported it.
	OnEvent func(Event)

	// ObserveCall, if set, is told of every API call (CloudConfig.Observe).
	ObserveCall func(action string, took time.Duration, err error)

	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
	// Failpoint, if set, is called at each dangerous point with its name
	// (see the Failpoint constants); tests use it to kill the process there.
	Failpoint func(name string)
}

// Failpoint names: the points between which a crash is most dangerous.
const (
	FailpointAfterClaim    = "after-claim"
	FailpointAfterIntent   = "after-intent"
	FailpointDuringCall    = "during-call"
	FailpointAfterCall     = "after-call"
	FailpointBeforeOutcome = "before-outcome"
	// FailpointBeforeHookStarted: the before phase is recorded and the
	// before-hook runs.
	FailpointBeforeHookStarted = "before-hook-started"
	// FailpointAfterBeforeHook: a before-hook ended and the job is
	// recorded drained; nothing of its reset has been recorded.
	FailpointAfterBeforeHook = "after-before-hook"
	// FailpointAfterHookStarted: the after phase is recorded and the
	// after-hook runs.
	FailpointAfterHookStarted = "after-hook-started"
)

// Summary is what a run did.
type Summary struct {
	Totals     store.Totals
	Throttled  int64 // calls answered RequestLimitExceeded
	Calls      int64 // ResetInstance calls sent
	Describes  int64 // DescribeInstances calls sent
	Dropped    int64 // jobs given up because their state could not be saved
	ResetTwice int64 // instances another process reset too (CodeResetTwice)
	// HookFailures counts lifecycle hooks that failed or timed out.
	HookFailures int64
	// RecentlyReset counts instances whose latest operation, when the run
	// first looked at them, was a ResetInstance started within the last
	// RecentResetWindow by a request not of this run: skipped with
	// Config.SkipResetSince, reset again without it.
	RecentlyReset int64
	// JitterGuard is the jitter allowance ResetInstance calls were spaced
	// for at the end: the configured guard, or the measured spread of the
	// calls' latencies (slot to first byte) when larger. The rate costs
	// 1/(1+JitterGuard/1s).
	JitterGuard time.Duration
	Durations   []time.Duration
	StopReason  string // why submission stopped early, "" if it did not
	// Paused reports that the run was paused when this runner ended (by
	// the operator, the failure budget under FailPause, or an approval):
	// the jobs it did not start wait for `resume`. WaitingFor says what
	// the pause waits for ("approval of wave 2").
	Paused     bool
	WaitingFor string
	// Rollback reports that this runner saw the failure budget exceeded
	// under FailRollback: the command rolls the run back (see
	// PlanRollback). Another runner of a shared run may have seen it
	// instead: the run's record says so (see RollbackDue).
	Rollback bool
	// Accounts breaks a Group's run down by account (store.Job.Account);
	// nil for a run of one account.
	Accounts map[string]Summary
}

// add merges the Summary of another account's runner into s: counts add
// up, the run's state (paused, rollback) holds if it held for any, and
// stop reasons are kept once each.
func (s *Summary) add(o Summary) {
	for st, n := range o.Totals {
		s.Totals[st] += n
	}
	s.Throttled += o.Throttled
	s.Calls += o.Calls
	s.Describes += o.Describes
	s.Dropped += o.Dropped
	s.ResetTwice += o.ResetTwice
	s.HookFailures += o.HookFailures
	s.RecentlyReset += o.RecentlyReset
	s.JitterGuard = max(s.JitterGuard, o.JitterGuard)
	s.Durations = append(s.Durations, o.Durations...)
	slices.Sort(s.Durations)
	if o.StopReason != "" && !strings.Contains(s.StopReason, o.StopReason) {
		s.StopReason = strings.TrimPrefix(s.StopReason+"; "+o.StopReason, "; ")
	}
	if o.Paused {
		s.Paused, s.WaitingFor = true, cmp.Or(s.WaitingFor, o.WaitingFor)
	}
	s.Rollback = s.Rollback || o.Rollback
}

// Runner resets the jobs of one Store. Use New, then Run once.
type Runner struct {
	cfg   Config
	lim   limits
	log   *slog.Logger
	cloud *Cloud
	adm   admission

	stats Stats
	// healthWarn keeps a failing TAT call from logging every poll.
	healthWarn rate.Sometimes

	live  atomic.Int64 // tasks claimed and not yet finished or released
	slots chan struct{}
	// sendq holds the jobs to send that the rollout has not admitted yet,
	// for the gate; readyq takes each job the gate admits to a free sender;
	// againq takes a job admitted before (or needing no admission) back to
	// the senders, ahead of new ones. See gate.
	sendq   chan *task
	readyq  chan *task
	againq  chan *task
	sendLow chan struct{} // the gate found sendq under a batch; see feed
	trackq  chan *task
	// describeq takes the feed's pre-send snapshots to the tracker.
	describeq chan describeReq
	wake      chan struct{}
	finished  chan struct{}

	// hookq takes the jobs the gate admitted whose before-hook is due to
	// the before-hook stage (drain); afterSem bounds the after-hooks
	// running at once, hookWG waits for them; tat runs the hooks of kind
	// HookTAT; runCtx is the context of Run, for restores on release.
	hookq    chan *task
	afterSem chan struct{}
	hookWG   sync.WaitGroup
	tat      *tatHooks
	runCtx   context.Context

	// budget is the failure budget of the runner's account, in a Group;
	// nil: none.
	budget *accountBudget
}

// New checks cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.API == nil || cfg.Store == nil {
		return nil, errors.New("runner: API and Store are required")
	}
	if cfg.Hooks.Timeout < 0 || cfg.Hooks.Concurrency < 0 {
		return nil, errors.New("runner: hook timeout and concurrency must not be negative")
	}
	if cfg.Workers < 0 || cfg.MaxInFlight < 0 || cfg.MaxAttempts < 0 || cfg.PollInterval < 0 || cfg.ResetTimeout < 0 ||
		cfg.SettleTime < 0 || cfg.RequestTimeout < 0 || cfg.LeaseRenewInterval < 0 || cfg.Unreachable < 0 {
		return nil, errors.New("runner: counts and durations must not be negative")
	}
	setDefault(&cfg.Workers, DefaultWorkers)
	setDefault(&cfg.PollInterval, DefaultPollInterval)
	setDefault(&cfg.ResetTimeout, DefaultResetTimeout)
	setDefault(&cfg.SettleTime, DefaultSettleTime)
	setDefault(&cfg.MaxAttempts, DefaultMaxAttempts)
	setDefault(&cfg.LeaseRenewInterval, DefaultLeaseRenewInterval)
	setDefault(&cfg.Unreachable, DefaultUnreachable)
	if cfg.RequestTimeout > 0 && cfg.SettleTime <= cfg.RequestTimeout {
		return nil, errors.New("runner: SettleTime must exceed RequestTimeout: a call may land until it times out")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cloud, err := NewCloud(CloudConfig{API: cfg.API, Sender: cfg.Sender, Rate: cfg.Rate, DescribeRate: cfg.DescribeRate,
		Shared: cfg.Shared, Guard: cfg.Guard, Logger: cfg.Logger, Observe: cfg.ObserveCall})
	if err != nil {
		return nil, err
	}
	r := &Runner{
		cfg:       cfg,
		lim:       limits{settle: cfg.SettleTime, resetTimeout: cfg.ResetTimeout, maxAttempts: cfg.MaxAttempts},
		log:       cfg.Logger,
		cloud:     cloud,
		sendq:     make(chan *task, 4*claimBatch+cfg.Workers),
		readyq:    make(chan *task),
		againq:    make(chan *task, 4*claimBatch+cfg.Workers),
		sendLow:   make(chan struct{}, 1),
		trackq:    make(chan *task, 4*claimBatch+cfg.Workers),
		describeq: make(chan describeReq),
		wake:      make(chan struct{}, 1),
		finished:  make(chan struct{}),
	}
	r.adm.init()
	if cfg.Hooks.enabled() {
		r.hookq = make(chan *task)
		r.afterSem = make(chan struct{}, cfg.Hooks.concurrency())
		r.tat = newTATHooks(r)
	}
	cloud.onUnwritable = r.unwritable
	r.healthWarn = rate.Sometimes{Interval: time.Minute}
	r.stats.cloud, r.stats.adm = cloud, &r.adm
	if cfg.MaxInFlight > 0 {
		r.slots = make(chan struct{}, cfg.MaxInFlight)
	}
	if cfg.Rollout != nil {
		cfg.Rollout.start()
	}
	return r, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// claimBatch is how many jobs one Claim takes: one DescribeInstances call's
// worth, so the pre-send snapshot costs one call per batch.
const claimBatch = 100

// Drain stops new submissions: nothing more is claimed or sent, jobs not yet
// sent are released, and resets already sent are tracked to the end. It is
// what the first interrupt does. Safe to call more than once.
func (r *Runner) Drain() {
	if r.adm.drain() {
		r.emit(EventDraining, 0, "interrupted")
		// Debug: the command that drains tells the operator itself.
		r.log.Debug("draining: no new resets; tracking those already sent")
		r.poke()
	}
}

// Stats returns live counters, for progress displays and metrics.
func (r *Runner) Stats() *Stats { return &r.stats }

// Run works until every claimable job is finished, submission is stopped
// and in-flight resets are settled, or ctx is done. It returns the fatal
// error that stopped submission, if any, or ctx's error.
func (r *Runner) Run(ctx context.Context) (Summary, error) {
	parent := ctx
	// The operator's control holds from the first claim: a run paused or
	// cancelled before this runner started sends nothing.
	if h, err := r.readControl(ctx); err == nil {
		r.applyControl(h)
	} else if ctx.Err() == nil {
		r.log.Warn("read run control", "err", err)
	}
	if s, ok := r.cfg.Store.(SharedRollout); ok && r.cfg.Rollout != nil && r.cfg.Rollout.gated() {
		if err := r.cfg.Rollout.share(ctx, s); err != nil {
			return r.stats.summary(), fmt.Errorf("rollout: %w", err)
		}
	}
	r.emit(EventStarted, 0, "")
	g, ctx := errgroup.WithContext(ctx)
	r.runCtx = ctx
	defer r.hookWG.Wait()
	feedDone := make(chan struct{})
	g.Go(func() error {
		defer close(feedDone)
		return r.feed(ctx)
	})
	g.Go(func() error {
		select {
		case <-feedDone:
		case <-ctx.Done():
			return nil
		}
		for r.live.Load() > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-r.wake:
			case <-time.After(r.cfg.PollInterval):
			}
		}
		close(r.finished)
		return nil
	})
	g.Go(func() error { return r.gate(ctx) })
	if r.cfg.Hooks.Before != nil {
		for range r.cfg.Hooks.concurrency() {
			g.Go(func() error { return r.drain(ctx) })
		}
	}
	if r.tat != nil {
		g.Go(func() error { return r.tat.loop(ctx) })
	}
	for range r.cfg.Workers {
		g.Go(func() error { return r.work(ctx) })
	}
	g.Go(func() error { return r.track(ctx) })
	g.Go(func() error { return r.housekeep(ctx) })
	err := g.Wait()
	sum := r.stats.summary()
	st := r.adm.load()
	// A runner that ended at a pause (WaitPaused unset) drained with the
	// run still paused.
	sum.StopReason = st.reason
	sum.Paused = st.mode == admitPaused || st.mode == admitDraining && st.waitFor != ""
	if sum.Paused {
		sum.WaitingFor = st.waitFor
	}
	sum.Rollback = RollbackDue(st.reason)
	sum.JitterGuard = r.cloud.JitterGuard()
	if st.fatal != nil && (sum.StopReason == "" || st.mode == admitBroken) {
		sum.StopReason = "fatal error: " + st.fatal.Error()
	}
	if err == nil && st.fatal != nil {
		err = st.fatal
	}
	select {
	case <-r.finished:
	default:
		// Every goroutine returns nil when ctx ends; say so, as documented,
		// rather than report an unfinished run as done.
		if err == nil && parent.Err() != nil {
			err = context.Cause(parent)
		}
	}
	return sum, err
}

// poke wakes the goroutine waiting for the run to finish.
func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// done is called once for every task that leaves the runner.
func (r *Runner) done(t *task) {
	r.dropSlot(t)
	if t.admitted && r.cfg.Rollout != nil {
		r.cfg.Rollout.onSettled()
	}
	if r.live.Add(-1) == 0 {
		r.poke()
	}
}

func (r *Runner) failpoint(name string) {
	if r.cfg.Failpoint != nil {
		r.cfg.Failpoint(name)
	}
}

// jitter returns d ± 10%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()-0.5)*0.2*float64(d))
}
