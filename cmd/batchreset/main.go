// Command batchreset reinstalls (resets) Tencent Cloud Lighthouse instances
// fleet-wide, at the API's rate limit, tracking every reset to its end.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	_ "time/tzdata" // zone names in --window-end on hosts without a zoneinfo database

	"github.com/spf13/cobra"

	"github.com/batchreset/batchreset/lighthouse"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// Exit codes; the README lists them.
const (
	exitOK        = 0   // every instance succeeded (or nothing was due)
	exitFailures  = 1   // some instance failed, is unknown, or was skipped
	exitUsage     = 2   // invalid input or usage
	exitFatal     = 3   // a fatal error stopped the run (credentials, permission, database)
	exitPaused    = 4   // the run is paused, waiting for a person (resume or cancel)
	exitInterrupt = 130 // interrupted by SIGINT (Ctrl-C): 128 + 2
	exitTerm      = 143 // stopped by SIGTERM: 128 + 15
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitError carries an exit code chosen by a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if ee, ok := errors.AsType[*exitError](err); ok && ee.err == nil {
		return code // the command already said what happened
	}
	app.fatalf(code, strings.TrimSpace(err.Error()))
	return code
}

// exitCode maps an error to the process exit code, in one place.
func exitCode(err error) int {
	if ee, ok := errors.AsType[*exitError](err); ok {
		return ee.code
	}
	if _, ok := errors.AsType[csvstore.Errors](err); ok {
		return exitUsage
	}
	if ae, ok := errors.AsType[*lighthouse.APIError](err); ok && ae.Class == lighthouse.ClassFatal {
		return exitFatal
	}
	if errors.Is(err, context.Canceled) {
		return exitInterrupt
	}
	// Flag errors come wrapped as usage errors (SetFlagErrorFunc); the one
	// error cobra makes itself is an unknown command or a stray argument
	// (cobra.NoArgs says "unknown command" too).
	if strings.Contains(err.Error(), "unknown command") {
		return exitUsage
	}
	return exitFatal
}

// app holds what every command shares: the I/O streams and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	logFormat string
	logLevel  string
	quiet     bool
	log       *slog.Logger
	// progressLog writes progress lines: info whatever --log-level says.
	progressLog *slog.Logger
	sayLog      *slog.Logger // what the operator must see, whatever the level
	runnerID    string       // names this process in logs and in the runs it works
	runName     string       // the run the command works on: jobs file or run name
}

func (a *app) rootCommand() *cobra.Command {
	build := readBuildInfo()
	root := &cobra.Command{
		Use:   "batchreset",
		Short: "Reset (reinstall) Tencent Cloud Lighthouse instances fleet-wide, safely",
		Long: `batchreset reinstalls Lighthouse instances from a CSV file or a Postgres table.

A reset FORMATS THE SYSTEM DISK. batchreset calls ResetInstance at most at the
API's rate limit, follows every asynchronous reset to its end, never sends a
reset twice unless the first is proven not to have happened, and records one
outcome per instance.

Try it with no cloud account (a built-in emulator):
  batchreset run --jobs jobs.example.csv --emulate --yes`,
		Version:       build.version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setupLogging(cmd)
		},
	}
	root.SetVersionTemplate(build.String())
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error (progress shows whatever the level)")
	root.PersistentFlags().BoolVarP(&a.quiet, "quiet", "q", false, "print the summary and errors only: no progress, no warnings")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		a.runCommand(),
		a.retryCommand(),
		a.planCommand(),
		a.selectCommand(),
		a.reconcileCommand(),
		a.emulatorCommand(),
		a.migrateCommand(),
		a.importCommand(),
		a.statusCommand(),
		a.runsCommand(),
		a.serveCommand(),
		a.reportCommand(),
		a.controlCommand("pause", "Stop starting new resets in a run (resets in flight are still tracked)"),
		a.controlCommand("resume", "Let a paused run start resets again"),
		a.controlCommand("cancel", "Stop a run for good: no new resets; remaining jobs become skipped"),
		a.rollbackCommand(),
	)
	setUsage(root)
	if err := registerCompletions(root); err != nil {
		panic(err) // a flag registered twice: a programming error every test sees
	}
	return root
}
