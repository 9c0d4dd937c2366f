package lighthouse

import (
	"context"
	"fmt"
	"strings"
)

// Tag API limits (more-apis.md §1a): the SDK allows 6 tag filters, the
// international page 5, so 5 is the safe reading.
const (
	MaxTagFilters      = 5
	MaxTagFilterValues = 10
	// maxResults is the largest GetResources page.
	maxResults = 200
)

// TagFilter selects resources by tag: those with key TagKey and, when
// TagValues is not empty, one of those values. Filters of one call are
// ANDed.
type TagFilter struct {
	TagKey    string   `json:"TagKey"`
	TagValues []string `json:"TagValue,omitempty"`
}

// TaggedResource is one resource GetResources found.
type TaggedResource struct {
	Name ResourceName
	Tags []Tag
}

// ResourceName is a resource's six-segment name,
// qcs::<service>:<region>:uin/<account>:<type>/<id>, for example
// qcs::lighthouse:ap-guangzhou:uin/100001:instance/lhins-ruy9d2tw.
type ResourceName struct {
	Service      string // "lighthouse"
	Region       string // "" for a global resource
	Account      string // the owner's uin
	ResourceType string // "instance"
	ResourceID   string // "lhins-ruy9d2tw"
}

// String returns the name in its six-segment form.
func (n ResourceName) String() string {
	return fmt.Sprintf("qcs::%s:%s:uin/%s:%s/%s", n.Service, n.Region, n.Account, n.ResourceType, n.ResourceID)
}

// LighthouseInstance reports whether n names a Lighthouse instance.
func (n ResourceName) LighthouseInstance() bool {
	return n.Service == Service && n.ResourceType == "instance"
}

// ParseResourceName parses a six-segment resource name.
func ParseResourceName(s string) (ResourceName, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 6 || parts[0] != "qcs" || parts[1] != "" || parts[2] == "" {
		return ResourceName{}, fmt.Errorf("resource name %q: want qcs::service:region:uin/account:type/id", s)
	}
	account, ok := strings.CutPrefix(parts[4], "uin/")
	typ, id, ok2 := strings.Cut(parts[5], "/")
	if !ok || account == "" || !ok2 || typ == "" || id == "" {
		return ResourceName{}, fmt.Errorf("resource name %q: want qcs::service:region:uin/account:type/id", s)
	}
	return ResourceName{Service: parts[2], Region: parts[3], Account: account, ResourceType: typ, ResourceID: id}, nil
}

type getResourcesRequest struct {
	TagFilters      []TagFilter `json:"TagFilters,omitempty"`
	PaginationToken string      `json:"PaginationToken,omitempty"`
	MaxResults      int         `json:"MaxResults"`
}

type getResourcesResponse struct {
	meta
	PaginationToken        string `json:"PaginationToken"`
	ResourceTagMappingList []struct {
		Resource string `json:"Resource"`
		Tags     []struct {
			TagKey   string `json:"TagKey"`
			TagValue string `json:"TagValue"`
		} `json:"Tags"`
	} `json:"ResourceTagMappingList"`
}

// GetResourcesPage returns one page of up to 200 resources that match all
// of filters, from the page token names ("" for the first), and the token
// of the next page, "" after the last. At most MaxTagFilters filters are
// allowed, each with a key and at most MaxTagFilterValues values. A name
// that is not in the six-segment form fails the call as
// ClientError.ParseJsonError, ClassFatal: retrying would read it again.
//
// API docs: https://www.tencentcloud.com/document/api/651/46539
func (c *Client) GetResourcesPage(ctx context.Context, filters []TagFilter, token string) (resources []TaggedResource, next string, err error) {
	if len(filters) > MaxTagFilters {
		return nil, "", invalidParameter(ActionGetResources, fmt.Errorf("%d tag filters, at most %d", len(filters), MaxTagFilters))
	}
	for _, f := range filters {
		if f.TagKey == "" || len(f.TagValues) > MaxTagFilterValues {
			return nil, "", invalidParameter(ActionGetResources, fmt.Errorf("tag filter %q: want a key and at most %d values", f.TagKey, MaxTagFilterValues))
		}
	}
	req := getResourcesRequest{TagFilters: filters, PaginationToken: token, MaxResults: maxResults}
	var resp getResourcesResponse
	if err := c.call(ctx, serviceTag, "", ActionGetResources, req, &resp); err != nil {
		return nil, "", err
	}
	for _, m := range resp.ResourceTagMappingList {
		name, err := ParseResourceName(m.Resource)
		if err != nil {
			return nil, "", &APIError{Action: ActionGetResources, Code: CodeParseJSONError, Message: err.Error(), RequestID: resp.RequestID, Class: ClassFatal, Err: err}
		}
		r := TaggedResource{Name: name}
		for _, t := range m.Tags {
			r.Tags = append(r.Tags, Tag{Key: t.TagKey, Value: t.TagValue})
		}
		resources = append(resources, r)
	}
	return resources, resp.PaginationToken, nil
}
