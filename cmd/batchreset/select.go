package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
)

// selectorFlags are the flags that choose a fleet by what it is: `select`
// has them, and `plan` and `run` take the same ones.
type selectorFlags struct {
	regions      []string
	filters      []string
	tags         []string
	blueprintID  string
	sameImage    bool
	exclude      string
	limit        int
	skipMatching bool
	since        string
}

// regionFlag is --region of `run` and `plan`, which sourceFlags defines as
// the region of rows that name none: it keeps that meaning (its own value
// is the last one given) and also collects every value, for a selector's
// list of regions.
type regionFlag struct {
	pflag.Value
	list *[]string
}

func (r regionFlag) Set(v string) error {
	*r.list = append(*r.list, v)
	return r.Value.Set(v)
}

// add adds the selector flags to fs. Where fs already has --region (run and
// plan, from sourceFlags), that flag also collects the selector's regions.
func (o *selectorFlags) add(fs *pflag.FlagSet) {
	const regionUsage = "region to select from, repeatable or comma-separated; all for every region (env TENCENTCLOUD_REGION)"
	if f := fs.Lookup("region"); f != nil {
		f.Value = regionFlag{Value: f.Value, list: &o.regions}
		f.Usage += "; with a selector, a " + regionUsage
	} else {
		fs.StringArrayVar(&o.regions, "region", nil, "selector: "+regionUsage)
	}
	fs.StringArrayVar(&o.filters, "filter", nil, "selector: DescribeInstances filter NAME=VALUE[,VALUE...] (instance-name, private-ip-address, public-ip-address, zone, instance-state, tag-key, tag-value, tag:KEY, bundle-id); repeatable, filters ANDed, values ORed")
	fs.StringArrayVar(&o.tags, "tag", nil, "selector: KEY=VALUE[,VALUE...], short for --filter tag:KEY=VALUE[,VALUE...]; repeatable")
	fs.StringVar(&o.blueprintID, "blueprint-id", "", "selector: blueprint every selected instance is reset to")
	fs.BoolVar(&o.sameImage, "same-image", false, "selector: reset each selected instance to the image it runs now (named per row)")
	fs.StringVar(&o.exclude, "exclude", "", "selector: file of instance IDs to leave out, one per line (# comments), or a CSV with an instance_id column such as a results file")
	fs.IntVar(&o.limit, "limit", 0, "selector: keep only the first N instances of the list (ordered by region, then instance ID), e.g. for a canary")
	fs.BoolVar(&o.skipMatching, "skip-matching", false, "selector: leave out instances that already run the target image after a ResetInstance that succeeded and started at or after --since")
	fs.StringVar(&o.since, "since", "", "selector: with --skip-matching, the time since which a successful reset counts (RFC 3339, YYYY-MM-DD or HH:MM, local time)")
}

// active reports whether any flag that only a selector has was given:
// --region alone is a run's default region, not a selector.
func (o *selectorFlags) active() bool {
	return len(o.filters) > 0 || len(o.tags) > 0 || o.blueprintID != "" || o.sameImage ||
		o.exclude != "" || o.limit != 0 || o.skipMatching || o.since != ""
}

