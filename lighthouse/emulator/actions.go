package emulator

import "slices"

// Response bodies (inside the envelope's "Response").

type resetInstanceResponse struct {
	RequestID string `json:"RequestId"`
}

type describeInstancesResponse struct {
	TotalCount  int            `json:"TotalCount"`
	InstanceSet []wireInstance `json:"InstanceSet"`
	RequestID   string         `json:"RequestId"`
}

type describeBlueprintsResponse struct {
	TotalCount   int             `json:"TotalCount"`
	BlueprintSet []wireBlueprint `json:"BlueprintSet"`
	RequestID    string          `json:"RequestId"`
}

type describeResetInstanceBlueprintsResponse struct {
	TotalCount                int                  `json:"TotalCount"`
	ResetInstanceBlueprintSet []wireResetBlueprint `json:"ResetInstanceBlueprintSet"`
	RequestID                 string               `json:"RequestId"`
}

// Filter names each action supports; a trailing ":" marks a prefix.
var (
	instanceFilters = []string{"instance-name", "private-ip-address", "public-ip-address", "zone",
		"instance-state", "tag-key", "tag-value", "tag:"}
	blueprintFilters      = []string{"blueprint-id", "blueprint-type", "platform-type", "blueprint-name", "blueprint-state", "scene-id"}
	resetBlueprintFilters = []string{"blueprint-id", "blueprint-type", "platform-type", "blueprint-name", "blueprint-state"}
)

// maxResetBlueprintFilterValues is DescribeResetInstanceBlueprints' limit on
// values per filter.
const maxResetBlueprintFilterValues = 5

// instanceIn returns the instance id in region, or nil. The caller holds
// s.mu.
func (s *Server) instanceIn(region, id string) *instance {
	if in := s.instances[id]; in != nil && in.Region == region {
		return in
	}
	return nil
}

// blueprintIn returns the blueprint id in region, or nil.
func (s *Server) blueprintIn(region, id string) *blueprint {
	for _, b := range s.blueprints {
		if b.ID == id && b.inRegion(region) {
			return b
		}
	}
	return nil
}

func instanceNotFound(id string) *apiError {
	return errorf("ResourceNotFound.InstanceIdNotFound", "The instance ID `%s` does not exist.", id)
}

// ResetInstance (https://www.tencentcloud.com/document/product/1103/42490).

func (s *Server) prepareResetInstance(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("InstanceId", "BlueprintId"); e != nil {
		return nil, nil, e
	}
	id, ok, e := p.str("InstanceId")
	if e != nil {
		return nil, nil, e
	}
	if !ok {
		return nil, nil, missing("InstanceId")
	}
	bpID, hasBP, e := p.str("BlueprintId")
	if e != nil {
		return nil, nil, e
	}
	if !instanceIDPattern.MatchString(id) {
		return nil, nil, errorf("InvalidParameterValue.InstanceIdMalformed", "The instance ID `%s` is malformed.", id)
	}
	if hasBP && !blueprintIDPattern.MatchString(bpID) {
		return nil, nil, errorf("InvalidParameterValue.BlueprintIdMalformed", "The image ID `%s` is malformed.", bpID)
	}
	return []string{id}, func() answer { return s.resetInstance(c, id, bpID, hasBP) }, nil
}

// resetInstance checks the reset of id to bpID (the installed image when
// !hasBP) and accepts it: the instance's latest operation becomes this
// call's ResetInstance, OPERATING until its drawn duration passes.
func (s *Server) resetInstance(c *call, id, bpID string, hasBP bool) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instanceIn(c.region, id)
	if in == nil {
		return answer{err: instanceNotFound(id)}
	}
	img, state := in.current(c.now)
	target := img
	if !hasBP {
		bpID = img.blueprintID
	}
	switch bp := s.blueprintIn(c.region, bpID); {
	case bp != nil:
		if e := bp.problem(in); e != nil {
			return answer{err: e}
		}
		target = bp.image()
	case hasBP:
		return answer{err: errorf("ResourceNotFound.BlueprintIdNotFound", "The image ID `%s` does not exist.", bpID)}
	}
	if state != stateRunning && state != stateStopped {
		return answer{err: errorf("UnsupportedOperation.InvalidInstanceState",
			"Instance `%s` is %s; this operation is not supported in that state.", id, state)}
	}
	if in.op.state(c.now) == opOperating {
		return answer{err: errorf("UnsupportedOperation.LatestOperationUnfinished",
			"The latest operation of instance `%s` (%s, request %s) is unfinished.", id, in.op.name, in.op.requestID)}
	}
	d, failed := s.resetOutcome(id)
	result := opSuccess
	if failed {
		result = opFailed
	}
	in.img, in.state = img, state
	in.prev = in.op
	in.op = newOperation(actionResetInstance, c.requestID, c.now, c.now.Add(d), result, &target)
	in.resets = append(in.resets, c.requestID)
	s.cfg.log.Debug("emulator reset accepted", "request_id", c.requestID, "instance_id", id,
		"blueprint_id", target.blueprintID, "duration", d, "result", result)
	return answer{body: resetInstanceResponse{RequestID: c.requestID}}
}

