package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// dataWarning is said by rollback's help, plan and prompt: what a rollback
// cannot give back.
const dataWarning = "a rollback reinstalls each instance's previous image: the data on its system disk is NOT restored (the disk is formatted again)"

func (a *app) rollbackCommand() *cobra.Command {
	o := &runFlags{}
	cmd := &cobra.Command{
		Use:   "rollback (--jobs FILE.csv | --database-url URL --run NAME) [flags]",
		Short: "Reset every instance a run reset back to its previous image",
		Long: `Reset every instance that a run (one that has ended or stopped) reset
successfully back to the image it had before (previous_blueprint_id), the
last wave first, as a run of its own under the same rate limit, holds and
guarantees as any run. Its outcomes are recorded beside the original's: in
CSV mode OUT.rollback.csv (its jobs in OUT.rollback.jobs.csv), in Postgres
mode the run NAME-rollback.

The plan comes first: each instance, the image it runs and the one it goes
back to, its wave, or why it is left alone: never reset by the run, its
reset failed or is unknown, reset again since by another request, already
back on its previous image, or on a third image. Then a confirmation naming
the account, then the run. Rolling back again resets nothing: every
instance is then back on its previous image.

WARNING: ` + dataWarning + `.`,
		Example: `  batchreset rollback --jobs fleet.csv
  batchreset rollback --database-url "$DATABASE_URL" --run nightly --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := o.settings(time.Now(), osEnv)
			if err != nil {
				return err
			}
			return a.runRollback(cmd.Context(), s, false)
		},
	}
	o.add(cmd.Flags())
	return cmd
}

// rollbackOf returns where the rollback of the run of src is recorded: in
// CSV mode its jobs file and results, in Postgres mode its run.
func rollbackOf(src sourceFlags) sourceFlags {
	if src.jobsPath != "" {
		out := src.outPath
		if out == "" {
			out = defaultResults(src.jobsPath)
		}
		base := strings.TrimSuffix(out, ".csv")
		return sourceFlags{jobsPath: base + ".rollback.jobs.csv", outPath: base + ".rollback.csv", parent: describeSource(src)}
	}
	return sourceFlags{databaseURL: src.databaseURL, runName: src.runName + "-rollback", parent: describeSource(src)}
}

// runRollback plans the rollback of the run of s, asks (unless auto: the
// run's --on-failure rollback decided it, or --yes), and runs it. An
// earlier rollback of the run that did not finish is resumed first.
func (a *app) runRollback(ctx context.Context, s runSettings, auto bool) error {
	if s.api.emulate {
		return usageError("rollback needs the cloud the run reset: --emulate would start a new emulator (give --endpoint)")
	}
	if len(s.accounts.defs) > 0 {
		return usageError("--account: rollback reads the previous images with one credential; roll back each account's jobs with its own (--profile or --role-arn)")
	}
	cred, err := a.credential(s.api)
	if err != nil {
		return err
	}
	rb := rollbackOf(s.src)
	rs := s
	rs.src, rs.yes, rs.sel = rb, true, nil
	if rs.reportPath != "" {
		// Beside the run's own report, never over it.
		rs.reportPath = strings.TrimSuffix(rs.reportPath, ".json") + ".rollback.json"
	}
	if rs.rollout.onFailure == runner.FailRollback {
		rs.rollout.onFailure = runner.FailPause // a rollback is never rolled back by itself
	}
	if auto {
		// Decided before the run began: every instance goes back, in the
		// run's waves, whatever fails; the failures are reported.
		rs.rollout.approve, rs.rollout.canary = runner.ApproveNone, 0
		rs.rollout.maxFailures, rs.rollout.onFailure = "none", runner.FailStop
	}
	if unfinished, err := a.rollbackUnfinished(ctx, rb); err != nil || unfinished {
		if err == nil {
			a.notef("rollback: resuming the unfinished rollback %s", describeSource(rb))
			err = a.runRun(ctx, rs)
		}
		return err
	}

	jobs, waves, err := a.rolledBackJobs(ctx, s, auto)
	if err != nil {
		return err
	}
	conn, err := a.connect(ctx, s.api, cred, nil, s.runner.Workers)
	if err != nil {
		return err
	}
	cloud, err := runner.NewCloud(runner.CloudConfig{API: conn.reads, DescribeRate: s.runner.DescribeRate, Rate: s.runner.Rate, Shared: conn.limits(nil)})
	if err != nil {
		conn.Close()
		return usageError("%v", err)
	}
	now, err := runner.DescribeForRollback(ctx, cloud, jobs)
	account := conn.identity.String()
	conn.Close()
	if err != nil {
		return &exitError{code: exitFatal, err: fmt.Errorf("rollback: %w", err)}
	}
	steps := runner.PlanRollback(jobs, waves, now)
	var todo []store.Job
	for _, st := range steps {
		if st.Reset {
			todo = append(todo, st.RollbackJob())
		}
	}
	writeRollbackPlan(a.stdout, steps, len(todo))
	if len(todo) == 0 {
		fmt.Fprintln(a.stdout, "nothing to roll back")
		return nil
	}
	if !auto {
		if err := a.confirm(s.yes, fmt.Sprintf("roll back %d instance(s) of %s in account %s to their previous images (%s)", len(todo), describeSource(s.src), account, dataWarning)); err != nil {
			return err
		}
	}
	if err := a.createRollback(ctx, s.src, rb, todo); err != nil {
		return err
	}
	a.notef("rollback: %d instance(s) back to their previous images, recorded in %s", len(todo), describeSource(rb))
	return a.runRun(ctx, rs)
}

// describeSource names a run in messages.
func describeSource(src sourceFlags) string {
	if src.jobsPath != "" {
		out := src.outPath
		if out == "" {
			out = defaultResults(src.jobsPath)
		}
		return out
	}
	return "run " + src.runName
}

// rolledBackJobs returns the jobs of the run of s and, in Postgres mode,
// their waves (from 1). The run must have ended or stopped: nothing of it in
// flight. With auto (the run's own --on-failure rollback, whose other
// runners may still track resets), it waits for the run's resets in flight
// to end.
func (a *app) rolledBackJobs(ctx context.Context, s runSettings, auto bool) ([]store.Job, map[int64]int, error) {
	for {
		src, err := a.openSource(ctx, s.src, false, false, s.leaseTTL)
		if err != nil {
			if errors.Is(err, store.ErrLocked) {
				return nil, nil, usageError("rollback: a process is running %s: a rollback is for a run that has ended or stopped", describeSource(s.src))
			}
			return nil, nil, err
		}
		if state, none := src.NoState(); none {
			src.Close()
			return nil, nil, usageError("nothing to roll back: no state file %s", state)
		}
		jobs, err := src.Jobs(ctx)
		var waves map[int64]int
		if db := src.DB(); err == nil && db != nil {
			var w map[int64]int
			if w, err = db.Waves(ctx, s.src.runName); err == nil {
				waves = make(map[int64]int, len(w))
				for id, n := range w {
					waves[id] = n + 1
				}
			}
		}
		src.Close()
		if err != nil {
			return nil, nil, &exitError{code: exitFatal, err: err}
		}
		inFlight := 0
		for _, j := range jobs {
			if j.Status == store.StatusSubmitting || j.Status == store.StatusSubmitted {
				inFlight++
			}
		}
		switch {
		case inFlight == 0:
			return jobs, waves, nil
		case !auto:
			return nil, nil, usageError("rollback: %d reset(s) of %s are still in flight: a rollback is for a run that has ended or stopped", inFlight, describeSource(s.src))
		case !a.trackedElsewhere(ctx, s.src):
			// Nobody tracks them (a runner died): waiting would never end.
			return nil, nil, &exitError{code: exitFailures, err: fmt.Errorf("rollback: %d reset(s) of %s are in flight and no runner tracks them: rerun the run to settle them, then run batchreset rollback", inFlight, describeSource(s.src))}
		}
		a.notef("rollback: waiting for %d reset(s) of the run still in flight", inFlight)
		select {
		case <-ctx.Done():
			return nil, nil, &exitError{code: exitInterrupt}
		case <-time.After(s.runner.PollInterval):
		}
	}
}

// trackedElsewhere reports whether a live runner of the Postgres run of src
// holds some of its unfinished jobs, and so tracks its resets in flight.
func (a *app) trackedElsewhere(ctx context.Context, src sourceFlags) bool {
	if src.jobsPath != "" {
		return false
	}
	db, err := openDB(ctx, src.databaseURL, true)
	if err != nil {
		return false
	}
	defer db.Close()
	st, err := db.Status(ctx, src.runName)
	return err == nil && st.Leased > 0
}

// rollbackUnfinished reports whether the rollback rb exists and has jobs
// not yet finished.
func (a *app) rollbackUnfinished(ctx context.Context, rb sourceFlags) (bool, error) {
	if rb.jobsPath != "" {
		if _, err := os.Stat(rb.outPath + ".state"); errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
	}
	src, err := a.openSource(ctx, rb, false, false, time.Minute)
	if err != nil {
		var ee *exitError
		if rb.jobsPath == "" && errors.As(err, &ee) && ee.code == exitUsage {
			return false, nil // no such run
		}
		return false, err
	}
	defer src.Close()
	cnt, err := src.Count(ctx)
	if err != nil {
		return false, &exitError{code: exitFatal, err: err}
	}
	return cnt.Unfinished > 0, nil
}

// createRollback records the rollback rb of the run of src with jobs: in
// CSV mode its jobs file, in Postgres mode its run (or, when another runner
// of the run created it first, that one's).
func (a *app) createRollback(ctx context.Context, src, rb sourceFlags, jobs []store.Job) error {
	if rb.jobsPath != "" {
		if _, err := os.Stat(rb.outPath + ".state"); err == nil {
			return usageError("rollback: %s holds an earlier, finished rollback of this run; move %s and %s.* away to roll back again",
				rb.outPath, rb.jobsPath, rb.outPath)
		}
		err := writeAtomic(rb.jobsPath, nil, func(w io.Writer) error { return writeJobsCSV(w, jobs) })
		if err != nil {
			return &exitError{code: exitFatal, err: fmt.Errorf("write the rollback's jobs: %w", err)}
		}
		return nil
	}
	db, err := openDB(ctx, src.databaseURL, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ImportRollback(ctx, src.runName, rb.runName, jobs); err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	return nil
}

// writeJobsCSV writes jobs as a jobs CSV file, in order.
func writeJobsCSV(w io.Writer, jobs []store.Job) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"instance_id", "blueprint_id", "region", "key_ids", "auto_generate_password"})
	for _, j := range jobs {
		auto := ""
		if j.AutoGeneratePassword {
			auto = "true"
		}
		cw.Write([]string{j.InstanceID, j.BlueprintID, j.Region, strings.Join(j.KeyIDs, store.KeyIDSeparator), auto})
	}
	cw.Flush()
	return cw.Error()
}

// writeRollbackPlan prints the plan: the instances to reset back, last
// wave first, then those left alone and why.
func writeRollbackPlan(w io.Writer, steps []runner.RollbackStep, todo int) {
	fmt.Fprintf(w, "rollback plan: %d instance(s) back to their previous images, %d left alone\n", todo, len(steps)-todo)
	fmt.Fprintf(w, "WARNING: %s\n\n", dataWarning)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tREGION\tWAVE\tFROM\tBACK TO\tNOTE")
	for _, st := range steps {
		wave := "-"
		if st.Wave > 0 {
			wave = fmt.Sprint(st.Wave)
		}
		note, to := "reset back", st.Job.PrevBlueprintID
		if !st.Reset {
			note, to = "left alone: "+st.Why, "-"
		}
		from := st.Now
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Job.InstanceID, st.Job.Region, wave, from, orDash(to), note)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