// settings returns the selector of `run` or `plan`, mapped from the flags
// after src and api are resolved; nil when no selector flag was given, and
// the jobs are the given ones.
func (o *selectorFlags) settings(now time.Time, src sourceFlags, api apiFlags) (*runner.Selector, error) {
	if !o.active() {
		if len(o.regions) > 1 || slices.Contains(o.regions, "all") {
			return nil, usageError("--region names the region of rows that name none; several regions, or all, go with a selector (--filter, --tag, --blueprint-id or --same-image)")
		}
		return nil, nil
	}
	if api.emulate {
		return nil, usageError("--emulate seeds its fleet from a jobs file: to try a selector, start `batchreset emulator --instances N --tags ...` and give its --endpoint")
	}
	s, err := o.selector(now, src.region)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// selector maps the flags to a runner.Selector, without reading the
// exclude file (ExcludeFrom names it). defaultRegion is taken when no
// --region is given. A nonsensical combination is a usage error naming
// the flags.
func (o *selectorFlags) selector(now time.Time, defaultRegion string) (runner.Selector, error) {
	var s runner.Selector
	for _, v := range o.regions {
		for r := range strings.SplitSeq(v, ",") {
			switch r = strings.TrimSpace(r); r {
			case "":
				return s, usageError("--region %q: empty region", v)
			case "all":
				s.AllRegions = true
			default:
				if !slices.Contains(s.Regions, r) {
					s.Regions = append(s.Regions, r)
				}
			}
		}
	}
	switch {
	case s.AllRegions && len(s.Regions) > 0:
		return s, usageError("--region all selects from every region: give it alone")
	case !s.AllRegions && len(s.Regions) == 0 && defaultRegion != "":
		s.Regions = []string{defaultRegion}
	case !s.AllRegions && len(s.Regions) == 0:
		return s, usageError("give --region R (repeatable) or --region all, or set TENCENTCLOUD_REGION")
	}
	for _, spec := range o.filters {
		name, values, err := nameValues(spec)
		if err != nil {
			return s, usageError("--filter %q: %v", spec, err)
		}
		s.Filters = append(s.Filters, lighthouse.Filter{Name: name, Values: values})
	}
	for _, spec := range o.tags {
		key, values, err := nameValues(spec)
		if err != nil {
			return s, usageError("--tag %q: %v", spec, err)
		}
		s.Filters = append(s.Filters, lighthouse.Filter{Name: lighthouse.FilterTag(key), Values: values})
	}
	s.BlueprintID, s.SameImage = o.blueprintID, o.sameImage
	switch {
	case s.BlueprintID == "" && !s.SameImage:
		return s, usageError("a selector needs a target image: --blueprint-id ID, or --same-image to reinstall each instance's current image")
	case s.BlueprintID != "" && s.SameImage:
		return s, usageError("give --blueprint-id or --same-image, not both")
	case o.limit < 0:
		return s, usageError("--limit must be at least 0, not %d", o.limit)
	case o.skipMatching && o.since == "":
		return s, usageError("--skip-matching needs --since TIME: a reset since then counts as done")
	case !o.skipMatching && o.since != "":
		return s, usageError("--since only means something with --skip-matching")
	}
	s.Limit, s.SkipMatching, s.ExcludeFrom = o.limit, o.skipMatching, o.exclude
	if o.since != "" {
		t, err := parseSince(o.since, now)
		if err != nil {
			return s, usageError("--since: %v", err)
		}
		if t.After(now) {
			return s, usageError("--since %s is in the future (it is now %s)", t.Format(time.RFC3339), now.Format(time.RFC3339))
		}
		s.Since = t
	}
	if err := s.Check(); err != nil {
		return s, usageError("selector: %v", err)
	}
	return s, nil
}

// nameValues splits NAME=V1,V2 into its name and values.
func nameValues(spec string) (string, []string, error) {
	name, list, ok := strings.Cut(spec, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return "", nil, errors.New("want NAME=VALUE[,VALUE...]")
	}
	var values []string
	for v := range strings.SplitSeq(list, ",") {
		if v = strings.TrimSpace(v); v == "" {
			return "", nil, errors.New("empty value")
		}
		values = append(values, v)
	}
	return name, values, nil
}

// parseSince reads --since: what parseTime reads, or a date, taken as
// midnight in now's zone ("since Sunday").
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseInLocation(time.DateOnly, s, now.Location()); err == nil {
		return d, nil
	}
	t, err := parseTime(s, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-11-29T00:00:00Z), a date (2026-11-29) nor HH:MM", s)
	}
	return t, nil
}

// readExclude reads the IDs of an --exclude file (csvstore's
// ReadInstanceList): one instance ID per line, or a CSV whose header has an
// instance_id column (a jobs or results file). A malformed ID is an error
// naming its line.
func readExclude(path string) (map[string]bool, error) {
	list, err := csvstore.ReadInstanceList(path)
	if err != nil {
		return nil, usageError("--exclude: %v", err)
	}
	ids := make(map[string]bool, len(list))
	for _, id := range list {
		ids[id] = true
	}
	return ids, nil
}

