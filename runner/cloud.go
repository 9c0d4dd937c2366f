package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptrace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// API is the part of the Lighthouse API batchreset calls.
// *lighthouse.Client satisfies it. Nothing calls it but a Cloud.
type API interface {
	ResetInstance(ctx context.Context, region string, req lighthouse.ResetInstanceRequest) (requestID string, err error)
	DescribeInstances(ctx context.Context, region string, ids []string) ([]lighthouse.Instance, error)
	DescribeBlueprints(ctx context.Context, region string, ids []string) ([]lighthouse.Blueprint, error)
	DescribeResetInstanceBlueprints(ctx context.Context, region, instanceID string, blueprintIDs []string) ([]lighthouse.ResetInstanceBlueprint, error)
	// Selection (cloud_select.go): one page per call, so that every page
	// waits for its action's limiter.
	DescribeInstancesPage(ctx context.Context, region string, filters []lighthouse.Filter, offset, limit int) (total int, instances []lighthouse.Instance, err error)
	GetResourcesPage(ctx context.Context, filters []lighthouse.TagFilter, token string) (resources []lighthouse.TaggedResource, next string, err error)
	DescribeRegions(ctx context.Context) ([]lighthouse.Region, error)
	// Login settings and health (cloud_health.go).
	DescribeKeyPairs(ctx context.Context, region string, ids []string) ([]lighthouse.KeyPair, error)
	DescribeAutomationAgentStatus(ctx context.Context, region string, ids []string) ([]lighthouse.AutomationAgent, error)
	RunCommand(ctx context.Context, region string, req lighthouse.RunCommandRequest) (invocationID string, err error)
	DescribeInvocationTasks(ctx context.Context, region, invocationID string) ([]lighthouse.InvocationTask, error)
	// Identity (identity.go): who the calls are charged to.
	GetCallerIdentity(ctx context.Context) (lighthouse.CallerIdentity, error)
}

// SharedLimits are rate limits that several processes share: the Postgres
// store's (every runner on the database) or HostLimits (every process on
// the host). SlotSource returns the shared slots of one action, spaced
// interval apart across every process; Guard is the jitter allowance those
// processes need between them.
type SharedLimits interface {
	SlotSource(action string, interval time.Duration) SlotSource
	Guard() time.Duration
}

// Default rates and bounds of the calls a Cloud makes. Flags point at these.
const (
	// DefaultRate is ResetInstance calls per second: the documented limit.
	DefaultRate = lighthouse.ResetInstanceRateLimit
	// DefaultDescribeRate is DescribeInstances calls per second: half the
	// documented limit, leaving room for other tools on the account.
	DefaultDescribeRate = lighthouse.DescribeInstancesRateLimit / 2
	// DefaultUnreachable is how long no call may get any answer from the
	// API before a run stops: a dead or wrong endpoint ends the run rather
	// than retrying for ever.
	DefaultUnreachable = 3 * time.Minute
)

// describeConcurrency is how many DescribeInstances calls one Cloud makes
// at once; each still waits for the action's limiter.
const describeConcurrency = 8

// CloudConfig configures a Cloud. Zero fields take the defaults given.
type CloudConfig struct {
	API API // required
	// Sender, if set, makes the ResetInstance calls instead of API: a client
	// with connections of its own, so that a sender holding its rate slot
	// never waits for a connection that reads are using.
	Sender API
	// Rate is ResetInstance calls per second; default DefaultRate.
	Rate float64
	// DescribeRate is DescribeInstances calls per second; default
	// DefaultDescribeRate.
	DescribeRate float64
	// Shared, if set, supplies the slots of every action, shared with other
	// processes, with its jitter allowance. Nil: limiters of this process
	// alone, with DefaultGuard.
	Shared SharedLimits
	// Guard overrides the jitter allowance; zero means the default above.
	Guard  time.Duration
	Logger *slog.Logger
	// Observe, if set, is told of every API call the Cloud makes: its
	// action, how long it took and its error (nil when it succeeded). It
	// must return at once; metrics hang on it.
	Observe func(action string, took time.Duration, err error)
}

