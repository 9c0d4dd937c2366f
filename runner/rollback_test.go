package runner_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// TestPrevBlueprintRecorded: every job the run sends records the image its
// instance had before, in the journal (read back by a reopened store) and
// in the database.
func TestPrevBlueprintRecorded(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 6, limit: 50})
			before := b.blueprints(t)
			_, jobs := b.runOn(t, be, nil)
			if be == csvBackend {
				st := b.open(t) // replays the journal
				jobs = st.Jobs()
				st.Close()
			}
			for _, j := range jobs {
				if j.Status != store.StatusSucceeded {
					t.Errorf("%s: %s, want succeeded", j.InstanceID, j.Status)
				}
				if j.PrevBlueprintID == "" || j.PrevBlueprintID != before[j.InstanceID] || j.PrevBlueprintID == j.BlueprintID {
					t.Errorf("%s: PrevBlueprintID = %q, want %q (the image before the reset, not the target %s)",
						j.InstanceID, j.PrevBlueprintID, before[j.InstanceID], j.BlueprintID)
				}
			}
		})
	}
}

// blueprints returns each input instance's blueprint now, as the cloud
// describes it.
func (b *bundle) blueprints(t *testing.T) map[string]string {
	t.Helper()
	byRegion := map[string][]string{}
	for _, j := range b.jobs {
		byRegion[j.Region] = append(byRegion[j.Region], j.InstanceID)
	}
	out := map[string]string{}
	for region, ids := range byRegion {
		ins, err := runnertest.DescribeInstances(context.Background(), b.direct, region, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			out[in.InstanceID] = in.BlueprintID
		}
	}
	return out
}

// session is one run of a scenario's jobs on one backend, worked by
// successive runners (a restart, a second runner), whose record keeps its
// pauses.
type session struct {
	b  *bundle
	be backend
	pg *pgRun
}

func newSession(t *testing.T, b *bundle, be backend) *session {
	s := &session{b: b, be: be}
	if be == pgBackend {
		s.pg = b.importPG(t, "approve")
	}
	return s
}

// config opens the run's store for a runner named owner and returns its
// configuration; done closes what it opened. A CSV runner goes on from
// the jobs its earlier processes sent (Rollout.Prior), as the command
// does.
func (s *session) config(t *testing.T, owner string, rollout func() *runner.Rollout) (cfg runner.Config, done func()) {
	t.Helper()
	ro := rollout()
	if s.be == pgBackend {
		// A short lease: a killed runner's jobs are taken over soon.
		cfg = s.b.configPG(t, s.pg.st, s.pg.run, owner, 3*time.Second, nil)
		cfg.LeaseRenewInterval = 500 * time.Millisecond
		cfg.Rollout = ro
		return cfg, func() {}
	}
	st := s.b.open(t)
	cfg = s.b.config(t, st)
	for _, j := range st.Jobs() {
		if j.Attempts > 0 {
			ro.Prior++
		}
	}
	cfg.Rollout = ro
	return cfg, func() { st.Close() }
}

// jobs returns the run's jobs as recorded.
func (s *session) jobs(t *testing.T) []store.Job {
	t.Helper()
	if s.be == pgBackend {
		return s.pg.jobs(t)
	}
	st := s.b.open(t)
	defer st.Close()
	return st.Jobs()
}

// hold returns the run's control as its record keeps it.
func (s *session) hold(t *testing.T) store.RunHold {
	t.Helper()
	if s.be == pgBackend {
		h, err := s.pg.st.Hold(context.Background(), s.pg.run)
		if errors.Is(err, store.ErrNotFound) {
			return store.RunHold{Control: store.ControlRunning}
		}
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h, err := csvstore.ReadHold(s.b.statePath)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// setControl is `batchreset pause|resume|cancel` for the run.
func (s *session) setControl(t *testing.T, c store.Control) {
	t.Helper()
	var err error
	if s.be == pgBackend {
		err = s.pg.st.SetControl(context.Background(), s.pg.run, c)
	} else {
		_, err = csvstore.UpdateHold(s.b.statePath, func(h *store.RunHold) { h.Set(c) })
	}
	if err != nil {
		t.Fatal(err)
	}
}

// runUntilPaused runs cfg until the run's record says it is paused, then
// ends the runner at once, as a kill would, and returns the hold.
func (s *session) runUntilPaused(t *testing.T, cfg runner.Config) store.RunHold {
	t.Helper()
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ended := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx)
		ended <- err
	}()
	deadline := time.Now().Add(60 * time.Second)
	for s.hold(t).Control != store.ControlPaused {
		select {
		case err := <-ended:
			// A runner that does not wait for a person ends at a pause it
			// made (see Config.WaitPaused).
			cancel()
			if h := s.hold(t); h.Control != store.ControlPaused {
				t.Fatalf("the runner ended (%v) before the run paused", err)
			}
			return s.hold(t)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("the run did not pause within 60s")
		}
	}
	cancel()
	<-ended
	return s.hold(t)
}

