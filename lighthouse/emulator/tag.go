package emulator

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
)

// Tag service GetResources limits (more-apis §1a; tag SDK models).
const (
	maxResourceList     = 10
	maxTagFilters       = 6
	maxTagFilterValues  = 10
	defaultMaxResults   = 50
	maxMaxResults       = 200
	paginationTokenBase = 36
)

// resourcePattern is the six-segment name of a Lighthouse instance:
// qcs::lighthouse:<region>:uin/<uin>:instance/<id>.
var resourcePattern = regexp.MustCompile(`^qcs::([a-z]+):([a-z0-9-]*):uin/([0-9]+):([a-z]+)/(.+)$`)

type wireResourceTag struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

type wireResourceTagMapping struct {
	Resource string            `json:"Resource"`
	Tags     []wireResourceTag `json:"Tags"`
}

type getResourcesResponse struct {
	PaginationToken        string                   `json:"PaginationToken"`
	ResourceTagMappingList []wireResourceTagMapping `json:"ResourceTagMappingList"`
	RequestID              string                   `json:"RequestId"`
}

// tagFilter is one of GetResources' TagFilters: the key, with one of the
// values when any are given.
type tagFilter struct {
	key    string
	values []string
}

// GetResources (https://www.tencentcloud.com/document/api/651/46539).

func (s *Server) prepareGetResources(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("ResourceList", "TagFilters", "PaginationToken", "MaxResults"); e != nil {
		return nil, nil, e
	}
	list, _, e := p.strs("ResourceList")
	if e != nil {
		return nil, nil, e
	}
	if len(list) > maxResourceList {
		return nil, nil, errorf("LimitExceeded.ResourceNumPerRequest", "ResourceList has more than %d resources.", maxResourceList)
	}
	for _, r := range list {
		if !resourcePattern.MatchString(r) {
			return nil, nil, errorf("InvalidParameterValue.ResourceDescriptionError", "The resource description `%s` is not a six-segment name.", r)
		}
	}
	tfs, e := tagFiltersParam(p)
	if e != nil {
		return nil, nil, e
	}
	token, _, e := p.str("PaginationToken")
	if e != nil {
		return nil, nil, e
	}
	offset := 0
	if token != "" {
		n, err := strconv.ParseInt(token, paginationTokenBase, 32)
		if err != nil || n < 0 {
			return nil, nil, errorf("InvalidParameter.PaginationTokenInvalid", "The PaginationToken is invalid.")
		}
		offset = int(n)
	}
	limit, ok, e := p.integer("MaxResults")
	if e != nil {
		return nil, nil, e
	}
	if !ok {
		limit = defaultMaxResults
	}
	if limit < 1 || limit > maxMaxResults {
		return nil, nil, errorf("InvalidParameter", "MaxResults must be between 1 and %d.", maxMaxResults)
	}
	if len(list) > 0 {
		// With ResourceList every match is returned and MaxResults ignored.
		limit = maxMaxResults
	}
	return nil, func() answer {
		s.mu.RLock()
		defer s.mu.RUnlock()
		var matched []wireResourceTagMapping
		for _, in := range c.acct.all {
			if len(in.tags) == 0 || !matchTags(in.tags, tfs) {
				continue
			}
			name := c.acct.resourceName(in)
			if len(list) > 0 && !slices.Contains(list, name) {
				continue
			}
			m := wireResourceTagMapping{Resource: name, Tags: make([]wireResourceTag, len(in.tags))}
			for i, t := range in.tags {
				m.Tags[i] = wireResourceTag{TagKey: t.Key, TagValue: t.Value}
			}
			matched = append(matched, m)
		}
		lo, hi := page(len(matched), offset, limit)
		r := getResourcesResponse{ResourceTagMappingList: append([]wireResourceTagMapping{}, matched[lo:hi]...), RequestID: c.requestID}
		if hi < len(matched) {
			r.PaginationToken = strconv.FormatInt(int64(hi), paginationTokenBase)
		}
		return answer{body: r}
	}, nil
}

// tagFiltersParam returns the TagFilters parameter, checked.
func tagFiltersParam(p params) ([]tagFilter, *apiError) {
	raw, ok := p["TagFilters"]
	if !ok {
		return nil, nil
	}
	var items []struct {
		TagKey   *string
		TagValue []*string
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, errorf("InvalidParameterValue.TagFilters", "TagFilters must be a list of {TagKey, TagValue}.")
	}
	if len(items) > maxTagFilters {
		return nil, errorf("InvalidParameterValue.TagFiltersLengthExceeded", "TagFilters has more than %d filters.", maxTagFilters)
	}
	out := make([]tagFilter, len(items))
	for i, it := range items {
		if it.TagKey == nil || *it.TagKey == "" {
			return nil, errorf("InvalidParameterValue.TagKeyEmpty", "TagFilters.%d.TagKey is empty.", i)
		}
		if len(it.TagValue) > maxTagFilterValues {
			return nil, errorf("InvalidParameterValue.TagFilters", "TagFilters.%d.TagValue has more than %d values.", i, maxTagFilterValues)
		}
		out[i].key = *it.TagKey
		for _, v := range it.TagValue {
			if v == nil {
				return nil, errorf("InvalidParameterValue.TagFilters", "TagFilters.%d.TagValue holds a null.", i)
			}
			out[i].values = append(out[i].values, *v)
		}
	}
	return out, nil
}

// matchTags reports whether tags pass every filter (ANDed; values ORed).
func matchTags(tags []wireTag, fs []tagFilter) bool {
	for _, f := range fs {
		if !slices.ContainsFunc(tags, func(t wireTag) bool {
			return t.Key == f.key && (len(f.values) == 0 || slices.Contains(f.values, t.Value))
		}) {
			return false
		}
	}
	return true
}