// Cloud is the one way every command calls the API. Each action has its own
// Spacer at its limit and its own throttle gate: a RequestLimitExceeded
// pauses every caller of that action, and the pause ends once calls are
// accepted. DescribeInstances goes in batches of at most 100 IDs, a
// rejected batch is retried, and a batch that the API fails as a whole
// because of one instance is split until that instance is alone.
// Blueprints and key pairs are cached for the Cloud's life. TAT calls
// (cloud_health.go) go through the same limiters and gates. It is safe for
// concurrent use.
type Cloud struct {
	onCall func(action string, took time.Duration, err error) // CloudConfig.Observe
	api    API
	send   API
	log    *slog.Logger
	lims   map[string]*Spacer
	gate   map[string]*backoff
	// onUnwritable, if set, is told when a slot source cannot write its
	// state (store.ErrUnwritable): the Runner ends its run.
	onUnwritable func(error)

	// Counters.
	Calls     atomic.Int64 // ResetInstance calls sent
	Describes atomic.Int64 // DescribeInstances calls sent
	Throttled atomic.Int64 // calls answered RequestLimitExceeded
	resetWait atomic.Int64 // nanoseconds spent waiting for ResetInstance slots

	// Reachability: when a call last got an answer from the API, and the
	// latest error of a call that got none.
	mu          sync.Mutex
	answeredAt  time.Time
	silentErr   error
	throttledAt map[string]time.Time // the latest throttle per action

	bps regionCache[*lighthouse.Blueprint] // nil: absent

	kps regionCache[bool] // key pairs: whether the region has it
}

// cloudActions are the actions a Cloud calls, with their rates.
func cloudRates(cfg CloudConfig) map[string]float64 {
	return map[string]float64{
		lighthouse.ActionResetInstance:                   cfg.Rate,
		lighthouse.ActionDescribeInstances:               cfg.DescribeRate,
		lighthouse.ActionDescribeBlueprints:              lighthouse.DescribeBlueprintsRateLimit,
		lighthouse.ActionDescribeResetInstanceBlueprints: lighthouse.DescribeResetInstanceBlueprintsRateLimit,
		lighthouse.ActionDescribeRegions:                 lighthouse.DescribeRegionsRateLimit,
		lighthouse.ActionGetResources:                    lighthouse.GetResourcesRateLimit,
		lighthouse.ActionDescribeKeyPairs:                lighthouse.DescribeKeyPairsRateLimit,
		lighthouse.ActionDescribeAutomationAgentStatus:   lighthouse.DescribeAutomationAgentStatusRateLimit,
		lighthouse.ActionRunCommand:                      lighthouse.RunCommandRateLimit,
		lighthouse.ActionDescribeInvocationTasks:         lighthouse.DescribeInvocationTasksRateLimit,
		lighthouse.ActionGetCallerIdentity:               lighthouse.GetCallerIdentityRateLimit,
	}
}