// selectCloud is what resolving a selector needs: a Cloud over a read
// client, its limits shared with every process on the host (or, given db,
// on the database), and what to close after.
func (a *app) selectCloud(ctx context.Context, api apiFlags, cred credentialInfo, describeRate float64, db *postgres.Store) (*runner.Cloud, func(), error) {
	// 16 workers' worth of connections (32 for reads): as many as the
	// selection has calls waiting for their slots, so that no call waits
	// for a connection after its slot and arrives bunched with later ones.
	conn, err := a.connect(ctx, api, cred, nil, 16)
	if err != nil {
		return nil, nil, err
	}
	cloud, err := runner.NewCloud(runner.CloudConfig{API: conn.reads, DescribeRate: describeRate, Shared: conn.limits(db), Logger: a.log})
	if err != nil {
		conn.Close()
		return nil, nil, usageError("%v", err)
	}
	return cloud, conn.Close, nil
}

// resolveSelector resolves sel, reading its exclude file, and reports the
// outcome on w (verbose: a row per instance left out). A selector that
// matches nothing is a usage error: nothing is written or started.
func (a *app) resolveSelector(ctx context.Context, sel runner.Selector, cloud *runner.Cloud, w io.Writer, verbose bool) (*runner.Selection, error) {
	if sel.ExcludeFrom != "" {
		ids, err := readExclude(sel.ExcludeFrom)
		if err != nil {
			return nil, err
		}
		sel.Exclude = ids
	}
	start := time.Now()
	describes := cloud.Describes.Load()
	res, err := sel.Resolve(ctx, cloud, time.Now())
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, &exitError{code: exitInterrupt}
		}
		if ae, ok := errors.AsType[*lighthouse.APIError](err); ok && refusedSelector(ae.Code) || errors.Is(err, store.ErrNotFound) {
			// The API refused the selector itself (a filter name or value,
			// a region), or its blueprint does not exist: the operator's to
			// fix.
			return nil, &exitError{code: exitUsage, err: err}
		}
		return nil, &exitError{code: exitFatal, err: err}
	}
	a.log.Debug("selection resolved", "duration", time.Since(start), "describe_calls", cloud.Describes.Load()-describes, "throttled", cloud.Throttled.Load())
	if res.Matched == 0 {
		where := "regions " + strings.Join(res.Regions, ", ")
		if len(res.Regions) == 0 {
			where = "any region (the Tag service finds no instance with these tags)"
		}
		return nil, usageError("the selector matched no instance in %s: %s; nothing was written or started", where, sel)
	}
	printSelection(w, res, verbose)
	return res, nil
}

// refusedSelector reports whether an API error code says that the
// selector is invalid: a parameter (filter names, values and their limits,
// the blueprint ID) or the region.
func refusedSelector(code string) bool {
	return strings.HasPrefix(code, "InvalidParameter") || strings.HasPrefix(code, "ClientError.InvalidParameter") ||
		code == "UnsupportedRegion" || strings.HasPrefix(code, "InvalidFilter")
}

// printSelection reports what was selected and why others were left out.
func printSelection(w io.Writer, res *runner.Selection, verbose bool) {
	fmt.Fprintf(w, "selector: %s\n%s\n", res.Selector, res.Summary())
	if res.Undated > 0 {
		fmt.Fprintf(w, "note: %d instance(s) run the target image after a successful reset whose start time the API does not give (LatestOperationStartedTime): kept, since --skip-matching cannot prove the reset recent\n", res.Undated)
	}
	if verbose && len(res.Left) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LEFT OUT\tREGION\tREASON\tDETAIL")
		for _, l := range res.Left {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.InstanceID, l.Region, l.Reason, l.Detail)
		}
		tw.Flush()
	}
}

// writeSelection writes res's jobs as a jobs CSV to w, under a comment line
// that records how the list was made.
func writeSelection(w io.Writer, res *runner.Selection) error {
	return csvstore.WriteJobs(w, res.Record(), res.Jobs)
}