// TestApproveCanary: with --approve canary no reset past the canary is
// sent before a person resumes the run; the pause is in the run's record,
// so that a runner started after the first was killed sends nothing and
// says what the run waits for; after resume the rest runs, each instance
// reset once.
func TestApproveCanary(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 8, limit: 50})
			s := newSession(t, b, be)
			ro := func() *runner.Rollout {
				return &runner.Rollout{Canary: 2, Waves: []int{3}, MaxFailures: -1, Approve: runner.ApproveCanary}
			}

			cfg, done := s.config(t, "runner-1", ro)
			h := s.runUntilPaused(t, cfg)
			done()
			if h.Awaiting != 2 || !strings.Contains(h.Reason, "approval of wave 2") {
				t.Errorf("hold = %+v, want awaiting approval of wave 2", h)
			}
			if n := resetCount(b); n != 2 {
				t.Fatalf("%d instances reset before the approval, want the 2 of the canary", n)
			}

			// A runner started while the run waits (cron's next tick) sends
			// nothing and says what the run waits for.
			cfg, done = s.config(t, "runner-2", ro)
			sum := b.runWith(t, cfg)
			done()
			if !sum.Paused || sum.WaitingFor != "approval of wave 2" {
				t.Errorf("restarted runner: Paused %v, WaitingFor %q; want paused, waiting for approval of wave 2", sum.Paused, sum.WaitingFor)
			}
			if n := resetCount(b); n != 2 {
				t.Fatalf("%d instances reset after the restart, want still the 2 of the canary", n)
			}

			s.setControl(t, store.ControlRunning)
			cfg, done = s.config(t, "runner-3", ro)
			sum = b.runWith(t, cfg)
			done()
			if sum.Paused {
				t.Errorf("after resume: the run paused again (%q), want it to run to its end", sum.WaitingFor)
			}
			jobs := s.jobs(t)
			b.verify(t, jobs, verdict{})
			if n := len(byStatus(jobs, store.StatusSucceeded)); n != len(jobs) {
				t.Errorf("%d of %d succeeded, want all", n, len(jobs))
			}
		})
	}
}

// resetCount counts the instances the emulator has applied a reset to.
func resetCount(b *bundle) int {
	n := 0
	for _, ids := range b.emu.Stats().Resets {
		if len(ids) > 0 {
			n++
		}
	}
	return n
}

