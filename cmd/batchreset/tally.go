package main

import (
	"context"
	"slices"
	"time"

	"github.com/batchreset/batchreset/cmd/batchreset/notify"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// runTally is how a run's jobs ended, as its results report them (see
// resultView): what the end of a run, the report's head, the summary and
// the last notification say. It is counted without holding the jobs: in
// one pass over a CSV journal, with SQL aggregates in Postgres mode.
type runTally struct {
	Instances int
	Totals    map[string]int
	Durations *durationSummary
	// Attention lists the first attentionListMax jobs (in the jobs' order)
	// that ended a failure (store.Status.Failure: failed, unknown or
	// unhealthy), each needing a person or a next command; AttentionTotal
	// counts them all.
	Attention      []outcome
	AttentionTotal int
	// Retry counts the jobs `batchreset retry` would send again.
	Retry int
	// HookPhases counts the jobs by lifecycle hook phase, those with one
	// (store.HookPhase), and OutOfService those a hook may have taken out
	// of service and not put back (HookPhase.OutOfService). HookFailures lists the first attentionListMax
	// jobs whose hook failed (store.Job.HookFailed), their messages ending
	// with the hook's last output lines; HookFailuresTotal counts them all.
	HookPhases        map[string]int
	OutOfService      int
	HookFailures      []outcome
	HookFailuresTotal int
}

// succeeded applies the run's one success rule (store.Totals.Succeeded) to
// the tally.
func (t runTally) succeeded() bool {
	totals := store.Totals{}
	for st, n := range t.Totals {
		totals[store.Status(st)] = n
	}
	return totals.Succeeded()
}

// attentionListMax is how many jobs needing attention a tally lists: as
// many as the last notification names (the summary prints fewer).
const attentionListMax = notify.FailedMax

// durationPercentiles are the percentiles of reset durations a run reports.
var durationPercentiles = []float64{50, 95}

// tallier counts jobs one at a time into a runTally, holding only the
// durations of the resets that ended.
type tallier struct {
	t    runTally
	durs []time.Duration
}

func newTallier() *tallier {
	return &tallier{t: runTally{Totals: map[string]int{}, HookPhases: map[string]int{}}}
}

// add counts j, already as a results file shows it.
func (c *tallier) add(j *store.Job) {
	c.count(j, 1)
	if d, ok := resetDuration(j); ok {
		c.durs = append(c.durs, d)
	}
	if j.Failure() && len(c.t.Attention) < attentionListMax {
		c.t.Attention = append(c.t.Attention, outcomeOf(j))
	}
	if j.HookFailed() && len(c.t.HookFailures) < attentionListMax {
		c.t.HookFailures = append(c.t.HookFailures, outcomeOf(j))
	}
}

// count counts n jobs like j, already as a results file shows it.
func (c *tallier) count(j *store.Job, n int) {
	c.t.Instances += n
	c.t.Totals[string(j.Status)] += n
	if j.Failure() {
		c.t.AttentionTotal += n
	}
	if retryable(*j, retryAll) {
		c.t.Retry += n
	}
	if j.HookPhase != store.HookNone {
		c.t.HookPhases[string(j.HookPhase)] += n
	}
	if j.HookPhase.OutOfService() {
		c.t.OutOfService += n
	}
	if j.HookFailed() {
		c.t.HookFailuresTotal += n
	}
}

// tally returns the tally of the jobs added.
func (c *tallier) tally() runTally {
	slices.Sort(c.durs)
	c.t.Durations = summarizeDurations(c.durs)
	return c.t
}

// summarizeDurations summarises sorted reset durations; nil for none.
func summarizeDurations(sorted []time.Duration) *durationSummary {
	if len(sorted) == 0 {
		return nil
	}
	return &durationSummary{
		Count: len(sorted),
		P50:   runner.Percentile(sorted, durationPercentiles[0]).Seconds(),
		P95:   runner.Percentile(sorted, durationPercentiles[1]).Seconds(),
		Max:   sorted[len(sorted)-1].Seconds(),
	}
}

// attention are the stored statuses whose jobs s gives as needing
// attention (in flight ones show as unknown in the results).
func (s *dbSource) attention() []store.Status {
	var out []store.Status
	for _, st := range statusOrder {
		j := store.Job{Status: st}
		s.view(&j)
		if j.Failure() {
			out = append(out, st)
		}
	}
	return out
}

// Tally counts the run's jobs with the database's aggregates: the same
// view and rules as Each and tallier, applied to each group of jobs of one
// status and error code rather than to each job. Only with durations does
// it sort the run's finished jobs for their percentiles.
func (s *dbSource) Tally(ctx context.Context, durations bool) (runTally, error) {
	var pcts []float64
	if durations {
		pcts = durationPercentiles
	}
	o, err := s.db.Outcomes(ctx, s.run, s.attention(), attentionListMax, pcts)
	if err != nil {
		return runTally{}, err
	}
	c := newTallier()
	for _, g := range o.Groups {
		j := store.Job{Status: g.Status, ErrorCode: g.ErrorCode, HookPhase: g.HookPhase}
		s.view(&j)
		c.count(&j, g.Jobs)
	}
	for i := range o.Listed {
		j := &o.Listed[i]
		s.view(j)
		c.t.Attention = append(c.t.Attention, outcomeOf(j))
	}
	for i := range o.HookFailed {
		j := &o.HookFailed[i]
		s.view(j)
		c.t.HookFailures = append(c.t.HookFailures, outcomeOf(j))
	}
	if o.Ended > 0 {
		c.t.Durations = &durationSummary{Count: o.Ended, P50: o.Percentiles[0].Seconds(), P95: o.Percentiles[1].Seconds(), Max: o.Longest.Seconds()}
	}
	return c.t, nil
}

// Tally counts the run's jobs in one pass over them, durations included
// whatever is asked: they cost the pass nothing.
func (s *csvSource) Tally(ctx context.Context, _ bool) (runTally, error) {
	c := newTallier()
	err := s.Each(ctx, func(j *store.Job) error {
		c.add(j)
		return nil
	})
	return c.tally(), err
}
