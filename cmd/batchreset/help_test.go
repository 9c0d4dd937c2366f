package main

import (
	"slices"
	"strings"
	"testing"
)

// TestRunHelpGroups: run --help lists its flags in sections, each flag in
// its own, none left over, and ends with every exit code.
func TestRunHelpGroups(t *testing.T) {
	t.Parallel()
	res := batchreset(t, "run", "--help")
	if res.code != exitOK {
		t.Fatalf("run --help: exit %d, stderr %q", res.code, res.stderr)
	}
	out := res.stdout
	// Each section, in order, with a flag of it between its title and the next.
	sections := []struct{ title, flag string }{
		{"Selection (which instances) flags:", "--jobs string"},
		{"Login (what each reset sets) flags:", "--key-ids"},
		{"Rollout flags:", "--window-end string"},
		{"Health flags:", "--health string"},
		{"Safety flags:", "--yes"},
		{"API and pace flags:", "--site string"},
		{"Output flags:", "--notify-format string"},
		{"Emulator flags:", "--emulate-failure-rate"},
		{"Help flags:", "--help"},
		{"Global Flags:", "--log-format string"},
		{"Exit codes:", ""},
	}
	at := 0
	for i, s := range sections {
		j := strings.Index(out[at:], "\n"+s.title+"\n")
		if j < 0 {
			t.Fatalf("run --help lacks %q after the previous section:\n%s", s.title, out)
		}
		at += j + 1
		if s.flag == "" {
			continue
		}
		end := len(out)
		if i+1 < len(sections) {
			end = at + strings.Index(out[at:], "\n"+sections[i+1].title+"\n")
		}
		if !strings.Contains(out[at:end], s.flag) {
			t.Errorf("section %q lacks %s:\n%s", s.title, s.flag, out[at:end])
		}
	}
	if strings.Contains(out, "Other flags:") {
		t.Errorf("run --help has flags of no section (add them to flagGroups):\n%s", out)
	}
	codes := out[strings.Index(out, "\nExit codes:\n"):]
	for _, want := range []string{"\n  0    success", "\n  1    some instance failed", "\n  2    usage", "\n  3    fatal", "\n  130  interrupted", "\n  143  stopped by SIGTERM"} {
		if !strings.Contains(codes, want) {
			t.Errorf("exit codes lack %q:\n%s", want, codes)
		}
	}
}

// TestUnknownFlagSuggestions: an unknown flag or command is a usage error
// naming what was likely meant; one like nothing known names nothing.
func TestUnknownFlagSuggestions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string // "" for no suggestion
	}{
		{[]string{"run", "--jobs", "j.csv", "--windw-end", "05:00"}, "\n\nDid you mean this?\n\t--window-end\n"},
		{[]string{"run", "--max-failure=5%"}, "Did you mean this?\n\t--max-failures\n"},
		{[]string{"run", "--yse"}, "Did you mean this?\n\t--yes\n"},                                  // two letters swapped
		{[]string{"status", "--outptu", "json"}, "Did you mean this?\n\t--output\n"},                 // a command's own flags
		{[]string{"plan", "--log-fromat", "json"}, "Did you mean this?\n\t--log-format\n"},           // inherited ones too
		{[]string{"run", "--notify-sec", "x"}, "Did you mean this?\n\t--notify-secret-file\n"},       // a prefix
		{[]string{"rn"}, "unknown command \"rn\" for \"batchreset\"\n\nDid you mean this?\n\trun\n"}, // commands: cobra's
		{[]string{"run", "--frobnicate"}, ""},
	} {
		res := batchreset(t, tc.args...)
		if res.code != exitUsage {
			t.Errorf("batchreset %q: exit %d, want %d", tc.args, res.code, exitUsage)
		}
		switch {
		case tc.want == "" && strings.Contains(res.stderr, "Did you mean"):
			t.Errorf("batchreset %q suggests something for a flag like none:\n%s", tc.args, res.stderr)
		case tc.want != "" && !strings.Contains(res.stderr, tc.want):
			t.Errorf("batchreset %q: stderr %q, want it to contain %q", tc.args, res.stderr, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"yes", "yes", 0}, {"", "abc", 3}, {"yse", "yes", 1}, {"windw-end", "window-end", 1},
		{"kitten", "sitting", 3}, {"outptu", "output", 1}, {"ca", "abc", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestFlagCompletion: shell completion offers the values of the enumerated
// flags, through cobra's __complete, as the shells call it.
func TestFlagCompletion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--log-format", ""}, []string{"text", "json", ":4"}},
		{[]string{"status", "--log-level", ""}, []string{"debug", "info", "warn", "error", ":4"}},
		{[]string{"run", "--notify-format", ""}, []string{"json", "slack", ":4"}},
		{[]string{"run", "--health", ""}, []string{"none", "agent", "command:", ":6"}},
		{[]string{"retry", "--max-failures", ""}, []string{"none", "0", "1", "1%", "2%", "5%", "10%", ":4"}},
		{[]string{"plan", "--site", ""}, []string{"cn", "intl", ":4"}},
		{[]string{"report", "--format", ""}, []string{"csv", "json", ":4"}},
	} {
		res := batchreset(t, append([]string{"__complete"}, tc.args...)...)
		if got := strings.Split(strings.TrimSpace(res.stdout), "\n"); res.code != exitOK || !slices.Equal(got, tc.want) {
			t.Errorf("__complete %q: exit %d, %q; want %q", tc.args, res.code, got, tc.want)
		}
	}
}
