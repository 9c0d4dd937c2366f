package runner

import (
	"context"
	"fmt"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/batchreset/batchreset/lighthouse"
)

// The calls that select a fleet by what it is (select.go): DescribeInstances
// with Filters, page by page; the Tag service's GetResources; and
// DescribeRegions. Each page is one call under its action's limiter and
// throttle gate, as every other call of a Cloud.

// maxScans bounds how often one region is scanned again because the fleet
// changed while it was paged.
const maxScans = 3

// instancePage is one DescribeInstances page and the TotalCount it gave.
type instancePage struct {
	total     int
	instances []lighthouse.Instance
}

// FilterInstances returns every instance of region that matches all of
// filters (values within one filter are alternatives), with Region set.
// The first page gives TotalCount; the other pages are read several at a
// time, each waiting for a DescribeInstances slot.
//
// Offset paging is only as good as the fleet is still: an instance created
// or deleted while the pages are read shifts the others, so that one is
// read twice and another never. A scan is therefore kept only when every
// page gave the same TotalCount and the pages held exactly that many
// distinct instances; otherwise the region is scanned again, up to
// maxScans times, and then it is an error rather than a list with holes.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42498
func (c *Cloud) FilterInstances(ctx context.Context, region string, filters []lighthouse.Filter) ([]lighthouse.Instance, error) {
	for scan := 1; ; scan++ {
		insts, whole, err := c.scanInstances(ctx, region, filters)
		switch {
		case err != nil:
			return nil, fmt.Errorf("describe instances in %s: %w", region, err)
		case whole:
			return insts, nil
		case scan == maxScans:
			return nil, fmt.Errorf("describe instances in %s: the fleet changed while each of %d scans read it; try again when it is still", region, scan)
		}
		c.log.Warn("fleet changed while its pages were read; scanning again", "region", region, "scan", scan)
	}
}

// scanInstances reads every page of one filtered listing once and reports
// whether the pages are consistent (see FilterInstances).
func (c *Cloud) scanInstances(ctx context.Context, region string, filters []lighthouse.Filter) ([]lighthouse.Instance, bool, error) {
	first, err := c.instancePage(ctx, region, filters, 0)
	if err != nil {
		return nil, false, err
	}
	n := 1
	if first.total > lighthouse.MaxIDsPerCall {
		n = (first.total + lighthouse.MaxIDsPerCall - 1) / lighthouse.MaxIDsPerCall
	}
	pages := make([]instancePage, n)
	pages[0] = first
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(describeConcurrency)
	for i := 1; i < n; i++ {
		g.Go(func() error {
			p, err := c.instancePage(gctx, region, filters, i*lighthouse.MaxIDsPerCall)
			pages[i] = p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, false, err
	}
	var out []lighthouse.Instance
	seen := make(map[string]bool, first.total)
	whole := true
	for _, p := range pages {
		whole = whole && p.total == first.total
		for _, in := range p.instances {
			if !seen[in.InstanceID] {
				seen[in.InstanceID] = true
				out = append(out, in)
			}
		}
	}
	return out, whole && len(out) == first.total, nil
}

// instancePage reads one page of at most MaxIDsPerCall instances at offset.
func (c *Cloud) instancePage(ctx context.Context, region string, filters []lighthouse.Filter, offset int) (instancePage, error) {
	return retryRejected(ctx, c, lighthouse.ActionDescribeInstances, func() (instancePage, error) {
		c.Describes.Add(1)
		total, insts, err := c.api.DescribeInstancesPage(ctx, region, filters, offset, lighthouse.MaxIDsPerCall)
		return instancePage{total: total, instances: insts}, err
	})
}

// TaggedInstances returns the Lighthouse instances of every region that
// the Tag service's GetResources finds for filters (ANDed; a filter's values
// are alternatives, none means any value), by region, reading its pages one
// after the other under GetResources' limiter. One scan covers every
// region, so it finds the regions that hold tagged instances without
// naming them.
//
// API docs: https://www.tencentcloud.com/document/api/651/46539
func (c *Cloud) TaggedInstances(ctx context.Context, filters []lighthouse.TagFilter) (map[string][]string, error) {
	type page struct {
		resources []lighthouse.TaggedResource
		next      string
	}
	out := map[string][]string{}
	token := ""
	for {
		p, err := retryRejected(ctx, c, lighthouse.ActionGetResources, func() (page, error) {
			rs, next, err := c.api.GetResourcesPage(ctx, filters, token)
			return page{rs, next}, err
		})
		if err != nil {
			return nil, fmt.Errorf("get tagged resources: %w", err)
		}
		for _, r := range p.resources {
			if r.Name.LighthouseInstance() && r.Name.Region != "" {
				out[r.Name.Region] = append(out[r.Name.Region], r.Name.ResourceID)
			}
		}
		// A token that does not move would page forever.
		if p.next == "" || p.next == token {
			return out, nil
		}
		token = p.next
	}
}

// Regions returns, sorted, the regions DescribeRegions lists as AVAILABLE
// (or with no state): the regions Lighthouse offers, where an account's
// instances are.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42491
func (c *Cloud) Regions(ctx context.Context) ([]string, error) {
	rs, err := retryRejected(ctx, c, lighthouse.ActionDescribeRegions, func() ([]lighthouse.Region, error) {
		return c.api.DescribeRegions(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("describe regions: %w", err)
	}
	var out []string
	for _, r := range rs {
		// A region listed without a state is taken as open: leaving one
		// out would leave its instances out of the selection unseen.
		if (r.RegionState == lighthouse.RegionAvailable || r.RegionState == "") && !slices.Contains(out, r.Region) {
			out = append(out, r.Region)
		}
	}
	slices.Sort(out)
	return out, nil
}
