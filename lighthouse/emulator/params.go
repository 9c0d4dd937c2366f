package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// apiError is an error answered in the response envelope.
type apiError struct {
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// params are a request's action parameters, by name. JSON nulls are dropped,
// so a null parameter counts as absent.
type params map[string]json.RawMessage

// decodeParams parses a request body, which must be one JSON object.
func decodeParams(body []byte) (params, *apiError) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var p params
	err := dec.Decode(&p)
	if err == nil && p == nil {
		err = errors.New("not an object")
	}
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("data after the object")
		}
	}
	if err != nil {
		return nil, errorf("InvalidParameter", "The request body is not a valid JSON object: %v.", err)
	}
	for k, v := range p {
		if string(v) == "null" {
			delete(p, k)
		}
	}
	return p, nil
}

// only reports the first parameter, in name order, that is not allowed.
func (p params) only(allowed ...string) *apiError {
	var unknown []string
	for k := range p {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return errorf("UnknownParameter", "The parameter `%s` is not recognized.", unknown[0])
}

func missing(name string) *apiError {
	return errorf("MissingParameter", "The request is missing a required parameter `%s`.", name)
}

func wrongType(name, want string) *apiError {
	return errorf("InvalidParameter", "The parameter `%s` must be of type %s.", name, want)
}

// str returns string parameter name; ok is false when it is absent.
func (p params) str(name string) (v string, ok bool, e *apiError) {
	raw, ok := p[name]
	if !ok {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", true, wrongType(name, "String")
	}
	return v, true, nil
}

// integer returns integer parameter name; ok is false when it is absent.
func (p params) integer(name string) (v int, ok bool, e *apiError) {
	raw, ok := p[name]
	if !ok {
		return 0, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var n any
	if err := dec.Decode(&n); err != nil {
		return 0, true, wrongType(name, "Integer")
	}
	num, isNum := n.(json.Number)
	if !isNum {
		return 0, true, wrongType(name, "Integer")
	}
	i, err := num.Int64()
	if err != nil {
		if f, ferr := num.Float64(); ferr == nil && f == math.Trunc(f) {
			return 0, true, errorf("InvalidParameterValue.OutOfRange", "The parameter `%s` is out of range.", name)
		}
		return 0, true, wrongType(name, "Integer")
	}
	if i > math.MaxInt32 || i < math.MinInt32 {
		return 0, true, errorf("InvalidParameterValue.OutOfRange", "The parameter `%s` is out of range.", name)
	}
	return int(i), true, nil
}

// strs returns string-array parameter name; ok is false when it is absent.
func (p params) strs(name string) (v []string, ok bool, e *apiError) {
	raw, ok := p[name]
	if !ok {
		return nil, false, nil
	}
	var items []*string // a null element decodes to nil
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, true, wrongType(name, "Array of String")
	}
	v = make([]string, len(items))
	for i, item := range items {
		if item == nil {
			return nil, true, wrongType(name, "Array of String")
		}
		v[i] = *item
	}
	return v, true, nil
}

// filter is one element of a Filters parameter.
type filter struct {
	Name   string
	Values []string
}

// filters returns the Filters parameter, checked against the supported
// names (a name ending in ":" is a prefix, as in "tag:") and limits.
func (p params) filters(supported []string, maxValues int) ([]filter, *apiError) {
	raw, ok := p["Filters"]
	if !ok {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, wrongType("Filters", "Array of Filter")
	}
	if len(items) > maxFilters {
		return nil, errorf("InvalidParameterValue.LimitExceeded", "The parameter `Filters` has more than %d filters.", maxFilters)
	}
	fs := make([]filter, len(items))
	for i, item := range items {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(item, &fields); err != nil || fields == nil {
			return nil, errorf("InvalidParameter.InvalidFilterNotDict", "Filters.%d is not an object.", i)
		}
		for k := range fields {
			if k != "Name" && k != "Values" {
				return nil, errorf("InvalidParameter.InvalidFilterInvalidKey", "Filters.%d has the invalid key `%s`; valid keys are Name and Values.", i, k)
			}
		}
		if err := json.Unmarshal(fields["Name"], &fs[i].Name); err != nil || fs[i].Name == "" {
			return nil, errorf("InvalidParameter.InvalidFilterInvalidNameNotStr", "Filters.%d.Name must be a non-empty string.", i)
		}
		var values []json.RawMessage
		if err := json.Unmarshal(fields["Values"], &values); err != nil || values == nil {
			return nil, errorf("InvalidParameter.InvalidFilterInvalidValuesNotList", "Filters.%d.Values must be a list of strings.", i)
		}
		for _, v := range values {
			var s string
			if err := json.Unmarshal(v, &s); err != nil || string(v) == "null" {
				return nil, errorf("InvalidParameter.InvalidFilterInvalidValuesNotList", "Filters.%d.Values must be a list of strings.", i)
			}
			fs[i].Values = append(fs[i].Values, s)
		}
		if len(fs[i].Values) > maxValues {
			return nil, errorf("InvalidParameter.FilterValueLimitExceeded", "Filters.%d.Values has more than %d values.", i, maxValues)
		}
		if !supportedFilter(supported, fs[i].Name) {
			return nil, errorf("InvalidParameter.InvalidFilterNotSupportedName", "The filter name `%s` is not supported.", fs[i].Name)
		}
	}
	return fs, nil
}

func supportedFilter(supported []string, name string) bool {
	for _, s := range supported {
		prefix := strings.HasSuffix(s, ":")
		if !prefix && s == name || prefix && strings.HasPrefix(name, s) && len(name) > len(s) {
			return true
		}
	}
	return false
}

// paging returns the Offset and Limit parameters, with their defaults.
func (p params) paging() (offset, limit int, e *apiError) {
	offset, _, e = p.integer("Offset")
	if e != nil {
		return 0, 0, e
	}
	if offset < 0 {
		return 0, 0, errorf("InvalidParameterValue.Negative", "The parameter `Offset` must not be negative.")
	}
	limit, ok, e := p.integer("Limit")
	if e != nil {
		return 0, 0, e
	}
	if !ok {
		limit = defaultLimit
	}
	if limit < 1 || limit > maxLimit {
		return 0, 0, errorf("InvalidParameterValue.OutOfRange", "The parameter `Limit` must be between 1 and %d.", maxLimit)
	}
	return offset, limit, nil
}

// ids returns a list-of-IDs parameter (InstanceIds, BlueprintIds), checked
// for count, format and duplicates; malformedCode names the format error.
func (p params) ids(name string, valid func(string) bool, malformedCode, what string) ([]string, *apiError) {
	ids, _, e := p.strs(name)
	if e != nil {
		return nil, e
	}
	if len(ids) > maxIDs {
		return nil, errorf("InvalidParameterValue.LimitExceeded", "The parameter `%s` has more than %d values.", name, maxIDs)
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !valid(id) {
			return nil, errorf(malformedCode, "The %s ID `%s` is malformed.", what, id)
		}
		if seen[id] {
			return nil, errorf("InvalidParameterValue.Duplicated", "The parameter `%s` has the duplicate value `%s`.", name, id)
		}
		seen[id] = true
	}
	return ids, nil
}

// page returns the [offset, offset+limit) part of n items as bounds.
func page(n, offset, limit int) (lo, hi int) {
	lo = min(offset, n)
	hi = min(lo+limit, n)
	return lo, hi
}
