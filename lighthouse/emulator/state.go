package emulator

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"
)

// timeLayout is the API's ISO 8601 UTC time format.
const timeLayout = "2006-01-02T15:04:05Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// image is what a blueprint installs on an instance.
type image struct {
	blueprintID, osName, platform string
}

// operation is an instance's latest operation. Its state is computed from
// the clock, so nothing runs in the background: it is OPERATING before ends
// and result from then on.
type operation struct {
	name        string
	requestID   string
	started     time.Time
	startedText string // started, formatted
	ends        time.Time
	result      string // SUCCESS or FAILED
	target      *image // ResetInstance: the image installed on SUCCESS
	// keyIDs, when not nil, are the key pairs bound on SUCCESS
	// (ResetInstance with LoginConfiguration).
	keyIDs *[]string
	// agentLost means the TAT agent does not come back after it.
	agentLost bool
}

func newOperation(name, requestID string, started, ends time.Time, result string, target *image) operation {
	return operation{name: name, requestID: requestID, started: started, startedText: formatTime(started),
		ends: ends, result: result, target: target}
}

func (op *operation) state(now time.Time) string {
	if now.Before(op.ends) {
		return opOperating
	}
	return op.result
}

// instance is an emulated instance. The embedded Instance and the derived
// fields are fixed at New; the rest is guarded by Server.mu.
type instance struct {
	Instance

	bundleID, uuid, diskID   string
	privateIP, publicIP      string
	createdText, expiresText string
	tags                     []wireTag

	// stateUntil is when state becomes stateThen, if stateThen is set.
	stateUntil time.Time
	stateThen  string

	// img, state and keyIDs are the installed image, InstanceState and
	// bound key pairs before op takes effect; see current.
	img    image
	state  string
	keyIDs []string
	op     operation
	// prev is the operation op replaced, shown during VisibilityLag.
	prev operation
	// resets are the resets applied, in order.
	resets []ResetRecord
}

// newInstance builds the emulated instance for a filled Instance. Derived
// values (addresses, UUID, times) are a function of the ID, so they are the
// same on every run.
func newInstance(in Instance, start time.Time) *instance {
	r := idRand(in.ID)
	it := &instance{
		Instance:  in,
		bundleID:  fmt.Sprintf("bundle_emu_%dc%dg_%d", in.CPU, in.Memory, in.DiskSize),
		uuid:      uuidFrom(r),
		diskID:    "lhdisk-" + randomSuffix(r),
		privateIP: fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 2+r.IntN(250)),
		publicIP:  fmt.Sprintf("170.106.%d.%d", r.IntN(256), 2+r.IntN(250)),
		img:       image{blueprintID: in.BlueprintID, osName: in.OsName, platform: in.Platform},
		state:     in.State,
		keyIDs:    slices.Clone(in.KeyIDs),
		tags:      make([]wireTag, len(in.Tags)),
	}
	for i, t := range in.Tags {
		it.tags[i] = wireTag(t)
	}
	it.bundleID = orDefault(in.BundleID, it.bundleID)
	it.privateIP = orDefault(in.PrivateIP, it.privateIP)
	it.publicIP = orDefault(in.PublicIP, it.publicIP)
	if in.StateFor > 0 {
		it.stateUntil, it.stateThen = start.Add(in.StateFor), in.StateThen
	}
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(365*24*3600)) * time.Second)
	it.createdText, it.expiresText = formatTime(created), formatTime(created.AddDate(1, 0, 0))
	it.op = newOperation("StartInstances", uuidFrom(r), created, created, opSuccess, nil)
	if op := transitionOperations[in.State]; in.StateFor > 0 && op != "" {
		it.op = newOperation(op, uuidFrom(r), start, it.stateUntil, opSuccess, nil)
	}
	if in.BusyFor > 0 {
		it.op = newOperation("RebootInstances", uuidFrom(r), start, start.Add(in.BusyFor), opSuccess, nil)
	}
	return it
}

// transitionOperations name the operation behind a transitional state.
var transitionOperations = map[string]string{"STOPPING": "StopInstances", "STARTING": "StartInstances", "REBOOTING": "RebootInstances"}

// baseState is InstanceState at now before op takes effect.
func (in *instance) baseState(now time.Time) string {
	if in.stateThen != "" && !now.Before(in.stateUntil) {
		return in.stateThen
	}
	return in.state
}

// keys returns the key pairs bound at now.
func (in *instance) keys(now time.Time) []string {
	if in.op.keyIDs != nil && in.op.state(now) == opSuccess {
		return *in.op.keyIDs
	}
	return in.keyIDs
}

// current returns the installed image and InstanceState at now, with the
// effect of a finished successful reset applied.
func (in *instance) current(now time.Time) (image, string) {
	if in.op.target != nil && in.op.state(now) == opSuccess {
		return *in.op.target, stateRunning
	}
	return in.img, in.baseState(now)
}

