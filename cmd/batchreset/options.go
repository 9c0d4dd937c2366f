package main

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/cmd/batchreset/notify"
	"github.com/batchreset/batchreset/hoststate"
	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// sourceFlags name where a command's jobs are.
type sourceFlags struct {
	jobsPath    string
	databaseURL string
	runName     string
	region      string
	outPath     string // CSV mode: results file
	// allowUnknownColumns lets the jobs file carry columns of its own.
	allowUnknownColumns bool
	// parent names the run this one rolls back, as describeSource names
	// it; "" for a run that is no rollback (rollbackOf sets it).
	parent string
}

func (o *sourceFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&o.jobsPath, "jobs", "", "jobs CSV file (CSV mode): columns instance_id, blueprint_id, region")
	fs.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL (Postgres mode; env DATABASE_URL)")
	fs.StringVar(&o.runName, "run", "default", "run name (Postgres mode)")
	fs.StringVar(&o.region, "region", "", "region for rows that name none (env TENCENTCLOUD_REGION)")
	addAllowUnknownColumns(fs, &o.allowUnknownColumns)
}

// addAllowUnknownColumns adds --allow-unknown-columns, of every command
// that reads a jobs CSV.
func addAllowUnknownColumns(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "allow-unknown-columns", false, "read a jobs CSV that carries columns of its own beside the known ones (a column that looks like a known one is an error even so)")
}

// readOptions are how the jobs file is read.
func (o *sourceFlags) readOptions() csvstore.ReadOptions {
	return csvstore.ReadOptions{DefaultRegion: o.region, AllowUnknownColumns: o.allowUnknownColumns}
}

// resolve applies the environment and checks that exactly one mode is named.
func (o *sourceFlags) resolve(getenv func(string) string) error {
	if o.jobsPath != "" && o.databaseURL != "" {
		// Both given as flags: running CSV mode instead of the shared
		// Postgres run would escape the account-wide rate limit.
		return usageError("give --jobs FILE.csv (CSV mode) or --database-url URL (Postgres mode), not both")
	}
	if o.region == "" {
		o.region = getenv("TENCENTCLOUD_REGION")
	}
	if o.jobsPath == "" && o.databaseURL == "" {
		// An explicit --jobs wins over DATABASE_URL from the environment.
		o.databaseURL = getenv("DATABASE_URL")
	}
	if o.jobsPath == "" && o.databaseURL == "" {
		return usageError("give --jobs FILE.csv (CSV mode) or --database-url URL (Postgres mode)")
	}
	return nil
}

// apiFlags say how to reach the API.
type apiFlags struct {
	endpoint    string
	site        string
	timeout     time.Duration
	profile     string
	roleARN     string
	roleSession string
	emulate     bool
	emu         emulatorOptions
	// stateDir is where this host's shared state lives (hoststate.Root).
	stateDir string
	// again are the flags that name this API to a later command (the
	// summary's next steps): what the environment names, it names again.
	again string
}

// Environment variables of the API's location, read when the flag is not
// given.
const (
	envEndpoint = "BATCHRESET_ENDPOINT"
	envSite     = "BATCHRESET_SITE"
)

// The Tencent Cloud sites: each has its own accounts and its own domains.
const (
	siteCN   = "cn"   // the China site: *.tencentcloudapi.com
	siteIntl = "intl" // the international site: *.intl.tencentcloudapi.com
)

// siteEndpoints are the generic Lighthouse endpoints of the sites. The
// client derives every other service's host from the endpoint's
// (sts.intl.tencentcloudapi.com, tat.intl…, tag.intl…; lighthouse.Config).
var siteEndpoints = map[string]string{siteCN: lighthouse.DefaultEndpoint, siteIntl: lighthouse.IntlEndpoint}

