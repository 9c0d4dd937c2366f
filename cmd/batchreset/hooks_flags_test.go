package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// TestHookFlags maps the hook flags to runner.Hooks: exec: needs an
// executable file, tat: a script that is not empty; everything else is a
// usage error naming the flag.
func TestHookFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	exe := filepath.Join(dir, "drain.sh")
	plain := filepath.Join(dir, "notes.txt")
	ps1 := filepath.Join(dir, "drain.ps1")
	empty := filepath.Join(dir, "empty.sh")
	for path, mode := range map[string]os.FileMode{exe: 0o755, plain: 0o644, ps1: 0o644, empty: 0o644} {
		content := "echo drain\n"
		if path == empty {
			content = " \n"
		}
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(t *testing.T, h runner.Hooks)
		wantErr string
	}{
		{name: "None", check: func(t *testing.T, h runner.Hooks) {
			if h.Before != nil || h.After != nil || h.Failure != runner.HookAbandon || h.Timeout != runner.DefaultHookTimeout ||
				h.Concurrency != runner.DefaultHookConcurrency {
				t.Errorf("hooks = %+v, want none with the defaults", h)
			}
		}},
		{name: "Exec", args: []string{"--before-reset", "exec:" + exe, "--after-reset", "exec:" + exe, "--hook-failure", "continue"},
			check: func(t *testing.T, h runner.Hooks) {
				if h.Before == nil || h.Before.Kind != runner.HookExec || h.Before.Path != exe || h.After == nil || h.Failure != runner.HookContinue {
					t.Errorf("hooks = %+v", h)
				}
				// The run's record keeps the specs, never the files' contents.
				want := store.HookSettings{Before: "exec:" + exe, After: "exec:" + exe, Timeout: runner.DefaultHookTimeout,
					Failure: "continue", Concurrency: runner.DefaultHookConcurrency}
				if got := h.Settings(); got != want {
					t.Errorf("Settings() = %+v, want %+v", got, want)
				}
			}},
		{name: "TATPowerShell", args: []string{"--before-reset", "tat:" + ps1}, check: func(t *testing.T, h runner.Hooks) {
			if h.Before == nil || h.Before.Kind != runner.HookTAT || h.Before.CommandType != lighthouse.CommandPowerShell || string(h.Before.Script) != "echo drain\n" {
				t.Errorf("before = %+v", h.Before)
			}
		}},
		{name: "NotExecutable", args: []string{"--before-reset", "exec:" + plain}, wantErr: "--before-reset: " + plain + " is not an executable file"},
		{name: "Missing", args: []string{"--after-reset", "exec:" + filepath.Join(dir, "nope")}, wantErr: "--after-reset"},
		{name: "EmptyScript", args: []string{"--before-reset", "tat:" + empty}, wantErr: "is empty"},
		{name: "NoKind", args: []string{"--before-reset", exe}, wantErr: "want exec:FILE or tat:FILE"},
		{name: "UnknownKind", args: []string{"--before-reset", "ssh:" + exe}, wantErr: "want exec:FILE or tat:FILE"},
		{name: "BadPolicy", args: []string{"--hook-failure", "ignore"}, wantErr: "--hook-failure"},
		{name: "ZeroTimeout", args: []string{"--hook-timeout", "0s"}, wantErr: "--hook-timeout must be positive"},
		{name: "ZeroConcurrency", args: []string{"--hook-concurrency", "0"}, wantErr: "--hook-concurrency"},
		{name: "TATTimeoutTooLong", args: []string{"--before-reset", "tat:" + ps1, "--hook-timeout", "25h"}, wantErr: "longest command timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o hookFlags
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			o.add(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			h, err := o.resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("resolve() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, h)
		})
	}
}
