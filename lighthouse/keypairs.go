package lighthouse

import (
	"context"
)

// KeyPair is the part of the API's KeyPair structure that batchreset uses.
// The private key, which the API returns only when it creates a pair, is
// never decoded.
type KeyPair struct {
	KeyID                 string   `json:"KeyId"`
	KeyName               string   `json:"KeyName"`
	PublicKey             string   `json:"PublicKey"`
	AssociatedInstanceIDs []string `json:"AssociatedInstanceIds"`
	CreatedTime           string   `json:"CreatedTime"` // ISO 8601 UTC
}

type describeKeyPairsRequest struct {
	KeyIDs []string `json:"KeyIds"`
	Limit  int      `json:"Limit"`
}

type describeKeyPairsResponse struct {
	meta
	TotalCount int       `json:"TotalCount"`
	KeyPairSet []KeyPair `json:"KeyPairSet"`
}

// DescribeKeyPairs returns the key pairs of region with the given IDs, to
// check a LoginConfiguration before a reset: key pairs belong to one
// region. It makes one call: more than MaxIDsPerCall IDs fail before
// sending, with ClientError.InvalidParameter. An empty ids makes no call
// and returns nil. An ID the API does not know is left out of the result or
// fails the call.
//
// API docs: https://www.tencentcloud.com/document/api/1103/42480
func (c *Client) DescribeKeyPairs(ctx context.Context, region string, ids []string) ([]KeyPair, error) {
	var resp describeKeyPairsResponse
	req := describeKeyPairsRequest{KeyIDs: ids, Limit: len(ids)}
	if err := c.describeIDs(ctx, serviceLighthouse, region, ActionDescribeKeyPairs, ids, req, &resp); err != nil {
		return nil, err
	}
	return resp.KeyPairSet, nil
}
