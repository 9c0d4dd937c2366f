package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http/httptrace"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
)

// runOptions are the flags shared by run, plan and reconcile.
type runOptions struct {
	jobsPath    string
	outPath     string
	databaseURL string
	runName     string
	force       bool

	endpoint string
	region   string
	timeout  time.Duration

	rate         float64
	describeRate float64
	workers      int
	maxInFlight  int
	pollInterval time.Duration
	resetTimeout time.Duration
	settleTime   time.Duration
	leaseTTL     time.Duration

	yes              bool
	noPreflight      bool
	maxFailures      string
	canary           int
	waves            string
	pauseWaves       time.Duration
	windowEnd        string
	window           time.Duration
	expectedDuration time.Duration

	reportPath  string
	metricsAddr string
	budgetNote  string

	emulate bool
	emu     emulatorOptions
}

func (o *runOptions) addSourceFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.jobsPath, "jobs", "", "jobs CSV file (CSV mode): columns instance_id, blueprint_id, region")
	fs.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL (Postgres mode; env DATABASE_URL)")
	fs.StringVar(&o.runName, "run", "default", "run name (Postgres mode)")
	fs.StringVar(&o.region, "region", "", "region for rows that name none (env TENCENTCLOUD_REGION)")
}

func (o *runOptions) addAPIFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.endpoint, "endpoint", lighthouse.DefaultEndpoint, "Lighthouse API endpoint URL (http://127.0.0.1:PORT for an emulator)")
	fs.DurationVar(&o.timeout, "request-timeout", 30*time.Second, "timeout of one API call")
	fs.BoolVar(&o.emulate, "emulate", false, "run against a built-in emulator seeded from the jobs (no cloud account needed)")
	o.emu.addFlags(fs, "emulate-")
}

func (o *runOptions) addRunFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.outPath, "out", "", "results CSV (CSV mode; default results.csv beside the jobs file)")
	fs.BoolVar(&o.force, "force", false, "replace a results file that belongs to no resumable run")
	fs.Float64Var(&o.rate, "rate", lighthouse.ResetInstanceRateLimit, "ResetInstance calls per second for the whole account (API limit: 10)")
	fs.Float64Var(&o.describeRate, "describe-rate", lighthouse.DescribeInstancesRateLimit/2, "DescribeInstances calls per second for the whole account (API limit: 100; half leaves room for other tools)")
	fs.IntVar(&o.workers, "workers", 8, "ResetInstance calls outstanding at once")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 0, "most resets in progress at once (0: no cap)")
	fs.DurationVar(&o.pollInterval, "poll-interval", 5*time.Second, "how often in-flight resets are checked")
	fs.DurationVar(&o.resetTimeout, "reset-timeout", 30*time.Minute, "how long one reset is tracked before it is recorded unknown")
	fs.DurationVar(&o.settleTime, "settle-time", 90*time.Second, "wait after a call of unknown outcome before concluding it never landed (must exceed --request-timeout plus the API's visibility lag)")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", 60*time.Second, "Postgres mode: how long a claimed job stays leased without renewal")
	fs.BoolVar(&o.yes, "yes", false, "do not ask for confirmation (required when not on a terminal)")
	fs.BoolVar(&o.noPreflight, "no-preflight", false, "do not skip instances that certainly cannot be reset")
	fs.StringVar(&o.maxFailures, "max-failures", "", "failure budget, N or P% of the run's instances (rounded down): new resets stop as soon as MORE than that many have failed or ended unknown; the rest are skipped")
	fs.IntVar(&o.canary, "canary", 0, "reset this many instances first; start the rest only if all of them succeed")
	fs.StringVar(&o.waves, "waves", "", "wave sizes, counts or percentages, e.g. 1,5,10%,100% (the last repeats); each wave finishes before the next starts")
	fs.DurationVar(&o.pauseWaves, "pause-between-waves", 0, "wait this long between waves")
	fs.StringVar(&o.windowEnd, "window-end", "", "maintenance window end (RFC 3339 or HH:MM local): start no reset expected to finish later")
	fs.DurationVar(&o.window, "window", 0, "maintenance window length from the start of the run")
	fs.DurationVar(&o.expectedDuration, "expected-duration", 5*time.Minute, "reset duration assumed for the window until resets of this run have finished")
	fs.StringVar(&o.reportPath, "report", "", "also write a JSON report to this file")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9090)")
}

