package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
)

func addDatabaseFlag(fs *pflag.FlagSet, url *string) {
	fs.StringVar(url, "database-url", "", "PostgreSQL URL (env DATABASE_URL)")
}

// openDB opens the database named by url or DATABASE_URL.
func openDB(ctx context.Context, url string, checkSchema bool) (*postgres.Store, error) {
	if url == "" {
		url = os.Getenv("DATABASE_URL")
	}
	if url == "" {
		return nil, usageError("give --database-url URL or set DATABASE_URL")
	}
	db, err := postgres.Open(ctx, url)
	if err != nil {
		return nil, &exitError{code: exitFatal, err: err}
	}
	if checkSchema {
		if err := db.CheckSchema(ctx); err != nil {
			db.Close()
			return nil, &exitError{code: exitFatal, err: err}
		}
	}
	return db, nil
}

func (a *app) migrateCommand() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "migrate --database-url URL",
		Short: "Apply the embedded database migrations (idempotent)",
		Long: `Apply batchreset's schema migrations to the database, under an advisory lock,
so concurrent calls are safe. Running it again on an up-to-date schema does
nothing. The schema is the first one in the URL's search_path.`,
		Example: `  batchreset migrate --database-url postgres://postgres@127.0.0.1:5432/test`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openDB(cmd.Context(), url, false)
			if err != nil {
				return err
			}
			defer db.Close()
			n, v, err := db.MigrateCount(cmd.Context())
			if err != nil {
				return &exitError{code: exitFatal, err: fmt.Errorf("migrate: %w", err)}
			}
			if n == 0 {
				fmt.Fprintf(a.stdout, "schema is up to date at version %d\n", v)
			} else {
				fmt.Fprintf(a.stdout, "applied %s; schema at version %d\n", plural(n, "migration"), v)
			}
			return nil
		},
	}
	addDatabaseFlag(cmd.Flags(), &url)
	return cmd
}

func (a *app) importCommand() *cobra.Command {
	var url, jobsPath, run, region, notBefore string
	var allowUnknownColumns bool
	cmd := &cobra.Command{
		Use:   "import --database-url URL --jobs FILE.csv [--run NAME] [--not-before TIME]",
		Short: "Import a jobs CSV into a Postgres run",
		Long: `Validate a jobs CSV (same rules as CSV mode: every problem is reported with
its line and field, and nothing is imported when any row is invalid), then
insert its rows into the jobs table in one transaction. An instance may appear
once per run.`,
		Example: `  batchreset import --jobs fleet.csv --run nightly-2026-11-27 --not-before 2026-11-28T01:00:00Z`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobsPath == "" {
				return usageError("give --jobs FILE.csv")
			}
			if region == "" {
				region = os.Getenv("TENCENTCLOUD_REGION")
			}
			var nb time.Time
			if notBefore != "" {
				t, err := parseTime(notBefore, time.Now())
				if err != nil {
					return usageError("--not-before: %v", err)
				}
				nb = t
			}
			db, err := openDB(cmd.Context(), url, true)
			if err != nil {
				return err
			}
			defer db.Close()
			// Rows are copied as they are read, in one transaction that
			// a problem anywhere in the file rolls back.
			var readErr error
			rows := func(yield func(store.Job, error) bool) {
				for j, err := range csvstore.ReadEach(jobsPath, csvstore.ReadOptions{DefaultRegion: region, AllowUnknownColumns: allowUnknownColumns}) {
					if err != nil {
						readErr = err
					}
					if !yield(j, err) {
						return
					}
				}
			}
			n, err := db.ImportSeq(cmd.Context(), run, rows, nb)
			if readErr != nil {
				return readErr
			}
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("import %s: %w", jobsPath, err)}
			}
			fmt.Fprintf(a.stdout, "imported %d jobs into run %q\n", n, run)
			return nil
		},
	}
	addDatabaseFlag(cmd.Flags(), &url)
	cmd.Flags().StringVar(&jobsPath, "jobs", "", "jobs CSV file")
	cmd.Flags().StringVar(&run, "run", "default", "run name")
	cmd.Flags().StringVar(&region, "region", "", "region for rows that name none (env TENCENTCLOUD_REGION)")
	addAllowUnknownColumns(cmd.Flags(), &allowUnknownColumns)
	cmd.Flags().StringVar(&notBefore, "not-before", "", "start none of these jobs before this time (RFC 3339, or HH:MM today in the local time zone)")
	return cmd
}

