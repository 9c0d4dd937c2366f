package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// accountFlags are the flags of a run over several accounts: the jobs' account
// column names each account, --account says where its credential comes
// from.
type accountFlags struct {
	defs                  []string // --account NAME=profile:P or NAME=role:ARN, as typed
	maxFailuresPerAccount string   // --max-failures-per-account
}

func (o *accountFlags) add(fs *pflag.FlagSet) {
	addAccountDefs(fs, &o.defs)
	fs.StringVar(&o.maxFailuresPerAccount, "max-failures-per-account", "none", "each account's own failure budget, N or P% of its instances (rounded down), or none: once more than that many of an account's instances have failed, ended unknown or ended unhealthy, that account starts no new reset and the others go on")
}

// addAccountDefs adds --account, each account's credential, which run,
// retry and plan take.
func addAccountDefs(fs *pflag.FlagSet, defs *[]string) {
	fs.StringArrayVar(defs, "account", nil, "credential of an account the jobs' account column names: NAME=profile:P (a profile, as --profile) or NAME=role:ARN (the run's credential assuming a CAM role of that account); repeatable, one per account; rows naming no account use the run's credential")
}

// accountDef is one --account: an account's name and where its credential
// comes from, profile or role (one of them).
type accountDef struct {
	name    string
	profile string
	roleARN string
}

// String is the definition as --account takes it after the name, and as a
// run's record keeps it: "profile:P" or "role:ARN". It holds no secret.
func (d accountDef) String() string {
	if d.profile != "" {
		return "profile:" + d.profile
	}
	return "role:" + d.roleARN
}

// parseAccountDef reads a definition, "profile:P" or "role:ARN", of account
// name.
func parseAccountDef(name, def string) (accountDef, error) {
	kind, value, _ := strings.Cut(def, ":")
	d := accountDef{name: name}
	switch {
	case value == "":
		return d, fmt.Errorf("account %q: %q: want profile:NAME or role:ARN", name, def)
	case kind == "profile":
		d.profile = value
	case kind == "role":
		d.roleARN = value
	default:
		return d, fmt.Errorf("account %q: %q: want profile:NAME or role:ARN, not %q", name, def, kind)
	}
	return d, nil
}

// parseAccounts reads the --account values: each NAME=profile:P or
// NAME=role:ARN, each name valid (store.CheckAccount) and given once.
func parseAccounts(values []string) ([]accountDef, error) {
	var defs []accountDef
	for _, v := range values {
		name, def, ok := strings.Cut(v, "=")
		if !ok {
			return nil, usageError("--account %q: want NAME=profile:P or NAME=role:ARN", v)
		}
		if err := store.CheckAccount(name); err != nil {
			return nil, usageError("--account %q: %v", v, err)
		}
		if slices.ContainsFunc(defs, func(d accountDef) bool { return d.name == name }) {
			return nil, usageError("--account %q: account %q is defined twice", v, name)
		}
		d, err := parseAccountDef(name, def)
		if err != nil {
			return nil, usageError("--account: %v", err)
		}
		defs = append(defs, d)
	}
	return defs, nil
}

// accountsSetting is how a run uses its accounts, before its jobs are read.
type accountsSetting struct {
	defs        []accountDef
	maxFailures string // "none", N or P% of each account's instances
}

// settings checks the flags.
func (o *accountFlags) settings() (accountsSetting, error) {
	defs, err := parseAccounts(o.defs)
	if err != nil {
		return accountsSetting{}, err
	}
	if _, _, err := budgetOf(o.maxFailuresPerAccount, 1); err != nil {
		return accountsSetting{}, usageError("--max-failures-per-account: %v (or none, for no budget)", err)
	}
	return accountsSetting{defs: defs, maxFailures: o.maxFailuresPerAccount}, nil
}

