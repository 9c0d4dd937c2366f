package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// API facts the emulator enforces. They are repeated here rather than
// imported from package lighthouse on purpose: the emulator follows the
// documented protocol, not batchreset's client.
const (
	apiVersion = "2020-03-24"

	actionResetInstance                   = "ResetInstance"
	actionDescribeInstances               = "DescribeInstances"
	actionDescribeBlueprints              = "DescribeBlueprints"
	actionDescribeResetInstanceBlueprints = "DescribeResetInstanceBlueprints"

	// defaultRegion is used for instances and fleets that name no region.
	defaultRegion = "ap-guangzhou"

	// maxIDs is the most InstanceIds or BlueprintIds one call accepts.
	maxIDs = 100
	// maxFilters is the most Filters one call accepts.
	maxFilters = 10
	// defaultLimit and maxLimit bound Describe paging.
	defaultLimit = 20
	maxLimit     = 100

	// Default ResetDuration bounds.
	defaultResetMin = 2 * time.Second
	defaultResetMax = 4 * time.Second
)

// defaultRateLimits are the documented per-action limits in requests per
// second (reference §7).
var defaultRateLimits = map[string]int{
	actionResetInstance:                   10,
	actionDescribeInstances:               100,
	actionDescribeBlueprints:              10,
	actionDescribeResetInstanceBlueprints: 20,
}

// Values of LatestOperationState.
const (
	opOperating = "OPERATING"
	opSuccess   = "SUCCESS"
	opFailed    = "FAILED"
)

// Values of InstanceState used by the emulator's own logic.
const (
	stateRunning = "RUNNING"
	stateStopped = "STOPPED"
)

var (
	instanceIDPattern  = regexp.MustCompile(`^lhins-[a-z0-9]{8}$`)
	blueprintIDPattern = regexp.MustCompile(`^lhbp-[a-z0-9]{8}$`)
)

// instanceStates are the documented values of InstanceState.
var instanceStates = set("PENDING", "LAUNCH_FAILED", stateRunning, stateStopped, "STARTING", "STOPPING",
	"REBOOTING", "SHUTDOWN", "TERMINATING", "DELETING", "FREEZING", "ENTER_RESCUE_MODE",
	"RESCUE_MODE", "EXIT_RESCUE_MODE")

// Documented Blueprint enumerations.
var (
	blueprintTypes  = set("APP_OS", "PURE_OS", "DOCKER", "PRIVATE", "SHARED", "GAME_PORTAL")
	blueprintStates = set("NORMAL", "SYNCING", "OFFLINE", "CREATEFAILED", "SYNCING_FAILED",
		"ISOLATING", "ISOLATED", "DELETING", "DESTROYING")
	platformTypes = set("LINUX_UNIX", "WINDOWS")
)

// lighthouseRegions are the regions the Lighthouse documentation lists
// (reference §10). Regions named by configured instances and blueprints are
// accepted as well.
var lighthouseRegions = []string{"ap-bangkok", "ap-beijing", "ap-chengdu", "ap-guangzhou",
	"ap-hongkong", "ap-jakarta", "ap-nanjing", "ap-seoul", "ap-shanghai", "ap-singapore",
	"ap-tokyo", "eu-frankfurt", "na-ashburn", "na-siliconvalley", "sa-saopaulo"}

func set(values ...string) map[string]bool {
	m := make(map[string]bool, len(values))
	for _, v := range values {
		m[v] = true
	}
	return m
}

// Config describes an emulated account: its credentials, its fleet and how
// the service behaves. The zero value of every field except Credentials
// means the default stated on the field.
type Config struct {
	// Credentials maps SecretId to SecretKey. At least one pair is required;
	// every call must be signed with one of them.
	Credentials map[string]string

	// Instances is the fleet, served in this order by DescribeInstances.
	Instances []Instance
	// Blueprints is the image catalogue.
	Blueprints []Blueprint

	// RateLimits maps an action name to its limit in requests per fixed
	// one-second window. A missing or zero entry means the documented limit
	// (ResetInstance 10, DescribeInstances 100, DescribeBlueprints 10,
	// DescribeResetInstanceBlueprints 20); a negative entry means unlimited.
	RateLimits map[string]int

	// ResetDuration is how long an accepted reset stays OPERATING, drawn
	// uniformly between Min and Max. The zero value means 2s..4s; a zero Max
	// means Max = Min. Use a tiny duration such as time.Nanosecond for resets
	// that finish at once.
	ResetDuration Duration
	// FailureRate is the probability, 0..1, that an accepted reset ends
	// FAILED. Zero means never.
	FailureRate float64
	// FailInstances lists instance IDs whose resets always end FAILED.
	FailInstances []string
	// VisibilityLag is how long after a reset is accepted DescribeInstances
	// still shows the previous operation. ResetInstance itself sees the
	// reset at once. Zero means no lag.
	VisibilityLag time.Duration

	// Faults are injected into matching calls; see Fault. SetFaults replaces
	// them at run time.
	Faults []Fault

	// Seed seeds the emulator's randomness (reset durations, failures,
	// fault probabilities). Zero means a time-based seed.
	Seed int64
	// Now is the emulator's clock. Nil means time.Now. It drives signature
	// expiry, rate-limit windows and operation progress, so a test can move
	// time forward; keep it within five minutes of the signing client's
	// clock or signatures expire.
	Now func() time.Time
	// Logger receives a line per accepted reset and injected fault at Debug
	// level, and recovered panics at Error level. Nil discards.
	Logger *slog.Logger
}

