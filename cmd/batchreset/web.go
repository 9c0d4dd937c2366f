package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
	"github.com/batchreset/batchreset/cmd/batchreset/notify"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres"
)

// viewFlags are the flags of run and retry for watching a run from
// elsewhere: the live status page and notifications.
type viewFlags struct {
	page   pageFlags
	notify notify.Flags
}

// pageFlags are the flags of the status page, of run, retry and serve.
type pageFlags struct {
	addr     string
	controls bool
	hosts    []string
	authFile string
	auth     statuspage.Credentials // read by check
}

// The environment variables of the status page's credentials, which a
// control request must carry (HTTP basic auth).
const (
	envStatusUser     = "BATCHRESET_STATUS_USER"
	envStatusPassword = "BATCHRESET_STATUS_PASSWORD"
)

// credentialsHint says where the page's credentials come from, and
// howToControl how an operator gets control from the page.
const (
	credentialsHint = "a user and password in " + envStatusUser + " and " + envStatusPassword +
		" (or --status-auth-file FILE holding USER:PASSWORD)"
	howToControl = "to pause, resume or cancel from this page, start it with --status-controls and " + credentialsHint
)

// add adds the page's flags; addr is --status-addr's default.
func (o *pageFlags) add(fs *pflag.FlagSet, addr, addrUsage string) {
	fs.StringVar(&o.addr, "status-addr", addr, addrUsage)
	fs.BoolVar(&o.controls, "status-controls", false, "let operators who sign in to the status page pause, resume and cancel (needs "+envStatusUser+" and "+envStatusPassword+", or --status-auth-file)")
	fs.StringArrayVar(&o.hosts, "status-host", nil, "a host name the status page answers to besides its address and localhost (the name in your DNS or proxy; repeatable)")
	fs.StringVar(&o.authFile, "status-auth-file", "", "file holding USER:PASSWORD of the status page's controls (instead of "+envStatusUser+" and "+envStatusPassword+")")
}

// check checks the page's flags and reads its credentials.
func (o *pageFlags) check(getenv func(string) string) error {
	if o.addr == "" {
		if o.controls || len(o.hosts) > 0 || o.authFile != "" {
			return usageError("--status-controls, --status-host and --status-auth-file need --status-addr ADDR")
		}
		return nil
	}
	auth, err := statuspage.ReadCredentials(o.authFile, getenv, envStatusUser, envStatusPassword)
	if err != nil {
		return usageError("status page credentials: %v", err)
	}
	if o.controls && !auth.Set() {
		return usageError("--status-controls needs credentials, which the page never serves: %s", credentialsHint)
	}
	o.auth = auth
	return nil
}

// newPage returns the status page of cfg, with the page's flags.
func (o *pageFlags) newPage(cfg statuspage.Config, log *slog.Logger) (*statuspage.Page, error) {
	cfg.Controls, cfg.Auth, cfg.Hosts, cfg.HowToControl, cfg.Logger = o.controls, o.auth, o.hosts, howToControl, log
	return statuspage.New(cfg)
}

func (o *viewFlags) add(fs *pflag.FlagSet) {
	o.page.add(fs, "", "serve a live status page of the run on this address (e.g. 127.0.0.1:8080; a bare :PORT binds to loopback)")
	o.notify.AddFlags(fs)
}

func (o *viewFlags) check() error {
	return o.page.check(osEnv)
}

// runView is what run adds for watching it: the status page and the
// notifications, both optional.
type runView struct {
	a      *app
	src    jobSource
	notify *notify.Notifier
	stop   func()
	stats  *runner.Stats
	ro     *runner.Rollout
	s      runSettings
}

// startView starts the notifier of s, a run of jobs jobs; the status page
// serves once attach has the runner. A rollback's notifications carry its
// progress through the waves of ro.
func (a *app) startView(s runSettings, src jobSource, ro *runner.Rollout, jobs int) (*runView, error) {
	v := &runView{a: a, s: s, ro: ro, src: src}
	origin := notify.Origin{Run: a.runName, Runner: a.runnerID, Version: buildVersion()}
	if s.src.parent != "" {
		rb := &notify.RollbackPlan{Of: s.src.parent}
		for _, w := range ro.WavePlan(jobs) {
			if w == len(rb.Waves) {
				rb.Waves = append(rb.Waves, 0)
			}
			rb.Waves[w]++
		}
		origin.Rollback = rb
	}
	v.notify = notify.New(s.notify, origin, a.log)
	return v, nil
}

// onEvent is the runner's Config.OnEvent, nil when nothing listens.
func (v *runView) onEvent() func(runner.Event) {
	if v.notify == nil {
		return nil
	}
	return v.notify.OnEvent
}

// attach gives the view the runner and starts serving the page: a control
// set from the page is recorded in the run's store and applied by this
// runner at once.
func (v *runView) attach(r *runner.Group) error {
	v.stats = r.Stats()
	if v.s.view.page.addr == "" {
		return nil
	}
	page, err := v.s.view.page.newPage(statuspage.Config{Run: v.src, Live: v.live, OnControl: r.SetControl}, v.a.log)
	if err != nil {
		return usageError("status page: %v", err)
	}
	u, stop, err := page.Serve(v.s.view.page.addr)
	if err != nil {
		return usageError("--status-addr: %v", err)
	}
	v.stop = stop
	v.a.notef("status page: %s", u)
	return nil
}