// shown returns what DescribeInstances shows at now: within lag of the
// latest operation's start, the previous operation and the image and state
// from before it.
func (in *instance) shown(now time.Time, lag time.Duration) (*operation, image, string) {
	if lag > 0 && in.prev.name != "" && now.Before(in.op.started.Add(lag)) {
		return &in.prev, in.img, in.baseState(now)
	}
	img, state := in.current(now)
	return &in.op, img, state
}

// view is the instance as DescribeInstances shows it at now.
func (in *instance) view(now time.Time, lag time.Duration) wireInstance {
	op, img, state := in.shown(now, lag)
	keys := in.keyIDs
	if op == &in.op {
		keys = in.keys(now)
	}
	if keys == nil {
		keys = []string{}
	}
	return wireInstance{
		InstanceID:         in.ID,
		BundleID:           in.bundleID,
		BlueprintID:        img.blueprintID,
		Zone:               in.Zone,
		CPU:                in.CPU,
		Memory:             in.Memory,
		InstanceName:       in.Name,
		OsName:             img.osName,
		Platform:           img.platform,
		PlatformType:       in.PlatformType,
		InstanceChargeType: "PREPAID",
		SystemDisk:         wireSystemDisk{DiskType: "CLOUD_PREMIUM", DiskSize: in.DiskSize, DiskID: in.diskID},
		PrivateAddresses:   []string{in.privateIP},
		PublicAddresses:    []string{in.publicIP},
		InternetAccessible: wireInternetAccessible{
			InternetChargeType:      "TRAFFIC_POSTPAID_BY_HOUR",
			InternetMaxBandwidthOut: 30,
			PublicIPAssigned:        true,
		},
		RenewFlag:                  "NOTIFY_AND_MANUAL_RENEW",
		LoginSettings:              wireLoginSettings{KeyIDs: keys},
		Tags:                       in.tags,
		InstanceState:              state,
		UUID:                       in.uuid,
		LatestOperation:            op.name,
		LatestOperationState:       op.state(now),
		LatestOperationRequestID:   op.requestID,
		LatestOperationStartedTime: op.startedText,
		CreatedTime:                in.createdText,
		ExpiredTime:                in.expiresText,
		IsolatedTime:               nil,
	}
}

// blueprint is an emulated blueprint, fixed at New.
type blueprint struct {
	Blueprint
	wire wireBlueprint
	// owner is the account of a private blueprint, the only one that has
	// it; nil for a public one, which every account has.
	owner *account
}

// private reports whether b is a custom image (PRIVATE, or SHARED to the
// account), which belongs to one account.
func (b *blueprint) private() bool {
	return b.Type == "PRIVATE" || b.Type == "SHARED"
}

func newBlueprint(b Blueprint) *blueprint {
	r := idRand(b.ID)
	w := wireBlueprint{
		BlueprintID:            b.ID,
		DisplayTitle:           b.Name,
		DisplayVersion:         "",
		Description:            b.OsName,
		OsName:                 b.OsName,
		Platform:               b.Platform,
		PlatformType:           b.PlatformType,
		BlueprintType:          b.Type,
		ImageURL:               "",
		RequiredSystemDiskSize: b.RequiredDiskSize,
		BlueprintState:         b.State,
		CreatedTime:            formatTime(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(365*24*3600)) * time.Second)),
		BlueprintName:          b.Name,
		SupportAutomationTools: true,
		RequiredMemorySize:     b.RequiredMemory,
		ImageID:                "",
		SceneIDSet:             []string{},
		CommunityURL:           "",
		GuideURL:               "",
		AppDefaultPort:         "",
		BlueprintShared:        b.Type == "SHARED",
		CreateSource:           "PUBLIC",
		DockerVersion:          "",
		SupportIpv6:            false,
	}
	switch b.Type {
	case "PRIVATE", "SHARED":
		w.CreateSource = "CUSTOM"
	case "DOCKER":
		w.DockerVersion = "24.0.7"
	}
	return &blueprint{Blueprint: b, wire: w}
}

func (b *blueprint) image() image {
	return image{blueprintID: b.ID, osName: b.OsName, platform: b.Platform}
}

// inRegion reports whether region has b.
func (b *blueprint) inRegion(region string) bool {
	return b.Region == "" || b.Region == region
}

// problem returns why in cannot be reset to b, or nil: the blueprint rules
// shared by ResetInstance and DescribeResetInstanceBlueprints.
func (b *blueprint) problem(in *instance) *apiError {
	switch {
	case b.State != "NORMAL":
		return errorf("ResourceUnavailable.BlueprintUnavailable", "The image `%s` is not available (state %s).", b.ID, b.State)
	case b.PlatformType != in.PlatformType:
		return errorf("InvalidParameterValue.NotAllowToChangePlatformType",
			"Switching between Linux and Windows is not supported outside the Chinese mainland.")
	case b.RequiredDiskSize > in.DiskSize || b.RequiredMemory > in.Memory:
		return errorf("InvalidParameterValue.BlueprintConfigNotMatch",
			"The configuration of instance `%s` (%d GB memory, %d GB system disk) does not meet the requirements of image `%s` (%d GB memory, %d GB system disk).",
			in.ID, in.Memory, in.DiskSize, b.ID, b.RequiredMemory, b.RequiredDiskSize)
	}
	return nil
}

