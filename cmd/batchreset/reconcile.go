package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/batchreset/batchreset/runner"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

func (a *app) reconcileCommand() *cobra.Command {
	o := &runOptions{}
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
	o.addSourceFlags(cmd.Flags())
	o.addAPIFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.outPath, "out", "", "results CSV of the run (CSV mode; default results.csv beside the jobs file)")
	return cmd
}

func (a *app) runReconcile(ctx context.Context, o *runOptions) error {
	o.force = true // reconcile only reads the state the run left
	src, err := a.openSource(ctx, o, true)
	if err != nil {
		return err
	}
	defer src.closer()
	if src.fresh {
		// No run left a state here: nothing to settle, and writing results
		// would replace a results file with one that knows nothing.
		return usageError("no state file %s.state: no run of these jobs to reconcile (give the run's --out)", src.out)
	}
	client, emu, err := a.connect(ctx, o, src.jobs, 4)
	if err != nil {
		return err
	}
	defer emu.Close()
	changed, err := runner.Reconcile(ctx, client, src.jobs)
	if err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	for i := range changed {
		j := &changed[i]
		if src.csv != nil {
			err = src.csv.Save(ctx, j)
		} else {
			err = src.db.Settle(ctx, j)
		}
		if err != nil {
			return &exitError{code: exitFatal, err: fmt.Errorf("record %s: %w", j.InstanceID, err)}
		}
		fmt.Fprintf(a.stdout, "%s: %s %s\n", j.InstanceID, j.Status, j.RequestID)
	}
	if src.csv != nil {
		if err := csvstore.WriteResultsFile(src.out, resultsView(src.csv.Jobs())); err != nil {
			return &exitError{code: exitFatal, err: err}
		}
	}
	fmt.Fprintf(a.stdout, "%d job(s) settled\n", len(changed))
	return nil
}
