package lighthouse

import (
	"context"
	"slices"
)

// maxBlueprintFilterValues is the most values one filter of
// DescribeResetInstanceBlueprints accepts.
const maxBlueprintFilterValues = 5

// Filter is the API's Filter structure: it matches what has one of Values
// under Name. Filters of one call are ANDed.
type Filter struct {
	Name   string   `json:"Name"`
	Values []string `json:"Values"`
}

type describeBlueprintsRequest struct {
	BlueprintIDs []string `json:"BlueprintIds"`
	Limit        int      `json:"Limit"`
}

type describeBlueprintsResponse struct {
	meta
	TotalCount   int         `json:"TotalCount"`
	BlueprintSet []Blueprint `json:"BlueprintSet"`
}

// DescribeBlueprints returns the blueprints of region with the given IDs,
// in one call: more than MaxIDsPerCall IDs fail before sending, with
// ClientError.InvalidParameter. An empty ids makes no call and returns nil. Custom blueprints
// belong to one region: ask the instance's region.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42503
func (c *Client) DescribeBlueprints(ctx context.Context, region string, ids []string) ([]Blueprint, error) {
	var resp describeBlueprintsResponse
	req := describeBlueprintsRequest{BlueprintIDs: ids, Limit: len(ids)}
	if err := c.describeIDs(ctx, serviceLighthouse, region, ActionDescribeBlueprints, ids, req, &resp); err != nil {
		return nil, err
	}
	return resp.BlueprintSet, nil
}

type describeResetInstanceBlueprintsRequest struct {
	InstanceID string   `json:"InstanceId"`
	Offset     int      `json:"Offset,omitempty"`
	Limit      int      `json:"Limit"`
	Filters    []Filter `json:"Filters,omitempty"`
}

type describeResetInstanceBlueprintsResponse struct {
	meta
	TotalCount                int                      `json:"TotalCount"`
	ResetInstanceBlueprintSet []ResetInstanceBlueprint `json:"ResetInstanceBlueprintSet"`
}

// DescribeResetInstanceBlueprints returns the service's verdict on resetting
// instance instanceID of region to each of blueprintIDs (IsResettable, and
// NonResettableMessage when not), or to every blueprint it offers when
// blueprintIDs is empty. It is the best check before ResetInstance. The API
// takes at most 5 blueprint IDs per call, so longer lists take several
// calls, one after the other, and it stops at the first error.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42493
func (c *Client) DescribeResetInstanceBlueprints(ctx context.Context, region, instanceID string, blueprintIDs []string) ([]ResetInstanceBlueprint, error) {
	if len(blueprintIDs) == 0 {
		return c.describeResetInstanceBlueprints(ctx, region, instanceID, nil)
	}
	var all []ResetInstanceBlueprint
	for chunk := range slices.Chunk(blueprintIDs, maxBlueprintFilterValues) {
		set, err := c.describeResetInstanceBlueprints(ctx, region, instanceID, []Filter{{Name: "blueprint-id", Values: chunk}})
		if err != nil {
			return nil, err
		}
		all = append(all, set...)
	}
	return all, nil
}

// describeResetInstanceBlueprints returns every page of one query.
func (c *Client) describeResetInstanceBlueprints(ctx context.Context, region, instanceID string, filters []Filter) ([]ResetInstanceBlueprint, error) {
	var all []ResetInstanceBlueprint
	for {
		req := describeResetInstanceBlueprintsRequest{InstanceID: instanceID, Offset: len(all), Limit: MaxIDsPerCall, Filters: filters}
		var resp describeResetInstanceBlueprintsResponse
		if err := c.call(ctx, serviceLighthouse, region, ActionDescribeResetInstanceBlueprints, req, &resp); err != nil {
			return nil, err
		}
		all = append(all, resp.ResetInstanceBlueprintSet...)
		if len(resp.ResetInstanceBlueprintSet) == 0 || len(all) >= resp.TotalCount {
			return all, nil
		}
	}
}
