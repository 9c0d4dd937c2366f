package runner_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/runner"
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
		ins, err := b.direct.DescribeInstances(context.Background(), region, ids)
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
			cancel()
			t.Fatalf("the runner ended (%v) before the run paused", err)
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