// idRand returns a random source determined by id.
func idRand(id string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(id))
	return rand.New(rand.NewPCG(h.Sum64(), 0x9e3779b97f4a7c15))
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomSuffix returns 8 characters of [a-z0-9], the shape of every
// Lighthouse resource ID after its prefix.
func randomSuffix(r *rand.Rand) string {
	var b [8]byte
	for i := range b {
		b[i] = idAlphabet[r.IntN(len(idAlphabet))]
	}
	return string(b[:])
}

// uuidFrom returns a lowercase UUID v4 drawn from r.
func uuidFrom(r *rand.Rand) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return formatUUID(b)
}

// formatUUID sets the version 4 and variant bits of b and formats it.
func formatUUID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Wire shapes, field for field as the examples in the reference show them.

type wireInstance struct {
	InstanceID                 string                 `json:"InstanceId"`
	BundleID                   string                 `json:"BundleId"`
	BlueprintID                string                 `json:"BlueprintId"`
	Zone                       string                 `json:"Zone"`
	CPU                        int                    `json:"CPU"`
	Memory                     int                    `json:"Memory"`
	InstanceName               string                 `json:"InstanceName"`
	OsName                     string                 `json:"OsName"`
	Platform                   string                 `json:"Platform"`
	PlatformType               string                 `json:"PlatformType"`
	InstanceChargeType         string                 `json:"InstanceChargeType"`
	SystemDisk                 wireSystemDisk         `json:"SystemDisk"`
	PrivateAddresses           []string               `json:"PrivateAddresses"`
	PublicAddresses            []string               `json:"PublicAddresses"`
	InternetAccessible         wireInternetAccessible `json:"InternetAccessible"`
	RenewFlag                  string                 `json:"RenewFlag"`
	LoginSettings              wireLoginSettings      `json:"LoginSettings"`
	Tags                       []wireTag              `json:"Tags"`
	InstanceState              string                 `json:"InstanceState"`
	UUID                       string                 `json:"Uuid"`
	LatestOperation            string                 `json:"LatestOperation"`
	LatestOperationState       string                 `json:"LatestOperationState"`
	LatestOperationRequestID   string                 `json:"LatestOperationRequestId"`
	LatestOperationStartedTime string                 `json:"LatestOperationStartedTime"`
	CreatedTime                string                 `json:"CreatedTime"`
	ExpiredTime                string                 `json:"ExpiredTime"`
	IsolatedTime               *string                `json:"IsolatedTime"`
}

type wireSystemDisk struct {
	DiskType string `json:"DiskType"`
	DiskSize int    `json:"DiskSize"`
	DiskID   string `json:"DiskId"`
}

type wireInternetAccessible struct {
	InternetChargeType      string `json:"InternetChargeType"`
	InternetMaxBandwidthOut int    `json:"InternetMaxBandwidthOut"`
	PublicIPAssigned        bool   `json:"PublicIpAssigned"`
}

type wireLoginSettings struct {
	KeyIDs []string `json:"KeyIds"`
}

type wireTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type wireBlueprint struct {
	BlueprintID            string   `json:"BlueprintId"`
	DisplayTitle           string   `json:"DisplayTitle"`
	DisplayVersion         string   `json:"DisplayVersion"`
	Description            string   `json:"Description"`
	OsName                 string   `json:"OsName"`
	Platform               string   `json:"Platform"`
	PlatformType           string   `json:"PlatformType"`
	BlueprintType          string   `json:"BlueprintType"`
	ImageURL               string   `json:"ImageUrl"`
	RequiredSystemDiskSize int      `json:"RequiredSystemDiskSize"`
	BlueprintState         string   `json:"BlueprintState"`
	CreatedTime            string   `json:"CreatedTime"`
	BlueprintName          string   `json:"BlueprintName"`
	SupportAutomationTools bool     `json:"SupportAutomationTools"`
	RequiredMemorySize     int      `json:"RequiredMemorySize"`
	ImageID                string   `json:"ImageId"`
	SceneIDSet             []string `json:"SceneIdSet"`
	CommunityURL           string   `json:"CommunityUrl"`
	GuideURL               string   `json:"GuideUrl"`
	AppDefaultPort         string   `json:"AppDefaultPort"`
	BlueprintShared        bool     `json:"BlueprintShared"`
	CreateSource           string   `json:"CreateSource"`
	DockerVersion          string   `json:"DockerVersion"`
	SupportIpv6            bool     `json:"SupportIpv6"`
}

type wireResetBlueprint struct {
	BlueprintInfo        wireBlueprint `json:"BlueprintInfo"`
	IsResettable         bool          `json:"IsResettable"`
	NonResettableMessage string        `json:"NonResettableMessage"`
}
