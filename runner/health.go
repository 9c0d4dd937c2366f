package runner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"golang.org/x/sync/errgroup"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// HealthMode says what proves an instance healthy after its reset.
type HealthMode string

// Health modes.
const (
	// HealthNone: a reset that ends SUCCESS is a success (the default).
	HealthNone HealthMode = ""
	// HealthAgent: the instance's TAT agent must also report Online with a
	// heartbeat after the reset finished.
	HealthAgent HealthMode = "agent"
	// HealthCommand: after the agent, Health.Script must exit 0 on the
	// instance, run through TAT RunCommand.
	HealthCommand HealthMode = "command"
)

// Defaults of Health.
const (
	// DefaultHealthTimeout bounds a health check: the agent of a reimaged
	// Linux instance is usually back within a minute or two.
	DefaultHealthTimeout = 10 * time.Minute
	// maxCommandLines and maxCommandOutput bound the output of a failed
	// health command kept in the job's message.
	maxCommandLines  = 5
	maxCommandOutput = 400
)

// Health is the check a job passes after its reset ends SUCCESS and before
// it counts as succeeded; a job that fails it ends store.StatusUnhealthy,
// never failed: the reset did happen, and must not be sent again as if it
// had not. The zero value checks nothing and bakes nothing.
//
// While it is checked a job stays submitted in the store and holds its
// place in its wave: the next wave starts only once every job of this one
// is healthy or has ended otherwise (and the failure budget, which counts
// unhealthy jobs, allows). A job taken over by another runner, or resumed,
// is checked again from the start, so the health command may run more than
// once on an instance.
type Health struct {
	Mode HealthMode
	// Script is the health command of HealthCommand, run as CommandType
	// (default lighthouse.CommandShell) by the agent's default user.
	Script      []byte
	CommandType string
	// Timeout bounds the whole check, from the moment the reset was seen
	// to end SUCCESS; default DefaultHealthTimeout.
	Timeout time.Duration
	// Bake is how long a healthy job waits before it is checked once more
	// and counts as succeeded (ASG's instance warm-up); 0 means no wait.
	// With HealthNone the job only waits.
	Bake time.Duration
}

// enabled reports whether a job goes through health states at all.
func (h Health) enabled() bool { return h.Mode != HealthNone || h.Bake > 0 }

func (h Health) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return DefaultHealthTimeout
}

// healthState is what the runner knows about a task's health check; see
// the transitions checking, agentBack, commandSent and baking.
type healthState struct {
	started time.Time // when the check (or the check after baking) began, on our clock
	// baseline is the first heartbeat seen since then, on the cloud's
	// clock: a later heartbeat was sent after that observation, so after
	// the reset had ended. Only heartbeats are compared with each other.
	baseline     time.Time
	haveBaseline bool
	online       bool      // the agent's latest status was Online
	heartbeat    time.Time // its latest heartbeat, on the cloud's clock
	lastSeen     string    // what the check last saw, for messages
	invocationID string    // the RunCommand invocation of the health command
	sendErr      string    // why RunCommand last refused, for messages
	baked        bool      // the job has baked: it is on its last check
}

// inHealth reports whether t is in one of the health states.
func (t *task) inHealth() bool {
	return t.kind == kindAgent || t.kind == kindCommand || t.kind == kindBaking
}

// observeAgent records what DescribeAutomationAgentStatus showed (ag,
// present when ok). It changes no status or kind: judgeAgent decides.
func (t *task) observeAgent(ag lighthouse.AutomationAgent, ok bool) {
	h := &t.health
	h.online = ok && ag.AgentStatus == lighthouse.AgentOnline
	if !ok {
		h.lastSeen = "no TAT agent reported"
		return
	}
	hb, hbOK := ag.Heartbeat()
	h.lastSeen = fmt.Sprintf("agent %s, last heartbeat %s", orNone(ag.AgentStatus), orNone(ag.LastHeartbeatTime))
	if !hbOK {
		return
	}
	h.heartbeat = hb
	if !h.haveBaseline {
		h.baseline, h.haveBaseline = hb, true
	}
}