func (a *app) runCommand() *cobra.Command {
	o := &runOptions{}
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
			return a.runRun(cmd.Context(), o)
		},
	}
	o.addSourceFlags(cmd.Flags())
	o.addAPIFlags(cmd.Flags())
	o.addRunFlags(cmd.Flags())
	return cmd
}

// source is where a command's jobs live, opened.
type source struct {
	mode   string // "csv" or "postgres"
	jobs   []store.Job
	store  runner.Store
	csv    *csvstore.Store
	db     *postgres.Store
	out    string // CSV mode: results path
	runID  string
	closer func()
	// fresh: CSV mode: the journal was created by this command. Until started
	// is set, closing removes it again, so that a command that stops before
	// the run starts (unconfirmed, bad flags, no credentials) leaves nothing
	// that would tie the next run to this input.
	fresh, started bool
}

func (o *runOptions) resolveEnv() error {
	if o.jobsPath != "" && o.databaseURL != "" {
		// Both given as flags: running CSV mode instead of the shared
		// Postgres run would escape the account-wide rate limit.
		return usageError("give --jobs FILE.csv (CSV mode) or --database-url URL (Postgres mode), not both")
	}
	if o.databaseURL == "" {
		o.databaseURL = os.Getenv("DATABASE_URL")
	}
	if o.region == "" {
		o.region = os.Getenv("TENCENTCLOUD_REGION")
	}
	if o.jobsPath != "" {
		// An explicit --jobs wins over DATABASE_URL from the environment.
		o.databaseURL = ""
	}
	if o.jobsPath == "" && o.databaseURL == "" {
		return usageError("give --jobs FILE.csv (CSV mode) or --database-url URL (Postgres mode)")
	}
	return nil
}

// openSource reads and validates the jobs and opens their store.
func (a *app) openSource(ctx context.Context, o *runOptions, forRun bool) (*source, error) {
	if err := o.resolveEnv(); err != nil {
		return nil, err
	}
	if o.jobsPath != "" {
		jobs, err := csvstore.ReadJobs(o.jobsPath, o.region)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: err}
		}
		src := &source{mode: "csv", jobs: jobs, runID: csvstore.Fingerprint(jobs), closer: func() {}}
		if !forRun {
			return src, nil
		}
		src.out = o.outPath
		if src.out == "" {
			src.out = filepath.Join(filepath.Dir(o.jobsPath), "results.csv")
		}
		state := src.out + ".state"
		_, err = os.Stat(state)
		src.fresh = errors.Is(err, os.ErrNotExist)
		if src.fresh && !o.force {
			if _, err := os.Stat(src.out); err == nil {
				return nil, usageError("%s already exists and has no state file beside it: it belongs to another run; move it away, choose --out, or pass --force", src.out)
			}
		}
		st, err := csvstore.Open(state, jobs, src.runID)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: err}
		}
		src.csv, src.store = st, st
		src.jobs = st.Jobs()
		src.closer = func() {
			if src.fresh && !src.started {
				// Nothing was recorded: only this command had the file
				// (it holds the lock), so removing it is safe.
				os.Remove(state)
			}
			st.Close()
		}
		return src, nil
	}
	db, err := postgres.Open(ctx, o.databaseURL)
	if err != nil {
		return nil, &exitError{code: exitFatal, err: err}
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return nil, &exitError{code: exitFatal, err: err}
	}
	jobs, err := db.Jobs(ctx, o.runName)
	if err != nil {
		db.Close()
		if errors.Is(err, store.ErrNotFound) {
			return nil, usageError("run %q has no jobs: import some with `batchreset import --run %s`", o.runName, o.runName)
		}
		return nil, &exitError{code: exitFatal, err: err}
	}
	src := &source{mode: "postgres", jobs: jobs, db: db, closer: db.Close}
	if forRun && o.leaseTTL > 0 { // reconcile has no --lease-ttl: it claims nothing
		host, _ := os.Hostname()
		owner := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), randomHex(4))
		src.store = db.Queue(o.runName, owner, o.leaseTTL)
	}
	return src, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// connect returns the API client: the real endpoint with the user's
