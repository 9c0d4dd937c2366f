package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagGroup is a titled section of a command's help.
type flagGroup struct {
	title string
	names []string // flags of the group
	// prefixes catch the flags of a family (emulate-…, notify-…), so that a
	// flag added to one lands in its section.
	prefixes []string
}

// flagGroups are the sections of a command's flags in --help, in order; a
// flag of none of them is listed under "Other flags".
var flagGroups = []flagGroup{
	{title: "Selection (which instances)", names: []string{"jobs", "database-url", "run", "region", "only",
		"filter", "tag", "exclude", "limit", "same-image", "blueprint-id", "skip-matching", "since", "allow-unknown-columns"}},
	{title: "Login (what each reset sets)", names: []string{"key-ids", "password-file", "auto-generate-password"}},
	{title: "Rollout", names: []string{"max-failures", "max-failures-per-account", "on-failure", "approve", "canary", "waves", "pause-between-waves",
		"window-end", "window", "expected-duration"}},
	{title: "Health", names: []string{"bake"}, prefixes: []string{"health"}},
	{title: "Hooks (out of service around each reset)", names: []string{"before-reset", "after-reset"}, prefixes: []string{"hook-"}},
	{title: "Safety", names: []string{"yes", "force", "no-preflight", "skip-reset-since", "settle-time",
		"reset-timeout", "unreachable-timeout"}},
	{title: "API and pace", names: []string{"endpoint", "site", "profile", "role-arn", "role-session-name", "account",
		"request-timeout", "rate", "describe-rate", "workers", "max-in-flight", "poll-interval", "lease-ttl"}},
	{title: "Output", names: []string{"out", "report", "metrics-addr", "output", "format", "verbose", "summary"},
		prefixes: []string{"notify", "status-"}},
	{title: "Emulator", prefixes: []string{"emulate"}},
}

// The sections after flagGroups': flags of no group, then --help.
var (
	otherSection = len(flagGroups)
	helpSection  = len(flagGroups) + 1
)

// groupOf returns the section of the flag name: its index in flagGroups,
// else otherSection, or helpSection for --help.
func groupOf(name string) int {
	if name == "help" {
		return helpSection
	}
	for i, g := range flagGroups {
		if slices.Contains(g.names, name) || slices.ContainsFunc(g.prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			return i
		}
	}
	return otherSection
}

// groupedFlagUsages is the help's list of cmd's own flags: one section per
// group when they fall in two or more groups, else one "Flags" section.
func groupedFlagUsages(cmd *cobra.Command) string {
	sets := make([]*pflag.FlagSet, helpSection+1)
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		i := groupOf(f.Name)
		if sets[i] == nil {
			sets[i] = pflag.NewFlagSet(flagGroupTitle(i), pflag.ContinueOnError)
			sets[i].SortFlags = false
		}
		sets[i].AddFlag(f)
	})
	groups := 0
	for _, fs := range sets[:otherSection] {
		if fs != nil {
			groups++
		}
	}
	if groups < 2 {
		return "\n\nFlags:\n" + strings.TrimRight(cmd.LocalFlags().FlagUsages(), " \n")
	}
	var b strings.Builder
	for i, fs := range sets {
		if fs != nil {
			fmt.Fprintf(&b, "\n\n%s flags:\n%s", flagGroupTitle(i), strings.TrimRight(fs.FlagUsages(), " \n"))
		}
	}
	return b.String()
}

func flagGroupTitle(i int) string {
	switch i {
	case otherSection:
		return "Other"
	case helpSection:
		return "Help"
	}
	return flagGroups[i].title
}

// exitCodesHelp ends every command's help; the README lists the same codes.
var exitCodesHelp = fmt.Sprintf(`

Exit codes:
  %d    success: every instance succeeded, or nothing was due
  %d    some instance failed, ended unknown or unhealthy, or was skipped
  %d    usage: a flag, an argument or an input file makes no sense
  %d    fatal: credentials, permission, the API unreachable, the database
  %d    paused, waiting for a person: batchreset resume or cancel
  %d  interrupted (Ctrl-C); rerun to resume
  %d  stopped by SIGTERM; rerun to resume`, exitOK, exitFailures, exitUsage, exitFatal, exitPaused, exitInterrupt, exitTerm)

