package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
)

// Run states, as status, runs and the status page show them.
const (
	stateNotStarted = "not started" // nothing was ever sent
	stateFinished   = "finished"    // every job has an outcome
	stateUnfinished = "unfinished"  // CSV: running now, or stopped; a rerun resumes
)

// statusOrder is the order statuses are listed in.
var statusOrder = store.Statuses

// rateWindow is how far back status looks for the current reset rate.
const rateWindow = time.Minute

// runStatus is a snapshot of one run: what `status` prints and the status
// page shows.
type runStatus struct {
	Run  string `json:"run"`
	Mode string `json:"mode"` // csv or postgres
	// State is not started, running, paused, cancelled (Postgres),
	// unfinished (CSV: running now, or stopped) or finished.
	State     string         `json:"state"`
	Control   string         `json:"control,omitempty"` // Postgres: running, paused or cancelled
	StartedAt *time.Time     `json:"started_at,omitempty"`
	Jobs      int            `json:"jobs"`
	Totals    map[string]int `json:"totals"`
	InFlight  int            `json:"in_flight"`
	Leased    *int           `json:"leased,omitempty"`  // Postgres: unfinished jobs leased by live runners
	Runners   *int           `json:"runners,omitempty"` // Postgres: runners holding them
	// Failures counts the jobs that ended a failure (store.Status.Failure:
	// failed, unknown or unhealthy), which the failure budget (Budget; nil:
	// none) is held against. The budget is the one the run recorded
	// (BudgetRecorded) when it did: CSV mode's OUT.rollout, Postgres's
	// run_rollouts. Otherwise (a run not started, or started before runs
	// recorded it) it is status's own --max-failures. BudgetFlag is the
	// --max-failures it came from, as given; "" for a Postgres run's,
	// which records only the count.
	Failures       int    `json:"failures"`
	Budget         *int   `json:"budget,omitempty"`
	BudgetFlag     string `json:"max_failures"`
	BudgetRecorded bool   `json:"budget_recorded"`
	// Settings are the run's --on-failure, --approve and lifecycle hooks
	// as its record keeps them; nil when it keeps none (a run not
	// started, or started before runs recorded them): status has no
	// flags of its own to stand in for them.
	Settings *runRecord `json:"settings,omitempty"`
	// ResetsPerSecond is the rate of resets accepted over the last
	// minute; ETASeconds the time left to send the rest at that rate, when
	// there is one. Both from the jobs' records (CSV mode).
	ResetsPerSecond *float64      `json:"resets_per_s,omitempty"`
	ETASeconds      *float64      `json:"eta_seconds,omitempty"`
	LastErrors      []statusError `json:"last_errors"`
	// Accounts breaks the counts down by account when the jobs name
	// accounts; nil otherwise.
	Accounts []statuspage.AccountStatus `json:"accounts,omitempty"`
	// HookPhases counts the jobs by lifecycle hook phase, those with one
	// (OutOfService of them may be out of service now); HookFailures
	// lists the latest jobs whose hook failed, newest first, each
	// message ending with the hook's last output lines.
	HookPhases   map[string]int `json:"hook_phases,omitempty"`
	OutOfService int            `json:"out_of_service,omitempty"`
	HookFailures []statusError  `json:"hook_failures,omitempty"`
}

type statusError struct {
	InstanceID string    `json:"instance_id"`
	Status     string    `json:"status"`
	Code       string    `json:"code,omitempty"`
	Message    string    `json:"message,omitempty"`
	At         time.Time `json:"at"`
}

// statusCounter counts a run's jobs one at a time into its status, holding
// none of them but the last errors.
type statusCounter struct {
	st           runStatus
	now          time.Time
	recent, left int
	errs         []store.Job // the last lastErrors with an error, in order
	cnt          store.Count // for the counts by account
	hookErrs     []store.Job // the last lastErrors whose hook failed, in order
}

// lastErrors is how many errors a status lists.
const lastErrors = 10

func newStatusCounter(now time.Time) *statusCounter {
	return &statusCounter{now: now, st: runStatus{Mode: "csv", Totals: zeroTotals(), LastErrors: []statusError{}}}
}

