package runner_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
)

// execHooks returns Hooks running script before and after each reset.
func execHooks(script string) runner.Hooks {
	h := &runner.Hook{Kind: runner.HookExec, Path: script}
	return runner.Hooks{Before: h, After: h, Timeout: 20 * time.Second, Concurrency: 4, Run: "test-run"}
}

// healthEnds returns when each instance's health command ended, from the
// emulator's invocations that ran on the new system.
func healthEnds(stats emulator.Stats) map[string]time.Time {
	out := map[string]time.Time{}
	for _, inv := range stats.Invocations {
		for id, end := range inv.Ends {
			if !strings.Contains(inv.Script, "health") || slices.Contains(inv.OldSystem, id) {
				continue
			}
			if end.After(out[id]) {
				out[id] = end
			}
		}
	}
	return out
}

// TestHooksAroundReset: every instance is drained before its reset is sent
// and put back after its reset and its health command ended, with its
// instance in the hook's environment, on both stores.
func TestHooksAroundReset(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 12, emu: func(c *emulator.Config) {
				c.CommandDuration = emulator.Duration{Min: 50 * time.Millisecond, Max: 100 * time.Millisecond}
				c.AgentOnlineAfter = 50 * time.Millisecond
			}})
			original := map[string]string{}
			for region, ids := range byRegionIDs(b.jobs) {
				ins, err := runnertest.DescribeInstances(t.Context(), b.direct, region, ids)
				if err != nil {
					t.Fatal(err)
				}
				for _, in := range ins {
					original[in.InstanceID] = in.BlueprintID
				}
			}
			dir := t.TempDir()
			script, log := runnertest.HookScript(t, dir, 100*time.Millisecond)
			sum, jobs := b.runOn(t, be, func(c *runner.Config) {
				c.Hooks = execHooks(script)
				c.Health = runner.Health{Mode: runner.HealthCommand, Script: []byte("echo health"), Timeout: 20 * time.Second}
			})
			b.verify(t, jobs, verdict{})
			stats := b.emu.Stats()
			hooks := runnertest.ReadHookLog(t, log)
			reset, restored := runnertest.CheckHooks(t, jobs, stats.ResetLog, hooks, true, healthEnds(stats))
			if reset != len(jobs) || restored != 0 {
				t.Errorf("%d reset and %d restored, want %d and 0", reset, restored, len(jobs))
			}
			if len(healthEnds(stats)) != len(jobs) {
				t.Errorf("%d health commands on the new system, want %d", len(healthEnds(stats)), len(jobs))
			}
			for _, j := range jobs {
				if j.Status != store.StatusSucceeded || j.HookPhase != store.HookDone {
					t.Errorf("%s: %s, hook phase %q; want succeeded, done", j.InstanceID, j.Status, j.HookPhase)
				}
				for _, ev := range hooks[j.InstanceID] {
					if ev.PrevBlueprint != original[j.InstanceID] || ev.Region != j.Region || !ev.HasIPs {
						t.Errorf("%s: hook %s saw previous blueprint %q, region %q, IPs %v; want %q, %q, some", j.InstanceID, ev.Phase,
							ev.PrevBlueprint, ev.Region, ev.HasIPs, original[j.InstanceID], j.Region)
					}
					if ev.Phase == "after" && ev.Outcome != string(store.StatusSucceeded) {
						t.Errorf("%s: after-hook outcome %q, want succeeded", j.InstanceID, ev.Outcome)
					}
				}
			}
			if sum.Totals[store.StatusSucceeded] != len(jobs) {
				t.Errorf("totals %v", sum.Totals)
			}
		})
	}
}

// TestBeforeHookFails: an instance whose before-hook fails is not reset,
// ends skipped with CodeBeforeHookFailed, and counts against the failure
// budget: with a budget of 0 the run stops, and every instance drained and
// not reset by then is restored.
func TestBeforeHookFails(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 10, limit: 2})
			dir := t.TempDir()
			script, log := runnertest.HookScript(t, dir, 50*time.Millisecond)
			bad := b.jobs[0].InstanceID
			runnertest.FailHooks(t, dir, bad)
			sum, jobs := b.runOn(t, be, func(c *runner.Config) {
				c.Hooks = execHooks(script)
				c.Rate = 2
				c.Rollout = &runner.Rollout{MaxFailures: 0}
			})
			b.verify(t, jobs, verdict{})
			stats := b.emu.Stats()
			hooks := runnertest.ReadHookLog(t, log)
			runnertest.CheckHooks(t, jobs, stats.ResetLog, hooks, true, nil)
			for _, j := range jobs {
				if j.InstanceID != bad {
					continue
				}
				if len(stats.ResetLog[bad]) != 0 || j.Status != store.StatusSkipped || j.ErrorCode != runner.CodeBeforeHookFailed ||
					!strings.Contains(j.ErrorMessage, "cannot drain "+bad) {
					t.Errorf("%s: %d resets, %s %s %q; want none, skipped %s with the hook's output", bad, len(stats.ResetLog[bad]),
						j.Status, j.ErrorCode, j.ErrorMessage, runner.CodeBeforeHookFailed)
				}
				for _, ev := range hooks[bad] {
					if ev.Phase != "before" {
						t.Errorf("%s: a %s hook ran after its drain failed", bad, ev.Phase)
					}
				}
			}
			if !strings.Contains(sum.StopReason, "failure budget exceeded (1 failed, budget 0)") {
				t.Errorf("stop reason %q, want the budget exceeded by the failed drain", sum.StopReason)
			}
		})
	}
}

