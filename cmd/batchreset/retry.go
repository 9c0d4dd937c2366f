package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

func (a *app) retryCommand() *cobra.Command {
	o := &runFlags{}
	var only string
	cmd := &cobra.Command{
		Use:   "retry (--jobs FILE.csv | --database-url URL) [--only failed,skipped] [flags]",
		Short: "Send again the failed and skipped instances of a finished run",
		Long: `Make the jobs of a finished run that ended failed, or were skipped by the
failure budget, the maintenance window, a cancel or an interrupt, pending
again, then run them as run does, with the same safety and rollout flags.

retry never sends again a job whose reset may have landed: unknown outcomes
(run reconcile first: a reset it proves never applied becomes failed, code
NotApplied, and retry takes it), instances reset by another process
(ResetByOther, ResetTwice), preflight skips, resets that reported success on
another image (BlueprintMismatch), successes, and anything still in flight.
A cancelled run is set running again when skipped jobs are retried.`,
		Example: `  batchreset retry --jobs fleet.csv --max-failures 2%
  batchreset retry --jobs fleet.csv --only failed
  batchreset retry --database-url "$DATABASE_URL" --run nightly --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := parseRetryKinds(only)
			if err != nil {
				return err
			}
			s, err := o.settings(time.Now(), osEnv)
			if err != nil {
				return err
			}
			return a.runRetry(cmd.Context(), s, k)
		},
	}
	o.add(cmd.Flags())
	cmd.Flags().StringVar(&only, "only", "failed,skipped", "which finished jobs to send again: failed, skipped, or both")
	return cmd
}

// retryKinds choose which finished jobs `retry` sends again (--only).
type retryKinds struct{ failed, skipped bool }

// retryAll is retry's default: failed and skipped jobs.
var retryAll = retryKinds{failed: true, skipped: true}

func parseRetryKinds(s string) (retryKinds, error) {
	var k retryKinds
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "failed":
			k.failed = true
		case "skipped":
			k.skipped = true
		default:
			return k, usageError("--only: %q is neither failed nor skipped", f)
		}
	}
	return k, nil
}

// retryable reports whether retry may send j again: j ended failed (the
// cloud refused the reset, ran it to FAILED, or reconcile proved it never
// took effect: runner.CodeNotApplied), or was skipped by a rollout rule (the
// failure budget, the window, a cancel, an interrupted run: the skips with
// no code). Never a job whose reset may have landed: unknown (reconcile it
// first), skipped because another process reset the instance
// (runner.CodeResetByOther), a preflight skip (the instance cannot be
// reset), a reset that reported success on the wrong image
// (BlueprintMismatch), succeeded, unhealthy, or anything in flight.
func retryable(j store.Job, k retryKinds) bool {
	switch j.Status {
	case store.StatusFailed:
		return k.failed && j.ErrorCode != runner.CodeBlueprintMismatch
	case store.StatusSkipped:
		return k.skipped && j.ErrorCode == ""
	}
	return false
}

// runRetry confirms, makes the chosen jobs pending again, then runs.
func (a *app) runRetry(ctx context.Context, s runSettings, k retryKinds) error {
	if len(s.accounts.defs) == 0 {
		if _, err := a.credential(s.api); err != nil {
			return err // before anything is written
		}
	}
	n, err := a.requeue(ctx, s, k)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(a.stdout, "nothing to retry: no job ended failed or skipped by a rollout rule")
		return nil
	}
	a.notef("retry: %d job(s) made pending again", n)
	s.yes = true // confirmed by requeue
	return a.runRun(ctx, s)
}

// requeue makes the retryable jobs of the source pending again, once the
// operator has confirmed, and returns how many it changed.
func (a *app) requeue(ctx context.Context, s runSettings, k retryKinds) (int, error) {
	csvMode := s.src.jobsPath != ""
	src, err := a.openSource(ctx, s.src, csvMode, false, s.leaseTTL)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	if state, none := src.NoState(); none {
		return 0, usageError("nothing to retry: no state file %s; run it first", state)
	}
	// Only the failed and skipped jobs are held, the only ones retryable.
	candidates, err := src.Stored(ctx, store.StatusFailed, store.StatusSkipped)
	if err != nil {
		return 0, &exitError{code: exitFatal, err: err}
	}
	var chosen []store.Job
	for _, j := range candidates {
		if retryable(j, k) {
			chosen = append(chosen, j)
		}
	}
	if len(chosen) == 0 {
		return 0, nil
	}
	if !s.api.emulate {
		if err := a.confirm(s.yes, fmt.Sprintf("send %d instance(s) of %s again (retry)", len(chosen), src.Describe())); err != nil {
			return 0, err
		}
	}
	n, uncancelled, err := src.Requeue(ctx, chosen, k.skipped)
	if err != nil {
		return n, &exitError{code: exitFatal, err: err}
	}
	if uncancelled {
		a.notef("%s was cancelled: set running again for the retry", src.Describe())
	}
	return n, nil
}
