package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// runListing is one run in `batchreset runs`.
type runListing struct {
	Name       string     `json:"name"`
	State      string     `json:"state"`
	Control    string     `json:"control"`
	Jobs       int        `json:"jobs"`
	Unfinished int        `json:"unfinished"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
}

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
			runs, err := db.Runs(cmd.Context())
			if err != nil {
				return &exitError{code: exitFatal, err: err}
			}
			list := make([]runListing, 0, len(runs))
			for _, r := range runs {
				started, err := db.RunStarted(cmd.Context(), r.Name)
				if err != nil {
					return &exitError{code: exitFatal, err: err}
				}
				l := runListing{Name: r.Name, Control: string(r.Control), Jobs: r.Jobs, Unfinished: r.Unfinished,
					CreatedAt: r.CreatedAt.UTC(), StartedAt: timePtr(started)}
				l.State = runState(started, r.Unfinished, string(r.Control))
				list = append(list, l)
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