// TestRollbackOnFailure: three instances whose resets end FAILED in the
// second wave exceed a budget of 2 under OnFailure rollback; the run stops
// and asks for its rollback, which resets every instance the run reset
// successfully back to its original blueprint, last wave first, as a run
// of its own: each of them is reset exactly twice, the failed ones and
// those never reset are not touched again, and no action goes over its
// limit. On Postgres, with two runners on the run and on its rollback.
// Planning the rollback again finds nothing to reset.
func TestRollbackOnFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		be      backend
		runners int
	}{{csvBackend, 1}, {pgBackend, 1}, {pgBackend, 2}} {
		t.Run(fmt.Sprintf("%s/%d", tc.be, tc.runners), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 9, limit: 5, emu: func(c *emulator.Config) {
				// The second wave (jobs 4 to 6 in input order) fails.
				c.FailInstances = []string{c.Instances[3].ID, c.Instances[4].ID, c.Instances[5].ID}
			}})
			before := b.blueprints(t)
			ro := func() *runner.Rollout {
				return &runner.Rollout{Waves: []int{3}, MaxFailures: 2, OnFailure: runner.FailRollback}
			}

			// The run: it stops once the budget is exceeded, and asks for
			// its rollback.
			var jobs []store.Job
			var waves map[int64]int
			var pg *pgRun
			if tc.be == pgBackend {
				pg = b.importPG(t, "nightly")
				runMany(t, b, pg, tc.runners, ro)
				rec, err := pg.st.Rollout(context.Background(), pg.run)
				if err != nil || !runner.RollbackDue(rec.Stopped) {
					t.Errorf("the run's record says stopped %q (%v), want the budget exceeded, rolling back", rec.Stopped, err)
				}
				jobs = pg.jobs(t)
				w, err := pg.st.Waves(context.Background(), pg.run)
				if err != nil {
					t.Fatal(err)
				}
				waves = map[int64]int{}
				for id, n := range w {
					waves[id] = n + 1
				}
			} else {
				var sum runner.Summary
				sum, jobs = b.run(t, func(c *runner.Config) { c.Rollout = ro() })
				if !sum.Rollback {
					t.Errorf("Rollback = false (stop reason %q), want true", sum.StopReason)
				}
			}
			b.verify(t, jobs, verdict{})
			succeeded := map[string]bool{}
			for _, j := range byStatus(jobs, store.StatusSucceeded) {
				succeeded[j.InstanceID] = true
			}
			if len(succeeded) != 3 || len(byStatus(jobs, store.StatusFailed)) != 3 {
				t.Fatalf("%d succeeded and %d failed, want the first wave's 3 and the second's 3", len(succeeded), len(byStatus(jobs, store.StatusFailed)))
			}

			// The rollback, planned from the cloud as it is now.
			steps := planRollback(t, b, jobs, waves)
			var todo []store.Job
			for i, st := range steps {
				if st.Reset != succeeded[st.Job.InstanceID] {
					t.Errorf("%s (%s): Reset = %v (%s), want it reset back only if the run reset it", st.Job.InstanceID, st.Job.Status, st.Reset, st.Why)
				}
				if st.Reset {
					rj := st.RollbackJob()
					rj.ID = int64(i + 2)
					todo = append(todo, rj)
				}
			}
			b.baseline()
			var rolled []store.Job
			if tc.be == pgBackend {
				rb := &pgRun{st: pg.st, url: pg.url, run: pg.run + "-rollback"}
				for range tc.runners {
					// Every runner of the run reaches the rollback; the
					// first one's plan holds.
					if _, err := pg.st.ImportRollback(context.Background(), pg.run, rb.run, todo); err != nil {
						t.Fatal(err)
					}
				}
				runMany(t, b, rb, tc.runners, func() *runner.Rollout { return &runner.Rollout{Waves: []int{3}, MaxFailures: -1} })
				rolled = rb.jobs(t)
			} else {
				st := openCSV(t, filepath.Join(t.TempDir(), "results.rollback.csv.state"), todo)
				cfg := b.config(t, st)
				cfg.Rollout = &runner.Rollout{Waves: []int{3}, MaxFailures: -1}
				b.runWith(t, cfg)
				rolled = st.Jobs()
				st.Close()
			}

			stats := b.emu.Stats()
			runnertest.CheckRates(t, stats.Actions, b.limits)
			now := b.blueprints(t)
			for _, j := range rolled {
				if j.Status != store.StatusSucceeded {
					t.Errorf("rollback of %s: %s %s, want succeeded", j.InstanceID, j.Status, j.ErrorMessage)
				}
			}
			for _, j := range jobs {
				n := len(stats.Resets[j.InstanceID])
				switch {
				case succeeded[j.InstanceID]:
					if n != 2 || now[j.InstanceID] != before[j.InstanceID] {
						t.Errorf("%s: reset %d time(s), now on %s; want reset twice and back on %s", j.InstanceID, n, now[j.InstanceID], before[j.InstanceID])
					}
				case j.Status == store.StatusFailed:
					if n != 1 || now[j.InstanceID] != before[j.InstanceID] {
						t.Errorf("%s (failed): %d reset(s), now on %s; want only the failed one, still on %s", j.InstanceID, n, now[j.InstanceID], before[j.InstanceID])
					}
				default:
					if n != 0 {
						t.Errorf("%s (%s): %d reset(s), want none: the run never reset it", j.InstanceID, j.Status, n)
					}
				}
			}
			// Rolled back, the run has nothing left to roll back.
			for _, st := range planRollback(t, b, jobs, waves) {
				if st.Reset {
					t.Errorf("second rollback: %s would be reset again", st.Job.InstanceID)
				}
				if succeeded[st.Job.InstanceID] && !strings.Contains(st.Why, "already back on its previous image") {
					t.Errorf("second rollback: %s left alone with %q, want already back", st.Job.InstanceID, st.Why)
				}
			}
		})
	}
}