func (c *statusCounter) add(j *store.Job) {
	c.cnt.Add(j)
	st := &c.st
	st.Jobs++
	st.Totals[string(j.Status)]++
	if j.Status == store.StatusSubmitting || j.Status == store.StatusSubmitted {
		st.InFlight++
	}
	if j.Failure() {
		st.Failures++
	}
	if j.Status == store.StatusPending {
		c.left++
	}
	if !j.SubmittedAt.IsZero() && c.now.Sub(j.SubmittedAt) <= rateWindow {
		c.recent++
	}
	if j.ErrorCode != "" || j.ErrorMessage != "" {
		c.errs = keepLast(c.errs, j)
	}
	if j.HookPhase != store.HookNone {
		c.st.countHook(j.HookPhase, 1)
	}
	if j.HookFailed() {
		c.hookErrs = keepLast(c.hookErrs, j)
	}
}

// keepLast appends j to the last lastErrors jobs.
func keepLast(jobs []store.Job, j *store.Job) []store.Job {
	if len(jobs) == lastErrors {
		jobs = append(jobs[:0], jobs[1:]...)
	}
	return append(jobs, *j)
}

// countHook counts n jobs in hook phase p.
func (st *runStatus) countHook(p store.HookPhase, n int) {
	if st.HookPhases == nil {
		st.HookPhases = map[string]int{}
	}
	st.HookPhases[string(p)] += n
	if p.OutOfService() {
		st.OutOfService += n
	}
}

// newestFirst lists jobs, oldest first, as status errors, newest first.
func newestFirst(jobs []store.Job) []statusError {
	out := []statusError{}
	for i := len(jobs) - 1; i >= 0; i-- {
		j := jobs[i]
		at := j.FinishedAt
		if at.IsZero() {
			at = j.IntentAt
		}
		out = append(out, statusError{InstanceID: j.InstanceID, Status: string(j.Status), Code: j.ErrorCode, Message: j.ErrorMessage, At: at.UTC()})
	}
	return out
}

// status is the status of the jobs added, of run, started then.
func (c *statusCounter) status(run string, started time.Time, budget int) runStatus {
	st, now := c.st, c.now
	st.Run = run
	st.Accounts = statuspage.AccountStatuses(c.cnt)
	st.State = stateUnfinished
	switch {
	case started.IsZero():
		st.State = stateNotStarted
	case c.left+st.InFlight == 0:
		st.State = stateFinished
	}
	if !started.IsZero() {
		st.StartedAt = timePtr(started)
	}
	if budget >= 0 {
		st.Budget = &budget
	}
	if st.State == stateUnfinished {
		window := min(rateWindow, now.Sub(started))
		if window > 0 {
			rate := roundTo(float64(c.recent)/window.Seconds(), 2)
			st.ResetsPerSecond = &rate
			if rate > 0 {
				eta := roundTo(float64(c.left)/rate, 0)
				st.ETASeconds = &eta
			}
		}
	}
	// The latest errors first, as Postgres status lists them.
	st.LastErrors = newestFirst(c.errs)
	if len(c.hookErrs) > 0 {
		st.HookFailures = newestFirst(c.hookErrs)
	}
	return st
}

// dbStatus is the status of a Postgres run.
func dbStatus(run string, s postgres.Status, started time.Time, budget int) runStatus {
	st := runStatus{Run: run, Mode: "postgres", Jobs: s.Jobs, Totals: zeroTotals(), InFlight: s.InFlight,
		Leased: &s.Leased, Runners: &s.Owners, Control: string(s.Control), LastErrors: []statusError{}}
	for k, v := range s.Totals {
		st.Totals[string(k)] = v
	}
	for _, f := range store.FailureStatuses {
		st.Failures += st.Totals[string(f)]
	}
	st.State = runState(started, st.Totals[string(store.StatusPending)]+st.InFlight, string(s.Control))
	if !started.IsZero() {
		st.StartedAt = timePtr(started)
	}
	if budget >= 0 {
		st.Budget = &budget
	}
	for _, e := range s.LastErrors {
		st.LastErrors = append(st.LastErrors, dbStatusError(e))
	}
	for p, n := range s.HookPhases {
		st.countHook(p, n)
	}
	for _, e := range s.HookFailures {
		st.HookFailures = append(st.HookFailures, dbStatusError(e))
	}
	return st
}

func dbStatusError(e postgres.JobError) statusError {
	return statusError{InstanceID: e.InstanceID, Status: string(e.Status), Code: e.Code, Message: e.Message, At: e.At.UTC()}
}

// defaultResults is the results file of a jobs file when --out names none.
func defaultResults(jobsPath string) string {
	return filepath.Join(filepath.Dir(jobsPath), "results.csv")
}

func zeroTotals() map[string]int {
	t := map[string]int{}
	for _, s := range statusOrder {
		t[string(s)] = 0
	}
	return t
}

