package lighthouse

import "context"

// filterAll reads every page of the instances of region that match
// filters, as runner.Cloud does under its limiter, for the tests of the
// emulator's and the client's paging.
func filterAll(ctx context.Context, c *Client, region string, filters []Filter) ([]Instance, error) {
	var all []Instance
	for offset := 0; ; offset += MaxIDsPerCall {
		total, page, err := c.DescribeInstancesPage(ctx, region, filters, offset, MaxIDsPerCall)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < MaxIDsPerCall || offset+len(page) >= total {
			return all, nil
		}
	}
}

// resourcesAll reads every page of the resources tagged as filters say.
func resourcesAll(ctx context.Context, c *Client, filters []TagFilter) ([]TaggedResource, error) {
	var all []TaggedResource
	token := ""
	for {
		page, next, err := c.GetResourcesPage(ctx, filters, token)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" || next == token {
			return all, nil
		}
		token = next
	}
}