// live is the page's view of the runner.
func (v *runView) live() *statuspage.Live {
	ro := v.ro
	l := &statuspage.Live{RateLimit: v.s.runner.Rate, MaxInFlight: v.s.runner.MaxInFlight, WindowEnd: ro.WindowEnd,
		PauseBetweenWaves: ro.PauseBetweenWaves, Failures: ro.Failures(), Rollout: ro.Plan()}
	if v.stats != nil {
		l.Paused, l.Stopped, l.Sent = v.stats.Paused(), v.stats.Stopped(), v.stats.Sent()
		if d := v.stats.Durations(); len(d) > 0 {
			l.ResetP50 = runner.Percentile(d, 50)
		}
	}
	if l.Rollout.Canary > 0 || len(l.Rollout.Waves) > 0 {
		l.Wave, l.Canary = ro.Wave()
		l.NextWave, _ = ro.Resting()
	}
	return l
}

// finished sends the end of the run and closes what the view started.
func (v *runView) finished(t runTally, reason string) {
	failed := make([]string, 0, len(t.Attention))
	for _, o := range t.Attention {
		failed = append(failed, o.InstanceID)
	}
	hooks := notify.Hooks{OutOfService: t.OutOfService, FailuresTotal: t.HookFailuresTotal}
	for _, o := range t.HookFailures {
		hooks.Failures = append(hooks.Failures, notify.HookFailure{InstanceID: o.InstanceID, Code: o.ErrorCode, Phase: o.HookPhase, Message: o.ErrorMessage})
	}
	v.notify.Finished(reason, t.Totals, failed, t.AttentionTotal, hooks)
}

// Close stops the page and waits for the notifications (bounded).
func (v *runView) Close() {
	if v.stop != nil {
		v.stop()
	}
	v.notify.Close()
}

// The status page reads a run through statuspage.Run, which both sources
// implement.

func (s *csvSource) PageName() string { return "csv:" + s.out }

func (s *csvSource) PageInfo(ctx context.Context) (statuspage.RunInfo, error) {
	info := statuspage.RunInfo{Name: s.jobsPath, Mode: "csv", Runners: -1, RollbackOf: s.parent}
	if s.st != nil {
		info.StartedAt = s.st.Started()
		h, err := s.st.Hold(ctx)
		if err != nil {
			return info, err
		}
		info.Control, info.PauseReason = h.Control, h.Reason
	}
	return info, nil
}

// EachJob gives the jobs as stored: the run this process runs.
func (s *csvSource) EachJob(_ context.Context, fn func(*store.Job) error) error {
	if s.st == nil {
		return errors.New("the CSV run is not open")
	}
	for j := range s.st.All() {
		if err := fn(&j); err != nil {
			return err
		}
	}
	return nil
}

// SetControl sets the control the runner reads from the store at each
// poll; the page's OnControl applies it at once.
func (s *csvSource) SetControl(ctx context.Context, c store.Control) error {
	if s.st == nil {
		return errors.New("the CSV run is not open")
	}
	return s.st.SetControl(ctx, c)
}

func (s *dbSource) PageName() string { return "postgres:" + s.run }

func (s *dbSource) PageInfo(ctx context.Context) (statuspage.RunInfo, error) {
	info := statuspage.RunInfo{Name: s.run, Mode: "postgres"}
	st, err := s.db.Status(ctx, s.run)
	if err != nil {
		return info, err
	}
	info.Control, info.Runners = st.Control, st.Owners
	if h, err := s.db.Hold(ctx, s.run); err == nil {
		info.PauseReason = h.Reason
	}
	parent, err := s.db.Parent(ctx, s.run)
	if err != nil {
		return info, err
	}
	if parent != "" {
		info.RollbackOf = describeSource(sourceFlags{runName: parent})
	}
	if info.StartedAt, err = s.db.RunStarted(ctx, s.run); err != nil {
		return info, err
	}
	ro, err := s.db.Rollout(ctx, s.run)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return info, nil
	case err != nil:
		return info, err
	}
	info.Rollout, info.Stopped = &ro.Plan, ro.Stopped
	waves, err := s.db.Waves(ctx, s.run)
	if err != nil {
		return info, err
	}
	info.Waves = make(map[int64]int, len(waves))
	for id, w := range waves {
		info.Waves[id] = w + 1
	}
	return info, nil
}

// EachJob gives the jobs as stored, whoever runs them.
func (s *dbSource) EachJob(ctx context.Context, fn func(*store.Job) error) error {
	return s.db.EachJob(ctx, s.run, fn)
}

// SetControl sets the run's control, which every runner of it reads.
func (s *dbSource) SetControl(ctx context.Context, c store.Control) error {
	return s.db.SetControl(ctx, s.run, c)
}

// runListings lists the runs of db, for runs and serve.
func runListings(ctx context.Context, db *postgres.Store) ([]statuspage.Listing, error) {
	runs, err := db.Runs(ctx)
	if err != nil {
		return nil, err
	}
	list := make([]statuspage.Listing, 0, len(runs))
	for _, r := range runs {
		started, err := db.RunStarted(ctx, r.Name)
		if err != nil {
			return nil, fmt.Errorf("start of run %q: %w", r.Name, err)
		}
		list = append(list, statuspage.Listing{Name: r.Name, Control: string(r.Control), Jobs: r.Jobs, Unfinished: r.Unfinished,
			CreatedAt: r.CreatedAt.UTC(), StartedAt: timePtr(started), State: runState(started, r.Unfinished, string(r.Control))})
	}
	return list, nil
}