// credentials, or an in-process emulator seeded from the jobs.
func (a *app) connect(ctx context.Context, o *runOptions, jobs []store.Job, workers int) (*lighthouse.Client, *emulatorHandle, error) {
	var cred lighthouse.Credential
	endpoint := o.endpoint
	var emu *emulatorHandle
	if o.emulate {
		var err error
		emu, err = startEmulator("127.0.0.1:0", jobs, 0, o.emu, a.log)
		if err != nil {
			return nil, nil, err
		}
		cred, endpoint = emu.cred, emu.endpoint
		a.log.Info("emulator started", "endpoint", endpoint, "instances", len(jobs))
	} else {
		var err error
		if cred, err = loadCredential(); err != nil {
			return nil, nil, err
		}
	}
	client, err := lighthouse.New(lighthouse.Config{
		Endpoint:            endpoint,
		Credential:          cred,
		Timeout:             o.timeout,
		MaxIdleConnsPerHost: 2 * workers,
	})
	if err != nil {
		emu.Close()
		return nil, nil, usageError("%v", err)
	}
	return client, emu, nil
}

// loadCredential loads the API key, saying where keys come from when none
// is found.
func loadCredential() (lighthouse.Credential, error) {
	cred, err := lighthouse.LoadCredential()
	if err != nil {
		if !strings.Contains(err.Error(), lighthouse.EnvSecretID) {
			// The SDK names only the profile file it could not read.
			err = fmt.Errorf("%w (set %s and %s, or name a profile file in %s)", err, lighthouse.EnvSecretID, lighthouse.EnvSecretKey, lighthouse.EnvCredentialsFile)
		}
		return lighthouse.Credential{}, &exitError{code: exitFatal, err: err}
	}
	return cred, nil
}

