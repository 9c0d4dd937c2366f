package lighthouse

import "time"

// API facts from the Lighthouse documentation (version 2020-03-24).
const (
	// Version is the Lighthouse API version every Lighthouse call names in
	// X-TC-Version.
	Version = "2020-03-24"
	// Service is Lighthouse's signing service name and the host's first
	// label.
	Service = "lighthouse"
	// DefaultEndpoint is the generic endpoint, routed to the nearest region.
	DefaultEndpoint = "https://lighthouse.tencentcloudapi.com"
	// IntlEndpoint is the international site's generic endpoint (the
	// domain the intl API pages and the intl-en SDKs use); the other
	// services follow it (sts.intl.tencentcloudapi.com, see Config.Endpoint).
	IntlEndpoint = "https://lighthouse.intl.tencentcloudapi.com"

	// MaxIDsPerCall is the most InstanceIds or BlueprintIds one Describe
	// call accepts, and the largest Limit of a Describe page.
	MaxIDsPerCall = 100
	// MaxFilters is the most Filters one DescribeInstances call accepts,
	// and MaxFilterValues the most values they hold.
	MaxFilters      = 10
	MaxFilterValues = 100
	// MaxKeyIDs is the most key pairs LoginConfiguration.KeyIDs may bind.
	MaxKeyIDs = 5
)

// The other services the Client calls, each with its signing name (the
// host's first label) and API version.
const (
	// TagService is the Tag API, which selects resources by tag across
	// regions.
	TagService = "tag"
	TagVersion = "2018-08-13"
	// TATService is TencentCloud Automation Tools, which runs commands on
	// instances through an agent.
	TATService = "tat"
	TATVersion = "2020-10-28"
	// STSService is the Security Token Service, which hands out a role's
	// temporary keys.
	STSService = "sts"
	STSVersion = "2018-08-13"
)

// Documented rate limits, in requests per second. The documented scope is
// API action + access region + sub-account (more-apis.md §1f); root-account
// and IP limits also apply, unpublished.
const (
	ResetInstanceRateLimit                   = 10
	DescribeInstancesRateLimit               = 100
	DescribeBlueprintsRateLimit              = 10
	DescribeResetInstanceBlueprintsRateLimit = 20
	// DescribeKeyPairsRateLimit is from the DescribeKeyPairs page
	// (tencentcloud.com/document/api/1103/42480).
	DescribeKeyPairsRateLimit = 100
	// DescribeRegionsRateLimit is not in the reference; 10/s is the lowest
	// Lighthouse limit it lists, so a limiter set to it cannot overrun it.
	DescribeRegionsRateLimit = 10
	// GetResourcesRateLimit is Tag's GetResources.
	GetResourcesRateLimit = 20
	// TAT: 20/s per API, except DescribeAutomationAgentStatus.
	DescribeAutomationAgentStatusRateLimit = 60
	RunCommandRateLimit                    = 20
	DescribeInvocationTasksRateLimit       = 20
	// AssumeRoleRateLimit is STS's AssumeRole.
	AssumeRoleRateLimit = 600
	// GetCallerIdentityRateLimit is STS's GetCallerIdentity.
	GetCallerIdentityRateLimit = 20
)

// Action names.
const (
	ActionResetInstance                   = "ResetInstance"
	ActionDescribeInstances               = "DescribeInstances"
	ActionDescribeBlueprints              = "DescribeBlueprints"
	ActionDescribeResetInstanceBlueprints = "DescribeResetInstanceBlueprints"
	ActionDescribeKeyPairs                = "DescribeKeyPairs"
	ActionDescribeRegions                 = "DescribeRegions"
	ActionGetResources                    = "GetResources"
	ActionDescribeAutomationAgentStatus   = "DescribeAutomationAgentStatus"
	ActionRunCommand                      = "RunCommand"
	ActionDescribeInvocationTasks         = "DescribeInvocationTasks"
	ActionAssumeRole                      = "AssumeRole"
	ActionGetCallerIdentity               = "GetCallerIdentity"
)

// Values of Instance.LatestOperationState.
const (
	OperationOperating = "OPERATING"
	OperationSuccess   = "SUCCESS"
	OperationFailed    = "FAILED"
)

// Values of Instance.InstanceState that allow a reset.
const (
	StateRunning = "RUNNING"
	StateStopped = "STOPPED"
)

// Instance is the part of the API's Instance structure that batchreset uses.
// Fields absent or null in a response are left zero.
type Instance struct {
	InstanceID       string        `json:"InstanceId"`
	BlueprintID      string        `json:"BlueprintId"`
	BundleID         string        `json:"BundleId"`
	Zone             string        `json:"Zone"`
	InstanceName     string        `json:"InstanceName"`
	CPU              int           `json:"CPU"`
	Memory           int           `json:"Memory"` // GB
	OsName           string        `json:"OsName"`
	Platform         string        `json:"Platform"`
	PlatformType     string        `json:"PlatformType"`
	SystemDisk       SystemDisk    `json:"SystemDisk"`
	PrivateAddresses []string      `json:"PrivateAddresses"`
	PublicAddresses  []string      `json:"PublicAddresses"`
	LoginSettings    LoginSettings `json:"LoginSettings"`
	Tags             []Tag         `json:"Tags"`
	InstanceState    string        `json:"InstanceState"`

	LatestOperation          string `json:"LatestOperation"`
	LatestOperationState     string `json:"LatestOperationState"`
	LatestOperationRequestID string `json:"LatestOperationRequestId"`
	// LatestOperationStartedTime is returned by the China site only, as
	// ISO 8601 UTC; see StartedTime.
	LatestOperationStartedTime string `json:"LatestOperationStartedTime"`

	// Region is not on the wire: the client fills it from the call's region.
	Region string `json:"-"`
}

// StartedTime parses LatestOperationStartedTime; ok is false when it is
// absent or unparseable.
func (in *Instance) StartedTime() (t time.Time, ok bool) {
	if in.LatestOperationStartedTime == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, in.LatestOperationStartedTime); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// LoginSettings is how an instance's users log in.
type LoginSettings struct {
	KeyIDs []string `json:"KeyIds"` // bound key pairs, lhkp-…
}

// Tag is a resource tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// SystemDisk is an instance's system disk.
type SystemDisk struct {
	DiskType string `json:"DiskType"`
	DiskSize int    `json:"DiskSize"` // GB
	DiskID   string `json:"DiskId"`
}

// Blueprint is the part of the API's Blueprint structure that batchreset uses.
type Blueprint struct {
	BlueprintID            string `json:"BlueprintId"`
	BlueprintName          string `json:"BlueprintName"`
	BlueprintType          string `json:"BlueprintType"`
	BlueprintState         string `json:"BlueprintState"`
	OsName                 string `json:"OsName"`
	Platform               string `json:"Platform"`
	PlatformType           string `json:"PlatformType"`
	RequiredSystemDiskSize int    `json:"RequiredSystemDiskSize"` // GB
	RequiredMemorySize     int    `json:"RequiredMemorySize"`     // GB
}

// ResetInstanceBlueprint is one entry of DescribeResetInstanceBlueprints:
// the service's own verdict on resetting an instance to a blueprint.
type ResetInstanceBlueprint struct {
	BlueprintInfo        Blueprint `json:"BlueprintInfo"`
	IsResettable         bool      `json:"IsResettable"`
	NonResettableMessage string    `json:"NonResettableMessage"`
}