// checkSelection refuses accounts together with selection flags (sel not
// nil): the jobs name the accounts, so they are given, not selected.
func (as accountsSetting) checkSelection(sel *runner.Selector) error {
	if len(as.defs) > 0 && sel != nil {
		return usageError("--account: a run over several accounts resets the jobs it is given; select them with `batchreset select` per account, not with selection flags")
	}
	return nil
}

// budgetOf resolves a budget, "none", N or P% of total: -1 for none.
func budgetOf(v string, total int) (int, string, error) {
	if strings.EqualFold(v, "none") {
		return -1, "", nil
	}
	return runner.ResolveBudget(v, total)
}

// runAccounts returns the accounts of the run of src, whose jobs cnt counts:
// the definitions of the flags, or in Postgres mode those of the run's
// record, which the first runner's flags wrote (flags that disagree with it
// are a usage error). With record, the flags' definitions become the run's
// record if it has none; without (plan), nothing is written. Every account
// a job names must be defined, and every definition named by a job.
func runAccounts(ctx context.Context, as accountsSetting, src jobSource, run string, cnt store.Count, record bool) ([]accountDef, error) {
	defs := as.defs
	if db := src.DB(); db != nil {
		flags := map[string]string{}
		for _, d := range defs {
			flags[d.name] = d.String()
		}
		var rec map[string]string
		var err error
		if record {
			rec, err = db.RecordAccounts(ctx, run, flags)
		} else if rec, err = db.Accounts(ctx, run); err == nil && len(rec) == 0 {
			rec = flags
		}
		if err != nil {
			return nil, &exitError{code: exitFatal, err: err}
		}
		if len(flags) > 0 && !maps.Equal(flags, rec) {
			return nil, usageError("--account %s disagrees with the accounts run %q recorded when it began (%s): give the run's, or none to use them", defsText(flags), run, defsText(rec))
		}
		defs = nil
		for _, name := range slices.Sorted(maps.Keys(rec)) {
			d, err := parseAccountDef(name, rec[name])
			if err != nil {
				return nil, &exitError{code: exitFatal, err: fmt.Errorf("run %q's record: %w", run, err)}
			}
			defs = append(defs, d)
		}
	}
	for _, a := range cnt.Accounts {
		if a.Account != "" && !slices.ContainsFunc(defs, func(d accountDef) bool { return d.name == a.Account }) {
			return nil, usageError("account %q: %d job(s) name it, and no --account %s=profile:P or %s=role:ARN defines it", a.Account, a.Jobs, a.Account, a.Account)
		}
	}
	for _, d := range defs {
		if !slices.ContainsFunc(cnt.Accounts, func(a store.AccountCount) bool { return a.Account == d.name }) {
			return nil, usageError("--account %s=%s: no job names account %q", d.name, d, d.name)
		}
	}
	return defs, nil
}

// defsText lists definitions as --account flags would give them.
func defsText(defs map[string]string) string {
	if len(defs) == 0 {
		return "none"
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		parts = append(parts, name+"="+defs[name])
	}
	return strings.Join(parts, ", ")
}

// accountCredential loads the credential of account d: its profile, or the
// run's credential (api's) assuming its role.
func accountCredential(api apiFlags, d accountDef) (credentialInfo, error) {
	cfg := lighthouse.CredentialConfig{Profile: d.profile, RoleSessionName: api.roleSession}
	if d.roleARN != "" {
		cfg = lighthouse.CredentialConfig{Profile: api.profile, RoleARN: d.roleARN, RoleSessionName: api.roleSession}
	}
	id, err := lighthouse.LoadIdentity(cfg)
	if err != nil {
		return credentialInfo{}, &exitError{code: exitFatal, err: fmt.Errorf("account %q (%s): %w", d.name, d, err)}
	}
	return credentialInfo{id: id}, nil
}

