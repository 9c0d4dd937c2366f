package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// summaryListMax is how many instances needing attention the summary
// lists by name: a screenful. Beyond it, the summary says how many more
// there are and where the full list is.
const summaryListMax = 20

// runSummary is the end-of-run summary: what `run` and `retry` print on
// stdout, as text or, with --log-format json, as one JSON object.
type runSummary struct {
	Instances   int              `json:"instances"`
	Totals      map[string]int   `json:"totals"`
	NotFinished int              `json:"not_finished,omitempty"`
	Durations   *durationSummary `json:"durations,omitempty"`
	Calls       callSummary      `json:"calls"`
	Dropped     int64            `json:"dropped,omitempty"`
	ResetTwice  int64            `json:"reset_twice,omitempty"`
	// RecentlyReset counts instances found reset by another request
	// within runner.RecentResetWindow when the run first looked at them.
	RecentlyReset int64  `json:"recently_reset,omitempty"`
	StopReason    string `json:"stop_reason,omitempty"`
	Paused        bool   `json:"paused,omitempty"`
	WaitingFor    string `json:"waiting_for,omitempty"`
	Interrupted   string `json:"interrupted,omitempty"`
	// Unwritable names the file that could not be written, and why, when
	// that ended the run at once: every job is left as a rerun resumes it.
	Unwritable string `json:"unwritable,omitempty"`
	// Attention lists failed, unknown and unhealthy instances, at most
	// summaryListMax of them; AttentionTotal counts them all, and
	// FullList says where every one of them is.
	Attention      []outcome `json:"attention"`
	AttentionTotal int       `json:"attention_total"`
	FullList       string    `json:"full_list,omitempty"`
	// HookPhases counts the instances by lifecycle hook phase, those with
	// one, and OutOfService those a hook may have left out of service;
	// HookFailures lists the instances whose hook failed, at most
	// summaryListMax, their messages ending with the hook's last output
	// lines, and HookFailuresTotal counts them all.
	HookPhases        map[string]int `json:"hook_phases,omitempty"`
	OutOfService      int            `json:"out_of_service,omitempty"`
	HookFailures      []outcome      `json:"hook_failures,omitempty"`
	HookFailuresTotal int            `json:"hook_failures_total,omitempty"`
	// Next are the commands to run next, most urgent first.
	Next []string `json:"next,omitempty"`
	// Accounts breaks the run down by account when its jobs name
	// accounts; nil otherwise.
	Accounts []statuspage.AccountStatus `json:"accounts,omitempty"`
}

// newRunSummary summarises a run that just ended from its tally; api are
// the flags that name its API again (apiFlags.again); signal names the
// interrupt that stopped it, runErr is what the runner returned. Its durations are of the resets this
// command tracked to their end (the report has the whole run's).
func newRunSummary(t runTally, src jobSource, api string, sum runner.Summary, signal string, runErr error) runSummary {
	s := runSummary{
		Instances: t.Instances, Totals: t.Totals, Durations: summarizeDurations(sum.Durations),
		Calls:   calls(sum),
		Dropped: sum.Dropped, ResetTwice: sum.ResetTwice, RecentlyReset: sum.RecentlyReset, StopReason: sum.StopReason, Paused: sum.Paused, WaitingFor: sum.WaitingFor, Interrupted: signal,
		Attention: []outcome{}, AttentionTotal: t.AttentionTotal,
	}
	if ue, ok := errors.AsType[*store.UnwritableError](runErr); ok {
		s.Unwritable = ue.Error()
	}
	s.NotFinished = t.Totals[string(store.StatusPending)] + t.Totals[string(store.StatusSubmitting)] + t.Totals[string(store.StatusSubmitted)]
	for _, o := range t.Attention[:min(len(t.Attention), summaryListMax)] {
		s.Attention = append(s.Attention, outcome{InstanceID: o.InstanceID, Region: o.Region, Status: o.Status,
			RequestID: o.RequestID, ErrorCode: o.ErrorCode, ErrorMessage: o.ErrorMessage, Attempts: o.Attempts})
	}
	if len(t.HookPhases) > 0 {
		s.HookPhases = t.HookPhases
	}
	s.OutOfService, s.HookFailuresTotal = t.OutOfService, t.HookFailuresTotal
	for _, o := range t.HookFailures[:min(len(t.HookFailures), summaryListMax)] {
		s.HookFailures = append(s.HookFailures, outcome{InstanceID: o.InstanceID, Region: o.Region, Status: o.Status,
			ErrorCode: o.ErrorCode, ErrorMessage: o.ErrorMessage, HookPhase: o.HookPhase})
	}
	s.FullList, s.Next = nextSteps(src, api, s, t.Retry)
	return s
}

