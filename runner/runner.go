package runner

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// API is the part of the Lighthouse API the runner calls.
// *lighthouse.Client satisfies it.
type API interface {
	ResetInstance(ctx context.Context, region, instanceID, blueprintID string) (requestID string, err error)
	DescribeInstances(ctx context.Context, region string, ids []string) ([]lighthouse.Instance, error)
	// DescribeBlueprints is used by the preflight checks only.
	DescribeBlueprints(ctx context.Context, region string, ids []string) ([]lighthouse.Blueprint, error)
}

// Config configures a Runner. Zero fields take the defaults given.
type Config struct {
	API   API   // required
	Store Store // required

	// ResetLimiter spaces ResetInstance calls; nil means a local limiter at
	// Rate (see NewLimiter). The Postgres store provides one shared by every
	// runner on the database.
	ResetLimiter Limiter
	// DescribeLimiter spaces DescribeInstances calls; nil means a local
	// limiter at DescribeRate.
	DescribeLimiter Limiter
	// Rate is ResetInstance calls per second; default
	// lighthouse.ResetInstanceRateLimit (10).
	Rate float64
	// DescribeRate is DescribeInstances calls per second; default half of
	// lighthouse.DescribeInstancesRateLimit, leaving room for other tools.
	DescribeRate float64
	// Guard is the network-jitter allowance of the local limiters; default
	// 20ms. See NewLimiter.
	Guard time.Duration
	// Workers is how many ResetInstance calls may be outstanding at once;
	// default 8.
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
	// never landed. It must exceed the API's visibility lag plus the call
	// timeout; default 90s.
	SettleTime time.Duration
	// MaxAttempts caps ResetInstance calls proven absent or rejected for one
	// job before it fails; default 5. Throttled calls do not count.
	MaxAttempts int
	// LeaseRenewInterval is how often Store.Renew runs; default 10s.
	LeaseRenewInterval time.Duration

	// Rollout decides which jobs may start; nil starts every job.
	Rollout *Rollout

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
)

// Summary is what a run did.
type Summary struct {
	Totals     store.Totals
	Throttled  int64 // calls answered RequestLimitExceeded
	Calls      int64 // ResetInstance calls sent
	Describes  int64 // DescribeInstances calls sent
	Dropped    int64 // jobs given up because their state could not be saved
	Durations  []time.Duration
	StopReason string // why submission stopped early, "" if it did not
}

// Runner resets the jobs of one Store. Use New, then Run once.
type Runner struct {
	cfg   Config
	log   *slog.Logger
	reset Limiter
	desc  Limiter
	gate  *backoff

	draining  atomic.Bool
	drainCh   chan struct{}
	drainOnce sync.Once

	stats   Stats
	fatal   atomic.Pointer[lighthouse.APIError]
	stopMu  sync.Mutex
	stopWhy string // reason new resets are skipped (budget, window, cancel)

	bpMu sync.Mutex
	bps  map[string]*lighthouse.Blueprint // preflight cache, by region/id

	live     atomic.Int64 // tasks claimed and not yet finished or released
	slots    chan struct{}
	sendq    chan *task
	sendLow  chan struct{} // a sender found sendq under a batch; see feed
	trackq   chan *task
	wake     chan struct{}
	finished chan struct{}
}

