package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptrace"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

func (a *app) runCommand() *cobra.Command {
	o := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run (--jobs FILE.csv | --database-url URL) [flags]",
		Short: "Reset every instance of a jobs CSV file or a Postgres run",
		Long: `Reset every instance listed in a jobs CSV file (CSV mode) or every due job of
a Postgres run (Postgres mode), at most --rate ResetInstance calls per second,
and track each reset to its end.

CSV mode records its progress in a state file beside the results (OUT.state):
rerunning the same command after a crash or an interrupt resumes, never
resetting a finished instance again. The first Ctrl-C stops new resets and
keeps tracking those sent; a second one exits at once.`,
		Example: `  # Try it against the built-in emulator
  batchreset run --jobs jobs.example.csv --emulate --yes

  # A real fleet, results in results.csv beside the jobs
  export TENCENTCLOUD_SECRET_ID=... TENCENTCLOUD_SECRET_KEY=...
  batchreset run --jobs fleet.csv --region ap-guangzhou --max-failures 2%

  # Several runners, one database, one account-wide rate limit
  batchreset run --database-url postgres://batchreset@db/ops --run nightly --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := o.settings(time.Now(), osEnv)
			if err != nil {
				return err
			}
			return a.runRun(cmd.Context(), s)
		},
	}
	o.add(cmd.Flags())
	o.sel.add(cmd.Flags())
	return cmd
}

// errRollbackDue reports a run whose failure budget was exceeded under
// --on-failure rollback: runRun rolls it back once it has let go of it.
var errRollbackDue = errors.New("the run is to be rolled back")

// runRun confirms, runs and reports; a run stopped by its failure budget
// under --on-failure rollback is then rolled back (see runRollback), and
// ends as a run with failures.
func (a *app) runRun(ctx context.Context, s runSettings) error {
	err := a.runOnce(ctx, s)
	if !errors.Is(err, errRollbackDue) {
		return err
	}
	a.notef("rollback: the failure budget was exceeded; rolling back every instance this run reset (%s)", dataWarning)
	if err := a.runRollback(ctx, s, true); err != nil {
		return err
	}
	return &exitError{code: exitFailures}
}

// runOnce confirms, runs and reports.
func (a *app) runOnce(ctx context.Context, s runSettings) error {
	if s.runner.Rate > lighthouse.ResetInstanceRateLimit && s.api.tencentCloud() {
		a.log.Warn("--rate is above the documented ResetInstance limit; expect RequestLimitExceeded", "rate", s.runner.Rate, "limit", lighthouse.ResetInstanceRateLimit)
	}
	// With --account, the run's own credential is loaded once the jobs
	// say whether any names no account.
	var cred *credentialInfo
	if len(s.accounts.defs) == 0 {
		c, err := a.credential(s.api)
		if err != nil {
			return err // before anything is opened or written
		}
		cred = &c
	}
	if cred != nil {
		if nothing, err := a.freeze(ctx, s.sel, s.src, s.api, *cred, s.runner.DescribeRate); err != nil || nothing {
			return err
		}
	}
	if s.src.jobsPath != "" && s.reportPath == "" && s.metricsAddr == "" && s.view.page.addr == "" && len(s.notify.Destinations) == 0 {
		if t, done, ok := finishedRun(s.src); ok {
			return a.runFinished(t, done, s.api.again)
		}
	}
	src, err := a.openSource(ctx, s.src, true, s.force, s.leaseTTL)
	if err != nil {
		return err
	}
	defer src.Close()
	cnt, err := src.Count(ctx)
	if err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	accounts, err := a.runAccountCredentials(ctx, s.accounts, s.api, s.src.runName, src, cnt, cred, true)
	if err != nil {
		return err
	}
	todo, regions, sample := cnt.Unfinished, cnt.Regions, sampleText(cnt.Sample, cnt.Unfinished)
	rollout, err := s.rollout.resolve(cnt.Jobs)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("reset %d instance(s) in %s (%s): %s; %s; endpoint: %s", todo, plural(len(regions), "region"), strings.Join(regions, ", "), sample, accountsText(accounts, cnt, s.api.emulate), s.api.endpoint)
	if s.api.emulate {
		what = fmt.Sprintf("reset %d instance(s) of the built-in emulator in %s (%s): %s", todo, plural(len(regions), "region"), strings.Join(regions, ", "), sample)
		if cnt.Accounts != nil {
			what += "; " + accountsText(accounts, cnt, true)
		}
	}
	if todo > 0 && !s.api.emulate {
		if err := a.confirm(s.yes, what); err != nil {
			return err
		}
	}
	if todo > 0 {
		a.notef("batchreset: %s", what)
	}
	hooks, err := a.joinRun(ctx, src, rollout, s.runner.Hooks)
	if err != nil {
		return err
	}
	a.describeStart(cnt.Jobs, todo, rollout, hooks)
	if err := src.RecordRollout(s.rollout.maxFailures, rollout, hooks); err != nil {
		// status then shows the budget of its own flag, saying so. Not a
		// warning: a file system that cannot take it cannot take the
		// journal either, which ends the run and says why.
		a.log.Debug("the run's rollout is not recorded", "err", err)
	}

	// Only the built-in emulator needs the job list: it is seeded from it.
	var jobs []store.Job
	if s.api.emulate {
		if jobs, err = src.Jobs(ctx); err != nil {
			return &exitError{code: exitFatal, err: err}
		}
	}
	conns, err := a.connectAccounts(ctx, s.api, accounts, jobs, s.runner.Workers)
	if err != nil {
		return err
	}
	defer closeAccounts(conns)
	jobs = nil // the store has them; a large run should not keep a second copy

	// A CSV run's waves go on from where its earlier processes left them
	// (the Postgres store keeps them itself).
	rollout.Prior = src.PriorSends()
	view, err := a.startView(s, src, rollout, cnt.Jobs)
	if err != nil {
		return err
	}
	defer view.Close()
	var met *metrics
	if s.metricsAddr != "" {
		met = newMetrics()
		stop, err := met.serve(s.metricsAddr, a.log)
		if err != nil {
			return usageError("--metrics-addr: %v", err)
		}
		defer stop()
	}
	var secrets []string
	for _, ac := range conns {
		secrets = append(secrets, ac.cred.id.Credential.SecretKey, ac.cred.id.Credential.Token)
	}
	var group []runner.Account
	for _, ac := range conns {
		cfg := s.runner
		cfg.API, cfg.Sender = failpointAPI{ac.conn.reads}, failpointAPI{ac.conn.sends}
		cfg.Rollout, cfg.Logger, cfg.Failpoint = rollout, a.log, failpointFromEnv()
		var only func(*store.Job) bool
		cfg.Store = src.Store()
		if cnt.Accounts != nil {
			name := ac.def.name
			only = func(j *store.Job) bool { return j.Account == name }
			cfg.Store = src.AccountStore(name)
			cfg.Logger = a.log.With("account", accountLabel(name))
		}
		if cfg.Holds, err = ac.conn.hold(ctx, src, only, a.log); err != nil {
			return err
		}
		// An operator at a terminal waits for a paused run; cron's next
		// tick ends at once, with exitPaused.
		cfg.WaitPaused = a.interactive()
		cfg.Hooks.Run = s.src.runName
		if s.src.databaseURL == "" {
			cfg.Hooks.Run = s.src.jobsPath
		}
		cfg.Hooks.Secrets = append(slices.Clone(secrets), cfg.Login.Password)
		cfg.OnEvent = view.onEvent()
		cfg.Shared = ac.conn.limits(src.DB())
		if met != nil {
			cfg.ObserveCall = met.call
		}
		budget := -1
		if cnt.Accounts != nil {
			n := accountJobs(cnt, ac.def.name)
			if budget, _, err = budgetOf(s.accounts.maxFailures, n); err != nil {
				return usageError("--max-failures-per-account: %v", err)
			}
		}
		group = append(group, runner.Account{Name: ac.def.name, Config: cfg, MaxFailures: budget})
	}
	r, err := runner.NewGroup(group, view.onEvent())
	if err != nil {
		return usageError("%v", err)
	}
	if met != nil {
		met.observe(r.Stats())
	}
	if err := view.attach(r); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	interrupted := a.handleSignals(ctx, r, cancel)
	prog := a.startProgress(r.Stats(), rollout, todo)
	started := time.Now()
	src.Started()
	sum, runErr := r.Run(ctx)
	prog.stop()

	// What follows reads the store after the run, even when an interrupt
	// ended it: the results must be written whatever stopped the run.
	ctx = context.WithoutCancel(ctx)
	unwritable := errors.Is(runErr, store.ErrUnwritable)
	finishErr := src.Finish(ctx)
	if finishErr != nil && !unwritable {
		return finishErr
	}
	t, err := src.Tally(ctx, s.reportPath != "")
	if err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	rep := buildReport(t, sum, s, started, time.Now())
	if s.reportPath != "" {
		if err := writeAtomic(s.reportPath, nil, func(w io.Writer) error { return writeReportJSON(ctx, src, rep, w) }); err != nil {
			return &exitError{code: exitFatal, err: fmt.Errorf("write report: %w", err)}
		}
	}
	signal := ""
	if sig := interrupted(); sig != nil {
		signal = signalName(sig)
	}
	view.finished(t, sum.StopReason)
	summary := newRunSummary(t, src, s.api.again, sum, signal, runErr)
	if cnt.Accounts != nil {
		if cnt, err = src.Count(ctx); err != nil {
			return &exitError{code: exitFatal, err: err}
		}
		summary.Accounts = statuspage.AccountStatuses(cnt)
	}
	a.printSummary(summary)
	if interrupted() == nil && runErr == nil {
		src.Ended(t)
	}

	switch {
	case interrupted() != nil:
		return &exitError{code: signalExit(interrupted())}
	case runErr == nil && sum.Paused && unsent(ctx, src) > 0:
		// A pause with nothing left to send (the last failure exceeded the
		// budget) waits for nothing: the run ends as any does.
		return &exitError{code: exitPaused}
	case runErr == nil && (sum.Rollback || src.RollbackRecorded(ctx)):
		return errRollbackDue
	case unwritable:
		// One line for the cause, naming the file: the runner asked
		// nothing again and logged nothing per job.
		cause := runErr
		if ue, ok := errors.AsType[*store.UnwritableError](runErr); ok {
			cause = ue
		}
		err := fmt.Errorf("%w; the run ended at once, every job left as a rerun resumes it: free the space or repair the file system, then rerun the same command", cause)
		if finishErr != nil {
			err = fmt.Errorf("%w (nor could the results be written)", err)
		}
		return &exitError{code: exitFatal, err: err}
	case errors.Is(runErr, runner.ErrUnreachable):
		return &exitError{code: exitFatal, err: fmt.Errorf("%s: %w; every job is left as a rerun resumes it", s.api.endpoint, runErr)}
	case runErr != nil:
		if errors.Is(runErr, context.Canceled) {
			return &exitError{code: exitInterrupt}
		}
		return &exitError{code: exitFatal, err: runErr}
	case !src.OK(sum):
		return &exitError{code: exitFailures}
	}
	return nil
}

// unsent counts the jobs of src's run that nothing has been sent for, as
// the store keeps them (the results file shows them skipped).
func unsent(ctx context.Context, src jobSource) int {
	jobs, err := src.Stored(ctx, store.StatusPending)
	if err != nil {
		return 1 // unknown: say the run waits, as it may
	}
	return len(jobs)
}

// confirm asks the operator to confirm what, or requires --yes without a
// terminal.
func (a *app) confirm(yes bool, what string) error {
	if yes {
		return nil
	}
	what += ": this FORMATS their system disks"
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return usageError("refusing to %s without --yes (no terminal to ask on)", what)
	}
	fmt.Fprintf(a.stderr, "About to %s.\nType yes to continue: ", what)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	if strings.TrimSpace(strings.ToLower(line)) != "yes" {
		return usageError("not confirmed; nothing was reset")
	}
	return nil
}

// interactive reports whether a person is at the terminal: standard input
// is one.
func (a *app) interactive() bool {
	f, ok := a.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// joinRun makes this runner's rollout and hooks the run's: a rollout its
// record shares (Postgres) replaces ro's settings, as the runner will when
// it joins the run, and hooks other than those the run records are a usage
// error naming both, before anything is sent. It returns the run's hooks.
func (a *app) joinRun(ctx context.Context, src jobSource, ro *runner.Rollout, hooks runner.Hooks) (store.HookSettings, error) {
	plan, shared, err := src.SharedRollout(ctx)
	if err != nil {
		return store.HookSettings{}, &exitError{code: exitFatal, err: err}
	}
	if shared {
		if plan.Canary != ro.Canary || !slices.Equal(plan.Waves, ro.Waves) || plan.MaxFailures != ro.MaxFailures ||
			plan.OnFailure != string(ro.OnFailure) || plan.Approve != string(ro.Approve) {
			a.notef("rollout: the run's own, as its first runner recorded it; this runner's --canary, --waves, --max-failures, --on-failure and --approve do not apply")
		}
		ro.Adopt(plan)
	}
	mine := hooks.Settings()
	run, err := src.JoinHooks(ctx, mine)
	if err != nil {
		return store.HookSettings{}, &exitError{code: exitFatal, err: err}
	}
	if run != mine {
		return store.HookSettings{}, usageError("%s runs with the hooks %s, and this runner was given %s: every runner of a run uses the run's hooks; give the same flags, or start another run",
			src.Describe(), run, mine)
	}
	return run, nil
}

// describeStart prints what the run is about to do.
func (a *app) describeStart(total, todo int, ro *runner.Rollout, hooks store.HookSettings) {
	if done := total - todo; done > 0 {
		a.notef("resuming: %d of %d instances already finished", done, total)
	}
	if !hooks.None() {
		a.notef("hooks: %s", hooks)
	}
	if ro.MaxFailures >= 0 {
		a.notef("failure budget: %d (new resets stop once more than %d instance(s) have failed, ended unknown or ended unhealthy; --max-failures none turns it off)", ro.MaxFailures, ro.MaxFailures)
		if ro.BudgetNote != "" {
			a.notef("  note: %s", ro.BudgetNote)
		}
		switch ro.OnFailure {
		case runner.FailPause:
			a.notef("on failure: pause (the run waits, in its record, for `batchreset resume` or `cancel`)")
		case runner.FailRollback:
			a.notef("on failure: rollback (every instance this run reset is reset back to its previous image; the data on its system disk is NOT restored)")
		default:
			a.notef("on failure: stop (the rest are skipped)")
		}
	} else {
		a.notef("failure budget: none (--max-failures none)")
	}
	if ro.Canary > 0 {
		a.notef("canary: %d instance(s) first; the rest only if all succeed", ro.Canary)
	}
	switch ro.Approve {
	case runner.ApproveCanary:
		a.notef("approval: the run pauses after the canary until `batchreset resume`")
	case runner.ApproveEachWave:
		a.notef("approval: the run pauses after every wave until `batchreset resume`")
	}
	if len(ro.Waves) > 0 {
		a.notef("waves: %v (the last repeats)", ro.Waves)
	}
	if !ro.WindowEnd.IsZero() {
		a.notef("maintenance window ends %s", ro.WindowEnd.Format(time.RFC3339))
	}
}

func failpointFromEnv() func(string) {
	name := os.Getenv("BATCHRESET_FAILPOINT")
	if name == "" {
		return nil
	}
	return func(at string) {
		if at == name {
			// Die the hard way, as a power cut or kill -9 would.
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}

// failpointAPI fires FailpointDuringCall while a ResetInstance call is on the
// wire (after the request is sent, before the answer is read).
type failpointAPI struct{ runner.API }

func (f failpointAPI) ResetInstance(ctx context.Context, region string, req lighthouse.ResetInstanceRequest) (string, error) {
	if fp := runner.FailpointFromContext(ctx); fp != nil {
		// Fires when the answer starts to arrive: the server has the
		// request and has acted on it, and the call has not returned.
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotFirstResponseByte: func() { fp(runner.FailpointDuringCall) },
		})
	}
	return f.API.ResetInstance(ctx, region, req)
}
