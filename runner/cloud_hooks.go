package runner

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
)

// tatHooks runs the hooks of kind HookTAT: the calls of every hook stage
// are gathered for a moment and started together, in RunCommand calls of
// at most lighthouse.MaxRunCommandInstances instances of one region and one
// script, then followed with DescribeInvocationTasks each poll interval,
// all through the Cloud (TAT's own limits), as the health command is.
type tatHooks struct {
	r     *Runner
	calls chan *tatCall
}

// tatGather is how long a hook call waits for others to share its
// RunCommand.
const tatGather = 200 * time.Millisecond

// tatCall is one instance's hook, from its RunCommand to its task's end.
type tatCall struct {
	region, instanceID string
	hook               *Hook
	phase              hookPhase
	deadline           time.Time
	reply              chan hookResult // buffered: the loop never waits on it

	invocationID string // the RunCommand invocation, once started
	sendErr      string // why RunCommand last refused it
}

func newTATHooks(r *Runner) *tatHooks {
	return &tatHooks{r: r, calls: make(chan *tatCall)}
}

// run runs h on t's instance in phase and waits for the end, within the
// hook timeout.
func (h *tatHooks) run(ctx context.Context, t *task, hook *Hook, phase hookPhase) hookResult {
	c := &tatCall{region: t.job.Region, instanceID: t.job.InstanceID, hook: hook, phase: phase,
		deadline: time.Now().Add(h.r.cfg.Hooks.timeout()), reply: make(chan hookResult, 1)}
	select {
	case h.calls <- c:
	case <-ctx.Done():
		return hookResult{err: ctx.Err()}
	}
	select {
	case res := <-c.reply:
		return res
	case <-ctx.Done():
		return hookResult{err: ctx.Err()}
	}
}

// loop starts and follows the calls until ctx ends.
func (h *tatHooks) loop(ctx context.Context) error {
	var waiting, started []*tatCall
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	poll := time.NewTicker(h.r.cfg.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.r.finished:
			return nil
		case c := <-h.calls:
			if len(waiting) == 0 {
				gather.Reset(tatGather)
			}
			waiting = append(waiting, c)
			if len(waiting) < lighthouse.MaxRunCommandInstances {
				continue
			}
			gather.Stop()
		case <-gather.C:
		case <-poll.C:
			started = h.follow(ctx, started)
			waiting = h.expire(waiting)
			if len(waiting) == 0 {
				continue
			}
		}
		var now []*tatCall
		now, waiting = h.start(ctx, waiting)
		started = append(started, now...)
	}
}

// start runs RunCommand for the calls of waiting, by region and hook
// script. It returns the calls started and those to try again.
func (h *tatHooks) start(ctx context.Context, waiting []*tatCall) (started, again []*tatCall) {
	type key struct {
		region string
		hook   *Hook
		phase  hookPhase
	}
	groups := map[key][]*tatCall{}
	var order []key
	for _, c := range waiting {
		k := key{c.region, c.hook, c.phase}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], c)
	}
	for _, k := range order {
		for chunk := range slices.Chunk(groups[k], lighthouse.MaxRunCommandInstances) {
			h.runCommand(ctx, k.region, chunk)
		}
	}
	for _, c := range waiting {
		if c.invocationID != "" {
			started = append(started, c)
		} else {
			again = append(again, c)
		}
	}
	return started, again
}

