package lighthouse

import (
	"context"
	"slices"
)

type resetInstanceRequest struct {
	InstanceID  string `json:"InstanceId"`
	BlueprintID string `json:"BlueprintId,omitempty"`
}

type resetInstanceResponse struct {
	meta
}

// ResetInstance reinstalls the system disk of instance instanceID in region
// with blueprint blueprintID, or with its current blueprint when blueprintID
// is "". The reset is asynchronous: the returned RequestId identifies it, and
// DescribeInstances reports its progress (LatestOperationRequestId,
// LatestOperationState).
//
// ResetInstance formats the system disk and is not idempotent: when the
// error's Class is ClassAmbiguous the reset may have been accepted, and it
// must not be sent again before DescribeInstances proves it absent.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42490
func (c *Client) ResetInstance(ctx context.Context, region, instanceID, blueprintID string) (requestID string, err error) {
	// Only the two fields the international API knows: LoginConfiguration
	// and Containers exist on the China site only (UnknownParameter elsewhere).
	req := resetInstanceRequest{InstanceID: instanceID, BlueprintID: blueprintID}
	var resp resetInstanceResponse
	if err := c.call(ctx, serviceLighthouse, region, ActionResetInstance, req, &resp); err != nil {
		return "", err
	}
	return resp.RequestID, nil
}

type describeInstancesRequest struct {
	InstanceIDs []string `json:"InstanceIds,omitempty"`
	Offset      int      `json:"Offset,omitempty"`
	Limit       int      `json:"Limit,omitempty"`
}

type describeInstancesResponse struct {
	meta
	TotalCount  int        `json:"TotalCount"`
	InstanceSet []Instance `json:"InstanceSet"`
}

// DescribeInstances returns the instances of region with the given IDs, in
// the order the API returns them, with Region set. It makes one call per
// MaxIDsPerCall IDs, one after the other, and stops at the first error. An
// empty ids makes no call and returns nil.
//
// An ID the API does not know in region may fail the whole call with
// ResourceNotFound.InstanceIdNotFound (ClassPermanent) or be left out of the
// result.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42498
func (c *Client) DescribeInstances(ctx context.Context, region string, ids []string) ([]Instance, error) {
	var all []Instance
	for chunk := range slices.Chunk(ids, MaxIDsPerCall) {
		// Limit defaults to 20, so a call for more IDs must raise it.
		req := describeInstancesRequest{InstanceIDs: chunk, Limit: len(chunk)}
		var resp describeInstancesResponse
		if err := c.call(ctx, serviceLighthouse, region, ActionDescribeInstances, req, &resp); err != nil {
			return nil, err
		}
		all = append(all, resp.InstanceSet...)
	}
	setRegion(all, region)
	return all, nil
}

// ListInstances returns one page of the instances of region, with Region
// set, and the number of instances in region. limit is at most
// MaxIDsPerCall; 0 means the API's default, 20.
//
// API docs: https://www.tencentcloud.com/document/product/1103/42498
func (c *Client) ListInstances(ctx context.Context, region string, offset, limit int) (total int, instances []Instance, err error) {
	req := describeInstancesRequest{Offset: offset, Limit: limit}
	var resp describeInstancesResponse
	if err := c.call(ctx, serviceLighthouse, region, ActionDescribeInstances, req, &resp); err != nil {
		return 0, nil, err
	}
	setRegion(resp.InstanceSet, region)
	return resp.TotalCount, resp.InstanceSet, nil
}

func setRegion(instances []Instance, region string) {
	for i := range instances {
		instances[i].Region = region
	}
}