// Duration is a range of durations; a value is drawn uniformly from
// [Min, Max].
type Duration struct {
	Min, Max time.Duration
}

// Instance is an emulated Lighthouse instance as configured. Zero fields take
// the defaults stated on each field.
type Instance struct {
	// ID is the instance ID, "lhins-" and 8 characters of [a-z0-9]. Required.
	ID string
	// Region is the region that holds the instance; "" means ap-guangzhou.
	Region string
	// Zone is its availability zone; "" means Region + "-3". It must start
	// with Region.
	Zone string
	// Name is the InstanceName; "" means the ID.
	Name string
	// State is the InstanceState; "" means RUNNING. It stays as configured
	// while operations run; a successful reset leaves the instance RUNNING.
	State string
	// Platform and OsName describe the installed image; "" takes them from
	// the blueprint BlueprintID names, if configured, else from
	// PlatformType's default image.
	Platform, OsName string
	// PlatformType is LINUX_UNIX or WINDOWS; "" means the installed
	// blueprint's, if configured, else LINUX_UNIX.
	PlatformType string
	// BlueprintID is the installed image, "lhbp-" and 8 characters of
	// [a-z0-9]. Required; it need not be in Config.Blueprints.
	BlueprintID string
	// CPU (cores), Memory (GB) and DiskSize (system disk, GB) default to 2,
	// 2 and 50.
	CPU, Memory, DiskSize int
	// BusyFor, when positive, makes the instance start with a
	// RebootInstances operation that is OPERATING for this long from the
	// emulator's creation. Otherwise its latest operation is a finished
	// StartInstances.
	BusyFor time.Duration
}

// Blueprint is an emulated image. Zero fields take the defaults stated on
// each field.
type Blueprint struct {
	// ID is the blueprint ID, "lhbp-" and 8 characters of [a-z0-9]. Required.
	ID string
	// Region is the only region that has the blueprint; "" means every
	// region (as public images are).
	Region string
	// Name is the BlueprintName; "" means OsName.
	Name string
	// Type is the BlueprintType (APP_OS, PURE_OS, DOCKER, PRIVATE, SHARED,
	// GAME_PORTAL); "" means PURE_OS.
	Type string
	// State is the BlueprintState; "" means NORMAL. Only NORMAL blueprints
	// can be installed.
	State string
	// Platform and OsName describe the image; "" means PlatformType's
	// default image (CENTOS / CentOS 7.6 64bit, or WINDOWS / Windows Server
	// 2022 DataCenter 64bit CN).
	Platform, OsName string
	// PlatformType is LINUX_UNIX or WINDOWS; "" means LINUX_UNIX.
	PlatformType string
	// RequiredDiskSize and RequiredMemory are the smallest system disk and
	// memory, in GB, an instance needs to install the image. Zero means no
	// requirement.
	RequiredDiskSize, RequiredMemory int
}

// defaultImage returns the Platform and OsName used when none is given.
func defaultImage(platformType string) (platform, osName string) {
	if platformType == "WINDOWS" {
		return "WINDOWS", "Windows Server 2022 DataCenter 64bit CN"
	}
	return "CENTOS", "CentOS 7.6 64bit"
}

// resolved is a validated Config with defaults applied.
type resolved struct {
	now           func() time.Time
	seed          int64
	limits        map[string]int
	resetMin      time.Duration
	resetMax      time.Duration
	failureRate   float64
	failAlways    map[string]bool
	visibilityLag time.Duration
	log           *slog.Logger
}

