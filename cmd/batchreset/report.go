package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// report is the JSON report of a run (--report, `batchreset report --format json`).
type report struct {
	GeneratedAt time.Time      `json:"generated_at"`
	StartedAt   *time.Time     `json:"started_at,omitempty"`
	FinishedAt  *time.Time     `json:"finished_at,omitempty"`
	Totals      map[string]int `json:"totals"`
	Instances   int            `json:"instances"`
	StopReason  string         `json:"stop_reason,omitempty"`
	// ResetTwice counts instances another process reset too, during ours.
	ResetTwice int64            `json:"reset_twice,omitempty"`
	Durations  *durationSummary `json:"durations,omitempty"`
	Calls      *callSummary     `json:"calls,omitempty"`
	Settings   map[string]any   `json:"settings,omitempty"`
	Outcomes   []outcome        `json:"outcomes"`
}

type durationSummary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_seconds"`
	P95   float64 `json:"p95_seconds"`
	Max   float64 `json:"max_seconds"`
}

type callSummary struct {
	ResetInstance     int64 `json:"reset_instance"`
	DescribeInstances int64 `json:"describe_instances"`
	Throttled         int64 `json:"throttled"`
	// JitterGuard is the jitter allowance ResetInstance calls were spaced
	// for (measured when above the configured guard), and RateFactor its
	// cost: the share of the rate it leaves, 1/(1+JitterGuard).
	JitterGuard float64 `json:"jitter_guard_seconds,omitempty"`
	RateFactor  float64 `json:"rate_factor,omitempty"`
}

// calls summarises the calls of a run.
func calls(sum runner.Summary) callSummary {
	c := callSummary{ResetInstance: sum.Calls, DescribeInstances: sum.Describes, Throttled: sum.Throttled}
	if sum.JitterGuard > 0 {
		c.JitterGuard = sum.JitterGuard.Seconds()
		c.RateFactor = 1 / (1 + sum.JitterGuard.Seconds())
	}
	return c
}