// planRollback plans the rollback of jobs from the emulator as it is now.
func planRollback(t *testing.T, b *bundle, jobs []store.Job, waves map[int64]int) []runner.RollbackStep {
	t.Helper()
	now, err := runner.DescribeForRollback(context.Background(), b.cloud(t), jobs)
	if err != nil {
		t.Fatal(err)
	}
	return runner.PlanRollback(jobs, waves, now)
}

// runMany runs n runners on pg at once, each with its own rollout, until
// they all finish.
func runMany(t *testing.T, b *bundle, pg *pgRun, n int, rollout func() *runner.Rollout) []runner.Summary {
	t.Helper()
	sums := make([]runner.Summary, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := b.configPG(t, openPG(t, pg.url), pg.run, fmt.Sprintf("runner-%d", i+1), 30*time.Second, nil)
		cfg.Rollout = rollout()
		wg.Go(func() { sums[i] = b.runWith(t, cfg) })
	}
	wg.Wait()
	return sums
}

// TestPauseOnFailure: a budget exceeded under OnFailure pause stops new
// resets and pauses the run in its record: a runner started meanwhile
// sends nothing and says why; a resume goes on past the failures (the
// budget counts anew), never sending the failed instances again.
func TestPauseOnFailure(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 9, limit: 20, emu: func(c *emulator.Config) {
				c.FailInstances = []string{c.Instances[3].ID, c.Instances[4].ID, c.Instances[5].ID}
			}})
			s := newSession(t, b, be)
			ro := func() *runner.Rollout {
				return &runner.Rollout{Waves: []int{3}, MaxFailures: 2, OnFailure: runner.FailPause}
			}
			cfg, done := s.config(t, "runner-1", ro)
			h := s.runUntilPaused(t, cfg)
			done()
			if !strings.HasPrefix(h.Reason, "failure budget exceeded") || h.Awaiting != 0 {
				t.Errorf("hold = %+v, want paused by the failure budget", h)
			}
			sent := resetCount(b)

			cfg, done = s.config(t, "runner-2", ro)
			sum := b.runWith(t, cfg)
			done()
			if !sum.Paused || !strings.HasPrefix(sum.WaitingFor, "failure budget exceeded") {
				t.Errorf("restarted runner: Paused %v, WaitingFor %q; want paused by the budget", sum.Paused, sum.WaitingFor)
			}
			if n := resetCount(b); n != sent {
				t.Fatalf("%d instances reset after the restart, want still %d", n, sent)
			}

			s.setControl(t, store.ControlRunning)
			cfg, done = s.config(t, "runner-3", ro)
			sum = b.runWith(t, cfg)
			done()
			if sum.Paused || sum.StopReason != "" {
				t.Errorf("after resume: Paused %v, StopReason %q; want the run to go on to its end", sum.Paused, sum.StopReason)
			}
			jobs := s.jobs(t)
			b.verify(t, jobs, verdict{})
			if f, ok := len(byStatus(jobs, store.StatusFailed)), len(byStatus(jobs, store.StatusSucceeded)); f != 3 || ok != 6 {
				t.Errorf("%d failed, %d succeeded; want the 3 that fail, and the 6 others after resume", f, ok)
			}
		})
	}
}

