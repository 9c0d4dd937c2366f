package lighthouse

import "context"

// Region is one entry of DescribeRegions.
type Region struct {
	Region          string `json:"Region"` // e.g. ap-guangzhou
	RegionName      string `json:"RegionName"`
	RegionState     string `json:"RegionState"` // AVAILABLE when open
	IsChinaMainland bool   `json:"IsChinaMainland"`
}

// RegionAvailable is the RegionState of a region open for use.
const RegionAvailable = "AVAILABLE"

type describeRegionsResponse struct {
	meta
	TotalCount int      `json:"TotalCount"`
	RegionSet  []Region `json:"RegionSet"`
}

// serviceLighthouseGlobal is Lighthouse for the actions that name no region.
var serviceLighthouseGlobal = service{name: Service, version: Version}

// DescribeRegions returns the regions Lighthouse offers: the authoritative
// list to scan for instances, since instances, blueprints and rate budgets
// are per region. The call names no region.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42491
func (c *Client) DescribeRegions(ctx context.Context) ([]Region, error) {
	var resp describeRegionsResponse
	if err := c.call(ctx, serviceLighthouseGlobal, "", ActionDescribeRegions, struct{}{}, &resp); err != nil {
		return nil, err
	}
	return resp.RegionSet, nil
}
