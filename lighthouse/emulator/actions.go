package emulator

import (
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

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
		"instance-state", "tag-key", "tag-value", "tag:", "bundle-id"}
	blueprintFilters      = []string{"blueprint-id", "blueprint-type", "platform-type", "blueprint-name", "blueprint-state", "scene-id"}
	resetBlueprintFilters = []string{"blueprint-id", "blueprint-type", "platform-type", "blueprint-name", "blueprint-state"}
)

// maxResetBlueprintFilterValues is DescribeResetInstanceBlueprints' limit on
// values per filter.
const maxResetBlueprintFilterValues = 5

func instanceNotFound(id string) *apiError {
	return errorf("ResourceNotFound.InstanceIdNotFound", "The instance ID `%s` does not exist.", id)
}

// ResetInstance (https://www.tencentcloud.com/document/product/1103/42490).

func (s *Server) prepareResetInstance(c *call, p params) ([]string, func() answer, *apiError) {
	allowed := []string{"InstanceId", "BlueprintId", "Containers", "LoginConfiguration"}
	if s.cfg.intlSite {
		allowed = allowed[:3]
	}
	if e := p.only(allowed...); e != nil {
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
	containers, e := containersParam(p)
	if e != nil {
		return nil, nil, e
	}
	l, e := loginParam(p)
	if e != nil {
		return nil, nil, e
	}
	req := resetRequest{id: id, bpID: bpID, hasBP: hasBP, login: l, containers: containers}
	return []string{id}, func() answer { return s.resetInstance(c, req) }, nil
}

// resetRequest is a checked ResetInstance call.
type resetRequest struct {
	id, bpID   string
	hasBP      bool // without it, the installed image is reinstalled
	login      *login
	containers int
}

// resetInstance checks the reset req and accepts it: the instance's latest
// operation becomes this call's ResetInstance, OPERATING until its drawn
// duration passes.
func (s *Server) resetInstance(c *call, req resetRequest) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, bpID := req.id, req.bpID
	in := c.acct.instanceIn(c.region, id)
	if in == nil {
		return answer{err: instanceNotFound(id)}
	}
	img, state := in.current(c.now)
	target := img
	if !req.hasBP {
		bpID = img.blueprintID
	}
	if cur := c.acct.blueprintIn(c.region, img.blueprintID); cur != nil && cur.Type == "GAME_PORTAL" && bpID != img.blueprintID {
		return answer{err: errorf("InvalidParameter.GamePortalInstanceOnlySupportCurrentBlueprint",
			"Game portal instance `%s` can only be reset to its current image.", id)}
	}
	bp := c.acct.blueprintIn(c.region, bpID)
	switch {
	case bp != nil:
		if e := bp.problem(in); e != nil {
			return answer{err: e}
		}
		target = bp.image()
	case req.hasBP:
		return answer{err: errorf("ResourceNotFound.BlueprintIdNotFound", "The image ID `%s` does not exist.", bpID)}
	}
	if req.containers > 0 && (bp == nil || bp.Type != "DOCKER") {
		return answer{err: errorf("UnsupportedOperation.BlueprintTypeNotSupportOperation", "Containers need a DOCKER image; `%s` is not one.", bpID)}
	}
	if req.login != nil {
		if e := c.acct.checkLogin(req.login, c.region, bp, in.PlatformType); e != nil {
			return answer{err: e}
		}
	}
	if state != stateRunning && state != stateStopped {
		return answer{err: errorf("UnsupportedOperation.InvalidInstanceState",
			"Instance `%s` is %s; this operation is not supported in that state.", id, state)}
	}
	if in.op.state(c.now) == opOperating {
		return answer{err: errorf("UnsupportedOperation.LatestOperationUnfinished",
			"The latest operation of instance `%s` (%s, request %s) is unfinished.", id, in.op.name, in.op.requestID)}
	}
	d, failed, agentLost := s.resetOutcome(id)
	result := opSuccess
	if failed {
		result = opFailed
	}
	rec := ResetRecord{RequestID: c.requestID, BlueprintID: target.blueprintID, Containers: req.containers, At: c.now, Ends: c.now.Add(d),
		SignedBy: c.acct.uin}
	in.keyIDs = in.keys(c.now)
	in.img, in.state, in.stateThen = img, state, ""
	in.prev = in.op
	in.op = newOperation(actionResetInstance, c.requestID, c.now, c.now.Add(d), result, &target)
	in.op.agentLost = agentLost
	if l := req.login; l != nil {
		keys := slices.Clone(l.keyIDs)
		if keys == nil {
			keys = []string{}
		}
		in.op.keyIDs = &keys
		rec.KeyIDs, rec.PasswordSet, rec.AutoGeneratePassword = slices.Clone(l.keyIDs), l.passwordSet, l.auto
	}
	in.resets = append(in.resets, rec)
	s.cfg.log.Debug("emulator reset accepted", "account", c.acct, "request_id", c.requestID, "instance_id", id,
		"blueprint_id", target.blueprintID, "duration", d, "result", result, "key_ids", rec.KeyIDs, "password_set", rec.PasswordSet)
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
	if e := checkInstanceFilters(fs); e != nil {
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
			if in := c.acct.instanceIn(c.region, id); in != nil {
				matched = append(matched, in)
			}
		}
	case len(fs) == 0:
		matched = c.acct.byRegion[c.region]
	default:
		for _, in := range c.acct.byRegion[c.region] {
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

// maxInstanceNameLen is the longest InstanceName (and instance-name filter
// value) Lighthouse allows.
const maxInstanceNameLen = 60

var zonePattern = regexp.MustCompile(`^[a-z]+-[a-z]+-[0-9]+$`)

// checkInstanceFilters checks the values of DescribeInstances filters whose
// form the API checks (error codes of reference §8.2).
func checkInstanceFilters(fs []filter) *apiError {
	for _, f := range fs {
		for _, v := range f.Values {
			switch {
			case f.Name == "instance-name" && len([]rune(v)) > maxInstanceNameLen:
				return errorf("InvalidParameterValue.InstanceNameTooLong", "The instance name filter value is longer than %d characters.", maxInstanceNameLen)
			case (f.Name == "private-ip-address" || f.Name == "public-ip-address") && !isIPv4(v):
				return errorf("InvalidParameterValue.InvalidIpFormat", "The IP address `%s` is malformed.", v)
			case f.Name == "zone" && !zonePattern.MatchString(v):
				return errorf("InvalidParameterValue.InvalidZone", "The zone `%s` is invalid.", v)
			}
		}
	}
	return nil
}

func isIPv4(v string) bool {
	a, err := netip.ParseAddr(v)
	return err == nil && a.Is4()
}

// matchInstance reports whether in passes every filter (filters are ANDed,
// values within one ORed). tag-key matches an instance with a tag of one of
// the keys, tag-value one with a tag of one of the values, and tag:<key>
// one whose tag <key> has one of the values. The caller holds s.mu.
func (s *Server) matchInstance(in *instance, fs []filter, c *call) bool {
	for _, f := range fs {
		var ok bool
		switch f.Name {
		case "instance-name":
			ok = slices.Contains(f.Values, in.Name)
		case "private-ip-address":
			ok = slices.Contains(f.Values, in.privateIP)
		case "public-ip-address":
			ok = slices.Contains(f.Values, in.publicIP)
		case "zone":
			ok = slices.Contains(f.Values, in.Zone)
		case "bundle-id":
			ok = slices.Contains(f.Values, in.bundleID)
		case "instance-state":
			_, _, state := in.shown(c.now, s.cfg.visibilityLag)
			ok = slices.Contains(f.Values, state)
		case "tag-key":
			ok = slices.ContainsFunc(in.tags, func(t wireTag) bool { return slices.Contains(f.Values, t.Key) })
		case "tag-value":
			ok = slices.ContainsFunc(in.tags, func(t wireTag) bool { return slices.Contains(f.Values, t.Value) })
		default: // tag:<key>
			key := strings.TrimPrefix(f.Name, "tag:")
			ok = slices.ContainsFunc(in.tags, func(t wireTag) bool { return t.Key == key && slices.Contains(f.Values, t.Value) })
		}
		if !ok {
			return false
		}
	}
	return true
}

// DescribeRegions (https://www.tencentcloud.com/document/api/1103/42468).

type wireRegion struct {
	Region          string `json:"Region"`
	RegionName      string `json:"RegionName"`
	RegionState     string `json:"RegionState"`
	IsChinaMainland bool   `json:"IsChinaMainland"`
}

type describeRegionsResponse struct {
	TotalCount int          `json:"TotalCount"`
	RegionSet  []wireRegion `json:"RegionSet"`
	RequestID  string       `json:"RequestId"`
}

// regionNames are the display names of the documented regions.
var regionNames = map[string]string{
	"ap-bangkok": "Asia Pacific (Bangkok)", "ap-beijing": "North China (Beijing)", "ap-chengdu": "Southwest China (Chengdu)",
	"ap-guangzhou": "South China (Guangzhou)", "ap-hongkong": "Hong Kong, Macau, Taiwan (Hong Kong, China)",
	"ap-jakarta": "Asia Pacific (Jakarta)", "ap-nanjing": "East China (Nanjing)", "ap-seoul": "Asia Pacific (Seoul)",
	"ap-shanghai": "East China (Shanghai)", "ap-singapore": "Southeast Asia (Singapore)", "ap-tokyo": "Asia Pacific (Tokyo)",
	"eu-frankfurt": "Europe (Frankfurt)", "na-ashburn": "US East (Virginia)", "na-siliconvalley": "US West (Silicon Valley)",
	"sa-saopaulo": "South America (São Paulo)",
}

// mainlandRegions are the documented regions in the Chinese mainland.
var mainlandRegions = set("ap-beijing", "ap-chengdu", "ap-guangzhou", "ap-nanjing", "ap-shanghai")

func (s *Server) prepareDescribeRegions(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only(); e != nil {
		return nil, nil, e
	}
	return nil, func() answer {
		names := slices.Sorted(maps.Keys(s.regions))
		set := make([]wireRegion, len(names))
		for i, r := range names {
			set[i] = wireRegion{Region: r, RegionName: orDefault(regionNames[r], r), RegionState: "AVAILABLE", IsChinaMainland: mainlandRegions[r]}
		}
		return answer{body: describeRegionsResponse{TotalCount: len(set), RegionSet: set, RequestID: c.requestID}}
	}, nil
}

// DescribeBlueprints (https://www.tencentcloud.com/document/product/1103/42503).

func (s *Server) prepareDescribeBlueprints(c *call, p params) ([]string, func() answer, *apiError) {
	if e := p.only("BlueprintIds", "Filters", "Offset", "Limit"); e != nil {
		return nil, nil, e
	}
	ids, e := p.ids("BlueprintIds", blueprintIDPattern.MatchString, "InvalidParameterValue.BlueprintIdMalformed", "image")
	if e != nil {
		return nil, nil, e
	}
	fs, e := p.filters(blueprintFilters, maxLimit)
	if e != nil {
		return nil, nil, e
	}
	if e := checkBlueprintFilters(fs); e != nil {
		return nil, nil, e
	}
	if len(ids) > 0 && len(fs) > 0 {
		return nil, nil, errorf("InvalidParameter.ParameterConflict", "The parameters `BlueprintIds` and `Filters` cannot be used together.")
	}
	offset, limit, e := p.paging()
	if e != nil {
		return nil, nil, e
	}
	return nil, func() answer {
		var matched []wireBlueprint
		for _, b := range c.acct.blueprints {
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
		in := c.acct.instanceIn(c.region, id)
		if in == nil {
			return answer{err: instanceNotFound(id)}
		}
		var matched []*blueprint
		for _, b := range c.acct.blueprints {
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