// DescribeInstances (https://www.tencentcloud.com/document/product/1103/42498).

func (s *Server) prepareDescribeInstances(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("InstanceIds", "Filters", "Offset", "Limit"); e != nil {
		return nil, nil, e
	}
	ids, e := p.ids("InstanceIds", instanceIDPattern.MatchString, "InvalidParameterValue.InstanceIdMalformed", "instance")
	if e != nil {
		return nil, nil, e
	}
	fs, e := p.filters(instanceFilters, maxLimit)
	if e != nil {
		return nil, nil, e
	}
	if len(ids) > 0 && len(fs) > 0 {
		return nil, nil, errorf("InvalidParameter.ParameterConflict", "The parameters `InstanceIds` and `Filters` cannot be used together.")
	}
	offset, limit, e := p.paging()
	if e != nil {
		return nil, nil, e
	}
	return ids, func() answer { return s.describeInstances(c, ids, fs, offset, limit) }, nil
}

func (s *Server) describeInstances(c *call, ids []string, fs []filter, offset, limit int) answer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var matched []*instance
	switch {
	case len(ids) > 0:
		for _, id := range ids {
			if in := s.instanceIn(c.region, id); in != nil {
				matched = append(matched, in)
			}
		}
	case len(fs) == 0:
		matched = s.byRegion[c.region]
	default:
		for _, in := range s.byRegion[c.region] {
			if s.matchInstance(in, fs, c) {
				matched = append(matched, in)
			}
		}
	}
	lo, hi := page(len(matched), offset, limit)
	set := make([]wireInstance, 0, hi-lo)
	for _, in := range matched[lo:hi] {
		set = append(set, in.view(c.now, s.cfg.visibilityLag))
	}
	return answer{body: describeInstancesResponse{TotalCount: len(matched), InstanceSet: set, RequestID: c.requestID}}
}

// matchInstance reports whether in passes every filter (filters are ANDed,
// values within one ORed). The caller holds s.mu.
func (s *Server) matchInstance(in *instance, fs []filter, c *call) bool {
	for _, f := range fs {
		var v string
		switch f.Name {
		case "instance-name":
			v = in.Name
		case "private-ip-address":
			v = in.privateIP
		case "public-ip-address":
			v = in.publicIP
		case "zone":
			v = in.Zone
		case "instance-state":
			_, _, v = in.shown(c.now, s.cfg.visibilityLag)
		default: // tag-key, tag-value, tag:<key>: emulated instances have no tags
			return false
		}
		if !slices.Contains(f.Values, v) {
			return false
		}
	}
	return true
}

// DescribeBlueprints (https://www.tencentcloud.com/document/product/1103/42503).

func (s *Server) prepareDescribeBlueprints(c *call, p params) (func() answer, *apiError) {
	if e := p.only("BlueprintIds", "Filters", "Offset", "Limit"); e != nil {
		return nil, e
	}
	ids, e := p.ids("BlueprintIds", blueprintIDPattern.MatchString, "InvalidParameterValue.BlueprintIdMalformed", "image")
	if e != nil {
		return nil, e
	}
	fs, e := p.filters(blueprintFilters, maxLimit)
	if e != nil {
		return nil, e
	}
	if e := checkBlueprintFilters(fs); e != nil {
		return nil, e
	}
	if len(ids) > 0 && len(fs) > 0 {
		return nil, errorf("InvalidParameter.ParameterConflict", "The parameters `BlueprintIds` and `Filters` cannot be used together.")
	}
	offset, limit, e := p.paging()
	if e != nil {
		return nil, e
	}
	return func() answer {
		var matched []wireBlueprint
		for _, b := range s.blueprints {
			if b.inRegion(c.region) && (len(ids) == 0 || slices.Contains(ids, b.ID)) && matchBlueprint(b, fs) {
				matched = append(matched, b.wire)
			}
		}
		lo, hi := page(len(matched), offset, limit)
		set := append([]wireBlueprint{}, matched[lo:hi]...)
		return answer{body: describeBlueprintsResponse{TotalCount: len(matched), BlueprintSet: set, RequestID: c.requestID}}
	}, nil
}

