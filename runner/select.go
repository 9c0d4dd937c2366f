package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// Selector chooses a fleet by what it is rather than by a list: the
// instances of some regions that match filters, each to be reset to one
// target image or to the image it runs. Resolve turns it into a fixed list
// of jobs once; that list, saved, is what a run works on, so that a rerun
// or a resume never selects again.
type Selector struct {
	// Regions are scanned for instances; AllRegions scans every region
	// instead (see Resolve).
	Regions    []string
	AllRegions bool
	// Filters are DescribeInstances filters with the API's names
	// (lighthouse.FilterZone, lighthouse.FilterTag("env")…): an instance
	// must match every filter, and a filter matches when one of its values
	// does. None selects every instance of the regions.
	Filters []lighthouse.Filter
	// BlueprintID is the image every selected instance is reset to; with
	// SameImage each is reset to the image it runs now, named in its job.
	// Exactly one is required.
	BlueprintID string
	SameImage   bool
	// Exclude holds instance IDs never selected; ExcludeFrom names where
	// they came from, for the record.
	Exclude     map[string]bool
	ExcludeFrom string
	// Limit, when positive, keeps the first Limit instances of the list
	// (a canary list).
	Limit int
	// SkipMatching leaves out instances that already run the target image
	// and whose latest operation is a ResetInstance that succeeded and
	// started at or after Since (which it requires), as EC2 Auto Scaling's
	// instance refresh does with SkipMatching.
	SkipMatching bool
	Since        time.Time
}

// Check reports a selector that cannot be resolved.
func (s Selector) Check() error {
	switch {
	case len(s.Regions) == 0 && !s.AllRegions:
		return errors.New("name the regions to select from, or all of them")
	case len(s.Regions) > 0 && s.AllRegions:
		return errors.New("all regions, or a list of regions, not both")
	case s.BlueprintID == "" && !s.SameImage:
		return errors.New("name the target image (a blueprint ID), or reinstall each instance's current image")
	case s.BlueprintID != "" && s.SameImage:
		return errors.New("a target blueprint, or each instance's current image, not both")
	case s.Limit < 0:
		return fmt.Errorf("limit %d: want 0 (none) or more", s.Limit)
	case s.SkipMatching && s.Since.IsZero():
		return errors.New("skip-matching needs a time since which a successful reset counts")
	case !s.SkipMatching && !s.Since.IsZero():
		return errors.New("a since time only means something with skip-matching")
	}
	names := map[string]bool{}
	for _, f := range s.Filters {
		if f.Name == "" || len(f.Values) == 0 {
			return fmt.Errorf("filter %q: want a name and at least one value", f.Name)
		}
		if names[f.Name] {
			// Filters are ANDed: two of one name would rarely both match,
			// and the API does not say whether it merges them.
			return fmt.Errorf("filter %s given twice: give its values once, separated by commas (filters are ANDed, values ORed)", f.Name)
		}
		names[f.Name] = true
	}
	return nil
}