func (o *apiFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&o.endpoint, "endpoint", "", "Lighthouse API endpoint URL, e.g. https://lighthouse.ap-singapore.tencentcloudapi.com, or http://127.0.0.1:PORT for an emulator (env "+envEndpoint+"; default the site's: "+lighthouse.DefaultEndpoint+", or "+lighthouse.IntlEndpoint+" for intl)")
	fs.StringVar(&o.site, "site", "", "Tencent Cloud site of the account: cn, or intl for the international site's domains (lighthouse, sts, tat, tag .intl.tencentcloudapi.com) (env "+envSite+"; default cn)")
	fs.DurationVar(&o.timeout, "request-timeout", 30*time.Second, "timeout of one API call")
	fs.StringVar(&o.profile, "profile", "", "credential profile: a section of ~/.tencentcloud/credentials, else tccli's ~/.tccli/NAME.credential (env TENCENTCLOUD_PROFILE, TCCLI_PROFILE)")
	fs.StringVar(&o.roleARN, "role-arn", "", "CAM role to assume through STS with the loaded key, refreshed before expiry (env TENCENTCLOUD_ROLE_ARN)")
	fs.StringVar(&o.roleSession, "role-session-name", "", "role session name, as CloudAudit shows it (env TENCENTCLOUD_ROLE_SESSION_NAME; default batchreset-TIME)")
	fs.BoolVar(&o.emulate, "emulate", false, "run against a built-in emulator seeded from the jobs (no cloud account needed)")
	o.emu.addFlags(fs, "emulate-")
}

// resolve applies the environment and checks the values.
func (o *apiFlags) resolve(getenv func(string) string) error {
	if o.timeout <= 0 {
		return usageError("--request-timeout must be positive, not %s", o.timeout)
	}
	if o.roleARN == "" {
		o.roleARN = getenv("TENCENTCLOUD_ROLE_ARN")
	}
	if o.roleSession == "" {
		o.roleSession = getenv("TENCENTCLOUD_ROLE_SESSION_NAME")
	}
	endpoint, err := resolveEndpoint(o.endpoint, o.site, o.emulate, getenv)
	if err != nil {
		return err
	}
	switch {
	case o.emulate:
		o.again = " --emulate"
	case o.endpoint != "":
		o.again = " --endpoint " + shellQuote(endpoint)
	case o.site != "":
		o.again = " --site " + o.site
	}
	o.endpoint = endpoint
	o.stateDir = hoststate.Root(getenv)
	return nil
}

// resolveEndpoint returns the normalised endpoint named by the flags
// --endpoint and --site, else by BATCHRESET_ENDPOINT and BATCHRESET_SITE.
// An endpoint, given either way, wins over a site; an endpoint of one site
// with the other site named is a usage error (the account exists on one
// site only). --emulate takes neither flag and ignores the environment, as
// --jobs ignores DATABASE_URL.
func resolveEndpoint(endpointFlag, siteFlag string, emulate bool, getenv func(string) string) (string, error) {
	if emulate {
		if endpointFlag != "" || siteFlag != "" {
			return "", usageError("give --emulate (a built-in emulator) or --endpoint/--site, not both")
		}
		return lighthouse.DefaultEndpoint, nil
	}
	site, siteFrom := siteFlag, "--site"
	if site == "" {
		site, siteFrom = getenv(envSite), envSite
	}
	if site != "" && siteEndpoints[site] == "" {
		return "", usageError("%s %q: give %s or %s", siteFrom, site, siteCN, siteIntl)
	}
	endpoint, endpointFrom := endpointFlag, "--endpoint"
	if endpoint == "" {
		endpoint, endpointFrom = getenv(envEndpoint), envEndpoint
	}
	if endpoint == "" {
		if site == "" {
			site = siteCN
		}
		return siteEndpoints[site], nil
	}
	norm, err := lighthouse.NormalizeEndpoint(endpoint)
	if err != nil {
		return "", usageError("%s: %v", endpointFrom, err)
	}
	if of := endpointSite(norm); site != "" && of != "" && of != site {
		return "", usageError("%s %s is the %s site's, but %s says %s: the account is on one site; give the endpoint of the site (%s) or leave one out", endpointFrom, norm, of, siteFrom, site, siteEndpoints[site])
	}
	return norm, nil
}

