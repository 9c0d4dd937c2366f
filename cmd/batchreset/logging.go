package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/batchreset/batchreset/runner"
)

// setupLogging builds the command's loggers from the global flags: a.log
// for everything at --log-level, and a.progressLog for progress lines,
// which show at info whatever --log-level says (a quieter level hides
// per-instance detail, not the run's progress); --quiet keeps errors
// only, and no progress. Every record names the run and this runner.
func (a *app) setupLogging(cmd *cobra.Command) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usageError("--log-level: %v", err)
	}
	if a.quiet {
		level = max(level, slog.LevelError)
	}
	if a.logFormat != "text" && a.logFormat != "json" {
		return usageError("--log-format must be text or json, not %q", a.logFormat)
	}
	w := a.stderr
	if isTerminal(w) {
		w = clearLine{w}
	}
	if a.runnerID == "" {
		host, _ := os.Hostname()
		a.runnerID = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), randomHex(4))
	}
	attrs := []slog.Attr{slog.String("runner", a.runnerID)}
	a.runName = runLabel(cmd)
	if a.runName != "" {
		attrs = append(attrs, slog.String("run", a.runName))
	}
	handler := func(l slog.Level) slog.Handler {
		opts := &slog.HandlerOptions{Level: l, ReplaceAttr: replaceAttr(a.logFormat == "json")}
		if a.logFormat == "json" {
			return slog.NewJSONHandler(w, opts).WithAttrs(attrs)
		}
		return slog.NewTextHandler(w, opts).WithAttrs(attrs)
	}
	a.log = slog.New(handler(level))
	progressLevel := min(level, slog.LevelInfo)
	if a.quiet {
		progressLevel = slog.LevelError + 1
	}
	a.progressLog = slog.New(handler(progressLevel))
	a.sayLog = slog.New(handler(slog.LevelDebug))
	return nil
}

// runLabel names the run a command works on, for its log records: the
// jobs file (CSV mode) or the run's name (Postgres mode); "" for commands
// of no run.
func runLabel(cmd *cobra.Command) string {
	fs := cmd.Flags()
	db := fs.Lookup("database-url")
	if f := fs.Lookup("jobs"); f != nil && f.Value.String() != "" && (db == nil || db.Value.String() == "") {
		return f.Value.String()
	}
	if f := fs.Lookup("run"); f != nil {
		return f.Value.String()
	}
	return ""
}

// replaceAttr writes durations as seconds: in JSON as a number (slog's
// default is integer nanoseconds), in text as Go's "1m30s".
func replaceAttr(json bool) func([]string, slog.Attr) slog.Attr {
	return func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() != slog.KindDuration {
			return a
		}
		d := a.Value.Duration()
		if json {
			return slog.Float64(a.Key, roundTo(d.Seconds(), 3))
		}
		return slog.String(a.Key, d.Round(time.Millisecond).String())
	}
}

// roundTo rounds v to n decimals, so that a JSON number reads as a person
// would write it.
func roundTo(v float64, n int) float64 {
	p := 1.0
	for range n {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}

// notef tells the operator something about the run as a whole, on stderr:
// a line of text, or an info record with --log-format json (stderr holds
// JSON only then). --quiet hides it.
func (a *app) notef(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if a.logFormat == "json" {
		a.progressLog.Info(strings.TrimSpace(msg))
		return
	}
	if a.quiet {
		return
	}
	fmt.Fprintln(a.stderr, msg)
}

// fatalf reports the error that ended the command: a line of text, or an
// error record with --log-format json (one made here if the flags never got
// as far as building the logger).
func (a *app) fatalf(code int, msg string) {
	if a.logFormat != "json" {
		fmt.Fprintf(a.stderr, "batchreset: %s\n", msg)
		return
	}
	l := a.sayLog
	if l == nil {
		l = slog.New(slog.NewJSONHandler(a.stderr, nil))
	}
	l.Error(msg, "exit_code", code)
}

// say tells the operator what happens next after something they did (an
// interrupt), whatever --quiet and --log-level say.
func (a *app) say(msg string) {
	if a.logFormat == "json" {
		a.sayLog.Warn(msg)
		return
	}
	if isTerminal(a.stderr) {
		msg = "\r\x1b[K" + msg // over the progress bar
	}
	fmt.Fprintln(a.stderr, msg)
}

// handleSignals drains the runner on the first SIGINT or SIGTERM and
// cancels everything on the second. Each is echoed once, with what
// happens next. The returned func returns the first signal, nil if none
// came.
func (a *app) handleSignals(ctx context.Context, r *runner.Group, cancel context.CancelFunc) func() os.Signal {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	var got atomic.Value
	go func() {
		defer signal.Stop(ch)
		var sig os.Signal
		select {
		case sig = <-ch:
		case <-ctx.Done():
			return
		}
		got.Store(sig)
		r.Drain()
		a.say(fmt.Sprintf("%s: no new resets; waiting for the %d reset(s) in flight to finish and be recorded. %s again exits at once; rerunning the same command resumes.",
			signalName(sig), r.Stats().Resetting(), signalName(sig)))
		select {
		case sig = <-ch:
			a.say(fmt.Sprintf("%s again: exiting now; resets in flight are left as a rerun resumes them", signalName(sig)))
			cancel()
		case <-ctx.Done():
		}
	}()
	return func() os.Signal {
		sig, _ := got.Load().(os.Signal)
		return sig
	}
}

func signalName(sig os.Signal) string {
	if sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "interrupt (Ctrl-C)"
}

// signalExit is the exit code after sig stopped a command: 128 plus the
// signal's number, as a shell reports it (130 for SIGINT, 143 for SIGTERM).
func signalExit(sig os.Signal) int {
	if sig == syscall.SIGTERM {
		return exitTerm
	}
	return exitInterrupt
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// clearLine erases the terminal line before each log record, so that a log
// line replaces the progress bar drawn there instead of running into it; the
// bar is drawn again below it at its next tick.
type clearLine struct{ w io.Writer }

func (c clearLine) Write(p []byte) (int, error) {
	if _, err := io.WriteString(c.w, "\r\x1b[K"); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
