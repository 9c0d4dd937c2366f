package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// summaryListMax is how many instances needing attention the summary
// lists by name: a screenful. Beyond it, the summary says how many more
// there are and where the full list is.
const summaryListMax = 20

// attentionStatuses are the outcomes the summary names one by one: each
// needs a person or a next command.
var attentionStatuses = []store.Status{store.StatusFailed, store.StatusUnknown, "unhealthy"}

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
	StopReason  string           `json:"stop_reason,omitempty"`
	Paused      bool             `json:"paused,omitempty"`
	Interrupted string           `json:"interrupted,omitempty"`
	// Attention lists failed, unknown and unhealthy instances, at most
	// summaryListMax of them; AttentionTotal counts them all, and
	// FullList says where every one of them is.
	Attention      []outcome `json:"attention"`
	AttentionTotal int       `json:"attention_total"`
	FullList       string    `json:"full_list,omitempty"`
	// Next are the commands to run next, most urgent first.
	Next []string `json:"next,omitempty"`
}

// newRunSummary summarises a run that just ended; jobs are as the results
// report them (resultsView), signal names the interrupt that stopped it.
func newRunSummary(rep *report, jobs []store.Job, src jobSource, sum runner.Summary, signal string) runSummary {
	s := runSummary{
		Instances: rep.Instances, Totals: rep.Totals, Durations: rep.Durations,
		Calls:   calls(sum),
		Dropped: sum.Dropped, ResetTwice: sum.ResetTwice, StopReason: sum.StopReason, Paused: sum.Paused, Interrupted: signal,
		Attention: []outcome{},
	}
	s.NotFinished = rep.Totals[string(store.StatusPending)] + rep.Totals[string(store.StatusSubmitting)] + rep.Totals[string(store.StatusSubmitted)]
	retry := 0
	for _, j := range jobs {
		if retryable(j, retryAll) {
			retry++
		}
		if !isAttention(j.Status) {
			continue
		}
		s.AttentionTotal++
		if len(s.Attention) < summaryListMax {
			s.Attention = append(s.Attention, outcome{InstanceID: j.InstanceID, Region: j.Region, Status: string(j.Status),
				RequestID: j.RequestID, ErrorCode: j.ErrorCode, ErrorMessage: j.ErrorMessage, Attempts: j.Attempts})
		}
	}
	s.FullList, s.Next = nextSteps(src, s, retry)
	return s
}

func isAttention(st store.Status) bool {
	for _, a := range attentionStatuses {
		if st == a {
			return true
		}
	}
	return false
}

// nextSteps says where the full list of outcomes is and which commands to
// run next: resume an interrupted run, settle unknown outcomes, send failed
// and skipped instances again.
func nextSteps(src jobSource, s runSummary, retry int) (fullList string, next []string) {
	var where string
	switch src := src.(type) {
	case *csvSource:
		fullList = src.out
		where = "--jobs " + shellQuote(src.jobsPath)
		if src.outSet {
			where += " --out " + shellQuote(src.out)
		}
	case *dbSource:
		fullList = fmt.Sprintf("batchreset report --run %s", shellQuote(src.run))
		where = `--database-url "$DATABASE_URL" --run ` + shellQuote(src.run)
	}
	if s.Interrupted != "" {
		next = append(next, "rerun the same command to resume")
	}
	if n := s.Totals[string(store.StatusUnknown)]; n > 0 {
		next = append(next, fmt.Sprintf("batchreset reconcile %s   # settle the %d unknown outcome(s) from what the cloud shows; those proven not applied can then be retried", where, n))
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
		fmt.Fprintf(w, "reset durations: p50 %.1fs, p95 %.1fs, max %.1fs\n", s.Durations.P50, s.Durations.P95, s.Durations.Max)
	}
	fmt.Fprintf(w, "API calls: %d ResetInstance, %d DescribeInstances, %d throttled\n", s.Calls.ResetInstance, s.Calls.DescribeInstances, s.Calls.Throttled)
	if s.Dropped > 0 {
		fmt.Fprintf(w, "%d job(s) handed back: their state could not be recorded by this runner (taken over by another, or the store unreachable); the runner holding them, or the next run, settles them\n", s.Dropped)
	}
	if s.ResetTwice > 0 {
		fmt.Fprintf(w, "%d instance(s) were reset by another process too while ours ran (error code %s): check them\n", s.ResetTwice, runner.CodeResetTwice)
	}
	if s.StopReason != "" {
		fmt.Fprintf(w, "new resets stopped: %s\n", s.StopReason)
	}
	if s.Paused {
		fmt.Fprintln(w, "the run is paused: no new reset was started; `batchreset resume` lets it go on")
	}
	if s.Interrupted != "" {
		fmt.Fprintf(w, "stopped by %s\n", s.Interrupted)
	}
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
