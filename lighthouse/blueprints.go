package lighthouse

import (
	"context"
	"fmt"
)

// MaxResetBlueprintIDs is the most blueprint IDs one
// DescribeResetInstanceBlueprints call asks about: the most values its
// blueprint-id filter accepts.
const MaxResetBlueprintIDs = 5

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

// DescribeResetInstanceBlueprintsPage returns one page of the service's
// verdicts on resetting instance instanceID of region to each of
// blueprintIDs (IsResettable, and NonResettableMessage when not), or to
// every blueprint it offers when blueprintIDs is empty, and how many
// verdicts there are in all (TotalCount): those at offset, at most
// MaxIDsPerCall of them. It is the best check before ResetInstance. It
// makes one call: more than MaxResetBlueprintIDs IDs fail before sending,
// with ClientError.InvalidParameter (runner.Cloud splits a longer list and
// reads every page, each call under its limiter).
//
// API docs: https://www.tencentcloud.com/document/product/1103/42493
func (c *Client) DescribeResetInstanceBlueprintsPage(ctx context.Context, region, instanceID string, blueprintIDs []string, offset int) (total int, blueprints []ResetInstanceBlueprint, err error) {
	if len(blueprintIDs) > MaxResetBlueprintIDs {
		return 0, nil, invalidParameter(ActionDescribeResetInstanceBlueprints, fmt.Errorf("%d blueprint IDs, at most %d in one call", len(blueprintIDs), MaxResetBlueprintIDs))
	}
	req := describeResetInstanceBlueprintsRequest{InstanceID: instanceID, Offset: offset, Limit: MaxIDsPerCall}
	if len(blueprintIDs) > 0 {
		req.Filters = []Filter{{Name: "blueprint-id", Values: blueprintIDs}}
	}
	var resp describeResetInstanceBlueprintsResponse
	if err := c.call(ctx, serviceLighthouse, region, ActionDescribeResetInstanceBlueprints, req, &resp); err != nil {
		return 0, nil, err
	}
	return resp.TotalCount, resp.ResetInstanceBlueprintSet, nil
}