func resolve(cfg Config) (resolved, error) {
	r := resolved{
		now:           cfg.Now,
		seed:          cfg.Seed,
		limits:        make(map[string]int, len(defaultRateLimits)),
		failureRate:   cfg.FailureRate,
		failAlways:    make(map[string]bool, len(cfg.FailInstances)),
		visibilityLag: cfg.VisibilityLag,
		log:           cfg.Logger,
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.seed == 0 {
		r.seed = time.Now().UnixNano()
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Credentials) == 0 {
		return r, errors.New("no credentials")
	}
	for id, key := range cfg.Credentials {
		if id == "" || key == "" {
			return r, errors.New("credentials: empty SecretId or SecretKey")
		}
	}
	for action, limit := range defaultRateLimits {
		r.limits[action] = limit
	}
	for action, limit := range cfg.RateLimits {
		if _, ok := defaultRateLimits[action]; !ok {
			return r, fmt.Errorf("rate limits: unknown action %q", action)
		}
		if limit != 0 {
			r.limits[action] = limit
		}
	}
	r.resetMin, r.resetMax = cfg.ResetDuration.Min, cfg.ResetDuration.Max
	switch {
	case r.resetMin == 0 && r.resetMax == 0:
		r.resetMin, r.resetMax = defaultResetMin, defaultResetMax
	case r.resetMax == 0:
		r.resetMax = r.resetMin
	}
	if r.resetMin < 0 || r.resetMax < r.resetMin {
		return r, fmt.Errorf("reset duration: invalid range %v..%v", cfg.ResetDuration.Min, cfg.ResetDuration.Max)
	}
	if !(r.failureRate >= 0 && r.failureRate <= 1) {
		return r, fmt.Errorf("failure rate %v: not in 0..1", cfg.FailureRate)
	}
	if r.visibilityLag < 0 {
		return r, fmt.Errorf("visibility lag %v: negative", cfg.VisibilityLag)
	}
	for _, id := range cfg.FailInstances {
		r.failAlways[id] = true
	}
	return r, nil
}

// fill applies Blueprint defaults and checks the result.
func (b Blueprint) fill() (Blueprint, error) {
	if !blueprintIDPattern.MatchString(b.ID) {
		return b, fmt.Errorf("blueprint %q: malformed ID", b.ID)
	}
	if b.Type == "" {
		b.Type = "PURE_OS"
	}
	if b.State == "" {
		b.State = "NORMAL"
	}
	if b.PlatformType == "" {
		b.PlatformType = "LINUX_UNIX"
	}
	platform, osName := defaultImage(b.PlatformType)
	if b.Platform == "" {
		b.Platform = platform
	}
	if b.OsName == "" {
		b.OsName = osName
	}
	if b.Name == "" {
		b.Name = b.OsName
	}
	switch {
	case !blueprintTypes[b.Type]:
		return b, fmt.Errorf("blueprint %s: unknown type %q", b.ID, b.Type)
	case !blueprintStates[b.State]:
		return b, fmt.Errorf("blueprint %s: unknown state %q", b.ID, b.State)
	case !platformTypes[b.PlatformType]:
		return b, fmt.Errorf("blueprint %s: unknown platform type %q", b.ID, b.PlatformType)
	case b.RequiredDiskSize < 0 || b.RequiredMemory < 0:
		return b, fmt.Errorf("blueprint %s: negative requirement", b.ID)
	}
	return b, nil
}

// fill applies Instance defaults, taking image details from installed (nil
// when the instance's blueprint is not configured), and checks the result.
func (in Instance) fill(installed *Blueprint) (Instance, error) {
	if !instanceIDPattern.MatchString(in.ID) {
		return in, fmt.Errorf("instance %q: malformed ID", in.ID)
	}
	if !blueprintIDPattern.MatchString(in.BlueprintID) {
		return in, fmt.Errorf("instance %s: malformed blueprint ID %q", in.ID, in.BlueprintID)
	}
	if in.Region == "" {
		in.Region = defaultRegion
	}
	if in.Zone == "" {
		in.Zone = in.Region + "-3"
	}
	if in.Name == "" {
		in.Name = in.ID
	}
	if in.State == "" {
		in.State = stateRunning
	}
	if in.PlatformType == "" {
		in.PlatformType = "LINUX_UNIX"
		if installed != nil {
			in.PlatformType = installed.PlatformType
		}
	}
	platform, osName := defaultImage(in.PlatformType)
	if installed != nil {
		platform, osName = installed.Platform, installed.OsName
	}
	if in.Platform == "" {
		in.Platform = platform
	}
	if in.OsName == "" {
		in.OsName = osName
	}
	if in.CPU == 0 {
		in.CPU = 2
	}
	if in.Memory == 0 {
		in.Memory = 2
	}
	if in.DiskSize == 0 {
		in.DiskSize = 50
	}
	switch {
	case !strings.HasPrefix(in.Zone, in.Region+"-"):
		return in, fmt.Errorf("instance %s: zone %q is not in region %q", in.ID, in.Zone, in.Region)
	case !instanceStates[in.State]:
		return in, fmt.Errorf("instance %s: unknown state %q", in.ID, in.State)
	case !platformTypes[in.PlatformType]:
		return in, fmt.Errorf("instance %s: unknown platform type %q", in.ID, in.PlatformType)
	case in.CPU < 0 || in.Memory < 0 || in.DiskSize < 0:
		return in, fmt.Errorf("instance %s: negative size", in.ID)
	case in.BusyFor < 0:
		return in, fmt.Errorf("instance %s: negative BusyFor", in.ID)
	}
	return in, nil
}