func (a *app) runRun(ctx context.Context, o *runOptions) error {
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--rate", o.rate}, {"--describe-rate", o.describeRate}} {
		if r.v <= 0 || math.IsInf(r.v, 0) || math.IsNaN(r.v) {
			return usageError("%s must be a positive number of calls per second, not %v", r.flag, r.v)
		}
	}
	if o.rate > lighthouse.ResetInstanceRateLimit && !o.emulate && o.endpoint == lighthouse.DefaultEndpoint {
		a.log.Warn("--rate is above the documented ResetInstance limit; expect RequestLimitExceeded", "rate", o.rate, "limit", lighthouse.ResetInstanceRateLimit)
	}
	if o.settleTime <= o.timeout {
		return usageError("--settle-time (%s) must exceed --request-timeout (%s): a call may land until it times out", o.settleTime, o.timeout)
	}
	if o.leaseTTL <= 0 {
		return usageError("--lease-ttl must be positive, not %s", o.leaseTTL)
	}
	if err := o.resolveEnv(); err != nil {
		return err // usage first
	}
	if !o.emulate {
		// Fail before anything is opened or written.
		if _, err := loadCredential(); err != nil {
			return err
		}
	}
	src, err := a.openSource(ctx, o, true)
	if err != nil {
		return err
	}
	defer src.closer()

	todo, regions := countPending(src.jobs)
	rollout, err := o.rollout(len(src.jobs), time.Now())
	if err != nil {
		return err
	}
	if todo > 0 && !o.emulate {
		if err := a.confirm(o, todo, regions); err != nil {
			return err
		}
	}
	a.describeStart(src, todo, rollout, o.budgetNote)

	client, emu, err := a.connect(ctx, o, src.jobs, o.workers)
	if err != nil {
		return err
	}
	defer emu.Close()
	src.jobs = nil // the store has them; a large run should not keep a second copy

	cfg := runner.Config{
		API:          client,
		Store:        src.store,
		Rate:         o.rate,
		DescribeRate: o.describeRate,
		Workers:      o.workers,
		MaxInFlight:  o.maxInFlight,
		PollInterval: o.pollInterval,
		ResetTimeout: o.resetTimeout,
		SettleTime:   o.settleTime,
		Rollout:      rollout,
		Logger:       a.log,
		Failpoint:    failpointFromEnv(),
	}
	if src.db != nil {
		cfg.ResetLimiter = src.db.Bucket("ResetInstance", o.rate, 20*time.Millisecond)
		cfg.DescribeLimiter = src.db.Bucket("DescribeInstances", o.describeRate, 20*time.Millisecond)
		cfg.LeaseRenewInterval = o.leaseTTL / 3
	}
	var met *metrics
	if o.metricsAddr != "" {
		met = newMetrics()
		cfg.API = met.instrument(client)
		stop, err := met.serve(o.metricsAddr, a.log)
		if err != nil {
			return usageError("--metrics-addr: %v", err)
		}
		defer stop()
	} else {
		cfg.API = failpointAPI{client}
	}
	r, err := runner.New(cfg)
	if err != nil {
		return usageError("%v", err)
	}
	if met != nil {
		met.observe(r.Stats())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	interrupted := a.handleSignals(ctx, r, cancel)
	prog := a.startProgress(r.Stats(), todo)
	started := time.Now()
	src.started = true
	sum, runErr := r.Run(ctx)
	prog.stop()

	var jobs []store.Job
	if src.csv != nil {
		jobs = src.csv.Jobs()
	} else if all, err := src.db.Jobs(context.WithoutCancel(ctx), o.runName); err == nil {
		jobs = all
	}
	if src.mode == "csv" {
		// The results file speaks for this run alone. In Postgres mode the
		// rows stay as they are: pending jobs are due later, or left for
		// another runner, and a later run takes them.
		resultsView(jobs)
	}
	if src.out != "" {
		if err := csvstore.WriteResultsFile(src.out, jobs); err != nil {
			return &exitError{code: exitFatal, err: fmt.Errorf("write results: %w", err)}
		}
	}
	rep := buildReport(jobs, o.reportPath != "", sum, o, started, time.Now())
	if o.reportPath != "" {
		if err := rep.writeFile(o.reportPath); err != nil {
			return &exitError{code: exitFatal, err: fmt.Errorf("write report: %w", err)}
		}
	}
	a.printSummary(rep, src, sum)

	switch {
	case interrupted():
		fmt.Fprintln(a.stderr, "interrupted: rerun the same command to resume")
		return &exitError{code: exitInterrupt}
	case runErr != nil:
		if errors.Is(runErr, context.Canceled) {
			return &exitError{code: exitInterrupt}
		}
		return &exitError{code: exitFatal, err: runErr}
	}
	if src.mode == "csv" {
		for _, j := range jobs {
			if j.Status != store.StatusSucceeded {
				return &exitError{code: exitFailures}
			}
		}
		return nil
	}
	for st, n := range sum.Totals {
		if st != store.StatusSucceeded && n > 0 {
			return &exitError{code: exitFailures}
		}
	}
	return nil
}

// countPending counts the jobs not yet finished and their regions.
func countPending(jobs []store.Job) (n, regions int) {
	seen := map[string]bool{}
	for _, j := range jobs {
		if !j.Status.Terminal() {
			n++
			seen[j.Region] = true
		}
	}
	return n, len(seen)
}

// resultsView rewrites, in place, every job to the outcome a results file
// reports: jobs a run left unstarted are skipped, jobs left in flight are
// unknown. The store keeps their real status for the next run.
func resultsView(jobs []store.Job) []store.Job {
	out := jobs
	for i := range out {
		switch out[i].Status {
		case store.StatusPending:
			out[i].Status = store.StatusSkipped
			out[i].ErrorMessage = "not started: the run stopped before this instance; rerun to resume"
		case store.StatusSubmitting, store.StatusSubmitted:
			out[i].Status = store.StatusUnknown
			out[i].ErrorMessage = "still in flight when the run stopped; rerun to resume tracking"
		}
	}
	return out
}