func init() {
	// Once: cobra's template functions are global, and tests build many roots at once.
	cobra.AddTemplateFunc("groupedFlagUsages", groupedFlagUsages)
}

// setUsage makes root's help (and every command's) list the flags in
// groups and end with the exit codes.
func setUsage(root *cobra.Command) {
	const flags = "{{if .HasAvailableLocalFlags}}\n\nFlags:\n{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}"
	tmpl := root.UsageTemplate()
	if !strings.Contains(tmpl, flags) {
		panic("cobra's usage template has no Flags section to group") // a cobra upgrade; TestRunHelpGroups sees it
	}
	tmpl = strings.Replace(tmpl, flags, "{{if .HasAvailableLocalFlags}}{{groupedFlagUsages .}}{{end}}", 1)
	root.SetUsageTemplate(strings.TrimRight(tmpl, "\n") + exitCodesHelp + "\n")
}

// flagError is every command's answer to a flag that does not parse: a
// usage error, with the flags meant when one is unknown.
func flagError(cmd *cobra.Command, err error) error {
	if ne, ok := errors.AsType[*pflag.NotExistError](err); ok && !strings.HasPrefix(err.Error(), "unknown shorthand") {
		if s := suggestFlags(cmd, ne.GetSpecifiedName()); len(s) > 0 {
			err = fmt.Errorf("%w\n\nDid you mean this?\n\t--%s", err, strings.Join(s, "\n\t--"))
		}
	}
	return &exitError{code: exitUsage, err: err}
}

// suggestFlags returns the flags of cmd that the unknown name may mean: at
// most 2 edits away (a letter left out, doubled, swapped or mistyped), or
// starting with it, nearest first, at most three.
func suggestFlags(cmd *cobra.Command, name string) []string {
	type near struct {
		name string
		d    int
	}
	var found []near
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		d := editDistance(name, f.Name)
		if d > 2 && !(len(name) >= 3 && strings.HasPrefix(f.Name, name)) {
			return
		}
		found = append(found, near{f.Name, d})
	})
	slices.SortFunc(found, func(a, b near) int {
		if a.d != b.d {
			return a.d - b.d
		}
		return strings.Compare(a.name, b.name)
	})
	var names []string
	for _, n := range found[:min(3, len(found))] {
		names = append(names, n.name)
	}
	return names
}

// editDistance is the optimal string alignment distance of a and b: the
// fewest insertions, deletions, substitutions and swaps of two adjacent
// letters that make one the other.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// flagValues are the values shell completion offers for the flags that take
// one of a few (or, for --max-failures, "none" and common budgets).
var flagValues = map[string][]string{
	"log-format":    {"text", "json"},
	"log-level":     {"debug", "info", "warn", "error"},
	"notify-format": {"json", "slack"},
	"health":        {"none", "agent", "command:"},
	"before-reset":  {"exec:", "tat:"},
	"after-reset":   {"exec:", "tat:"},
	"hook-failure":  {"abandon", "continue"},
	"max-failures":  {"none", "0", "1", "1%", "2%", "5%", "10%"},
	"on-failure":    {"pause", "stop", "rollback"},
	"approve":       {"canary", "each-wave"},
	"site":          {siteCN, siteIntl},
	"output":        {"text", "json"},
	"format":        {"csv", "json"},
	"only":          {"failed", "skipped", "failed,skipped"},
}

// registerCompletions gives every command's enumerated flags their values
// for shell completion (batchreset completion bash|zsh|fish|powershell).
func registerCompletions(root *cobra.Command) error {
	var walk func(*cobra.Command) error
	walk = func(c *cobra.Command) error {
		var err error
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { err = errors.Join(err, registerValues(c, f.Name)) })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { err = errors.Join(err, registerValues(c, f.Name)) })
		for _, sub := range c.Commands() {
			err = errors.Join(err, walk(sub))
		}
		return err
	}
	return walk(root)
}

func registerValues(c *cobra.Command, name string) error {
	values, ok := flagValues[name]
	if !ok {
		return nil
	}
	directive := cobra.ShellCompDirectiveNoFileComp
	if name == "health" {
		directive |= cobra.ShellCompDirectiveNoSpace // command:FILE goes on
	}
	return c.RegisterFlagCompletionFunc(name, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, directive
	})
}