// New checks cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.API == nil || cfg.Store == nil {
		return nil, errors.New("runner: API and Store are required")
	}
	if cfg.Rate == 0 {
		cfg.Rate = lighthouse.ResetInstanceRateLimit
	}
	if cfg.DescribeRate == 0 {
		cfg.DescribeRate = lighthouse.DescribeInstancesRateLimit / 2
	}
	if cfg.Rate < 0 || cfg.DescribeRate < 0 {
		return nil, errors.New("runner: rates must be positive")
	}
	if cfg.Guard == 0 {
		cfg.Guard = 20 * time.Millisecond
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.ResetTimeout <= 0 {
		cfg.ResetTimeout = 30 * time.Minute
	}
	if cfg.SettleTime <= 0 {
		cfg.SettleTime = 90 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.LeaseRenewInterval <= 0 {
		cfg.LeaseRenewInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		cfg:      cfg,
		log:      cfg.Logger,
		reset:    cfg.ResetLimiter,
		desc:     cfg.DescribeLimiter,
		gate:     newBackoff(500*time.Millisecond, 30*time.Second),
		drainCh:  make(chan struct{}),
		sendq:    make(chan *task, 4*claimBatch+cfg.Workers),
		sendLow:  make(chan struct{}, 1),
		trackq:   make(chan *task, 4*claimBatch+cfg.Workers),
		wake:     make(chan struct{}, 1),
		finished: make(chan struct{}),
	}
	if r.reset == nil {
		r.reset = NewLimiter(cfg.Rate, cfg.Guard)
	}
	if r.desc == nil {
		r.desc = NewLimiter(cfg.DescribeRate, cfg.Guard)
	}
	if cfg.MaxInFlight > 0 {
		r.slots = make(chan struct{}, cfg.MaxInFlight)
	}
	if cfg.Rollout != nil {
		cfg.Rollout.start(r)
	}
	return r, nil
}

// NewLimiter returns a local limiter for perSecond calls a second that the
// server, counting arrivals in fixed one-second windows, never sees exceeded
// as long as network jitter stays under guard: calls are spaced
// (1s+guard)/perSecond apart with no burst, so any perSecond+1 consecutive
// calls span at least one second plus guard. A caller that wakes for its
// slot more than guard/2 late (descheduled on a busy host) gives the slot up
// and waits for another, a few times at most, so that its call never lands
// among the calls of later slots.
func NewLimiter(perSecond float64, guard time.Duration) Limiter {
	every := time.Duration(float64(time.Second+guard) / perSecond)
	return &spacer{lim: rate.NewLimiter(rate.Every(every), 1), maxLate: guard / 2}
}

// spacer is the limiter NewLimiter returns.
type spacer struct {
	lim     *rate.Limiter
	maxLate time.Duration
}

// maxLateRetries bounds how many late slots one Wait gives up, so that a
// host too busy to keep any slot still makes progress.
const maxLateRetries = 5

func (s *spacer) Wait(ctx context.Context) error {
	for late := 0; ; late++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		res := s.lim.Reserve()
		d := res.Delay()
		slot := time.Now().Add(d)
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				res.Cancel()
				return ctx.Err()
			}
		}
		if s.maxLate > 0 && time.Since(slot) > s.maxLate && late < maxLateRetries {
			continue
		}
		return nil
	}
}

// claimBatch is how many jobs one Claim takes: one DescribeInstances call's
// worth, so the pre-send snapshot costs one call per batch.
const claimBatch = lighthouse.MaxIDsPerCall

// Drain stops new submissions: nothing more is claimed or sent, jobs not yet
// sent are released, and resets already sent are tracked to the end. It is
// what the first interrupt does. Safe to call more than once.
func (r *Runner) Drain() {
	r.drainOnce.Do(func() {
		r.draining.Store(true)
		close(r.drainCh)
		r.log.Warn("draining: no new resets; tracking those already sent")
		r.poke()
	})
}

// Stats returns live counters, for progress displays and metrics.
func (r *Runner) Stats() *Stats { return &r.stats }