// String describes the selector as the flags of `batchreset select` that
// make it, in a fixed order: the record of how a list was made.
func (s Selector) String() string {
	var b strings.Builder
	if s.AllRegions {
		b.WriteString("--region all")
	}
	for i, r := range s.Regions {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("--region " + shellWord(r))
	}
	for _, f := range s.Filters {
		b.WriteString(" --filter " + shellWord(f.Name+"="+strings.Join(f.Values, ",")))
	}
	if s.SameImage {
		b.WriteString(" --same-image")
	} else {
		b.WriteString(" --blueprint-id " + shellWord(s.BlueprintID))
	}
	if s.ExcludeFrom != "" {
		b.WriteString(" --exclude " + shellWord(s.ExcludeFrom))
	}
	if s.Limit > 0 {
		fmt.Fprintf(&b, " --limit %d", s.Limit)
	}
	if s.SkipMatching {
		b.WriteString(" --skip-matching --since " + s.Since.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// shellWord quotes w when a shell would not read it as one word.
func shellWord(w string) string {
	if w != "" && !strings.ContainsFunc(w, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:=,/@%+", r))
	}) {
		return w
	}
	return strconv.Quote(w)
}

// Reason says why a matching instance was left out of a selection.
type Reason string

// Reasons for leaving an instance out, in the order they are decided.
const (
	// ReasonExcluded: the instance is in the exclude list.
	ReasonExcluded Reason = "excluded"
	// ReasonMatching: skip-matching, and the instance already runs the
	// target image after a successful reset since the given time.
	ReasonMatching Reason = "already-matching"
	// ReasonLimit: the list already has Limit instances.
	ReasonLimit Reason = "beyond-limit"
)

// reasons lists the reasons in the order they are decided and printed.
var reasons = []Reason{ReasonExcluded, ReasonMatching, ReasonLimit}

// LeftOut is one matching instance a selection left out, and why.
type LeftOut struct {
	InstanceID string
	Region     string
	Reason     Reason
	Detail     string // what the reason rests on, for --verbose
}

// Selection is a Selector resolved: the jobs, in a fixed order (by region,
// then instance ID), and what the regions and filters matched but the
// selection left out.
type Selection struct {
	Selector Selector
	// Regions are the regions scanned, sorted.
	Regions []string
	// Matched counts the instances the regions and filters matched.
	Matched int
	Jobs    []store.Job
	Left    []LeftOut
	// Undated counts instances skip-matching kept although they run the
	// target image after a successful reset, because the API did not say
	// when that reset started (LatestOperationStartedTime is a China-site
	// field): a reset is skipped only when it is proven recent.
	Undated int
	// At is when the selection was resolved.
	At time.Time
}

// Counts returns how many instances were left out for each reason.
func (s *Selection) Counts() map[Reason]int {
	n := map[Reason]int{}
	for _, l := range s.Left {
		n[l.Reason]++
	}
	return n
}

// Summary says in one line what was selected and why others were left out,
// such as "120 selected of 400 matched in 2 region(s); left out: 3
// excluded, 277 already-matching".
func (s *Selection) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d selected of %d matched in %d region(s)", len(s.Jobs), s.Matched, len(s.Regions))
	counts := s.Counts()
	var parts []string
	for _, r := range reasons {
		if counts[r] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[r], r))
		}
	}
	if len(parts) > 0 {
		b.WriteString("; left out: " + strings.Join(parts, ", "))
	}
	return b.String()
}

// Record is the line that records how the list was made, for a jobs file's
// comment or a run's metadata: the selector, the regions scanned, the
// counts and the time it was resolved.
func (s *Selection) Record() string {
	excluded := ""
	if len(s.Selector.Exclude) > 0 {
		excluded = fmt.Sprintf("; the exclude list held %d IDs", len(s.Selector.Exclude))
	}
	return fmt.Sprintf("batchreset select %s; regions %s; %s%s; resolved %s",
		s.Selector, strings.Join(s.Regions, ","), s.Summary(), excluded, s.At.UTC().Format(time.RFC3339))
}

// selectConcurrency is how many regions one selection scans at once; each
// call still waits for its action's limiter.
const selectConcurrency = 4