// NewCloud returns a Cloud for cfg.
func NewCloud(cfg CloudConfig) (*Cloud, error) {
	if cfg.API == nil {
		return nil, errors.New("runner: CloudConfig.API is required")
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.DescribeRate == 0 {
		cfg.DescribeRate = DefaultDescribeRate
	}
	if !(cfg.Rate > 0) || !(cfg.DescribeRate > 0) {
		return nil, errors.New("runner: rates must be positive")
	}
	guard := cfg.Guard
	if guard == 0 {
		guard = DefaultGuard
		if cfg.Shared != nil {
			guard = cfg.Shared.Guard()
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Sender == nil {
		cfg.Sender = cfg.API
	}
	c := &Cloud{api: cfg.API, send: cfg.Sender, log: cfg.Logger, onCall: cfg.Observe, lims: map[string]*Spacer{}, gate: map[string]*backoff{}, answeredAt: time.Now()}
	for action, perSecond := range cloudRates(cfg) {
		if cfg.Shared != nil {
			c.lims[action] = NewRateSpacer(cfg.Shared.SlotSource(action, Interval(perSecond, guard)), perSecond, guard)
		} else {
			c.lims[action] = NewRateSpacer(newLocalSlots(Interval(perSecond, guard), time.Now()), perSecond, guard)
		}
		c.gate[action] = newBackoff(500*time.Millisecond, 30*time.Second)
	}
	return c, nil
}

// wait waits out a throttling pause of action, then takes one of its slots,
// and again while a pause began meanwhile: a throttle answered while this
// caller waited pauses it too, or every caller queued at the limiter would
// still send, and a throttle storm would see calls at the full rate.
func (c *Cloud) wait(ctx context.Context, action string) error {
	_, err := c.take(ctx, action)
	return err
}

// take is wait, returning the slot taken (see Spacer.Take).
func (c *Cloud) take(ctx context.Context, action string) (time.Time, error) {
	g := c.gate[action]
	for {
		if err := g.wait(ctx); err != nil {
			return time.Time{}, err
		}
		slot, err := c.lims[action].Take(ctx)
		if err != nil {
			if c.onUnwritable != nil && errors.Is(err, store.ErrUnwritable) {
				c.onUnwritable(err) // the host's rate-limit files
			}
			return time.Time{}, err
		}
		if !g.paused() {
			return slot, nil
		}
	}
}

// observe records what one call's result says about the API and its limit.
func (c *Cloud) observe(action string, start time.Time, err error) *lighthouse.APIError {
	if c.onCall != nil {
		c.onCall(action, time.Since(start), err)
	}
	ae, _ := errors.AsType[*lighthouse.APIError](err)
	answered := err == nil || (ae != nil && ae.RequestID != "")
	c.mu.Lock()
	if answered {
		c.answeredAt, c.silentErr = time.Now(), nil
	} else {
		c.silentErr = err
	}
	c.mu.Unlock()
	switch {
	case err == nil:
		c.gate[action].success()
	case ae != nil && ae.Throttled():
		c.Throttled.Add(1)
		if c.isolated(action) {
			// One throttle after a quiet spell (a neighbour's call in the
			// same server second, jitter) costs the call its slot only;
			// a second within throttleQuiet pauses every caller.
			break
		}
		c.gate[action].hit()
	}
	return ae
}

// throttleQuiet is how long after a throttle another one of the same action
// counts as throttling that persists, which pauses every caller.
const throttleQuiet = 5 * time.Second

// isolated records a throttle of action and reports whether it is the first
// for throttleQuiet.
func (c *Cloud) isolated(action string) bool {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.throttledAt == nil {
		c.throttledAt = map[string]time.Time{}
	}
	last, seen := c.throttledAt[action]
	c.throttledAt[action] = now
	return !seen || now.Sub(last) > throttleQuiet
}

// JitterGuard returns the jitter allowance in force for ResetInstance:
// the configured guard, or the spread of the call latencies measured when
// it is larger. The rate costs a factor 1/(1+JitterGuard/1s).
func (c *Cloud) JitterGuard() time.Duration {
	return c.lims[lighthouse.ActionResetInstance].Guard()
}

// Silence reports how long no call has had an answer from the API, and the
// latest error of those calls; zero and nil when the last call was answered.
func (c *Cloud) Silence() (time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.silentErr == nil {
		return 0, nil
	}
	return time.Since(c.answeredAt), c.silentErr
}

// WaitReset waits for a ResetInstance slot (and out any throttling pause)
// and returns it. The caller sends at once with Reset, or the slot is
// wasted.
func (c *Cloud) WaitReset(ctx context.Context) (slot time.Time, err error) {
	start := time.Now()
	slot, err = c.take(ctx, lighthouse.ActionResetInstance)
	c.resetWait.Add(int64(time.Since(start)))
	return slot, err
}

// ResetPaused reports whether a throttling pause of ResetInstance is in force.
func (c *Cloud) ResetPaused() bool { return c.gate[lighthouse.ActionResetInstance].paused() }

// Reset sends one ResetInstance in slot, taken with WaitReset. The latency
// the limiter adapts to runs from the slot to the answer's first byte: it
// holds whatever delayed the call on its way (a late wake, the signing,
// the network), and nothing that came after the answer (reading and
// decoding it), which cannot have moved the call's arrival.
func (c *Cloud) Reset(ctx context.Context, slot time.Time, region string, req lighthouse.ResetInstanceRequest) (string, error) {
	c.Calls.Add(1)
	start := time.Now()
	var firstByte atomic.Int64 // Unix nanoseconds; 0: none
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotFirstResponseByte: func() { firstByte.Store(time.Now().UnixNano()) },
	})
	id, err := c.send.ResetInstance(ctx, region, req)
	if ae := c.observe(lighthouse.ActionResetInstance, start, err); err == nil || (ae != nil && ae.RequestID != "") {
		answered := time.Now()
		if ns := firstByte.Load(); ns != 0 {
			answered = time.Unix(0, ns)
		}
		if slot.IsZero() || slot.After(start) {
			slot = start
		}
		c.lims[lighthouse.ActionResetInstance].Observe(answered.Sub(slot))
	}
	return id, err
}

// Describe describes ids of one region, in calls of at most 100 IDs. An ID
// the API cannot describe (not found, malformed) is left out of the answer,
// as an absent instance is.
func (c *Cloud) Describe(ctx context.Context, region string, ids []string) ([]lighthouse.Instance, error) {
	var out []lighthouse.Instance
	for chunk := range slices.Chunk(ids, lighthouse.MaxIDsPerCall) {
		insts, err := c.describeChunk(ctx, region, chunk)
		out = append(out, insts...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// Instances are instances described by a Cloud, by region and ID.
type Instances map[string]lighthouse.Instance

// Get returns the instance id of region, if it was described.
func (m Instances) Get(region, id string) (lighthouse.Instance, bool) {
	in, ok := m[region+"/"+id]
	return in, ok
}

// DescribeRegions describes ids by region, several calls at once. Failed
// holds the regions any of whose calls failed (their instances are missing
// from the answer and say nothing); err is ctx's error if it ended first.
func (c *Cloud) DescribeRegions(ctx context.Context, byRegion map[string][]string) (seen Instances, failed map[string]error, err error) {
	var mu sync.Mutex
	seen = Instances{}
	failed = map[string]error{}
	g := new(errgroup.Group)
	g.SetLimit(describeConcurrency)
	for region, ids := range byRegion {
		for chunk := range slices.Chunk(ids, lighthouse.MaxIDsPerCall) {
			g.Go(func() error {
				insts, err := c.Describe(ctx, region, chunk)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && failed[region] == nil {
					failed[region] = err
				}
				for _, in := range insts {
					seen[in.Region+"/"+in.InstanceID] = in
				}
				return nil
			})
		}
	}
	_ = g.Wait()
	return seen, failed, ctx.Err()
}

// describeRetries bounds how often one rejected (not throttled)
// DescribeInstances batch is tried; throttled calls wait for the gate.
const describeRetries = 3

func (c *Cloud) describeChunk(ctx context.Context, region string, chunk []string) ([]lighthouse.Instance, error) {
	for attempt := 0; ; {
		if err := c.wait(ctx, lighthouse.ActionDescribeInstances); err != nil {
			return nil, err
		}
		c.Describes.Add(1)
		start := time.Now()
		insts, err := c.api.DescribeInstances(ctx, region, chunk)
		ae := c.observe(lighthouse.ActionDescribeInstances, start, err)
		if err == nil {
			return insts, nil
		}
		switch {
		case ctx.Err() != nil || ae == nil:
			return nil, err
		case ae.Throttled():
			continue // the gate paces the retry
		case ae.Class == lighthouse.ClassPermanent && len(chunk) > 1:
			half := len(chunk) / 2
			a, err := c.describeChunk(ctx, region, chunk[:half])
			if err != nil {
				return a, err
			}
			b, err := c.describeChunk(ctx, region, chunk[half:])
			return append(a, b...), err
		case ae.Class == lighthouse.ClassPermanent:
			c.log.Warn("instance cannot be described", "region", region, "instance_id", chunk[0], "err", ae)
			return nil, nil
		case ae.Class != lighthouse.ClassRetryable || attempt >= describeRetries-1:
			return nil, err
		}
		attempt++
		if err := sleep(ctx, time.Duration(200*attempt)*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// Blueprints returns the blueprints ids of region as DescribeBlueprints
// shows them, from the cache where it can; an absent blueprint is nil. A
// lookup that fails is returned as an error and not cached.
func (c *Cloud) Blueprints(ctx context.Context, region string, ids []string) (map[string]*lighthouse.Blueprint, error) {
	out, err := c.bps.lookup(region, ids, func(chunk []string) (map[string]*lighthouse.Blueprint, error) {
		bps, err := retryRejected(ctx, c, lighthouse.ActionDescribeBlueprints, func() ([]lighthouse.Blueprint, error) {
			return c.api.DescribeBlueprints(ctx, region, chunk)
		})
		if err != nil {
			return nil, err
		}
		found := make(map[string]*lighthouse.Blueprint, len(chunk))
		for _, id := range chunk {
			found[id] = nil
			for i := range bps {
				if bps[i].BlueprintID == id {
					found[id] = &bps[i]
				}
			}
		}
		return found, nil
	})
	if err != nil {
		return out, fmt.Errorf("describe blueprints in %s: %w", region, err)
	}
	return out, nil
}

// regionCache holds, for a Cloud's life, what lookups of one kind found for
// IDs of a region. It is safe for concurrent use.
type regionCache[V any] struct {
	mu sync.Mutex
	m  map[string]V // by region/id
}

// lookup returns the values of ids in region: from the cache where it can,
// else from fetch, given the missing IDs (each once) in calls of at most
// 100, which must return a value for each. What a failed fetch would have
// found is not cached; the values found so far are returned with its error.
func (rc *regionCache[V]) lookup(region string, ids []string, fetch func(chunk []string) (map[string]V, error)) (map[string]V, error) {
	out := make(map[string]V, len(ids))
	var ask []string
	rc.mu.Lock()
	for _, id := range ids {
		if v, ok := rc.m[region+"/"+id]; ok {
			out[id] = v
		} else if !slices.Contains(ask, id) {
			ask = append(ask, id)
		}
	}
	rc.mu.Unlock()
	for chunk := range slices.Chunk(ask, lighthouse.MaxIDsPerCall) {
		found, err := fetch(chunk)
		if err != nil {
			return out, err
		}
		rc.mu.Lock()
		if rc.m == nil {
			rc.m = map[string]V{}
		}
		for _, id := range chunk {
			rc.m[region+"/"+id], out[id] = found[id], found[id]
		}
		rc.mu.Unlock()
	}
	return out, nil
}

// ResetBlueprints asks DescribeResetInstanceBlueprints for the service's
// own verdict on resetting instanceID to blueprintIDs.
func (c *Cloud) ResetBlueprints(ctx context.Context, region, instanceID string, blueprintIDs []string) ([]lighthouse.ResetInstanceBlueprint, error) {
	return retryRejected(ctx, c, lighthouse.ActionDescribeResetInstanceBlueprints, func() ([]lighthouse.ResetInstanceBlueprint, error) {
		return c.api.DescribeResetInstanceBlueprints(ctx, region, instanceID, blueprintIDs)
	})
}

// retryRejected makes a read-only call under action's limiter, waiting out
// throttling and retrying other rejections a few times.
func retryRejected[T any](ctx context.Context, c *Cloud, action string, call func() (T, error)) (T, error) {
	for attempt := 0; ; {
		if err := c.wait(ctx, action); err != nil {
			var zero T
			return zero, err
		}
		start := time.Now()
		v, err := call()
		ae := c.observe(action, start, err)
		switch {
		case err == nil || ctx.Err() != nil || ae == nil:
			return v, err
		case ae.Throttled():
			continue
		case ae.Class != lighthouse.ClassRetryable || attempt >= describeRetries-1:
			return v, err
		}
		attempt++
		if err := sleep(ctx, time.Duration(200*attempt)*time.Millisecond); err != nil {
			return v, err
		}
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