// checkBlueprintFilters checks the values of enumerated blueprint filters.
func checkBlueprintFilters(fs []filter) *apiError {
	for _, f := range fs {
		for _, v := range f.Values {
			switch {
			case f.Name == "blueprint-id" && !blueprintIDPattern.MatchString(v):
				return errorf("InvalidParameterValue.BlueprintIdMalformed", "The image ID `%s` is malformed.", v)
			case f.Name == "blueprint-type" && !blueprintTypes[v]:
				return errorf("InvalidParameterValue.InvalidBlueprintType", "The image type `%s` is invalid.", v)
			case f.Name == "platform-type" && !platformTypes[v]:
				return errorf("InvalidParameterValue.InvalidBlueprintPlatformType", "The image platform type `%s` is invalid.", v)
			case f.Name == "blueprint-state" && !blueprintStates[v]:
				return errorf("InvalidParameterValue.InvalidBlueprintState", "The image state `%s` is invalid.", v)
			}
		}
	}
	return nil
}

// matchBlueprint reports whether b passes every filter.
func matchBlueprint(b *blueprint, fs []filter) bool {
	for _, f := range fs {
		var v string
		switch f.Name {
		case "blueprint-id":
			v = b.ID
		case "blueprint-type":
			v = b.Type
		case "platform-type":
			v = b.PlatformType
		case "blueprint-name":
			v = b.Name
		case "blueprint-state":
			v = b.State
		default: // scene-id: emulated blueprints belong to no scene
			return false
		}
		if !slices.Contains(f.Values, v) {
			return false
		}
	}
	return true
}

// DescribeResetInstanceBlueprints (https://www.tencentcloud.com/document/api/1103/42493).

func (s *Server) prepareDescribeResetInstanceBlueprints(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("InstanceId", "Offset", "Limit", "Filters"); e != nil {
		return nil, nil, e
	}
	id, ok, e := p.str("InstanceId")
	if e != nil {
		return nil, nil, e
	}
	if !ok {
		return nil, nil, missing("InstanceId")
	}
	if !instanceIDPattern.MatchString(id) {
		return nil, nil, errorf("InvalidParameterValue.InstanceIdMalformed", "The instance ID `%s` is malformed.", id)
	}
	fs, e := p.filters(resetBlueprintFilters, maxResetBlueprintFilterValues)
	if e != nil {
		return nil, nil, e
	}
	if e := checkBlueprintFilters(fs); e != nil {
		return nil, nil, e
	}
	offset, limit, e := p.paging()
	if e != nil {
		return nil, nil, e
	}
	return []string{id}, func() answer {
		s.mu.RLock()
		defer s.mu.RUnlock()
		in := s.instanceIn(c.region, id)
		if in == nil {
			return answer{err: instanceNotFound(id)}
		}
		var matched []*blueprint
		for _, b := range s.blueprints {
			if b.inRegion(c.region) && matchBlueprint(b, fs) {
				matched = append(matched, b)
			}
		}
		lo, hi := page(len(matched), offset, limit)
		set := make([]wireResetBlueprint, 0, hi-lo)
		for _, b := range matched[lo:hi] {
			rb := wireResetBlueprint{BlueprintInfo: b.wire, IsResettable: true}
			if e := b.problem(in); e != nil {
				rb.IsResettable, rb.NonResettableMessage = false, e.Message
			}
			set = append(set, rb)
		}
		return answer{body: describeResetInstanceBlueprintsResponse{TotalCount: len(matched), ResetInstanceBlueprintSet: set, RequestID: c.requestID}}
	}, nil
}