// Run works until every claimable job is finished, submission is stopped
// and in-flight resets are settled, or ctx is done. It returns the fatal API
// error that stopped submission, if any, or ctx's error.
func (r *Runner) Run(ctx context.Context) (Summary, error) {
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
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
	for range r.cfg.Workers {
		g.Go(func() error { return r.work(ctx) })
	}
	g.Go(func() error { return r.track(ctx) })
	g.Go(func() error { return r.housekeep(ctx) })
	err := g.Wait()
	sum := r.stats.summary()
	r.stopMu.Lock()
	sum.StopReason = r.stopWhy
	r.stopMu.Unlock()
	if f := r.fatal.Load(); f != nil && sum.StopReason == "" {
		sum.StopReason = "fatal error: " + f.Code
	}
	if err == nil {
		if f := r.fatal.Load(); f != nil {
			err = f
		}
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
	if t.admitted && r.cfg.Rollout != nil {
		r.cfg.Rollout.onSettled()
	}
	if r.live.Add(-1) == 0 {
		r.poke()
	}
}

// stopReason reports why no new reset may start, or "" if they may.
func (r *Runner) stopReason() string {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	return r.stopWhy
}

// stopStarting makes every job not yet sent end skipped with why.
func (r *Runner) stopStarting(why string) {
	r.stopMu.Lock()
	first := r.stopWhy == ""
	if first {
		r.stopWhy = why
	}
	r.stopMu.Unlock()
	if first {
		r.log.Warn("no new resets", "reason", why)
	}
}

// halted reports whether submission has stopped and unsent jobs should be
// released (drain, fatal error) rather than skipped.
func (r *Runner) halted() bool {
	return r.draining.Load() || r.fatal.Load() != nil
}

// feed claims jobs, takes a DescribeInstances snapshot of each batch, and
// routes every job: pending ones to the senders, in-doubt and submitted ones
// (left by a crash or taken over from a dead runner) to the tracker.
func (r *Runner) feed(ctx context.Context) error {
	retry := newBackoff(time.Second, 30*time.Second)
	for {
		if r.halted() {
			return nil
		}
		if r.paused() {
			if err := r.sleep(ctx, r.cfg.PollInterval); err != nil {
				return nil
			}
			continue
		}
		// Keep at most a few batches claimed ahead of the senders: claimed
		// jobs are leased, and other runners should get their share. The
		// senders signal sendLow as they take the queue under a batch, so
		// the next batch is claimed when it is needed: a fixed 50ms pause
		// (still the fallback) left them idle at thousands of jobs a second.
		if len(r.sendq) >= claimBatch {
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-r.sendLow:
			case <-r.drainCh:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		jobs, waiting, err := r.cfg.Store.Claim(ctx, claimBatch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d := retry.next()
			r.log.Warn("claim jobs", "err", err, "retry_in", d)
			if r.sleep(ctx, d) != nil {
				return nil
			}
			continue
		}
		retry.reset()
		if len(jobs) == 0 {
			if !waiting {
				return nil
			}
			if r.sleep(ctx, r.cfg.PollInterval) != nil {
				return nil
			}
			continue
		}
		r.live.Add(int64(len(jobs)))
		r.failpoint(FailpointAfterClaim)
		if err := r.route(ctx, jobs); err != nil {
			return err
		}
	}
}

// route snapshots a claimed batch and hands each job on.
func (r *Runner) route(ctx context.Context, jobs []store.Job) error {
	if why := r.stopReason(); why != "" {
		// New resets are stopped for good: pending jobs are skipped without
		// asking the cloud anything; others are still settled.
		var rest []store.Job
		for _, j := range jobs {
			if j.Status == store.StatusPending {
				r.finish(ctx, &task{job: j}, store.StatusSkipped, "", why)
				continue
			}
			rest = append(rest, j)
		}
		jobs = rest
	}
	snap, complete := r.snapshot(ctx, jobs)
	now := time.Now()
	for i := range jobs {
		t := &task{job: jobs[i], since: now}
		in, seen := snap[t.job.InstanceID]
		switch t.job.Status {
		case store.StatusSubmitting:
			t.kind, t.doubt, t.lastSend = kindInDoubt, true, now
			r.log.Info("reconciling job left in doubt", "instance_id", t.job.InstanceID)
			r.toTracker(ctx, t)
		case store.StatusSubmitted:
			t.kind = kindTracking
			r.toTracker(ctx, t)
		default:
			if !seen && !complete {
				// The run stopped before the instance could be described:
				// it stays pending, for a later run.
				r.release(t)
				continue
			}
			if seen {
				t.job.PrevRequestID = in.LatestOperationRequestID
			}
			if r.cfg.Rollout != nil && r.cfg.Rollout.Preflight {
				var inp *lighthouse.Instance
				if seen {
					inp = &in
				}
				if why := Check(t.job, inp, r.blueprint(ctx, t.job)); why != "" {
					r.finish(ctx, t, store.StatusSkipped, "Preflight", "preflight: "+why)
					continue
				}
			}
			if seen && in.LatestOperationState == lighthouse.OperationOperating {
				t.kind, t.busySince = kindWaitIdle, now
				r.toTracker(ctx, t)
				continue
			}
			select {
			case r.sendq <- t:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}

// snapshot describes the instances of jobs, by region, before anything is
// sent. A region whose call was rejected (throttled, 5xx, timed out,
// malformed) is described again, with backoff, until it answers: without
// the snapshot a job's PrevRequestID is unknown, and an in-doubt call of it
// could later be "reconciled" against an older reset of the same instance
// (a success recorded for a reset never applied), while preflight would
// skip the whole batch as "not found" (TestFaultSnapshotLost). A fatal
// error (credentials, permissions) stops submission. Other errors leave the
// region's instances out, as the send path copes without them. complete
// is false when the run stopped first.
func (r *Runner) snapshot(ctx context.Context, jobs []store.Job) (snap map[string]lighthouse.Instance, complete bool) {
	byRegion := map[string][]string{}
	for _, j := range jobs {
		byRegion[j.Region] = append(byRegion[j.Region], j.InstanceID)
	}
	out := make(map[string]lighthouse.Instance, len(jobs))
	retry := newBackoff(time.Second, 30*time.Second)
	for {
		for region, ids := range byRegion {
			insts, err := r.describe(ctx, region, ids)
			if err != nil {
				ae, _ := errors.AsType[*lighthouse.APIError](err)
				switch {
				case ctx.Err() != nil:
					return out, false
				case ae != nil && ae.Class == lighthouse.ClassFatal:
					r.log.Error("fatal error; no new resets", "err", ae)
					r.fatal.CompareAndSwap(nil, ae)
					return out, false
				case ae == nil || ae.Class == lighthouse.ClassRetryable:
					r.log.Warn("describe before sending; will retry", "region", region, "err", err)
					continue
				}
				r.log.Warn("describe before sending", "region", region, "err", err)
			}
			for _, in := range insts {
				out[in.InstanceID] = in
			}
			delete(byRegion, region)
		}
		if len(byRegion) == 0 {
			return out, true
		}
		if r.halted() || r.sleep(ctx, retry.next()) != nil {
			return out, false
		}
	}
}

// blueprint returns j's target blueprint as DescribeBlueprints shows it, or
// nil. Answers are cached for the run; a failed lookup is not cached.
func (r *Runner) blueprint(ctx context.Context, j store.Job) *lighthouse.Blueprint {
	if j.BlueprintID == "" {
		return nil
	}
	key := j.Region + "/" + j.BlueprintID
	r.bpMu.Lock()
	defer r.bpMu.Unlock()
	if bp, ok := r.bps[key]; ok {
		return bp
	}
	// A lookup that fails says nothing about the blueprint: it is judged
	// unknown (the API decides when the reset is sent), never absent.
	unknown := &lighthouse.Blueprint{BlueprintID: j.BlueprintID}
	if err := r.desc.Wait(ctx); err != nil {
		return unknown
	}
	bps, err := r.cfg.API.DescribeBlueprints(ctx, j.Region, []string{j.BlueprintID})
	if err != nil {
		r.log.Warn("describe blueprint for preflight", "blueprint_id", j.BlueprintID, "err", err)
		return unknown
	}
	var bp *lighthouse.Blueprint
	for i := range bps {
		if bps[i].BlueprintID == j.BlueprintID {
			bp = &bps[i]
		}
	}
	if r.bps == nil {
		r.bps = map[string]*lighthouse.Blueprint{}
	}
	r.bps[key] = bp
	return bp
}

// describe calls DescribeInstances under the describe limiter, in calls of
// at most 100 IDs, retrying rejected calls a few times. A call the API
// fails as a whole for one ID's sake (an instance not found or malformed:
// a permanent error) is split in halves until the culprit is alone; it is
// left out of the answer, as an absent instance is.
func (r *Runner) describe(ctx context.Context, region string, ids []string) ([]lighthouse.Instance, error) {
	var out []lighthouse.Instance
	for start := 0; start < len(ids); start += lighthouse.MaxIDsPerCall {
		insts, err := r.describeChunk(ctx, region, ids[start:min(start+lighthouse.MaxIDsPerCall, len(ids))])
		out = append(out, insts...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (r *Runner) describeChunk(ctx context.Context, region string, chunk []string) ([]lighthouse.Instance, error) {
	for attempt := 0; ; attempt++ {
		if err := r.desc.Wait(ctx); err != nil {
			return nil, err
		}
		r.stats.Describes.Add(1)
		insts, err := r.cfg.API.DescribeInstances(ctx, region, chunk)
		if err == nil {
			return insts, nil
		}
		ae, _ := errors.AsType[*lighthouse.APIError](err)
		if ae != nil && ae.Throttled() {
			r.stats.Throttled.Add(1)
		}
		switch {
		case ctx.Err() != nil || ae == nil:
			return nil, err
		case ae.Class == lighthouse.ClassPermanent && len(chunk) > 1:
			half := len(chunk) / 2
			a, err := r.describeChunk(ctx, region, chunk[:half])
			if err != nil {
				return a, err
			}
			b, err := r.describeChunk(ctx, region, chunk[half:])
			return append(a, b...), err
		case ae.Class == lighthouse.ClassPermanent:
			r.log.Warn("instance cannot be described", "region", region, "instance_id", chunk[0], "err", ae)
			return nil, nil
		case ae.Class != lighthouse.ClassRetryable || attempt >= 2:
			return nil, err
		}
		if err := r.sleep(ctx, time.Duration(200*(attempt+1))*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// paused reports whether the operator paused the run.
func (r *Runner) paused() bool { return r.stats.paused.Load() }

// housekeep renews leases and reads the operator's control for the run.
func (r *Runner) housekeep(ctx context.Context) error {
	renew := time.NewTicker(r.cfg.LeaseRenewInterval)
	defer renew.Stop()
	control := time.NewTicker(r.cfg.PollInterval)
	defer control.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.finished:
			return nil
		case <-renew.C:
			if err := r.cfg.Store.Renew(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("renew leases", "err", err)
			}
		case <-control.C:
			c, err := r.cfg.Store.Control(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("read run control", "err", err)
				}
				continue
			}
			r.applyControl(c)
		}
	}
}

func (r *Runner) applyControl(c store.Control) {
	switch c {
	case store.ControlPaused:
		if !r.stats.paused.Swap(true) {
			r.log.Warn("run paused by operator")
		}
	case store.ControlCancelled:
		r.stats.paused.Store(false)
		r.stopStarting("cancelled by operator")
	default:
		if r.stats.paused.Swap(false) {
			r.log.Info("run resumed by operator")
		}
	}
}

// sleep waits d or until ctx is done.
func (r *Runner) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
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