// Resolve resolves the selector against the cloud into a Selection. With
// AllRegions the regions are those the Tag service finds holding a
// Lighthouse instance with the selector's tags, when its filters name tags
// that GetResources can express (and it answers), else those
// DescribeRegions lists AVAILABLE. Each region is then listed with DescribeInstances and the
// selector's filters, so the API decides what matches; an invalid filter is
// the API's error, naming the action and the code. With BlueprintID, the
// blueprint must exist in every region that has instances to reset
// (otherwise the error wraps store.ErrNotFound). A selection that matches
// nothing is not an error: the caller says so.
func (s Selector) Resolve(ctx context.Context, c *Cloud, now time.Time) (*Selection, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	regions := slices.Clone(s.Regions)
	if s.AllRegions {
		var err error
		if regions, err = s.allRegions(ctx, c); err != nil {
			return nil, err
		}
	}
	slices.Sort(regions)
	regions = slices.Compact(regions)

	var mu sync.Mutex
	var insts []lighthouse.Instance
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(selectConcurrency)
	for _, region := range regions {
		g.Go(func() error {
			got, err := c.FilterInstances(gctx, region, s.Filters)
			mu.Lock()
			insts = append(insts, got...)
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	sel := s.sift(insts)
	sel.Regions, sel.At = regions, now
	if s.BlueprintID != "" {
		if err := checkBlueprint(ctx, c, s.BlueprintID, sel.Jobs); err != nil {
			return nil, err
		}
	}
	return sel, nil
}

// allRegions returns the regions to scan for AllRegions.
func (s Selector) allRegions(ctx context.Context, c *Cloud) ([]string, error) {
	tags := tagFilters(s.Filters)
	if len(tags) == 0 {
		return c.Regions(ctx)
	}
	byRegion, err := c.TaggedInstances(ctx, tags)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("select: %w", err)
		}
		// The Tag service only narrows down the regions to scan (a key
		// may lack tag:GetResources, which CAM grants apart from
		// Lighthouse): every region DescribeRegions lists does as well.
		c.log.Warn("the Tag service did not answer; scanning every region", "err", err)
		return c.Regions(ctx)
	}
	return slices.Sorted(maps.Keys(byRegion)), nil
}

// tagFilters returns the Tag service's filters for the filters that it can
// express exactly: tag:<key> (the key with one of the values) and tag-key
// with one key (the key with any value). They find a superset of the
// regions the filters match; DescribeInstances then applies them all.
func tagFilters(filters []lighthouse.Filter) []lighthouse.TagFilter {
	var out []lighthouse.TagFilter
	for _, f := range filters {
		switch key, ok := strings.CutPrefix(f.Name, "tag:"); {
		case ok && key != "" && len(f.Values) <= lighthouse.MaxTagFilterValues:
			out = append(out, lighthouse.TagFilter{TagKey: key, TagValues: f.Values})
		case f.Name == lighthouse.FilterTagKey && len(f.Values) == 1:
			out = append(out, lighthouse.TagFilter{TagKey: f.Values[0]})
		}
	}
	if len(out) > lighthouse.MaxTagFilters {
		out = out[:lighthouse.MaxTagFilters] // fewer filters: still a superset
	}
	return out
}

// sift orders what the regions and filters matched (by region, then
// instance ID) and decides which instances become jobs: not excluded, not
// skipped as matching, within the limit, in that order of reasons. It is a
// pure function of the instances and the selector.
func (s Selector) sift(insts []lighthouse.Instance) *Selection {
	insts = slices.Clone(insts)
	slices.SortFunc(insts, func(a, b lighthouse.Instance) int {
		return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.InstanceID, b.InstanceID))
	})
	sel := &Selection{Selector: s, Matched: len(insts)}
	for _, in := range insts {
		target := s.BlueprintID
		if s.SameImage {
			target = in.BlueprintID
		}
		left := func(r Reason, detail string) {
			sel.Left = append(sel.Left, LeftOut{InstanceID: in.InstanceID, Region: in.Region, Reason: r, Detail: detail})
		}
		if s.Exclude[in.InstanceID] {
			left(ReasonExcluded, "in "+cmp.Or(s.ExcludeFrom, "the exclude list"))
			continue
		}
		if s.SkipMatching {
			switch m, detail := matching(in, target, s.Since); m {
			case matched:
				left(ReasonMatching, detail)
				continue
			case undated:
				sel.Undated++
			}
		}
		if s.Limit > 0 && len(sel.Jobs) >= s.Limit {
			left(ReasonLimit, fmt.Sprintf("the list has its %d", s.Limit))
			continue
		}
		sel.Jobs = append(sel.Jobs, store.Job{
			ID: int64(len(sel.Jobs) + 1), InstanceID: in.InstanceID, BlueprintID: target, Region: in.Region,
			Status: store.StatusPending,
		})
	}
	return sel
}

// match is skip-matching's verdict on one instance.
type match int

const (
	notMatched match = iota
	matched          // runs the target after a successful reset since the time
	undated          // would match, but the API does not say when the reset started
)

// matching judges whether in already runs target after a ResetInstance
// that succeeded and started at or after since. Only the latest operation
// is visible: an instance whose reset was followed by any other operation
// (a reboot) is not proven reset, and is kept. The start time is the
// cloud's; since is the operator's, an absolute time, so no clock of this
// host takes part.
func matching(in lighthouse.Instance, target string, since time.Time) (match, string) {
	if in.BlueprintID != target || in.LatestOperation != lighthouse.ActionResetInstance ||
		in.LatestOperationState != lighthouse.OperationSuccess {
		return notMatched, ""
	}
	started, ok := in.StartedTime()
	switch {
	case !ok:
		return undated, ""
	case started.Before(since):
		return notMatched, ""
	}
	return matched, fmt.Sprintf("runs %s; ResetInstance %s succeeded, started %s", target, in.LatestOperationRequestID, started.UTC().Format(time.RFC3339))
}

// checkBlueprint checks that blueprint exists in every region of jobs, so
// that a mistyped ID is caught before anything is written.
func checkBlueprint(ctx context.Context, c *Cloud, blueprint string, jobs []store.Job) error {
	var regions []string
	for _, j := range jobs {
		if !slices.Contains(regions, j.Region) {
			regions = append(regions, j.Region)
		}
	}
	for _, region := range regions {
		bps, err := c.Blueprints(ctx, region, []string{blueprint})
		if err != nil {
			return fmt.Errorf("select: %w", err)
		}
		if bps[blueprint] == nil {
			return fmt.Errorf("select: blueprint %s in %s: %w (DescribeBlueprints does not list it)", blueprint, region, store.ErrNotFound)
		}
	}
	return nil
}