// pollHealth moves on every task in a health state: baking tasks whose
// bake is over are checked again; agents are described, health commands
// started and their tasks read, and each task judged. seen holds this
// poll's DescribeInstances answers. Tasks that end leave tasks.
func (r *Runner) pollHealth(ctx context.Context, tasks map[int64]*task, seen Instances, now time.Time) {
	h := r.cfg.Health
	var agents, commands, started []*task
	var ends []healthEnd
	for _, t := range tasks {
		switch t.kind {
		case kindBaking:
			if !bakeDone(t, now, h.Bake) {
				continue
			}
			if h.Mode == HealthNone {
				ends = append(ends, healthEnd{t, verdict{act: actFinish, status: store.StatusSucceeded}})
				continue
			}
			t.checking(now)
			agents = append(agents, t)
		case kindAgent:
			agents = append(agents, t)
		case kindCommand:
			if t.health.invocationID == "" {
				commands = append(commands, t)
			} else {
				started = append(started, t)
			}
		}
	}
	lim := healthLimits{timeout: h.timeout()}
	pass := func(t *task) {
		switch {
		case h.Mode == HealthCommand && t.kind == kindAgent:
			t.agentBack(now)
		case h.Bake > 0 && !t.health.baked:
			r.log.Debug("healthy; baking", "instance_id", t.job.InstanceID, "bake", h.Bake)
			t.baking(now)
		default:
			ends = append(ends, healthEnd{t, verdict{act: actFinish, status: store.StatusSucceeded}})
		}
	}

	for region, ts := range byRegionOf(agents) {
		status, err := r.cloud.AgentStatus(ctx, region, instanceIDs(ts))
		if err != nil && ctx.Err() == nil {
			r.healthWarn.Do(func() { r.log.Warn("describe TAT agents; will retry", "region", region, "err", err) })
		}
		for _, t := range ts {
			if err == nil {
				ag, ok := status[t.job.InstanceID]
				t.observeAgent(ag, ok)
			} else {
				t.health.online = false
				t.health.lastSeen = "TAT agent status unavailable: " + err.Error()
			}
			in, inOK := seen.Get(t.job.Region, t.job.InstanceID)
			switch v := judgeAgent(t, in, inOK, now, lim); v.act {
			case actFinish:
				ends = append(ends, healthEnd{t, v})
			case actHealthy:
				pass(t)
			}
		}
	}

	r.startHealthCommands(ctx, commands, now, lim)

	byInvocation := map[string][]*task{}
	for _, t := range started {
		k := t.job.Region + "/" + t.health.invocationID
		byInvocation[k] = append(byInvocation[k], t)
	}
	for _, ts := range byInvocation {
		region, inv := ts[0].job.Region, ts[0].health.invocationID
		got, err := r.cloud.InvocationTasks(ctx, region, inv)
		if err != nil && ctx.Err() == nil {
			r.healthWarn.Do(func() {
				r.log.Warn("describe health command; will retry", "region", region, "invocation_id", inv, "err", err)
			})
		}
		byInstance := map[string]lighthouse.InvocationTask{}
		for _, it := range got {
			byInstance[it.InstanceID] = it
		}
		for _, t := range ts {
			it, ok := byInstance[t.job.InstanceID]
			switch v := judgeCommand(t, it, ok && err == nil, now, lim); v.act {
			case actFinish:
				ends = append(ends, healthEnd{t, v})
			case actHealthy:
				pass(t)
			}
		}
	}
	// Commands that could not start are judged too: the timeout ends them.
	for _, t := range commands {
		if t.health.invocationID == "" {
			if v := judgeCommand(t, lighthouse.InvocationTask{}, false, now, lim); v.act == actFinish {
				ends = append(ends, healthEnd{t, v})
			}
		}
	}

	g := new(errgroup.Group)
	g.SetLimit(32)
	for _, e := range ends {
		delete(tasks, e.t.job.ID)
		g.Go(func() error {
			r.finish(ctx, e.t, e.v.status, e.v.code, e.v.msg)
			return nil
		})
	}
	_ = g.Wait()
}

// healthEnd is a task whose health check ended, and how.
type healthEnd struct {
	t *task
	v verdict
}

// startHealthCommands runs Health.Script on the instances of ts, in
// RunCommand calls of at most lighthouse.MaxRunCommandInstances per region.
// A call refused as a whole (one agent went offline, one instance is
// gone) is split until the instance that causes it is alone; that one is
// tried again at the next poll, within the health timeout.
func (r *Runner) startHealthCommands(ctx context.Context, ts []*task, now time.Time, lim healthLimits) {
	for region, rts := range byRegionOf(ts) {
		for chunk := range slices.Chunk(rts, lighthouse.MaxRunCommandInstances) {
			r.runHealthCommand(ctx, region, chunk, now, lim)
		}
	}
}

func (r *Runner) runHealthCommand(ctx context.Context, region string, ts []*task, now time.Time, lim healthLimits) {
	left := lim.timeout
	for _, t := range ts {
		left = min(left, lim.timeout-now.Sub(t.health.started))
	}
	timeout := min(max(left.Truncate(time.Second), time.Second), lighthouse.MaxCommandTimeout)
	req := lighthouse.RunCommandRequest{
		Content: r.cfg.Health.Script, InstanceIDs: instanceIDs(ts), CommandType: r.cfg.Health.CommandType,
		Timeout: timeout, CommandName: "batchreset-health",
	}
	inv, err := r.cloud.RunCommand(ctx, region, req)
	if err == nil {
		for _, t := range ts {
			t.commandSent(inv)
		}
		r.log.Debug("health command started", "region", region, "invocation_id", inv, "instances", len(ts))
		return
	}
	if ctx.Err() != nil {
		return
	}
	if len(ts) > 1 {
		r.runHealthCommand(ctx, region, ts[:len(ts)/2], now, lim)
		r.runHealthCommand(ctx, region, ts[len(ts)/2:], now, lim)
		return
	}
	r.healthWarn.Do(func() {
		r.log.Warn("health command not started; will retry", "instance_id", ts[0].job.InstanceID, "err", err)
	})
	ts[0].commandRefused(err.Error())
}

func byRegionOf(ts []*task) map[string][]*task {
	out := map[string][]*task{}
	for _, t := range ts {
		out[t.job.Region] = append(out[t.job.Region], t)
	}
	return out
}

func instanceIDs(ts []*task) []string {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.job.InstanceID
	}
	return ids
}

// firstLines returns the first lines of a command's output for a message:
// at most maxCommandLines lines and maxCommandOutput bytes, control
// characters shown as spaces, lines joined with " | ".
func firstLines(out []byte) string {
	s := strings.ToValidUTF8(string(out), "?")
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > maxCommandLines {
		lines = append(lines[:maxCommandLines], "…")
	}
	for i, l := range lines {
		lines[i] = strings.TrimSpace(strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, l))
	}
	s = strings.Join(lines, " | ")
	if len(s) > maxCommandOutput {
		s = strings.ToValidUTF8(s[:maxCommandOutput], "") + "…"
	}
	return s
}