// confirm asks the operator to confirm, or requires --yes without a terminal.
func (a *app) confirm(o *runOptions, todo, regions int) error {
	if o.yes {
		return nil
	}
	what := fmt.Sprintf("reset %d instance(s) in %d region(s): this FORMATS their system disks", todo, regions)
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

// rollout resolves the rollout flags against a run of total jobs.
func (o *runOptions) rollout(total int, now time.Time) (*runner.Rollout, error) {
	ro := &runner.Rollout{Preflight: !o.noPreflight, MaxFailures: -1, ExpectedDuration: o.expectedDuration,
		Canary: o.canary, PauseBetweenWaves: o.pauseWaves}
	if o.maxFailures != "" {
		n, note, err := runner.ResolveBudget(o.maxFailures, total)
		if err != nil {
			return nil, usageError("--max-failures: %v", err)
		}
		ro.MaxFailures, o.budgetNote = n, note
	}
	if o.canary < 0 {
		return nil, usageError("--canary must not be negative")
	}
	if o.waves != "" {
		w, err := runner.ParseWaves(o.waves, total)
		if err != nil {
			return nil, usageError("--waves: %v", err)
		}
		ro.Waves = w
	}
	switch {
	case o.windowEnd != "" && o.window != 0:
		return nil, usageError("give --window-end or --window, not both")
	case o.windowEnd != "":
		t, err := parseWindowEnd(o.windowEnd, now)
		if err != nil {
			return nil, usageError("--window-end: %v", err)
		}
		ro.WindowEnd = t
	case o.window != 0:
		ro.WindowEnd = now.Add(o.window)
	}
	return ro, nil
}

// parseWindowEnd accepts RFC 3339 or a local wall-clock HH:MM (the next
// such time).
func parseWindowEnd(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	hm, err := time.ParseInLocation("15:04", s, now.Location())
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor HH:MM", s)
	}
	t := time.Date(now.Year(), now.Month(), now.Day(), hm.Hour(), hm.Minute(), 0, 0, now.Location())
	if !t.After(now) {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

// describeStart prints what the run is about to do.
func (a *app) describeStart(src *source, todo int, ro *runner.Rollout, note string) {
	done := len(src.jobs) - todo
	if done > 0 {
		fmt.Fprintf(a.stderr, "resuming: %d of %d instances already finished\n", done, len(src.jobs))
	}
	if ro.MaxFailures >= 0 {
		fmt.Fprintf(a.stderr, "failure budget: %d (new resets stop once more than %d instance(s) have failed or ended unknown)\n", ro.MaxFailures, ro.MaxFailures)
		if note != "" {
			fmt.Fprintf(a.stderr, "  note: %s\n", note)
		}
	}
	if ro.Canary > 0 {
		fmt.Fprintf(a.stderr, "canary: %d instance(s) first; the rest only if all succeed\n", ro.Canary)
	}
	if len(ro.Waves) > 0 {
		fmt.Fprintf(a.stderr, "waves: %v (the last repeats)\n", ro.Waves)
	}
	if !ro.WindowEnd.IsZero() {
		fmt.Fprintf(a.stderr, "maintenance window ends %s\n", ro.WindowEnd.Format(time.RFC3339))
	}
}

// handleSignals drains the runner on the first SIGINT/SIGTERM and cancels
// everything on the second. The returned func reports whether a signal came.
func (a *app) handleSignals(ctx context.Context, r *runner.Runner, cancel context.CancelFunc) func() bool {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	got := make(chan struct{})
	go func() {
		defer signal.Stop(ch)
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
		close(got)
		r.Drain()
		fmt.Fprintln(a.stderr, "\nstopping: no new resets; waiting for those in flight (Ctrl-C again to exit now)")
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return func() bool {
		select {
		case <-got:
			return true
		default:
			return false
		}
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
type failpointAPI struct{ *lighthouse.Client }

func (f failpointAPI) ResetInstance(ctx context.Context, region, instanceID, blueprintID string) (string, error) {
	if fp := runner.FailpointFromContext(ctx); fp != nil {
		// Fires when the answer starts to arrive: the server has the
		// request and has acted on it, and the call has not returned.
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotFirstResponseByte: func() { fp(runner.FailpointDuringCall) },
		})
	}
	return f.Client.ResetInstance(ctx, region, instanceID, blueprintID)
}