// saveSelection writes res to path as a jobs CSV, whole or not at all: it
// is written beside path, fsynced, read back with the reader every command
// uses (it must give exactly the selected jobs), and renamed into place.
func saveSelection(path string, res *runner.Selection) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return &exitError{code: exitFatal, err: fmt.Errorf("write selection: %w", err)}
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	err = writeSelection(tmp, res)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &exitError{code: exitFatal, err: fmt.Errorf("write selection %s: %w", path, err)}
	}
	back, err := csvstore.ReadJobs(tmp.Name(), csvstore.ReadOptions{})
	if err != nil {
		return &exitError{code: exitFatal, err: fmt.Errorf("write selection %s: the list does not read back: %w", path, err)}
	}
	if !slices.EqualFunc(back, res.Jobs, func(a, b store.Job) bool {
		return a.InstanceID == b.InstanceID && a.BlueprintID == b.BlueprintID && a.Region == b.Region && a.Account == b.Account
	}) {
		return &exitError{code: exitFatal, err: fmt.Errorf("write selection %s: the list reads back different", path)}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return &exitError{code: exitFatal, err: fmt.Errorf("write selection: %w", err)}
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// recordedSelector returns the selector recorded in the first comment line
// of a jobs file, "" if it has none.
func recordedSelector(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	sel, ok := strings.CutPrefix(strings.TrimPrefix(line, "\ufeff"), "# batchreset select ")
	if !ok {
		return ""
	}
	sel, _, _ = strings.Cut(sel, "; regions ")
	return sel
}

// freeze resolves the selector of `run` or `plan` once and saves the list
// where the command then reads its jobs, exactly as if it had been given
// them: the --jobs file (CSV mode) or the run's rows (Postgres mode). A
// file that exists already, or a run that has jobs, is used as it is and
// nothing is selected again, so that a rerun or a resume never picks up an
// instance that changed in between. nothing reports a selection that left
// every matching instance out: there is nothing to do.
// resolveFresh resolves sel for freeze, through a Cloud sharing db's limits
// (nil: the host's). It returns a nil Selection, and says so, when every
// matching instance was left out.
func (a *app) resolveFresh(ctx context.Context, sel *runner.Selector, api apiFlags, cred credentialInfo, describeRate float64, db *postgres.Store) (*runner.Selection, error) {
	cloud, closeConn, err := a.selectCloud(ctx, api, cred, describeRate, db)
	if err != nil {
		return nil, err
	}
	defer closeConn()
	res, err := a.resolveSelector(ctx, *sel, cloud, a.stderr, false)
	if err != nil {
		return nil, err
	}
	if len(res.Jobs) == 0 {
		fmt.Fprintln(a.stderr, "nothing to do: every matching instance was left out")
		return nil, nil
	}
	return res, nil
}

func (a *app) freeze(ctx context.Context, sel *runner.Selector, src sourceFlags, api apiFlags, cred credentialInfo, describeRate float64) (nothing bool, err error) {
	if sel == nil {
		return false, nil
	}
	if src.jobsPath != "" {
		if _, err := os.Stat(src.jobsPath); err == nil {
			if rec := recordedSelector(src.jobsPath); rec != sel.String() {
				a.log.Warn("the jobs file was not made by this selector; using it as it is", "jobs", src.jobsPath, "recorded", rec, "given", sel.String())
			}
			fmt.Fprintf(a.stderr, "using the list saved in %s; the selector is not resolved again (remove the file to select anew)\n", src.jobsPath)
			return false, nil
		}
		res, err := a.resolveFresh(ctx, sel, api, cred, describeRate, nil)
		if err != nil || res == nil {
			return res == nil && err == nil, err
		}
		if err := saveSelection(src.jobsPath, res); err != nil {
			return false, err
		}
		fmt.Fprintf(a.stderr, "saved the list in %s\n", src.jobsPath)
		return false, nil
	}

	db, err := openDB(ctx, src.databaseURL, true)
	if err != nil {
		return false, err
	}
	defer db.Close()
	if st, err := db.Status(ctx, src.runName); err == nil && st.Jobs > 0 {
		fmt.Fprintf(a.stderr, "run %q has its jobs already; the selector is not resolved again\n", src.runName)
		return false, nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, &exitError{code: exitFatal, err: err}
	}
	res, err := a.resolveFresh(ctx, sel, api, cred, describeRate, db)
	if err != nil || res == nil {
		return res == nil && err == nil, err
	}
	n, err := db.ImportSelected(ctx, src.runName, res.Record(), res.Jobs)
	switch {
	case errors.Is(err, postgres.ErrRunHasJobs):
		fmt.Fprintf(a.stderr, "run %q got its jobs from another runner meanwhile; working on those\n", src.runName)
	case err != nil:
		return false, &exitError{code: exitFatal, err: err}
	default:
		fmt.Fprintf(a.stderr, "imported %d jobs into run %q\n", n, src.runName)
	}
	return false, nil
}

// selectSettings are what `select` does, mapped from its flags.
type selectSettings struct {
	sel          runner.Selector
	api          apiFlags
	account      *accountDef // --account: the account selected in, whose name every job carries
	out          string      // CSV: a file, or "-" for standard output
	run          string      // Postgres: the run to import into
	databaseURL  string
	describeRate float64
	verbose      bool
}

// selectFlags are the flags of `select`.
type selectFlags struct {
	sel          selectorFlags
	api          apiFlags
	account      string
	out          string
	run          string
	databaseURL  string
	describeRate float64
	verbose      bool
}

// settings maps select's flags to its settings, without running anything.
func (o *selectFlags) settings(now time.Time, getenv func(string) string) (selectSettings, error) {
	if err := o.api.resolve(getenv); err != nil {
		return selectSettings{}, err
	}
	if o.api.emulate {
		return selectSettings{}, usageError("select needs a fleet to select from: start one with `batchreset emulator --instances N --tags ...` and give its --endpoint")
	}
	s := selectSettings{api: o.api, out: o.out, run: o.run, databaseURL: o.databaseURL, describeRate: o.describeRate, verbose: o.verbose}
	if o.account != "" {
		defs, err := parseAccounts([]string{o.account})
		if err != nil {
			return s, err
		}
		s.account = &defs[0]
	}
	switch {
	case s.out == "" && s.run == "":
		s.out = "-" // the list is the command's output
	case s.out != "" && s.run != "":
		return s, usageError("give --out FILE.csv or --run NAME, not both")
	case s.run != "" && s.databaseURL == "":
		if s.databaseURL = getenv("DATABASE_URL"); s.databaseURL == "" {
			return s, usageError("--run imports into Postgres: give --database-url URL or set DATABASE_URL")
		}
	case s.out != "" && s.databaseURL != "":
		return s, usageError("--database-url goes with --run NAME, not --out")
	}
	if !(o.describeRate > 0) || o.describeRate > lighthouse.DescribeInstancesRateLimit {
		return s, usageError("--describe-rate must be above 0 and at most the API's limit, %d, not %v", lighthouse.DescribeInstancesRateLimit, o.describeRate)
	}
	var err error
	if s.sel, err = o.sel.selector(now, getenv("TENCENTCLOUD_REGION")); err != nil {
		return s, err
	}
	return s, nil
}

func (a *app) selectCommand() *cobra.Command {
	o := &selectFlags{}
	cmd := &cobra.Command{
		Use:   "select --region R [selector flags] [--out FILE.csv | --run NAME]",
		Short: "Resolve a selector (regions, filters, tags) to a fixed list of jobs",
		Long: `Choose the fleet by what it is: list the instances of --region (repeatable, or
all) that match every --filter and --tag, as DescribeInstances filters them,
and save them as a fixed list of jobs: a jobs CSV (--out, by default standard
output) or the jobs of a new Postgres run (--run). Nothing is reset. Each
job's blueprint is --blueprint-id, or with --same-image the image the
instance runs now.

--exclude leaves out listed instances, --skip-matching those already reset to
the target since --since, and --limit keeps the first N (by region, then
instance ID). The output says how many were left out for each reason (with
--verbose, which ones), and the list records its selector: the jobs file in a
first "#" comment line, the run in its metadata.

plan and run take the same selector flags: they resolve the selector once,
save the list in their --jobs file (or run), and work on it as on any list. A
rerun, or a resume, reads the saved list and never selects again.

A selector that matches nothing exits 2 and writes nothing. An invalid filter
is refused by the API, whose error code the message names.`,
		Example: `  # Every staging worker in two regions, to a new image
  batchreset select --region ap-guangzhou,ap-singapore --tag env=staging --tag role=worker \
    --blueprint-id lhbp-2u5ha3ob --out staging.csv

  # Tagged instances in every region, reinstalling their current images
  batchreset select --region all --tag env=prod --same-image --out - > prod.csv

  # Everything not reimaged since Sunday, into a Postgres run
  batchreset select --region all --same-image --skip-matching --since 2026-11-29 \
    --run reimage-2026-12-01 --database-url postgres://batchreset@db/ops --verbose`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := o.settings(time.Now(), osEnv)
			if err != nil {
				return err
			}
			return a.runSelect(cmd.Context(), s)
		},
	}
	o.add(cmd.Flags())
	return cmd
}

