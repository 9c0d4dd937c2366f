package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

func (a *app) reconcileCommand() *cobra.Command {
	o := &reconcileFlags{}
	cmd := &cobra.Command{
		Use:   "reconcile (--jobs FILE.csv | --database-url URL) [flags]",
		Short: "Settle instances whose outcome is unknown, without sending any reset",
		Long: `Look up every instance whose outcome a run left unknown (a reset that did not
finish within --reset-timeout, or a call whose fate could not be established)
and record what DescribeInstances shows now: a reset that has since finished
becomes succeeded or failed. reconcile never calls ResetInstance.`,
		Example: `  batchreset reconcile --jobs fleet.csv
  batchreset reconcile --database-url postgres://... --run nightly`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runReconcile(cmd.Context(), o)
		},
	}
	o.src.add(cmd.Flags())
	o.api.add(cmd.Flags())
	cmd.Flags().StringVar(&o.src.outPath, "out", "", "results CSV of the run (CSV mode; default results.csv beside the jobs file)")
	cmd.Flags().DurationVar(&o.settleTime, "settle-time", runner.DefaultSettleTime, "how long after a call its absence may be concluded (as for run)")
	cmd.Flags().Float64Var(&o.describeRate, "describe-rate", runner.DefaultDescribeRate, "DescribeInstances calls per second for the whole account")
	return cmd
}

// reconcileFlags are the flags of `reconcile`.
type reconcileFlags struct {
	src          sourceFlags
	api          apiFlags
	settleTime   time.Duration
	describeRate float64
}

func (a *app) runReconcile(ctx context.Context, o *reconcileFlags) error {
	if err := o.src.resolve(osEnv); err != nil {
		return err
	}
	if err := o.api.resolve(osEnv); err != nil {
		return err
	}
	if o.settleTime <= o.api.timeout {
		return usageError("--settle-time (%s) must exceed --request-timeout (%s)", o.settleTime, o.api.timeout)
	}
	if !(o.describeRate > 0) {
		return usageError("--describe-rate must be a positive number of calls per second, not %v", o.describeRate)
	}
	cred, err := a.credential(o.api)
	if err != nil {
		return err
	}
	// reconcile only reads the state the run left: force, so that an
	// existing results file is no obstacle.
	src, err := a.openSource(ctx, o.src, true, true, time.Minute)
	if err != nil {
		return err
	}
	defer src.Close()
	if state, none := src.NoState(); none {
		// No run left a state here: nothing to settle, and writing results
		// would replace a results file with one that knows nothing.
		return usageError("no state file %s: no run of these jobs to reconcile (give the run's --out)", state)
	}
	// Only the unknown and in-flight jobs are held; the built-in emulator
	// is seeded from them all.
	var seed []store.Job
	if o.api.emulate {
		if seed, err = src.Jobs(ctx); err != nil {
			return &exitError{code: exitFatal, err: err}
		}
	}
	jobs, err := src.Stored(ctx, store.StatusUnknown, store.StatusSubmitting, store.StatusSubmitted)
	if err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	conn, err := a.connect(ctx, o.api, cred, seed, 4)
	if err != nil {
		return err
	}
	defer conn.Close()
	cloud, err := conn.cloud(src, runner.DefaultRate, o.describeRate)
	if err != nil {
		return err
	}
	changed, undescribed, err := runner.Reconcile(ctx, cloud, jobs, o.settleTime)
	if err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	src.Started()
	for i := range changed {
		j := &changed[i]
		if err := src.Record(ctx, j); err != nil {
			return &exitError{code: exitFatal, err: fmt.Errorf("record %s: %w", j.InstanceID, err)}
		}
		fmt.Fprintf(a.stdout, "%s: %s %s\n", j.InstanceID, j.Status, j.RequestID)
	}
	if err := src.Finish(ctx); err != nil {
		return err
	}
	inFlight := 0
	for _, j := range jobs {
		if j.Status == store.StatusSubmitting || j.Status == store.StatusSubmitted {
			inFlight++
		}
	}
	fmt.Fprintf(a.stdout, "%d job(s) settled\n", len(changed))
	if undescribed > 0 {
		fmt.Fprintf(a.stdout, "%d unknown job(s) could not be described now; run reconcile again later\n", undescribed)
	}
	if inFlight > 0 {
		fmt.Fprintf(a.stdout, "%d job(s) still in flight in a run: reconcile settles only unknown jobs; the run (or a rerun) tracks these\n", inFlight)
	}
	return nil
}
