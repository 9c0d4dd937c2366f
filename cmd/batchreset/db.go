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
	var url, run string
	control := map[string]store.Control{"pause": store.ControlPaused, "resume": store.ControlRunning, "cancel": store.ControlCancelled}[verb]
	cmd := &cobra.Command{
		Use:   verb + " --database-url URL --run NAME",
		Short: short,
		Long: short + `.

Every runner working the run sees it within one poll interval. A reset already
sent is never interrupted: it cannot be undone, so it is tracked to its end.`,
		Example: fmt.Sprintf("  batchreset %s --run nightly", verb),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("run") {
				return usageError("give --run NAME")
			}
			db, err := openDB(cmd.Context(), url, true)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.SetControl(cmd.Context(), run, control); err != nil {
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
	cmd.Flags().StringVar(&run, "run", "", "run name")
	return cmd
}
