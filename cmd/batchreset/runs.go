package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) runsCommand() *cobra.Command {
	var url, output string
	cmd := &cobra.Command{
		Use:     "runs --database-url URL [--output text|json]",
		Short:   "List the runs of a database with their state and job counts",
		Example: `  batchreset runs --database-url "$DATABASE_URL"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError("--output must be text or json, not %q", output)
			}
			db, err := openDB(cmd.Context(), url, true)
			if err != nil {
				return err
			}
			defer db.Close()
			list, err := runListings(cmd.Context(), db)
			if err != nil {
				return &exitError{code: exitFatal, err: err}
			}
			if output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			if len(list) == 0 {
				fmt.Fprintln(a.stdout, "no runs: import jobs with `batchreset import --run NAME`")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tSTATE\tJOBS\tUNFINISHED\tCREATED\tSTARTED")
			for _, l := range list {
				startedAt := "-"
				if l.StartedAt != nil {
					startedAt = l.StartedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", l.Name, l.State, l.Jobs, l.Unfinished, l.CreatedAt.Format(time.RFC3339), startedAt)
			}
			return tw.Flush()
		},
	}
	addDatabaseFlag(cmd.Flags(), &url)
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	return cmd
}

// runState names a Postgres run's state: not started, finished, or its
// control (running, paused, cancelled).
func runState(started time.Time, unfinished int, control string) string {
	switch {
	case started.IsZero():
		return stateNotStarted
	case unfinished == 0:
		return stateFinished
	}
	return control
}