func (o *selectFlags) add(fs *pflag.FlagSet) {
	o.sel.add(fs)
	o.api.add(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		if strings.HasPrefix(f.Name, "emulate") {
			f.Hidden = true // select reads a fleet; an emulator seeded from jobs has none to offer
		}
	})
	fs.StringVar(&o.account, "account", "", "select in this account, NAME=profile:P or NAME=role:ARN (as run's --account): every job names account NAME, for a run over several accounts")
	fs.StringVar(&o.out, "out", "", "write the jobs CSV to this file; - or none: standard output")
	fs.StringVar(&o.run, "run", "", "import the jobs into this new Postgres run instead")
	fs.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL, with --run (env DATABASE_URL)")
	fs.Float64Var(&o.describeRate, "describe-rate", runner.DefaultDescribeRate, "DescribeInstances calls per second for the whole account (API limit: 100; half leaves room for other tools)")
	fs.BoolVar(&o.verbose, "verbose", false, "list every instance left out, with the reason")
}

// runSelect resolves the selector and saves the list.
func (a *app) runSelect(ctx context.Context, s selectSettings) error {
	// The report goes to standard output unless the list does.
	report := a.stdout
	if s.out == "-" {
		report = a.stderr
	}
	var cred credentialInfo
	var err error
	if s.account != nil {
		cred, err = accountCredential(s.api, *s.account)
	} else {
		cred, err = a.credential(s.api)
	}
	if err != nil {
		return err
	}
	var db *postgres.Store
	if s.run != "" {
		if db, err = openDB(ctx, s.databaseURL, true); err != nil {
			return err
		}
		defer db.Close()
		if st, err := db.Status(ctx, s.run); err == nil && st.Jobs > 0 {
			return usageError("run %q has jobs already: a selection makes a new run; choose another --run", s.run)
		}
	}
	cloud, closeConn, err := a.selectCloud(ctx, s.api, cred, s.describeRate, db)
	if err != nil {
		return err
	}
	defer closeConn()
	res, err := a.resolveSelector(ctx, s.sel, cloud, report, s.verbose)
	if err != nil {
		return err
	}
	if len(res.Jobs) == 0 {
		fmt.Fprintln(report, "nothing selected: every matching instance was left out; nothing written")
		return nil
	}
	if s.account != nil {
		for i := range res.Jobs {
			res.Jobs[i].Account = s.account.name
		}
	}
	switch {
	case s.out == "-":
		if err := writeSelection(a.stdout, res); err != nil {
			return &exitError{code: exitFatal, err: fmt.Errorf("write selection: %w", err)}
		}
	case s.out != "":
		if err := saveSelection(s.out, res); err != nil {
			return err
		}
		fmt.Fprintf(report, "wrote %d jobs to %s\n", len(res.Jobs), s.out)
	default:
		n, err := db.ImportSelected(ctx, s.run, res.Record(), res.Jobs)
		if errors.Is(err, postgres.ErrRunHasJobs) {
			return usageError("run %q got jobs meanwhile: a selection makes a new run; choose another --run", s.run)
		}
		if err != nil {
			return &exitError{code: exitFatal, err: err}
		}
		fmt.Fprintf(report, "imported %d jobs into run %q\n", n, s.run)
	}
	return nil
}