// TestPlanRollbackLeavesAlone: PlanRollback resets back only an instance
// the run reset that still runs the run's image with the run's reset as its
// latest operation; every other one is left alone, saying why; the
// instances to reset come last wave first.
func TestPlanRollbackLeavesAlone(t *testing.T) {
	t.Parallel()
	const region, prev, next = "ap-guangzhou", "lhbp-prev0001", "lhbp-next0001"
	done := func(id, req string, wave int64) store.Job {
		return store.Job{ID: wave, InstanceID: id, Region: region, BlueprintID: next, PrevBlueprintID: prev,
			Status: store.StatusSucceeded, RequestID: req}
	}
	on := func(id, bp, latest string) lighthouse.Instance {
		return lighthouse.Instance{InstanceID: id, BlueprintID: bp, InstanceState: "RUNNING", LatestOperation: lighthouse.ActionResetInstance,
			LatestOperationState: "SUCCESS", LatestOperationRequestID: latest}
	}
	jobs := []store.Job{
		done("lhins-wave1", "r1", 1),
		done("lhins-wave2", "r2", 2),
		done("lhins-again", "r3", 2),
		done("lhins-back", "r4", 2),
		done("lhins-third", "r5", 2),
		{ID: 9, InstanceID: "lhins-failed", Region: region, BlueprintID: next, PrevBlueprintID: prev, Status: store.StatusFailed},
		{ID: 9, InstanceID: "lhins-unknown", Region: region, BlueprintID: next, PrevBlueprintID: prev, Status: store.StatusUnknown},
		{ID: 9, InstanceID: "lhins-never", Region: region, BlueprintID: next, Status: store.StatusSkipped},
		{ID: 9, InstanceID: "lhins-old", Region: region, BlueprintID: next, Status: store.StatusSucceeded, RequestID: "r6"},
		done("lhins-gone", "r7", 2),
	}
	now := runner.Instances{}
	for _, in := range []lighthouse.Instance{
		on("lhins-wave1", next, "r1"), on("lhins-wave2", next, "r2"), on("lhins-again", next, "other"),
		on("lhins-back", prev, "other"), on("lhins-third", "lhbp-third001", "r5"), on("lhins-old", next, "r6"),
	} {
		now[region+"/"+in.InstanceID] = in
	}
	waves := map[int64]int{1: 1, 2: 2}
	steps := runner.PlanRollback(jobs, waves, now)
	want := map[string]string{
		"lhins-wave1": "", "lhins-wave2": "",
		"lhins-again":   "reset again since the run",
		"lhins-back":    "already back on its previous image",
		"lhins-third":   "neither the run's image",
		"lhins-failed":  "its reset failed",
		"lhins-unknown": "unknown",
		"lhins-never":   "never reset by the run",
		"lhins-old":     "not recorded",
		"lhins-gone":    "not found",
	}
	for _, st := range steps {
		w := want[st.Job.InstanceID]
		if st.Reset != (w == "") || !strings.Contains(st.Why, w) {
			t.Errorf("%s: Reset %v, Why %q; want reset %v, why containing %q", st.Job.InstanceID, st.Reset, st.Why, w == "", w)
		}
	}
	if steps[0].Job.InstanceID != "lhins-wave2" || steps[1].Job.InstanceID != "lhins-wave1" {
		t.Errorf("first steps %s, %s; want the last wave first", steps[0].Job.InstanceID, steps[1].Job.InstanceID)
	}
	if j := steps[0].RollbackJob(); j.BlueprintID != prev || j.InstanceID != "lhins-wave2" || j.Status != store.StatusPending {
		t.Errorf("RollbackJob() = %+v, want lhins-wave2 pending back to %s", j, prev)
	}
}

// TestApproveEachWave: with Approve each-wave every wave after the first
// waits for its own approval, through runners that end at each pause (as
// from cron): one wave per resume, each instance reset once.
func TestApproveEachWave(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			b := setup(t, scenario{n: 6, limit: 50})
			s := newSession(t, b, be)
			ro := func() *runner.Rollout {
				return &runner.Rollout{Waves: []int{2}, MaxFailures: -1, Approve: runner.ApproveEachWave}
			}
			for wave := 2; wave <= 3; wave++ {
				cfg, done := s.config(t, fmt.Sprintf("runner-%d", wave), ro)
				sum := b.runWith(t, cfg)
				done()
				if want := fmt.Sprintf("approval of wave %d", wave); !sum.Paused || sum.WaitingFor != want {
					t.Fatalf("Paused %v, WaitingFor %q; want paused for %s", sum.Paused, sum.WaitingFor, want)
				}
				if n := resetCount(b); n != 2*(wave-1) {
					t.Fatalf("%d instances reset awaiting wave %d, want %d", n, wave, 2*(wave-1))
				}
				s.setControl(t, store.ControlRunning)
			}
			cfg, done := s.config(t, "runner-last", ro)
			sum := b.runWith(t, cfg)
			done()
			if sum.Paused {
				t.Errorf("the last wave paused (%q), want the run to end", sum.WaitingFor)
			}
			jobs := s.jobs(t)
			b.verify(t, jobs, verdict{})
			if n := len(byStatus(jobs, store.StatusSucceeded)); n != len(jobs) {
				t.Errorf("%d of %d succeeded, want all", n, len(jobs))
			}
		})
	}
}