// nextSteps says where the full list of outcomes is and which commands to
// run next: resume an interrupted run, settle unknown outcomes, send failed
// and skipped instances again, each against the same API.
func nextSteps(src jobSource, api string, s runSummary, retry int) (fullList string, next []string) {
	fullList, where := src.Where()
	run := where // resume and cancel call no API
	where += api
	if s.Interrupted != "" {
		next = append(next, "rerun the same command to resume")
	}
	if s.Unwritable != "" {
		// The rerun settles the jobs left in flight and sends the others:
		// neither reconcile nor retry is for them.
		return fullList, append(next, "free the space or repair the file system, then rerun the same command to resume")
	}
	if n := s.Totals[string(store.StatusUnknown)]; n > 0 {
		next = append(next, fmt.Sprintf("batchreset reconcile %s   # settle the %d unknown outcome(s) from what the cloud shows; those proven not applied can then be retried", where, n))
	}
	if s.Paused && s.Interrupted == "" {
		// What was not sent waits for the pause, not for retry.
		return fullList, append(next,
			fmt.Sprintf("batchreset resume %s   # go on (add --retry-failed to send the failed instances once more), then rerun the same command", run),
			fmt.Sprintf("batchreset cancel %s   # or end the run", run))
	}
	if retry > 0 && s.Interrupted == "" {
		next = append(next, fmt.Sprintf("batchreset retry %s   # send the %d failed or skipped instance(s) again (add the same rollout flags)", where, retry))
	}
	return fullList, next
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// printSummary prints the end-of-run summary on stdout: text, or one JSON
// object with --log-format json.
func (a *app) printSummary(s runSummary) {
	if a.logFormat == "json" {
		enc := json.NewEncoder(a.stdout)
		if err := enc.Encode(s); err != nil {
			fmt.Fprintf(os.Stderr, "batchreset: write summary: %v\n", err)
		}
		return
	}
	writeSummary(a.stdout, s)
}

func writeSummary(w io.Writer, s runSummary) {
	fmt.Fprintf(w, "%d instances: %d succeeded, %d failed, %d unknown, %d skipped", s.Instances,
		s.Totals["succeeded"], s.Totals["failed"], s.Totals["unknown"], s.Totals["skipped"])
	if n := s.Totals["unhealthy"]; n > 0 {
		fmt.Fprintf(w, ", %d unhealthy", n)
	}
	fmt.Fprintln(w)
	if s.NotFinished > 0 {
		fmt.Fprintf(w, "%d not finished: not yet due, or held by another runner; a later run takes them\n", s.NotFinished)
	}
	if s.Durations != nil {
		fmt.Fprintf(w, "reset durations (%s): p50 %.1fs, p95 %.1fs, max %.1fs\n", plural(s.Durations.Count, "reset"), s.Durations.P50, s.Durations.P95, s.Durations.Max)
	}
	fmt.Fprintf(w, "API calls: %d ResetInstance, %d DescribeInstances, %d throttled\n", s.Calls.ResetInstance, s.Calls.DescribeInstances, s.Calls.Throttled)
	if s.Dropped > 0 {
		fmt.Fprintf(w, "%d job(s) handed back: their state could not be recorded by this runner (taken over by another, or the store unreachable); the runner holding them, or the next run, settles them\n", s.Dropped)
	}
	if s.ResetTwice > 0 {
		fmt.Fprintf(w, "%d instance(s) were reset by another process too while ours ran (error code %s): check them\n", s.ResetTwice, runner.CodeResetTwice)
	}
	if s.RecentlyReset > 0 {
		fmt.Fprintf(w, "%d instance(s) had been reset by another request within %s before this run reset them again (--skip-reset-since skips such instances)\n", s.RecentlyReset, runner.RecentResetWindow)
	}
	switch {
	case s.Unwritable != "":
		fmt.Fprintf(w, "the run ended at once: %s; every job is left as a rerun resumes it\n", s.Unwritable)
	case s.StopReason != "":
		fmt.Fprintf(w, "new resets stopped: %s\n", s.StopReason)
	}
	if s.Paused {
		why := ""
		if s.WaitingFor != "" && s.WaitingFor != "paused by operator" {
			why = ", waiting for " + s.WaitingFor
		}
		fmt.Fprintf(w, "the run is paused%s: no new reset was started; `batchreset resume` lets it go on, `batchreset cancel` ends it\n", why)
	}
	if s.Interrupted != "" {
		fmt.Fprintf(w, "stopped by %s\n", s.Interrupted)
	}
	writeAccountStatuses(w, s.Accounts)
	if s.AttentionTotal > 0 {
		fmt.Fprintf(w, "\n%d instance(s) need attention:\n", s.AttentionTotal)
		for _, o := range s.Attention {
			code := o.ErrorCode
			if code == "" {
				code = "-"
			}
			fmt.Fprintf(w, "  %-24s %-16s %-9s %s: %s\n", o.InstanceID, o.Region, o.Status, code, o.ErrorMessage)
		}
		if more := s.AttentionTotal - len(s.Attention); more > 0 {
			fmt.Fprintf(w, "  … and %d more: every outcome is in %s\n", more, s.FullList)
		}
	}
	if len(s.HookPhases) > 0 {
		fmt.Fprintf(w, "\nhook phases: %d instance(s) may be out of service (%s)\n", s.OutOfService, hookPhaseCounts(s.HookPhases))
	}
	if s.HookFailuresTotal > 0 {
		fmt.Fprintf(w, "%d hook failure(s), with the hook's last output lines:\n", s.HookFailuresTotal)
		for _, o := range s.HookFailures {
			fmt.Fprintf(w, "  %-24s %-16s %-9s %s: %s\n", o.InstanceID, o.Region, o.Status, o.ErrorCode, o.ErrorMessage)
		}
		if more := s.HookFailuresTotal - len(s.HookFailures); more > 0 {
			fmt.Fprintf(w, "  … and %d more: every outcome is in %s\n", more, s.FullList)
		}
	}
	if s.FullList != "" {
		fmt.Fprintf(w, "results: %s\n", s.FullList)
	}
	if len(s.Next) > 0 {
		fmt.Fprintln(w, "next:")
		for _, n := range s.Next {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

// planRollout are plan's flags that say what a run with the same flags
// would do wave by wave, and how plan prints it.
type planRollout struct {
	maxFailures string
	canary      int
	waves       string
	pauseWaves  time.Duration
	windowEnd   string
	window      time.Duration
	onFailure   string
	approve     string
	hooks       hookFlags
	summary     bool
	output      string
}

func (o *planRollout) add(fs *pflag.FlagSet) {
	fs.StringVar(&o.maxFailures, "max-failures", defaultMaxFailures, "failure budget of the run planned (as for run)")
	fs.IntVar(&o.canary, "canary", 0, "canary size of the run planned (as for run)")
	fs.StringVar(&o.waves, "waves", "", "wave sizes of the run planned (as for run)")
	fs.DurationVar(&o.pauseWaves, "pause-between-waves", 0, "pause between waves of the run planned (as for run)")
	fs.StringVar(&o.windowEnd, "window-end", "", "maintenance window end of the run planned (as for run)")
	fs.DurationVar(&o.window, "window", 0, "maintenance window length of the run planned (as for run)")
	fs.StringVar(&o.onFailure, "on-failure", defaultOnFailure, "what an exceeded budget does in the run planned (as for run); a run that has begun shows its own")
	fs.StringVar(&o.approve, "approve", "", "which waves of the run planned wait for a person (as for run); a run that has begun shows its own")
	o.hooks.add(fs)
	fs.BoolVar(&o.summary, "summary", false, "print the totals and the waves only, not a line per instance")
	fs.StringVar(&o.output, "output", "text", "text or json")
}

// resolve checks the flags and makes the rollout of a run of total jobs.
func (o *planRollout) resolve(total int, now time.Time) (*runner.Rollout, error) {
	if o.output != "text" && o.output != "json" {
		return nil, usageError("--output must be text or json, not %q", o.output)
	}
	if o.canary < 0 || o.pauseWaves < 0 || o.window < 0 {
		return nil, usageError("--canary, --pause-between-waves and --window must not be negative")
	}
	onFailure, err := runner.ParseOnFailure(o.onFailure)
	if err != nil {
		return nil, usageError("--on-failure: %v", err)
	}
	approve, err := runner.ParseApprove(o.approve)
	if err != nil {
		return nil, usageError("--approve: %v", err)
	}
	b := budgetedRollout{preflight: true, maxFailures: o.maxFailures, canary: o.canary, waves: o.waves, pauseWaves: o.pauseWaves,
		onFailure: onFailure, approve: approve}
	switch {
	case o.windowEnd != "" && o.window != 0:
		return nil, usageError("give --window-end or --window, not both")
	case o.windowEnd != "":
		t, err := parseTime(o.windowEnd, now)
		if err != nil {
			return nil, usageError("--window-end: %v", err)
		}
		b.windowEnd = t
	case o.window != 0:
		b.windowEnd = now.Add(o.window)
	}
	return b.resolve(total)
}

// planOutput is what plan prints: per instance unless --summary, the
// totals, and the waves a run with the same flags would go through.
type planOutput struct {
	Instances       int        `json:"instances"`
	AlreadyFinished int        `json:"already_finished"`
	ToReset         int        `json:"to_reset"`
	ToSkip          int        `json:"to_skip"`
	Budget          *int       `json:"budget,omitempty"`
	WindowEnd       *time.Time `json:"window_end,omitempty"`
	// Settings are the run's --on-failure, --approve and hooks: those its
	// record keeps once it has begun (Recorded), else plan's flags.
	Settings runRecord `json:"settings"`
	Recorded bool      `json:"settings_recorded"`
	// Accounts are the accounts the jobs name, with the run's own
	// credential first when some job names none; absent without accounts.
	Accounts []plannedAccount `json:"accounts,omitempty"`
	Waves    []plannedWave    `json:"waves"`
	Items    []plannedItem    `json:"items,omitempty"`
}

// plannedAccount is one account of a plan: its name ("" for the run's own
// credential), where its credential comes from (--account's definition),
// who signs (source, masked SecretId, role; never a secret), and its
// unfinished instances and their regions.
type plannedAccount struct {
	Name       string   `json:"name"`
	Definition string   `json:"definition,omitempty"`
	Credential string   `json:"credential"`
	Instances  int      `json:"instances"`
	Regions    []string `json:"regions"`
}

type plannedWave struct {
	Wave   int  `json:"wave"`
	Canary bool `json:"canary,omitempty"`
	Resets int  `json:"resets"`
	// StartSec and EndSec are when the wave starts and ends, in seconds
	// from the start of the run, at --rate with resets of
	// --expected-duration.
	StartSec float64 `json:"start_seconds"`
	EndSec   float64 `json:"end_seconds"`
	// AfterWindow: the window closes before the wave's resets could end,
	// so the run would skip them.
	AfterWindow bool `json:"after_window,omitempty"`
}

type plannedItem struct {
	InstanceID  string `json:"instance_id"`
	Region      string `json:"region"`
	BlueprintID string `json:"blueprint_id,omitempty"`
	Action      string `json:"action"`
	Note        string `json:"note,omitempty"`
	Wave        int    `json:"wave,omitempty"`
}

// planWaves splits resets into the waves of ro, as the runner will
// (runner.Rollout.WavePlan), timed at rate with resets of expected, from
// now.
func planWaves(resets int, ro *runner.Rollout, rate float64, expected time.Duration, now time.Time) []plannedWave {
	var sizes []int
	for _, w := range ro.WavePlan(resets) {
		if w == len(sizes) {
			sizes = append(sizes, 0)
		}
		sizes[w]++
	}
	out := []plannedWave{}
	at := 0.0
	for i, n := range sizes {
		send := float64(n-1) / rate
		w := plannedWave{Wave: i + 1, Canary: ro.Canary > 0 && i == 0, Resets: n, StartSec: roundTo(at, 0),
			EndSec: roundTo(at+send+expected.Seconds(), 0)}
		if !ro.WindowEnd.IsZero() && now.Add(time.Duration(w.StartSec*float64(time.Second))+expected).After(ro.WindowEnd) {
			w.AfterWindow = true
		}
		out = append(out, w)
		at = w.EndSec + ro.PauseBetweenWaves.Seconds()
	}
	return out
}

// newPlanOutput is plan's output for items, the jobs not yet finished,
// of a run of total jobs. Items are listed in the order a run sends them:
// region by region, in the order the input first names the regions.
func newPlanOutput(items []runner.PlanItem, total int, ro *runner.Rollout, rate float64, expected time.Duration, now time.Time, perItem bool) planOutput {
	rank := map[string]int{}
	for _, it := range items {
		if _, ok := rank[it.Job.Region]; !ok {
			rank[it.Job.Region] = len(rank)
		}
	}
	items = slices.Clone(items)
	slices.SortStableFunc(items, func(a, b runner.PlanItem) int { return rank[a.Job.Region] - rank[b.Job.Region] })
	p := planOutput{Instances: total, AlreadyFinished: total - len(items), WindowEnd: timePtr(ro.WindowEnd)}
	if ro.MaxFailures >= 0 {
		b := ro.MaxFailures
		p.Budget = &b
	}
	for _, it := range items {
		if it.Reset {
			p.ToReset++
		}
	}
	p.ToSkip = len(items) - p.ToReset
	p.Waves = planWaves(p.ToReset, ro, rate, expected, now)
	if !perItem {
		return p
	}
	waves := ro.WavePlan(p.ToReset)
	k := 0
	for _, it := range items {
		pi := plannedItem{InstanceID: it.Job.InstanceID, Region: it.Job.Region, BlueprintID: it.Job.BlueprintID, Action: "skip", Note: it.Reason}
		if it.Reset {
			pi.Action, pi.Wave = "reset", waves[k]+1
			k++
		}
		p.Items = append(p.Items, pi)
	}
	return p
}

// writePlanWaves prints the waves of p after plan's table.
func writePlanWaves(w io.Writer, p planOutput) {
	if p.AlreadyFinished > 0 {
		fmt.Fprintf(w, "%d of %d instances already finished (the journal of an earlier run): a rerun leaves them alone\n", p.AlreadyFinished, p.Instances)
	}
	if len(p.Waves) > 1 || (len(p.Waves) == 1 && p.Waves[0].Canary) {
		fmt.Fprintln(w, "\nwaves (each finishes before the next starts):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  WAVE\tRESETS\tSTARTS\tENDS\t")
		for _, wv := range p.Waves {
			name := strconv.Itoa(wv.Wave)
			if wv.Canary {
				name += " (canary)"
			}
			note := ""
			if wv.AfterWindow {
				note = "after the window closes: skipped"
			}
			fmt.Fprintf(tw, "  %s\t%d\t+%s\t+%s\t%s\n", name, wv.Resets, secs(wv.StartSec), secs(wv.EndSec), note)
		}
		tw.Flush()
	} else if len(p.Waves) == 1 && p.Waves[0].AfterWindow {
		fmt.Fprintln(w, "the window closes before these resets could end: the run would skip them")
	}
	whose := ""
	if p.Recorded {
		whose = " (the run's own, as it began)"
	}
	if p.Budget != nil {
		fmt.Fprintf(w, "failure budget: %d (new resets stop once more than that have failed)\n", *p.Budget)
		if p.Settings.OnFailure != "" {
			fmt.Fprintf(w, "on failure: %s%s\n", p.Settings.OnFailure, whose)
		}
	}
	if p.Settings.Approve != "" {
		fmt.Fprintf(w, "approval: %s%s\n", p.Settings.Approve, whose)
	}
	fmt.Fprintf(w, "hooks: %s%s\n", p.Settings.Hooks, whose)
}

func secs(s float64) string { return (time.Duration(s) * time.Second).String() }