func (a *app) reportCommand() *cobra.Command {
	var url, run, format, out string
	cmd := &cobra.Command{
		Use:   "report --database-url URL [--run NAME] [--format csv|json] [--out FILE]",
		Short: "Write a Postgres run's per-instance outcomes as CSV or JSON",
		Long: `Write one row per instance of the run. The CSV has the same columns as CSV
mode's results file; JSON adds totals and reset durations.`,
		Example: `  batchreset report --run nightly --format json --out nightly.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "csv" && format != "json" {
				return usageError("--format must be csv or json, not %q", format)
			}
			db, err := openDB(cmd.Context(), url, true)
			if err != nil {
				return err
			}
			defer db.Close()
			err = writeRunReport(cmd.Context(), &dbSource{db: db, run: run}, format, out, a.stdout)
			if errors.Is(err, store.ErrNotFound) {
				return usageError("run %q does not exist", run)
			}
			if err != nil {
				return &exitError{code: exitFatal, err: err}
			}
			return nil
		},
	}
	addDatabaseFlag(cmd.Flags(), &url)
	cmd.Flags().StringVar(&run, "run", "default", "run name")
	cmd.Flags().StringVar(&format, "format", "csv", "csv or json")
	cmd.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	return cmd
}

func (a *app) controlCommand(verb, short string) *cobra.Command {
	var url, run, jobs, out, region string
	var retryFailed bool
	control := map[string]store.Control{"pause": store.ControlPaused, "resume": store.ControlRunning, "cancel": store.ControlCancelled}[verb]
	long := short + `.

Every runner working the run sees it within one poll interval; in CSV mode
(--jobs) the control is kept beside the run's state file (OUT.state.control),
so that it holds for the process running the run, for the next one, and
for cron's next tick. A reset already sent is never interrupted: it cannot
be undone, so it is tracked to its end.`
	if verb == "resume" {
		long += `

A run paused by its failure budget (--on-failure pause) goes on past the
failures: its budget counts anew. With --retry-failed the instances whose
reset failed (those the cloud shows were not reset, as retry decides) are
sent once more. A run waiting for approval ("approval of wave 2") is
approved: the next wave starts.`
	}
	cmd := &cobra.Command{
		Use:     verb + " (--jobs FILE.csv [--out OUT] | --database-url URL --run NAME)",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  batchreset %s --run nightly\n  batchreset %s --jobs fleet.csv", verb, verb),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if jobs != "" {
				if cmd.Flags().Changed("database-url") || cmd.Flags().Changed("run") {
					return usageError("give --jobs (CSV mode) or --database-url and --run (Postgres mode), not both")
				}
				if out == "" {
					out = defaultResults(jobs)
				}
				state := out + ".state"
				if _, err := os.Stat(state); err != nil {
					return usageError("no run of %s to %s: %s does not exist (give --out if the results are elsewhere)", jobs, verb, state)
				}
				if retryFailed {
					if err := a.requeueFailed(ctx, sourceFlags{jobsPath: jobs, outPath: out, region: region}); err != nil {
						return err
					}
				}
				h, err := csvstore.UpdateHold(state, func(h *store.RunHold) { h.Set(control) })
				if err != nil {
					return &exitError{code: exitFatal, err: err}
				}
				fmt.Fprintf(a.stdout, "run of %s: %s\n", jobs, h.Control)
				return nil
			}
			if !cmd.Flags().Changed("run") {
				return usageError("give --run NAME (Postgres mode) or --jobs FILE (CSV mode)")
			}
			if retryFailed {
				if err := a.requeueFailed(ctx, sourceFlags{databaseURL: url, runName: run}); err != nil {
					return err
				}
			}
			db, err := openDB(ctx, url, true)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.SetControl(ctx, run, control); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return usageError("run %q does not exist", run)
				}
				return &exitError{code: exitFatal, err: err}
			}
			fmt.Fprintf(a.stdout, "run %s: %s\n", run, control)
			return nil
		},
	}
	addDatabaseFlag(cmd.Flags(), &url)
	cmd.Flags().StringVar(&run, "run", "", "run name (Postgres mode)")
	cmd.Flags().StringVar(&jobs, "jobs", "", "the jobs CSV file of the run (CSV mode)")
	cmd.Flags().StringVar(&out, "out", "", "its results CSV (CSV mode; default results.csv beside the jobs)")
	if verb == "resume" {
		cmd.Flags().StringVar(&region, "region", "", "with --retry-failed in CSV mode: the region the run gave rows that name none")
		cmd.Flags().BoolVar(&retryFailed, "retry-failed", false, "send the failed instances once more (those the cloud shows were not reset); without it the run goes on past them")
	}
	return cmd
}

// requeueFailed makes the failed jobs of the paused run of src pending
// again, as `retry --only failed` does, for `resume --retry-failed`. A
// CSV run must not be held by a process meanwhile.
func (a *app) requeueFailed(ctx context.Context, src sourceFlags) error {
	if src.databaseURL == "" && src.jobsPath == "" {
		src.databaseURL = os.Getenv("DATABASE_URL")
	}
	n, err := a.requeue(ctx, runSettings{src: src, yes: true, leaseTTL: time.Minute}, retryKinds{failed: true})
	if errors.Is(err, store.ErrLocked) {
		return usageError("--retry-failed: a process is running the run of %s: stop it first (Ctrl-C), or resume without --retry-failed", src.jobsPath)
	}
	if err != nil {
		return err
	}
	a.notef("resume: %d failed instance(s) will be sent once more", n)
	return nil
}