// endpointSite says which site a normalised endpoint belongs to: intl for a
// host under intl.tencentcloudapi.com, cn for the generic cn host, "" for
// any other (a regional host, which both sites list, an emulator, a proxy).
func endpointSite(endpoint string) string {
	host := strings.TrimPrefix(strings.TrimPrefix(endpoint, "https://"), "http://")
	switch {
	case strings.HasSuffix(host, ".intl.tencentcloudapi.com"):
		return siteIntl
	case "https://"+host == lighthouse.DefaultEndpoint:
		return siteCN
	}
	return ""
}

// tencentCloud says whether the API is Tencent Cloud's, whose documented
// limits apply (not an emulator or a proxy).
func (o *apiFlags) tencentCloud() bool {
	return !o.emulate && strings.HasSuffix(strings.TrimPrefix(o.endpoint, "https://"), ".tencentcloudapi.com")
}

// runFlags are the flags of `run`, as typed.
type runFlags struct {
	src  sourceFlags
	api  apiFlags
	sel  selectorFlags // added by the run command only: retry works on a list it has
	acct accountFlags

	force        bool
	rate         float64
	describeRate float64
	workers      int
	maxInFlight  int
	pollInterval time.Duration
	resetTimeout time.Duration
	settleTime   time.Duration
	skipSince    time.Duration // --skip-reset-since
	leaseTTL     time.Duration
	unreachable  time.Duration

	yes              bool
	noPreflight      bool
	maxFailures      string
	onFailure        string
	approve          string
	canary           int
	waves            string
	pauseWaves       time.Duration
	windowEnd        string
	window           time.Duration
	expectedDuration time.Duration

	login  loginFlags
	health healthFlags
	hooks  hookFlags

	reportPath  string
	metricsAddr string
	view        viewFlags // status page and notifications
}

// defaultMaxFailures is the failure budget of a run that names none: new
// resets stop once more than a tenth of the instances have failed.
const defaultMaxFailures = "10%"

// defaultOnFailure is what an exceeded budget does when the operator says
// nothing: pause, as Tencent's instance refresh does by default
// (AUTO_PAUSE). A stop is forgotten by the next cron tick of a CSV run,
// which would go on resetting with a fresh budget; a rollback reinstalls
// servers nobody asked to touch again. A pause is kept in the run's record,
// resets nothing more, and waits for a person to decide.
const defaultOnFailure = string(runner.FailPause)

