package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

func (a *app) planCommand() *cobra.Command {
	o := &planFlags{}
	cmd := &cobra.Command{
		Use:   "plan (--jobs FILE.csv | --database-url URL) [flags]",
		Short: "Check a fleet and show what run would do, without changing anything",
		Long: `Validate the input, then check every instance without changing it: it exists
in its region, its state allows a reset (RUNNING or STOPPED), the target
blueprint exists, is NORMAL, has the instance's platform type and fits its disk
and memory, and DescribeResetInstanceBlueprints calls it resettable. Print what
run would do per instance (reset, or skip and why), totals per region and
blueprint, and the expected duration at --rate. plan never calls ResetInstance.`,
		Example: `  batchreset plan --jobs fleet.csv --region ap-guangzhou
  batchreset plan --jobs jobs.example.csv --emulate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runPlan(cmd.Context(), o)
		},
	}
	o.src.add(cmd.Flags())
	o.api.add(cmd.Flags())
	o.sel.add(cmd.Flags())
	addAccountDefs(cmd.Flags(), &o.accounts)
	cmd.Flags().Float64Var(&o.rate, "rate", runner.DefaultRate, "ResetInstance calls per second, for the duration estimate")
	cmd.Flags().DurationVar(&o.expectedDuration, "expected-duration", 5*time.Minute, "one reset's duration, for the estimate")
	o.login.add(cmd.Flags())
	o.rollout.add(cmd.Flags())
	return cmd
}

// planFlags are the flags of `plan`.
type planFlags struct {
	src              sourceFlags
	api              apiFlags
	sel              selectorFlags
	accounts         []string // --account, as run takes it
	rate             float64
	expectedDuration time.Duration
	login            loginFlags
	rollout          planRollout // what a run with these flags would do, and how to print it
}

func (a *app) runPlan(ctx context.Context, o *planFlags) error {
	if err := o.src.resolve(osEnv); err != nil {
		return err
	}
	if err := o.api.resolve(osEnv); err != nil {
		return err
	}
	if !(o.rate > 0) {
		return usageError("--rate must be a positive number of calls per second, not %v", o.rate)
	}
	login, err := o.login.resolve(osEnv)
	if err != nil {
		return err
	}
	o.api.emu.keyPairs = login.KeyIDs
	sel, err := o.sel.settings(time.Now(), o.src, o.api)
	if err != nil {
		return err
	}
	defs, err := parseAccounts(o.accounts)
	if err != nil {
		return err
	}
	as := accountsSetting{defs: defs}
	if err := as.checkSelection(sel); err != nil {
		return err
	}
	// With --account, the run's own credential is loaded once the jobs
	// say whether any names no account; there is then no selector.
	var cred *credentialInfo
	if len(defs) == 0 {
		c, err := a.credential(o.api)
		if err != nil {
			return err
		}
		cred = &c
		if nothing, err := a.freeze(ctx, sel, o.src, o.api, c, runner.DefaultDescribeRate); err != nil || nothing {
			return err
		}
	}
	src, err := a.openSource(ctx, o.src, false, false, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	jobs, err := src.Jobs(ctx)
	if err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	cnt, err := src.Count(ctx)
	if err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	accounts, err := a.runAccountCredentials(ctx, as, o.api, o.src.runName, src, cnt, cred, false)
	if err != nil {
		return err
	}
	conns, err := a.connectAccounts(ctx, o.api, accounts, jobs, 4)
	if err != nil {
		return err
	}
	defer closeAccounts(conns)
	now := time.Now()
	ro, err := o.rollout.resolve(len(jobs), now)
	if err != nil {
		return err
	}
	hooks, err := o.rollout.hooks.resolve()
	if err != nil {
		return err
	}
	settings, recorded, err := src.RunRecord(ctx)
	if err != nil {
		return &exitError{code: exitFatal, err: err}
	}
	if !recorded {
		settings = runRecord{OnFailure: string(ro.OnFailure), Approve: string(ro.Approve), Hooks: hooks.Settings()}
	}
	if plan, shared, err := src.SharedRollout(ctx); err != nil {
		return &exitError{code: exitFatal, err: err}
	} else if shared {
		ro.Adopt(plan)
	}
	// Each account's instances are checked through its own connection.
	var items []runner.PlanItem
	for _, ac := range conns {
		var todo []store.Job
		for _, j := range jobs {
			if !j.Status.Terminal() && (cnt.Accounts == nil || j.Account == ac.def.name) {
				todo = append(todo, j)
			}
		}
		cloud, err := ac.conn.cloud(src, o.rate, runner.DefaultDescribeRate)
		if err != nil {
			return err
		}
		its, err := runner.Plan(ctx, cloud, todo, login, true)
		if err != nil {
			return &exitError{code: exitFatal, err: err}
		}
		items = append(items, its...)
	}
	out := newPlanOutput(items, len(jobs), ro, o.rate, o.expectedDuration, now, !o.rollout.summary || o.rollout.output == "json")
	out.Settings, out.Recorded = settings, recorded
	out.Accounts = plannedAccounts(conns, cnt)
	if o.rollout.output == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if cnt.Accounts != nil {
		// The connections hold the credentials as signed with, the
		// built-in emulator's included.
		fmt.Fprintf(a.stdout, "%s\n\n", accountsText(conns, cnt, false))
	}
	var end time.Duration // the last wave's end: the run's, as the wave table has it
	if n := len(out.Waves); n > 0 {
		end = time.Duration(out.Waves[n-1].EndSec * float64(time.Second))
	}
	printPlan(a.stdout, items, o.rate, o.expectedDuration, end, !o.rollout.summary)
	writePlanWaves(a.stdout, out)
	return nil
}

// printPlan prints a line per instance (with perInstance), totals per
// region and blueprint, and the time the run takes: end, the end of its
// last wave, when known, else the sending time plus one reset.
func printPlan(w io.Writer, items []runner.PlanItem, rate float64, expected, end time.Duration, perInstance bool) {
	tw := tabwriter.NewWriter(io.Discard, 0, 4, 2, ' ', 0)
	if perInstance {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	}
	fmt.Fprintln(tw, "INSTANCE\tREGION\tBLUEPRINT\tACTION\tNOTE")
	type key struct{ region, blueprint string }
	totals := map[key][2]int{}
	resets := 0
	for _, it := range items {
		action := "reset"
		if !it.Reset {
			action = "skip"
		} else {
			resets++
		}
		bp := it.Job.BlueprintID
		if bp == "" {
			bp = "(current)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Job.InstanceID, it.Job.Region, bp, action, it.Reason)
		k := key{it.Job.Region, bp}
		c := totals[k]
		if it.Reset {
			c[0]++
		} else {
			c[1]++
		}
		totals[k] = c
	}
	tw.Flush()
	if perInstance {
		fmt.Fprintln(w)
	}
	keys := make([]key, 0, len(totals))
	for k := range totals {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].region != keys[j].region {
			return keys[i].region < keys[j].region
		}
		return keys[i].blueprint < keys[j].blueprint
	})
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tBLUEPRINT\tRESET\tSKIP")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", k.region, k.blueprint, totals[k][0], totals[k][1])
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d to reset, %d to skip", resets, len(items)-resets)
	if resets > 0 && rate > 0 {
		send := time.Duration(float64(resets-1) / rate * float64(time.Second))
		if end <= 0 {
			end = send + expected
		}
		fmt.Fprintf(w, "; at %g/s sending takes %s, and the run about %s (assuming resets of %s)",
			rate, send.Round(time.Second), end.Round(time.Second), expected)
	}
	fmt.Fprintln(w)
}
