package lighthouse

import (
	"context"
	"slices"
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
// region. It makes one call per MaxIDsPerCall IDs, one after the other, and
// stops at the first error. An empty ids makes no call and returns nil. An
// ID the API does not know is left out of the result or fails the call.
//
// API docs: https://www.tencentcloud.com/document/api/1103/42480
func (c *Client) DescribeKeyPairs(ctx context.Context, region string, ids []string) ([]KeyPair, error) {
	var all []KeyPair
	for chunk := range slices.Chunk(ids, MaxIDsPerCall) {
		req := describeKeyPairsRequest{KeyIDs: chunk, Limit: len(chunk)}
		var resp describeKeyPairsResponse
		if err := c.call(ctx, serviceLighthouse, region, ActionDescribeKeyPairs, req, &resp); err != nil {
			return nil, err
		}
		all = append(all, resp.KeyPairSet...)
	}
	return all, nil
}