func (o *runFlags) add(fs *pflag.FlagSet) {
	o.src.add(fs)
	o.api.add(fs)
	o.acct.add(fs)
	fs.StringVar(&o.src.outPath, "out", "", "results CSV (CSV mode; default results.csv beside the jobs file)")
	fs.BoolVar(&o.force, "force", false, "replace a results file that belongs to no resumable run")
	fs.Float64Var(&o.rate, "rate", runner.DefaultRate, "ResetInstance calls per second for the whole account (API limit: 10)")
	fs.Float64Var(&o.describeRate, "describe-rate", runner.DefaultDescribeRate, "DescribeInstances calls per second for the whole account (API limit: 100; half leaves room for other tools)")
	fs.IntVar(&o.workers, "workers", runner.DefaultWorkers, "ResetInstance calls outstanding at once")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 0, "most resets in progress at once (0: no cap); with hooks, most instances out of service, from the start of their before-hook to the end of their after-hook")
	fs.DurationVar(&o.pollInterval, "poll-interval", runner.DefaultPollInterval, "how often in-flight resets are checked")
	fs.DurationVar(&o.resetTimeout, "reset-timeout", runner.DefaultResetTimeout, "how long one reset is tracked before it is recorded unknown")
	fs.DurationVar(&o.skipSince, "skip-reset-since", 0, "skip an instance whose latest operation is a reset by another request started within this (e.g. 6h), widened by the 5 min the cloud's clock may differ from ours; 0 resets it again and counts it")
	fs.DurationVar(&o.settleTime, "settle-time", runner.DefaultSettleTime, "wait after a call of unknown outcome before concluding it never landed (must exceed --request-timeout plus the API's visibility lag)")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", 60*time.Second, "Postgres mode: how long a claimed job stays leased without renewal")
	fs.DurationVar(&o.unreachable, "unreachable-timeout", runner.DefaultUnreachable, "stop the run (exit 3) when no API call has had an answer for this long")
	fs.BoolVar(&o.yes, "yes", false, "do not ask for confirmation (required when not on a terminal)")
	fs.BoolVar(&o.noPreflight, "no-preflight", false, "do not skip instances that certainly cannot be reset")
	fs.StringVar(&o.maxFailures, "max-failures", defaultMaxFailures, "failure budget, N or P% of the run's instances (rounded down), or none: new resets stop as soon as MORE than that many have failed, ended unknown or ended unhealthy; the rest are skipped")
	fs.StringVar(&o.onFailure, "on-failure", defaultOnFailure, "when the failure budget is exceeded: pause (wait, in the run's record, for batchreset resume or cancel; a run not on a terminal exits 4), stop (skip the rest), or rollback (reset every instance this run reset back to its previous image; the data on their system disks is NOT restored)")
	fs.StringVar(&o.approve, "approve", "", "wait for a person (batchreset resume, or the status page's resume) before the wave after the canary (canary) or before every wave after the first (each-wave)")
	fs.IntVar(&o.canary, "canary", 0, "reset this many instances first; start the rest only if all of them succeed")
	fs.StringVar(&o.waves, "waves", "", "wave sizes, counts or percentages, e.g. 1,5,10%,100% (the last repeats); each wave finishes before the next starts")
	fs.DurationVar(&o.pauseWaves, "pause-between-waves", 0, "wait this long between waves")
	fs.StringVar(&o.windowEnd, "window-end", "", "maintenance window end: RFC 3339, or HH:MM today in the local time zone or in the zone that follows (05:00Z, 05:00+08:00, \"05:00 Asia/Shanghai\"); start no reset expected to finish later")
	fs.DurationVar(&o.window, "window", 0, "maintenance window length from the start of this process (a cron tick)")
	fs.DurationVar(&o.expectedDuration, "expected-duration", 5*time.Minute, "reset duration assumed for the window until resets of this run have finished")
	o.login.add(fs)
	o.health.add(fs)
	o.hooks.add(fs)
	fs.StringVar(&o.reportPath, "report", "", "also write a JSON report to this file")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9090)")
	o.view.add(fs)
}

// runSettings are what `run` does, resolved from its flags and the
// environment by settings: every value checked, every default applied.
type runSettings struct {
	src sourceFlags
	api apiFlags
	sel *runner.Selector // nil: the jobs are given, not selected
	// accounts are the run's accounts, as the flags define them.
	accounts accountsSetting

	runner   runner.Config // without API, Store and Logger
	rollout  budgetedRollout
	leaseTTL time.Duration
	yes      bool
	force    bool

	reportPath  string
	metricsAddr string
	view        viewFlags     // status page and notifications
	notify      notify.Config // the notifications, resolved
}

// budgetedRollout is the rollout before the run's size is known: the budget
// and waves may be percentages of it.
type budgetedRollout struct {
	preflight        bool
	maxFailures      string // "none", N or P%
	onFailure        runner.OnFailure
	approve          runner.Approve
	canary           int
	waves            string
	pauseWaves       time.Duration
	windowEnd        time.Time
	expectedDuration time.Duration
}