// runCommand starts cs (of one region and hook). A call refused as a whole
// (an agent offline, an instance gone) is split until the instance that
// causes it is alone; that one is tried again at the next poll, until its
// deadline.
func (h *tatHooks) runCommand(ctx context.Context, region string, cs []*tatCall) {
	left := time.Until(cs[0].deadline)
	for _, c := range cs {
		left = min(left, time.Until(c.deadline))
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.instanceID
	}
	req := lighthouse.RunCommandRequest{
		Content: cs[0].hook.Script, InstanceIDs: ids, CommandType: cs[0].hook.CommandType,
		Timeout:     min(max(left.Truncate(time.Second), time.Second), lighthouse.MaxCommandTimeout),
		CommandName: "batchreset-" + string(cs[0].phase),
	}
	inv, err := h.r.cloud.RunCommand(ctx, region, req)
	if err == nil {
		for _, c := range cs {
			c.invocationID = inv
		}
		h.r.log.Debug("hook command started", "region", region, "phase", cs[0].phase, "invocation_id", inv, "instances", len(cs))
		return
	}
	if ctx.Err() != nil {
		return
	}
	if len(cs) > 1 {
		h.runCommand(ctx, region, cs[:len(cs)/2])
		h.runCommand(ctx, region, cs[len(cs)/2:])
		return
	}
	cs[0].sendErr = err.Error()
}

// expire answers the calls of waiting whose deadline passed before their
// command could start, and returns the others.
func (h *tatHooks) expire(waiting []*tatCall) []*tatCall {
	now := time.Now()
	return slices.DeleteFunc(waiting, func(c *tatCall) bool {
		if now.Before(c.deadline) {
			return false
		}
		c.reply <- hookResult{err: fmt.Errorf("%s hook could not be started through TAT within %s: %s", c.phase, h.r.cfg.Hooks.timeout(), orNone(c.sendErr))}
		return true
	})
}

// follow reads the tasks of the started calls, answers those that ended
// (or whose deadline passed), and returns the others.
func (h *tatHooks) follow(ctx context.Context, started []*tatCall) []*tatCall {
	byInvocation := map[string][]*tatCall{}
	for _, c := range started {
		k := c.region + "/" + c.invocationID
		byInvocation[k] = append(byInvocation[k], c)
	}
	var left []*tatCall
	now := time.Now()
	for _, cs := range byInvocation {
		got, err := h.r.cloud.InvocationTasks(ctx, cs[0].region, cs[0].invocationID)
		if err != nil && ctx.Err() == nil {
			h.r.healthWarn.Do(func() {
				h.r.log.Warn("describe hook command; will retry", "region", cs[0].region, "invocation_id", cs[0].invocationID, "err", err)
			})
		}
		byInstance := map[string]lighthouse.InvocationTask{}
		for _, it := range got {
			byInstance[it.InstanceID] = it
		}
		for _, c := range cs {
			it, ok := byInstance[c.instanceID]
			switch {
			case ok && err == nil && it.Done():
				c.reply <- taskResult(c, it)
			case now.After(c.deadline):
				status := "not reported"
				if ok {
					status = it.TaskStatus
				}
				c.reply <- hookResult{err: fmt.Errorf("%s hook (invocation %s) timed out after %s; task %s", c.phase, c.invocationID, h.r.cfg.Hooks.timeout(), status)}
			default:
				left = append(left, c)
			}
		}
	}
	return left
}

// taskResult is how a hook's ended TAT task went.
func taskResult(c *tatCall, it lighthouse.InvocationTask) hookResult {
	out, _ := it.TaskResult.DecodedOutput()
	tail := lastLines(out)
	switch {
	case it.TaskStatus == lighthouse.TaskSuccess && it.TaskResult.ExitCode == 0:
		return hookResult{}
	case it.TaskStatus == lighthouse.TaskSuccess || it.TaskStatus == lighthouse.TaskFailed:
		return hookResult{err: fmt.Errorf("%s hook exited %d on the instance (invocation %s)", c.phase, it.TaskResult.ExitCode, c.invocationID), out: tail}
	case it.TaskStatus == lighthouse.TaskTimeout:
		return hookResult{err: fmt.Errorf("%s hook timed out on the instance (invocation %s)", c.phase, c.invocationID), out: tail}
	}
	return hookResult{err: fmt.Errorf("TAT could not run the %s hook (%s): %s", c.phase, it.TaskStatus, orNone(it.ErrorInfo))}
}
