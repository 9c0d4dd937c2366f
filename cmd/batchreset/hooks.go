package main

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
)

// hookFlags are `run`'s lifecycle hooks around each reset.
type hookFlags struct {
	before, after string
	timeout       time.Duration
	failure       string
	concurrency   int
}

func (o *hookFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&o.before, "before-reset", "", "take each instance out of service before its reset: exec:FILE (a local executable, run once per instance with BATCHRESET_* variables) or tat:FILE (a script run on the instance through TAT; .ps1 PowerShell, .bat batch, else shell); exit 0 means done. Hooks must be idempotent")
	fs.StringVar(&o.after, "after-reset", "", "put each instance back after its reset and health check, or (phase restore) when it was taken out and not reset: exec:FILE or tat:FILE")
	fs.DurationVar(&o.timeout, "hook-timeout", runner.DefaultHookTimeout, "how long one hook may run before it counts as failed")
	fs.StringVar(&o.failure, "hook-failure", string(runner.HookAbandon), "abandon: an instance whose before-hook fails is not reset (skipped, BeforeHookFailed, counted against --max-failures) and one whose after-hook fails ends unhealthy (AfterHookFailed); continue: log it and go on")
	fs.IntVar(&o.concurrency, "hook-concurrency", runner.DefaultHookConcurrency, "before-hooks running at once (and after-hooks): at least --rate times a hook's duration keeps the resets at the rate")
}

// resolve returns the Hooks of the flags, reading tat: scripts and checking
// exec: files.
func (o *hookFlags) resolve() (runner.Hooks, error) {
	h := runner.Hooks{Timeout: o.timeout, Failure: runner.HookFailure(o.failure), Concurrency: o.concurrency}
	if o.timeout <= 0 {
		return h, usageError("--hook-timeout must be positive, not %s", o.timeout)
	}
	if o.concurrency < 1 {
		return h, usageError("--hook-concurrency must be at least 1, not %d", o.concurrency)
	}
	if h.Failure != runner.HookAbandon && h.Failure != runner.HookContinue {
		return h, usageError("--hook-failure %q: want abandon or continue", o.failure)
	}
	var err error
	if h.Before, err = parseHook("--before-reset", o.before); err != nil {
		return h, err
	}
	if h.After, err = parseHook("--after-reset", o.after); err != nil {
		return h, err
	}
	if h.Timeout > lighthouse.MaxCommandTimeout && (h.Before != nil && h.Before.Kind == runner.HookTAT || h.After != nil && h.After.Kind == runner.HookTAT) {
		return h, usageError("--hook-timeout %s is longer than TAT's longest command timeout, %s", h.Timeout, lighthouse.MaxCommandTimeout)
	}
	return h, nil
}

// parseHook reads one hook flag: "" for none, exec:FILE or tat:FILE.
func parseHook(flag, v string) (*runner.Hook, error) {
	if v == "" {
		return nil, nil
	}
	kind, file, _ := strings.Cut(v, ":")
	if file == "" {
		return nil, usageError("%s %q: want exec:FILE or tat:FILE", flag, v)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, usageError("%s: %v", flag, err)
	}
	spec := kind + ":" + abs
	switch runner.HookKind(kind) {
	case runner.HookExec:
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, usageError("%s: %v", flag, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return nil, usageError("%s: %s is not an executable file", flag, file)
		}
		return &runner.Hook{Kind: runner.HookExec, Spec: spec, Path: abs}, nil
	case runner.HookTAT:
		// RunCommand takes at most 64 KB of base64, 3 bytes in 4.
		b, err := readSmallFile(file, lighthouse.MaxCommandContent/4*3)
		if err != nil {
			return nil, usageError("%s: %v", flag, err)
		}
		if strings.TrimSpace(string(b)) == "" {
			return nil, usageError("%s: %s is empty", flag, file)
		}
		return &runner.Hook{Kind: runner.HookTAT, Spec: spec, Script: b, CommandType: commandType(file)}, nil
	}
	return nil, usageError("%s %q: want exec:FILE or tat:FILE", flag, v)
}