type outcome struct {
	InstanceID   string     `json:"instance_id"`
	BlueprintID  string     `json:"blueprint_id,omitempty"`
	Region       string     `json:"region"`
	Status       string     `json:"status"`
	RequestID    string     `json:"request_id,omitempty"`
	ErrorCode    string     `json:"error_code,omitempty"`
	ErrorMessage string     `json:"error_message,omitempty"`
	Attempts     int        `json:"attempts"`
	SubmittedAt  *time.Time `json:"submitted_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	DurationSec  float64    `json:"duration_seconds,omitempty"`
	// PrevBlueprintID is the image the instance had before the run reset
	// it: what a rollback puts back.
	PrevBlueprintID string `json:"previous_blueprint_id,omitempty"`
	// HookPhase is how far the instance's lifecycle hooks came
	// (store.HookPhase); a failed hook's last output lines end
	// ErrorMessage.
	HookPhase string `json:"hook_phase,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// newReport is the head of a report of jobs counted into t: everything but
// the outcomes, which are written as the jobs are read (writeReportJSON).
func newReport(t runTally) *report {
	return &report{GeneratedAt: time.Now().UTC(), Totals: t.Totals, Instances: t.Instances, Durations: t.Durations}
}

// resetDuration is how long j's reset took, for a reset that ended.
func resetDuration(j *store.Job) (time.Duration, bool) {
	if !j.SubmittedAt.IsZero() && !j.FinishedAt.IsZero() && (j.Status == store.StatusSucceeded || j.Status == store.StatusFailed) {
		return j.FinishedAt.Sub(j.SubmittedAt), true
	}
	return 0, false
}

// outcomeOf is j as the report lists it.
func outcomeOf(j *store.Job) outcome {
	o := outcome{
		InstanceID: j.InstanceID, BlueprintID: j.BlueprintID, Region: j.Region, Status: string(j.Status),
		RequestID: j.RequestID, ErrorCode: j.ErrorCode, ErrorMessage: j.ErrorMessage, Attempts: j.Attempts,
		SubmittedAt: timePtr(j.SubmittedAt), FinishedAt: timePtr(j.FinishedAt), PrevBlueprintID: j.PrevBlueprintID,
		HookPhase: string(j.HookPhase),
	}
	if d, ok := resetDuration(j); ok {
		o.DurationSec = d.Seconds()
	}
	return o
}

// writeRunReport writes the report of src's jobs, as `batchreset report`
// does, to path ("" for w) as CSV (the results file's columns) or JSON,
// reading the jobs as they come rather than loading the run: the CSV in one
// pass; the JSON's head (totals and durations) from src's tally, then the
// outcomes in one pass, so that memory stays flat whatever the run's size.
func writeRunReport(ctx context.Context, src jobSource, format, path string, w io.Writer) error {
	if format == "csv" {
		cnt, err := src.Count(ctx)
		if err != nil {
			return err
		}
		return writeAtomic(path, w, func(w io.Writer) error {
			rw := csvstore.NewResultsWriter(w, cnt.Accounts != nil)
			if err := src.Each(ctx, rw.Write); err != nil {
				return err
			}
			return rw.Flush()
		})
	}
	t, err := src.Tally(ctx, true)
	if err != nil {
		return err
	}
	return writeAtomic(path, w, func(w io.Writer) error { return writeReportJSON(ctx, src, newReport(t), w) })
}

// writeAtomic writes what write writes to path, or to w when path is "",
// buffered. A file is written beside path and renamed over it, so path
// holds the old content or the whole new one.
func writeAtomic(path string, w io.Writer, write func(io.Writer) error) (err error) {
	var f *os.File
	if path != "" {
		if f, err = os.CreateTemp(filepath.Dir(path), ".report-*"); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}()
		w = f
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f == nil {
		return nil
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// writeReportJSON writes rep, indented, with the outcomes of src's jobs
// streamed into its last field.
func writeReportJSON(ctx context.Context, src jobSource, rep *report, w io.Writer) error {
	if rep.Instances == 0 {
		return json.NewEncoder(w).Encode(rep)
	}
	head, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	// Outcomes is the report's last field: its null gives way to the list.
	const null = "\n  \"outcomes\": null\n}"
	if !bytes.HasSuffix(head, []byte(null)) {
		return fmt.Errorf("report JSON ends %q, not with its outcomes", head[max(0, len(head)-len(null)):])
	}
	if _, err := fmt.Fprintf(w, "%s\n  \"outcomes\": [", head[:len(head)-len(null)]); err != nil {
		return err
	}
	sep := "\n    "
	err = src.Each(ctx, func(j *store.Job) error {
		o, err := json.MarshalIndent(outcomeOf(j), "    ", "  ")
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		sep = ",\n    "
		_, err = w.Write(o)
		return err
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n  ]\n}\n")
	return err
}

// buildReport is the head of the report of a run that just ended (see
// newReport).
func buildReport(t runTally, sum runner.Summary, s runSettings, started, finished time.Time) *report {
	rep := newReport(t)
	rep.StartedAt, rep.FinishedAt = timePtr(started), timePtr(finished)
	rep.StopReason = sum.StopReason
	c := calls(sum)
	rep.Calls = &c
	rc, ro := s.runner, s.rollout
	windowEnd := ""
	if !ro.windowEnd.IsZero() {
		windowEnd = ro.windowEnd.Format(time.RFC3339)
	}
	rep.Settings = map[string]any{
		"rate": rc.Rate, "describe_rate": rc.DescribeRate, "workers": rc.Workers, "max_in_flight": rc.MaxInFlight,
		"poll_interval": rc.PollInterval.String(), "reset_timeout": rc.ResetTimeout.String(),
		"settle_time": rc.SettleTime.String(), "request_timeout": rc.RequestTimeout.String(),
		"preflight": ro.preflight, "max_failures": ro.maxFailures, "canary": ro.canary, "waves": ro.waves,
		"pause_between_waves": ro.pauseWaves.String(), "window_end": windowEnd,
		"emulated": s.api.emulate,
	}
	if sum.ResetTwice > 0 {
		rep.ResetTwice = sum.ResetTwice
	}
	if s.src.jobsPath != "" {
		rep.Settings["jobs"] = s.src.jobsPath
	} else {
		rep.Settings["run"] = s.src.runName
	}
	return rep
}