// TestDrainRestores: the first interrupt, with instances drained and
// waiting for their rate slot, restores every one of them that is not
// reset; those reset get their after-hook. A second run resets the rest,
// each drained again.
func TestDrainRestores(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 12, limit: 1})
	dir := t.TempDir()
	script, log := runnertest.HookScript(t, dir, 10*time.Millisecond)
	st := b.open(t)
	cfg := b.config(t, st)
	cfg.Hooks = execHooks(script)
	cfg.Rate = 1
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := r.Run(ctx); err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	// Interrupt once the first reset is sent and more are drained.
	for resetsApplied(b) == 0 || len(runnertest.ReadHookLog(t, log)) < 6 {
		select {
		case <-done:
			t.Fatal("the run ended before the interrupt")
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.Drain()
	<-done
	jobs := st.Jobs()
	st.Close()
	stats := b.emu.Stats()
	hooks := runnertest.ReadHookLog(t, log)
	reset, restored := runnertest.CheckHooks(t, jobs, stats.ResetLog, hooks, true, nil)
	if reset == 0 || restored == 0 || reset == len(jobs) {
		t.Errorf("%d reset, %d restored of %d: want some of each", reset, restored, len(jobs))
	}
	for _, j := range jobs {
		if len(stats.ResetLog[j.InstanceID]) == 0 && (j.Status != store.StatusPending || j.HookPhase != store.HookNone) {
			t.Errorf("%s: not reset, %s with hook phase %q; want pending, none (restored)", j.InstanceID, j.Status, j.HookPhase)
		}
	}

	// The rerun drains and resets the rest, each once.
	_, jobs = b.run(t, func(c *runner.Config) { c.Hooks = execHooks(script); c.Rate = 1 })
	b.verify(t, jobs, verdict{})
	stats = b.emu.Stats()
	reset, _ = runnertest.CheckHooks(t, jobs, stats.ResetLog, runnertest.ReadHookLog(t, log), true, nil)
	if reset != len(jobs) {
		t.Errorf("%d reset after the rerun, want %d", reset, len(jobs))
	}
}

// TestTATHooks: tat: hooks run on the instance through RunCommand, the
// before-hook on the old system and before the reset, batched; a drain
// that fails on the old system leaves its instance unreset.
func TestTATHooks(t *testing.T) {
	t.Parallel()
	var bad string
	b := setup(t, scenario{n: 8, emu: func(c *emulator.Config) {
		c.CommandDuration = emulator.Duration{Min: 50 * time.Millisecond, Max: 100 * time.Millisecond}
		c.AgentOnlineAfter = 50 * time.Millisecond
		bad = c.Instances[0].ID
		c.CommandFailBeforeResetInstances = []string{bad}
	}})
	h := &runner.Hook{Kind: runner.HookTAT, Script: []byte("drain"), CommandType: lighthouse.CommandShell}
	_, jobs := b.run(t, func(c *runner.Config) {
		c.Hooks = runner.Hooks{Before: h, After: h, Timeout: 20 * time.Second}
		c.Rollout = &runner.Rollout{MaxFailures: -1}
	})
	b.verify(t, jobs, verdict{})
	stats := b.emu.Stats()
	before, after := map[string]emulator.InvocationRecord{}, map[string]emulator.InvocationRecord{}
	calls := 0
	for _, inv := range stats.Invocations {
		if inv.Script != "drain" {
			continue
		}
		calls++
		for _, id := range inv.InstanceIDs {
			if slices.Contains(inv.OldSystem, id) {
				before[id] = inv
			} else {
				after[id] = inv
			}
		}
	}
	if calls >= 2*len(jobs)-1 {
		t.Errorf("%d RunCommand calls for %d instances' hooks: not batched", calls, len(jobs))
	}
	for _, j := range jobs {
		id := j.InstanceID
		rs := stats.ResetLog[id]
		if id == bad {
			if len(rs) != 0 || j.Status != store.StatusSkipped || j.ErrorCode != runner.CodeBeforeHookFailed {
				t.Errorf("%s: %d resets, %s %s; want none, skipped %s", id, len(rs), j.Status, j.ErrorCode, runner.CodeBeforeHookFailed)
			}
			continue
		}
		inv, ok := before[id]
		if len(rs) != 1 || !ok || !inv.Ends[id].Before(rs[0].At) {
			t.Errorf("%s: %d resets, drained %v (ends %s), want one reset after the drain ended", id, len(rs), ok, inv.Ends[id])
			continue
		}
		if inv, ok := after[id]; !ok || !inv.Created.After(rs[0].Ends) {
			t.Errorf("%s: after-hook on the new system %v, created %s, reset ended %s", id, ok, inv.Created, rs[0].Ends)
		}
	}
}

func byRegionIDs(jobs []store.Job) map[string][]string {
	out := map[string][]string{}
	for _, j := range jobs {
		out[j.Region] = append(out[j.Region], j.InstanceID)
	}
	return out
}

// TestMaxInFlightCountsOutOfService: with hooks, MaxInFlight counts the
// instances out of service, from the start of their before-hook to the end
// of their after-hook.
func TestMaxInFlightCountsOutOfService(t *testing.T) {
	t.Parallel()
	b := setup(t, scenario{n: 12})
	dir := t.TempDir()
	script, log := runnertest.HookScript(t, dir, 50*time.Millisecond)
	const cap = 3
	_, jobs := b.run(t, func(c *runner.Config) {
		c.Hooks = execHooks(script)
		c.Hooks.Concurrency = 8
		c.MaxInFlight = cap
	})
	b.verify(t, jobs, verdict{})
	hooks := runnertest.ReadHookLog(t, log)
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for id, evs := range hooks {
		first, last := evs[0], evs[len(evs)-1]
		if first.Phase != "before" || last.Phase != "after" || last.End.IsZero() {
			t.Fatalf("%s: hooks %+v, want a before-hook first and an after-hook that ended last", id, evs)
		}
		edges = append(edges, edge{first.Start, 1}, edge{last.End, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int { return a.at.Compare(b.at) })
	out, most := 0, 0
	for _, e := range edges {
		out += e.delta
		most = max(most, out)
	}
	if most > cap || most == 0 {
		t.Errorf("at most %d instances out of service at once, want 1..%d", most, cap)
	}
	if len(hooks) != len(jobs) {
		t.Errorf("%d instances with hooks, want %d", len(hooks), len(jobs))
	}
}

// TestStopRestores: a cancel (Postgres: `batchreset cancel`) and a window
// that closes stop new resets with instances drained and waiting for their
// rate slot: each of them ends skipped, after a restore; each instance
// reset before the stop gets its after-hook.
func TestStopRestores(t *testing.T) {
	t.Parallel()
	for _, stop := range []string{"cancel", "window"} {
		t.Run(stop, func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 12, limit: 1})
			dir := t.TempDir()
			script, log := runnertest.HookScript(t, dir, 10*time.Millisecond)
			pg := b.importPG(t, "hooks")
			cfg := b.configPG(t, pg.st, pg.run, "runner-1", 30*time.Second, func(c *runner.Config) {
				c.Hooks = execHooks(script)
				c.Rate = 1
				c.Rollout = &runner.Rollout{MaxFailures: -1}
				if stop == "window" {
					// Three seconds of window, resets expected to take 1s:
					// the window closes with most instances drained.
					c.Rollout.WindowEnd = time.Now().Add(3 * time.Second)
					c.Rollout.ExpectedDuration = time.Second
				}
			})
			r, err := runner.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				if _, err := r.Run(ctx); err != nil {
					t.Errorf("Run() = %v", err)
				}
			}()
			if stop == "cancel" {
				for resetsApplied(b) == 0 || len(runnertest.ReadHookLog(t, log)) < 6 {
					select {
					case <-done:
						t.Fatal("the run ended before the cancel")
					case <-time.After(20 * time.Millisecond):
					}
				}
				if err := pg.st.SetControl(t.Context(), pg.run, store.ControlCancelled); err != nil {
					t.Fatal(err)
				}
			}
			<-done
			jobs := pg.jobs(t)
			b.verify(t, jobs, verdict{})
			stats := b.emu.Stats()
			reset, restored := runnertest.CheckHooks(t, jobs, stats.ResetLog, runnertest.ReadHookLog(t, log), true, nil)
			if reset == 0 || restored == 0 {
				t.Errorf("%d reset, %d restored of %d: want some of each", reset, restored, len(jobs))
			}
			for _, j := range jobs {
				if len(stats.ResetLog[j.InstanceID]) == 0 && (j.Status != store.StatusSkipped || j.HookPhase == store.HookBefore ||
					j.HookPhase == store.HookDrained || j.HookPhase == store.HookRestore) {
					t.Errorf("%s: not reset, %s with hook phase %q; want skipped, restored or never drained", j.InstanceID, j.Status, j.HookPhase)
				}
			}
		})
	}
}

// resetsApplied counts the resets the emulator has applied.
func resetsApplied(b *bundle) int {
	n := 0
	for _, ids := range b.emu.Stats().Resets {
		n += len(ids)
	}
	return n
}