// settings maps run's flags to its settings, without running anything: a
// nonsensical value is a usage error, never silently replaced.
func (o *runFlags) settings(now time.Time, getenv func(string) string) (runSettings, error) {
	if err := o.src.resolve(getenv); err != nil {
		return runSettings{}, err
	}
	if err := o.api.resolve(getenv); err != nil {
		return runSettings{}, err
	}
	sel, selErr := o.sel.settings(now, o.src, o.api)
	if selErr != nil {
		return runSettings{}, selErr
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--rate", o.rate}, {"--describe-rate", o.describeRate}} {
		if r.v <= 0 || math.IsInf(r.v, 0) || math.IsNaN(r.v) {
			return runSettings{}, usageError("%s must be a positive number of calls per second, not %v", r.flag, r.v)
		}
	}
	for _, c := range []struct {
		flag string
		v    int
		min  int
	}{{"--workers", o.workers, 1}, {"--max-in-flight", o.maxInFlight, 0}, {"--canary", o.canary, 0}} {
		if c.v < c.min {
			return runSettings{}, usageError("%s must be at least %d, not %d", c.flag, c.min, c.v)
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
		zero bool // 0 is allowed
	}{
		{"--poll-interval", o.pollInterval, false}, {"--reset-timeout", o.resetTimeout, false},
		{"--settle-time", o.settleTime, false}, {"--lease-ttl", o.leaseTTL, false},
		{"--unreachable-timeout", o.unreachable, false}, {"--expected-duration", o.expectedDuration, false},
		{"--pause-between-waves", o.pauseWaves, true}, {"--window", o.window, true},
		{"--skip-reset-since", o.skipSince, true},
	} {
		if d.v < 0 || (d.v == 0 && !d.zero) {
			return runSettings{}, usageError("%s must be positive, not %s", d.flag, d.v)
		}
	}
	if o.settleTime <= o.api.timeout {
		return runSettings{}, usageError("--settle-time (%s) must exceed --request-timeout (%s): a call may land until it times out", o.settleTime, o.api.timeout)
	}
	if o.maxFailures == "" {
		return runSettings{}, usageError("--max-failures: give N, P%% or none")
	}
	if err := o.view.check(); err != nil {
		return runSettings{}, err
	}
	onFailure, err := runner.ParseOnFailure(o.onFailure)
	if err != nil {
		return runSettings{}, usageError("--on-failure: %v", err)
	}
	if onFailure == runner.FailRollback && o.api.emulate {
		return runSettings{}, usageError("--on-failure rollback needs the cloud the run resets: --emulate's emulator ends with the run (give --endpoint)")
	}
	approve, err := runner.ParseApprove(o.approve)
	switch {
	case err != nil:
		return runSettings{}, usageError("--approve: %v", err)
	case approve == runner.ApproveCanary && o.canary == 0:
		return runSettings{}, usageError("--approve canary needs --canary N: there is no canary to approve")
	case approve == runner.ApproveEachWave && o.canary == 0 && o.waves == "":
		return runSettings{}, usageError("--approve each-wave needs --waves or --canary: a run of one wave has nothing to approve")
	}
	s := runSettings{
		src: o.src, api: o.api, sel: sel, leaseTTL: o.leaseTTL, yes: o.yes, force: o.force,
		reportPath: o.reportPath, metricsAddr: o.metricsAddr, view: o.view,
		runner: runner.Config{
			Rate: o.rate, DescribeRate: o.describeRate, Workers: o.workers, MaxInFlight: o.maxInFlight,
			PollInterval: o.pollInterval, ResetTimeout: o.resetTimeout, SettleTime: o.settleTime, SkipResetSince: o.skipSince,
			RequestTimeout: o.api.timeout, Unreachable: o.unreachable,
		},
		rollout: budgetedRollout{
			preflight: !o.noPreflight, maxFailures: o.maxFailures, canary: o.canary, waves: o.waves,
			pauseWaves: o.pauseWaves, expectedDuration: o.expectedDuration, onFailure: onFailure, approve: approve,
		},
	}
	if s.accounts, err = o.acct.settings(); err != nil {
		return runSettings{}, err
	}
	if err := s.accounts.checkSelection(sel); err != nil {
		return runSettings{}, err
	}
	if s.src.databaseURL != "" {
		s.runner.LeaseRenewInterval = o.leaseTTL / 3
	}
	if s.notify, err = o.view.notify.Config(getenv); err != nil {
		return runSettings{}, usageError("%w", err)
	}
	if s.runner.Login, err = o.login.resolve(getenv); err != nil {
		return runSettings{}, err
	}
	if s.runner.Health, err = o.health.resolve(); err != nil {
		return runSettings{}, err
	}
	if s.runner.Hooks, err = o.hooks.resolve(); err != nil {
		return runSettings{}, err
	}
	s.api.emu.keyPairs = s.runner.Login.KeyIDs
	// Checked now, with a size of 1, so that a bad value is a usage error
	// before anything is opened.
	if _, err := s.rollout.resolve(1); err != nil {
		return runSettings{}, err
	}
	switch {
	case o.windowEnd != "" && o.window != 0:
		return runSettings{}, usageError("give --window-end or --window, not both")
	case o.windowEnd != "":
		t, err := parseTime(o.windowEnd, now)
		if err != nil {
			return runSettings{}, usageError("--window-end: %v", err)
		}
		if !t.After(now) {
			return runSettings{}, usageError("--window-end %s is already past (it is now %s)", t.Format(time.RFC3339), now.Format(time.RFC3339))
		}
		s.rollout.windowEnd = t
	case o.window != 0:
		s.rollout.windowEnd = now.Add(o.window)
	}
	return s, nil
}

// resolve makes the rollout of a run of total jobs; note explains a
// rounding of the budget the operator should know about.
func (b budgetedRollout) resolve(total int) (*runner.Rollout, error) {
	ro := &runner.Rollout{Preflight: b.preflight, MaxFailures: -1, ExpectedDuration: b.expectedDuration,
		Canary: b.canary, PauseBetweenWaves: b.pauseWaves, WindowEnd: b.windowEnd, OnFailure: b.onFailure, Approve: b.approve}
	if !strings.EqualFold(b.maxFailures, "none") {
		n, note, err := runner.ResolveBudget(b.maxFailures, total)
		if err != nil {
			return nil, usageError("--max-failures: %v (or none, for no budget)", err)
		}
		ro.MaxFailures, ro.BudgetNote = n, note
	}
	if b.waves != "" {
		w, err := runner.ParseWaves(b.waves, total)
		if err != nil {
			return nil, usageError("--waves: %v", err)
		}
		ro.Waves = w
	}
	return ro, nil
}

// parseTime accepts the time forms every flag takes: RFC 3339 (with its
// zone or offset), or HH:MM today, in now's zone (the local one) or in the
// zone that follows it: an offset (06:30Z, 06:30+08:00) or a time zone
// name after a space ("06:30 UTC", "06:30 Asia/Shanghai"). Today is the
// date in that zone, so "05:00 Asia/Shanghai" means the same instant
// whatever the host's time zone. An HH:MM already past is not moved to
// tomorrow: the caller says whether a past time makes sense.
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	bad := fmt.Errorf("%q is neither RFC 3339 (2026-12-01T06:30:00Z) nor HH:MM with an optional zone (06:30, 06:30Z, 06:30+08:00, \"06:30 Asia/Shanghai\")", s)
	colon := strings.IndexByte(s, ':')
	if colon < 1 || len(s) < colon+3 {
		return time.Time{}, bad
	}
	hm, err := time.Parse("15:04", s[:colon+3])
	if err != nil {
		return time.Time{}, bad
	}
	loc := now.Location()
	switch zone := s[colon+3:]; {
	case zone == "":
	case zone[0] == ' ':
		name := zone[1:]
		if name == "" || name == "Local" {
			return time.Time{}, bad
		}
		if loc, err = time.LoadLocation(name); err != nil {
			return time.Time{}, fmt.Errorf("%q: unknown time zone %q (an IANA name such as UTC or Asia/Shanghai)", s, name)
		}
	default:
		off, err := time.Parse("Z07:00", zone)
		if err != nil {
			return time.Time{}, bad
		}
		// A fixed zone, never Local's: Parse picks Local when its offset
		// matches, and Local may have another offset today (summer time).
		_, seconds := off.Zone()
		loc = time.FixedZone(zone, seconds)
	}
	today := now.In(loc)
	return time.Date(today.Year(), today.Month(), today.Day(), hm.Hour(), hm.Minute(), 0, 0, loc), nil
}

// osEnv is the process environment, for settings.
var osEnv = os.Getenv
