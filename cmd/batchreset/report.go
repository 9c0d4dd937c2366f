package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
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
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// newReport summarises jobs, already as a results file shows them (see
// resultsView); with outcomes it lists every job.
func newReport(jobs []store.Job, outcomes bool) *report {
	rep := &report{GeneratedAt: time.Now().UTC(), Totals: map[string]int{}, Instances: len(jobs)}
	var durs []time.Duration
	for _, j := range jobs {
		rep.Totals[string(j.Status)]++
		o := outcome{
			InstanceID: j.InstanceID, BlueprintID: j.BlueprintID, Region: j.Region, Status: string(j.Status),
			RequestID: j.RequestID, ErrorCode: j.ErrorCode, ErrorMessage: j.ErrorMessage, Attempts: j.Attempts,
			SubmittedAt: timePtr(j.SubmittedAt), FinishedAt: timePtr(j.FinishedAt),
		}
		if !j.SubmittedAt.IsZero() && !j.FinishedAt.IsZero() && (j.Status == store.StatusSucceeded || j.Status == store.StatusFailed) {
			d := j.FinishedAt.Sub(j.SubmittedAt)
			o.DurationSec = d.Seconds()
			durs = append(durs, d)
		}
		if outcomes {
			rep.Outcomes = append(rep.Outcomes, o)
		}
	}
	if len(durs) > 0 {
		slices.Sort(durs)
		rep.Durations = &durationSummary{
			Count: len(durs),
			P50:   runner.Percentile(durs, 50).Seconds(),
			P95:   runner.Percentile(durs, 95).Seconds(),
			Max:   durs[len(durs)-1].Seconds(),
		}
	}
	return rep
}

// buildReport is the report of a run that just ended.
func buildReport(jobs []store.Job, outcomes bool, sum runner.Summary, s runSettings, started, finished time.Time) *report {
	rep := newReport(jobs, outcomes)
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

// writeFile writes the report as indented JSON, atomically.
func (rep *report) writeFile(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
