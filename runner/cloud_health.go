package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
)

// The Cloud's calls for login settings (DescribeKeyPairs) and for the
// health check after a reset (TAT): each under its action's limiter and
// throttle gate, as every other call, at the documented limits (TAT: 20
// calls per second per action, DescribeAutomationAgentStatus 60).

// KeyPairs reports which of the key pairs ids region has, as
// DescribeKeyPairs shows them, from the cache where it can: key pairs
// belong to one region. A lookup that fails is returned as an error and
// not cached.
func (c *Cloud) KeyPairs(ctx context.Context, region string, ids []string) (map[string]bool, error) {
	out, err := c.kps.lookup(region, ids, func(chunk []string) (map[string]bool, error) {
		return c.keyPairChunk(ctx, region, chunk)
	})
	if err != nil {
		return out, fmt.Errorf("describe key pairs in %s: %w", region, err)
	}
	return out, nil
}

// keyPairChunk describes at most 100 key pairs. The API may fail a whole
// call for one ID it does not know or that is malformed: such a call is
// split until that ID is alone, and then it is absent.
func (c *Cloud) keyPairChunk(ctx context.Context, region string, ids []string) (map[string]bool, error) {
	kps, err := retryRejected(ctx, c, lighthouse.ActionDescribeKeyPairs, func() ([]lighthouse.KeyPair, error) {
		return c.api.DescribeKeyPairs(ctx, region, ids)
	})
	if ae, ok := errors.AsType[*lighthouse.APIError](err); ok && keyPairAbsent(ae) && ctx.Err() == nil {
		if len(ids) == 1 {
			return map[string]bool{}, nil
		}
		a, err := c.keyPairChunk(ctx, region, ids[:len(ids)/2])
		if err != nil {
			return nil, err
		}
		b, err := c.keyPairChunk(ctx, region, ids[len(ids)/2:])
		for id := range b {
			a[id] = true
		}
		return a, err
	}
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	for _, kp := range kps {
		found[kp.KeyID] = true
	}
	return found, nil
}

// keyPairAbsent reports whether ae rejects a key pair ID rather than the
// call: not found, or malformed.
func keyPairAbsent(ae *lighthouse.APIError) bool {
	return strings.HasPrefix(ae.Code, "ResourceNotFound") || strings.HasPrefix(ae.Code, "InvalidParameterValue.KeyPair")
}

// AgentStatus returns the TAT agents of ids in region, by instance ID, in
// calls of at most 100 IDs. An instance without an agent is absent.
func (c *Cloud) AgentStatus(ctx context.Context, region string, ids []string) (map[string]lighthouse.AutomationAgent, error) {
	out := map[string]lighthouse.AutomationAgent{}
	for chunk := range slices.Chunk(ids, lighthouse.MaxIDsPerCall) {
		agents, err := retryRejected(ctx, c, lighthouse.ActionDescribeAutomationAgentStatus, func() ([]lighthouse.AutomationAgent, error) {
			return c.api.DescribeAutomationAgentStatus(ctx, region, chunk)
		})
		if err != nil {
			return out, fmt.Errorf("describe TAT agents in %s: %w", region, err)
		}
		for _, a := range agents {
			out[a.InstanceID] = a
		}
	}
	return out, nil
}

// RunCommand starts req on at most lighthouse.MaxRunCommandInstances
// instances of region and returns the invocation's ID. Throttled calls
// wait for the gate and go again; any other failure is returned, never
// retried here: RunCommand is not idempotent, and an unanswered call may
// be running.
func (c *Cloud) RunCommand(ctx context.Context, region string, req lighthouse.RunCommandRequest) (string, error) {
	for {
		if err := c.wait(ctx, lighthouse.ActionRunCommand); err != nil {
			return "", err
		}
		start := time.Now()
		id, err := c.api.RunCommand(ctx, region, req)
		ae := c.observe(lighthouse.ActionRunCommand, start, err)
		if err == nil || ae == nil || !ae.Throttled() || ctx.Err() != nil {
			return id, err
		}
	}
}

// InvocationTasks returns the tasks of invocation invocationID in region,
// in pages of at most 100, one after the other, each waiting for its own
// slot.
func (c *Cloud) InvocationTasks(ctx context.Context, region, invocationID string) ([]lighthouse.InvocationTask, error) {
	tasks, err := readPages(ctx, c, lighthouse.ActionDescribeInvocationTasks, func(offset int) (int, []lighthouse.InvocationTask, error) {
		return c.api.DescribeInvocationTasksPage(ctx, region, invocationID, offset)
	})
	if err != nil {
		return nil, fmt.Errorf("describe invocation %s in %s: %w", invocationID, region, err)
	}
	return tasks, nil
}