// runAccountCredentials returns the accounts of run (as api reaches them)
// of src, whose jobs cnt counts (see runAccounts, which record is passed
// to), each with its credential: first the run's own, cred, loaded now
// when nil, if a job names no account; then one per account defined. With
// the built-in emulator, the accounts' credentials are the emulator's,
// made by connectAccounts.
func (a *app) runAccountCredentials(ctx context.Context, as accountsSetting, api apiFlags, run string, src jobSource, cnt store.Count, cred *credentialInfo, record bool) ([]accountConn, error) {
	defs, err := runAccounts(ctx, as, src, run, cnt, record)
	if err != nil {
		return nil, err
	}
	var out []accountConn
	if cnt.Accounts == nil || accountJobs(cnt, "") > 0 {
		if cred == nil {
			c, err := a.credential(api)
			if err != nil {
				return nil, err
			}
			cred = &c
		}
		out = append(out, accountConn{cred: *cred})
	}
	for _, d := range defs {
		ac := accountConn{def: d}
		if !api.emulate {
			if ac.cred, err = accountCredential(api, d); err != nil {
				return nil, err
			}
		}
		out = append(out, ac)
	}
	return out, nil
}

// accountJobs counts the jobs of account name in cnt.
func accountJobs(cnt store.Count, name string) int {
	for _, a := range cnt.Accounts {
		if a.Account == name {
			return a.Jobs
		}
	}
	return 0
}

// accountLabel names an account in messages: its name, or "(none)" for
// the jobs that name none.
func accountLabel(name string) string {
	if name == "" {
		return "(none)"
	}
	return name
}

// accountsText says, for a banner or a prompt, whose credentials a run
// uses: the run's credential alone, or each account with its credential's
// source, its unfinished instances and their regions. With the built-in
// emulator, the credentials are made later and not named.
func accountsText(accounts []accountConn, cnt store.Count, emulate bool) string {
	if cnt.Accounts == nil {
		return "credential: " + accounts[0].cred.String()
	}
	var parts []string
	for _, ac := range accounts {
		var c store.AccountCount
		for _, ct := range cnt.Accounts {
			if ct.Account == ac.def.name {
				c = ct
			}
		}
		src := "the run's credential"
		if ac.def.name != "" {
			src = "--account " + ac.def.name + "=" + ac.def.String()
		}
		if !emulate {
			src += ", " + ac.cred.String()
		}
		parts = append(parts, fmt.Sprintf("%s (%s): %d instance(s) in %s", accountLabel(ac.def.name), src, c.Unfinished, strings.Join(c.Regions, ", ")))
	}
	return fmt.Sprintf("%d accounts: %s", len(accounts), strings.Join(parts, "; "))
}

// plannedAccounts are the accounts of conns for plan's JSON output, with
// the unfinished instances cnt counts; nil for a run without accounts.
func plannedAccounts(conns []accountConn, cnt store.Count) []plannedAccount {
	if cnt.Accounts == nil {
		return nil
	}
	var out []plannedAccount
	for _, ac := range conns {
		p := plannedAccount{Name: ac.def.name, Credential: ac.cred.String(), Regions: []string{}}
		if ac.def.name != "" {
			p.Definition = ac.def.String()
		}
		for _, ct := range cnt.Accounts {
			if ct.Account == ac.def.name {
				p.Instances, p.Regions = ct.Unfinished, append(p.Regions, ct.Regions...)
			}
		}
		out = append(out, p)
	}
	return out
}

// writeAccountStatuses writes, for status and the end-of-run summary, a
// line per account: its instances, those of each status it has, and its
// failures. It writes nothing for a run without accounts.
func writeAccountStatuses(w io.Writer, accounts []statuspage.AccountStatus) {
	if accounts == nil {
		return
	}
	fmt.Fprintln(w, "by account:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, a := range accounts {
		var parts []string
		for _, st := range statusOrder {
			if n := a.Totals[string(st)]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, st))
			}
		}
		fmt.Fprintf(tw, "  %s\t%d instance(s)\t%s\tfailures: %d\n", accountLabel(a.Account), a.Jobs, strings.Join(parts, ", "), a.Failures)
	}
	tw.Flush()
}
