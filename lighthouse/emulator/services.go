package emulator

import (
	"maps"
	"strings"
)

// Services the emulator serves on one listener, and the API version of
// each. A call names its service by the first label of the host it was
// sent to (sts.tencentcloudapi.com), else by its credential scope (the Go
// SDK signs with the service name whatever the endpoint), else by its
// action, which is unique across these services.
const (
	serviceLighthouse = "lighthouse"
	serviceSTS        = "sts"
	serviceTag        = "tag"
	serviceTAT        = "tat"

	stsVersion = "2018-08-13"
	tagVersion = "2018-08-13"
	tatVersion = "2020-10-28"
)

var serviceVersions = map[string]string{
	serviceLighthouse: apiVersion,
	serviceSTS:        stsVersion,
	serviceTag:        tagVersion,
	serviceTAT:        tatVersion,
}

// Action names beyond the four of config.go.
const (
	actionDescribeRegions               = "DescribeRegions"
	actionDescribeKeyPairs              = "DescribeKeyPairs"
	actionAssumeRole                    = "AssumeRole"
	actionGetCallerIdentity             = "GetCallerIdentity"
	actionGetResources                  = "GetResources"
	actionDescribeAutomationAgentStatus = "DescribeAutomationAgentStatus"
	actionRunCommand                    = "RunCommand"
	actionDescribeInvocationTasks       = "DescribeInvocationTasks"
)

// actionSpec is what the emulator knows of one action.
type actionSpec struct {
	service string
	// limit is the documented limit in requests per second.
	limit int
	// regional actions need X-TC-Region naming a known region; the others
	// ignore it.
	regional bool
	// prepare checks the parameters and returns the instance IDs the call
	// names (for faults) and the action to run.
	prepare func(s *Server, c *call, p params) ([]string, func() answer, *apiError)
}

// actions are the actions served. Limits are the documented ones: the
// Lighthouse pages (reference §7; DescribeRegions 10, DescribeKeyPairs 100),
// STS AssumeRole 600 and GetCallerIdentity 20, Tag GetResources 20, TAT 20 per API except
// DescribeAutomationAgentStatus 60 (more-apis §1a, §1d, §1e).
var actions = map[string]actionSpec{
	actionResetInstance:                   {serviceLighthouse, 10, true, (*Server).prepareResetInstance},
	actionDescribeInstances:               {serviceLighthouse, 100, true, (*Server).prepareDescribeInstances},
	actionDescribeBlueprints:              {serviceLighthouse, 10, true, (*Server).prepareDescribeBlueprints},
	actionDescribeResetInstanceBlueprints: {serviceLighthouse, 20, true, (*Server).prepareDescribeResetInstanceBlueprints},
	actionDescribeRegions:                 {serviceLighthouse, 10, false, (*Server).prepareDescribeRegions},
	actionDescribeKeyPairs:                {serviceLighthouse, 100, true, (*Server).prepareDescribeKeyPairs},
	actionAssumeRole:                      {serviceSTS, 600, false, (*Server).prepareAssumeRole},
	actionGetCallerIdentity:               {serviceSTS, 20, false, (*Server).prepareGetCallerIdentity},
	actionGetResources:                    {serviceTag, 20, false, (*Server).prepareGetResources},
	actionDescribeAutomationAgentStatus:   {serviceTAT, 60, true, (*Server).prepareDescribeAutomationAgentStatus},
	actionRunCommand:                      {serviceTAT, 20, true, (*Server).prepareRunCommand},
	actionDescribeInvocationTasks:         {serviceTAT, 20, true, (*Server).prepareDescribeInvocationTasks},
}

// defaultRateLimits are the documented per-action limits in requests per
// second.
var defaultRateLimits = func() map[string]int {
	m := make(map[string]int, len(actions))
	for name, a := range actions {
		m[name] = a.limit
	}
	return m
}()

// DefaultRateLimits returns the documented limit, in requests per second,
// of every action the emulator serves, keyed by action name. The map is a
// copy; a caller lifting every limit sets each entry to -1 in
// Config.RateLimits.
func DefaultRateLimits() map[string]int {
	return maps.Clone(defaultRateLimits)
}

// namedService returns the service a call names by its host or credential
// scope, or "" when neither names one the emulator serves.
func namedService(host, scopeService string) string {
	label, _, _ := strings.Cut(host, ".")
	if _, ok := serviceVersions[label]; ok {
		return label
	}
	if _, ok := serviceVersions[scopeService]; ok {
		return scopeService
	}
	return ""
}