func (a *app) statusCommand() *cobra.Command {
	var src sourceFlags
	var output, maxFailures string
	cmd := &cobra.Command{
		Use:   "status (--jobs FILE.csv | --database-url URL [--run NAME]) [--output text|json]",
		Short: "Show a run's counts by status, resets in flight, failures against the budget and the last errors",
		Long: `Show a run's counts by status, resets in flight, failures against the
failure budget, the run's own --on-failure, --approve and lifecycle hooks (as
its record keeps them), the last errors and, in CSV mode, the current reset
rate and the time left at that rate.

In CSV mode status reads the run's state file (OUT.state) without locking or
changing it, so it may watch a run live from another terminal. A run that
never started says so.`,
		Example: `  batchreset status --jobs fleet.csv
  batchreset status --run nightly --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError("--output must be text or json, not %q", output)
			}
			if err := src.resolve(osEnv); err != nil {
				return err
			}
			st, err := a.readStatus(cmd.Context(), src, maxFailures, time.Now())
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(a.stdout, st)
			return nil
		},
	}
	src.add(cmd.Flags())
	cmd.Flags().StringVar(&src.outPath, "out", "", "results CSV of the run (CSV mode; default results.csv beside the jobs file)")
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	cmd.Flags().StringVar(&maxFailures, "max-failures", defaultMaxFailures, "the run's failure budget, to show failures against it (as for run; none: no budget)")
	return cmd
}

// readStatus reads the status of the run src names, read-only. The budget
// shown is the one the run recorded; maxFailures (status's flag) only
// stands in for a run that recorded none.
func (a *app) readStatus(ctx context.Context, src sourceFlags, maxFailures string, now time.Time) (runStatus, error) {
	budget := func(total int) (int, error) {
		if strings.EqualFold(maxFailures, "none") {
			return -1, nil
		}
		n, _, err := runner.ResolveBudget(maxFailures, total)
		if err != nil {
			return 0, usageError("--max-failures: %v (or none)", err)
		}
		return n, nil
	}
	if src.jobsPath != "" {
		in, err := csvstore.ReadInput(src.jobsPath, src.readOptions())
		if err != nil {
			return runStatus{}, &exitError{code: exitUsage, err: err}
		}
		out := src.outPath
		if out == "" {
			out = defaultResults(src.jobsPath)
		}
		jobs, started := in.All(), time.Time{}
		if _, err := os.Stat(out + ".state"); err == nil {
			jobs, started, err = csvstore.ReadInputState(out+".state", in)
			if err != nil {
				return runStatus{}, &exitError{code: exitUsage, err: err}
			}
		}
		flag := maxFailures
		rec, recorded, err := readRolloutRecord(out)
		if err != nil {
			return runStatus{}, &exitError{code: exitUsage, err: err}
		}
		var b int
		if recorded {
			b, flag = rec.Budget, rec.MaxFailures
		} else if b, err = budget(in.Len()); err != nil {
			return runStatus{}, err
		}
		settings, known, err := csvRunRecord(out)
		if err != nil {
			return runStatus{}, &exitError{code: exitUsage, err: err}
		}
		c := newStatusCounter(now)
		for j := range jobs {
			c.add(&j)
		}
		st := c.status(src.jobsPath, started, b)
		st.BudgetFlag, st.BudgetRecorded = flag, recorded
		if known {
			st.Settings = &settings
		}
		return st, nil
	}
	db, err := openDB(ctx, src.databaseURL, true)
	if err != nil {
		return runStatus{}, err
	}
	defer db.Close()
	ro, err := db.Rollout(ctx, src.runName)
	recorded := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return runStatus{}, &exitError{code: exitFatal, err: err}
	}
	plan := ro.Plan
	started, err := db.RunStarted(ctx, src.runName)
	if err != nil {
		return runStatus{}, &exitError{code: exitFatal, err: err}
	}
	flag := maxFailures
	switch {
	case recorded:
		budget = func(int) (int, error) { return plan.MaxFailures, nil }
		flag = ""
	case !started.IsZero():
		// A runner with a canary, waves or a budget records the run's
		// rollout before it claims a job, which is what marks the run
		// started: this run had none.
		budget = func(int) (int, error) { return -1, nil }
		recorded, flag = true, ""
	}
	settings, known, err := dbRunRecord(ctx, db, src.runName)
	if err != nil {
		return runStatus{}, &exitError{code: exitFatal, err: err}
	}
	st, err := runStatusOf(ctx, db, src.runName, budget)
	st.BudgetFlag, st.BudgetRecorded = flag, recorded
	if known {
		st.Settings = &settings
	}
	return st, err
}

// runStatusOf reads the status of a Postgres run.
func runStatusOf(ctx context.Context, db *postgres.Store, run string, budget func(int) (int, error)) (runStatus, error) {
	st, err := db.Status(ctx, run)
	if errors.Is(err, store.ErrNotFound) {
		return runStatus{}, usageError("run %q does not exist", run)
	}
	if err != nil {
		return runStatus{}, &exitError{code: exitFatal, err: err}
	}
	started, err := db.RunStarted(ctx, run)
	if err != nil {
		return runStatus{}, &exitError{code: exitFatal, err: err}
	}
	b, err := budget(st.Jobs)
	if err != nil {
		return runStatus{}, err
	}
	cnt, err := db.Count(ctx, run)
	if err != nil {
		return runStatus{}, &exitError{code: exitFatal, err: err}
	}
	rs := dbStatus(run, st, started, b)
	rs.Accounts = statuspage.AccountStatuses(cnt)
	return rs, nil
}

func printStatus(w io.Writer, st runStatus) {
	state := st.State
	if st.Control != "" && st.Control != string(store.ControlRunning) && st.Control != st.State {
		state += ", " + st.Control // a finished run cancelled, say
	}
	fmt.Fprintf(w, "run %s (%s)\n", st.Run, state)
	if st.StartedAt != nil {
		fmt.Fprintf(w, "started %s\n", st.StartedAt.Format(time.RFC3339))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range statusOrder {
		fmt.Fprintf(tw, "  %s\t%d\n", s, st.Totals[string(s)])
	}
	tw.Flush()
	fmt.Fprintf(w, "in flight: %d", st.InFlight)
	if st.Leased != nil {
		fmt.Fprintf(w, ", leased by runners: %d", *st.Leased)
	}
	fmt.Fprintln(w)
	if st.Budget != nil {
		switch {
		case st.BudgetRecorded && st.BudgetFlag != "":
			fmt.Fprintf(w, "failures: %d, budget %d (the run's --max-failures %s)", st.Failures, *st.Budget, st.BudgetFlag)
		case st.BudgetRecorded:
			fmt.Fprintf(w, "failures: %d, budget %d (the run's)", st.Failures, *st.Budget)
		default:
			fmt.Fprintf(w, "failures: %d, budget %d (--max-failures %s)", st.Failures, *st.Budget, st.BudgetFlag)
		}
		if st.Failures > *st.Budget {
			fmt.Fprint(w, " (exceeded: new resets stopped)")
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "failures: %d, no budget\n", st.Failures)
	}
	if r := st.Settings; r != nil {
		if r.OnFailure != "" && st.Budget != nil {
			fmt.Fprintf(w, "on failure: %s (the run's --on-failure)\n", r.OnFailure)
		}
		if r.Approve != "" {
			fmt.Fprintf(w, "approval: %s (the run's --approve)\n", r.Approve)
		}
		fmt.Fprintf(w, "hooks: %s (the run's)\n", r.Hooks)
	}
	writeAccountStatuses(w, st.Accounts)

	if st.ResetsPerSecond != nil {
		fmt.Fprintf(w, "rate: %.2f resets/s over the last minute", *st.ResetsPerSecond)
		if st.ETASeconds != nil {
			fmt.Fprintf(w, "; about %s left to send the rest", (time.Duration(*st.ETASeconds) * time.Second).String())
		}
		fmt.Fprintln(w)
	}
	if len(st.HookPhases) > 0 {
		fmt.Fprintf(w, "hook phases: %d may be out of service (%s)\n", st.OutOfService, hookPhaseCounts(st.HookPhases))
	}
	printErrors(w, "last errors:", st.LastErrors)
	printErrors(w, "hook failures (the hook's last output lines):", st.HookFailures)
}

// hookPhaseCounts says how many jobs are in each hook phase, in the order
// a job goes through them.
func hookPhaseCounts(counts map[string]int) string {
	var parts []string
	for _, p := range store.HookPhases {
		if n := counts[string(p)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", p, n))
		}
	}
	return strings.Join(parts, ", ")
}

func printErrors(w io.Writer, title string, errs []statusError) {
	if len(errs) == 0 {
		return
	}
	fmt.Fprintln(w, title)
	for _, e := range errs {
		fmt.Fprintf(w, "  %s  %s  %s: %s\n", e.At.Format(time.RFC3339), e.InstanceID, e.Code, e.Message)
	}
}
