package emulator

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// defaultBusyFor is how long busy fleet instances stay OPERATING when
// FleetOptions.BusyFor is zero.
const defaultBusyFor = 30 * time.Second

// FleetOptions shapes a generated fleet. Counts are clamped so that the
// categories, which never overlap, fit in the fleet.
type FleetOptions struct {
	// Seed makes the fleet reproducible: the same Seed and inputs give the
	// same fleet.
	Seed int64
	// Regions are spread over the instances round-robin; nil means
	// ap-guangzhou. SeedFleet uses only the first, for seeds naming no region.
	Regions []string
	// Missing instances are left out of the fleet, so calls naming them get
	// ResourceNotFound.InstanceIdNotFound.
	Missing int
	// Busy instances start with an operation OPERATING for BusyFor, so a
	// reset gets UnsupportedOperation.LatestOperationUnfinished until then.
	Busy int
	// Stopped instances are STOPPED (which still allows a reset).
	Stopped int
	// OtherPlatform instances run WINDOWS while their target blueprint is
	// LINUX_UNIX, so a reset gets
	// InvalidParameterValue.NotAllowToChangePlatformType.
	OtherPlatform int
	// BusyFor is how long busy instances stay OPERATING; zero means 30s.
	BusyFor time.Duration
	// Tags are spread over the instances by share: for each key, its values
	// go to disjoint random sets of instances of the stated sizes (rounded
	// so the counts add up), and the rest of the fleet lacks the key.
	// ParseTagShares reads them from text. Nil means no tags.
	Tags []TagShare
}

// TagShare is a tag and the share of a fleet that carries it.
type TagShare struct {
	Key, Value string
	// Percent of the instances, 0..100.
	Percent float64
}

// ParseTagShares parses a list of tag shares such as
// "env=staging:30%,env=prod:70%". Each key's shares may add up to at most
// 100%; several keys are independent of each other.
func ParseTagShares(spec string) ([]TagShare, error) {
	var out []TagShare
	total := map[string]float64{}
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		tag, share, ok := strings.Cut(item, ":")
		key, value, hasValue := strings.Cut(tag, "=")
		pct, isPct := strings.CutSuffix(share, "%")
		if !ok || !hasValue || !isPct || key == "" {
			return nil, fmt.Errorf("tag share %q: want key=value:N%%", item)
		}
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || !(p >= 0 && p <= 100) {
			return nil, fmt.Errorf("tag share %q: percent not in 0..100", item)
		}
		if total[key] += p; total[key] > 100 {
			return nil, fmt.Errorf("tag share %q: shares of key %q add up to more than 100%%", item, key)
		}
		out = append(out, TagShare{Key: key, Value: value, Percent: p})
	}
	return out, nil
}

// assignTags gives all the tags of shares, each key's values to disjoint
// random sets drawn from a source of its own, so that tags change no other
// property of the fleet.
func assignTags(all []Instance, shares []TagShare, seed int64) {
	var keys []string
	byKey := map[string][]TagShare{}
	for _, sh := range shares {
		if byKey[sh.Key] == nil {
			keys = append(keys, sh.Key)
		}
		byKey[sh.Key] = append(byKey[sh.Key], sh)
	}
	n := len(all)
	for _, key := range keys {
		h := fnv.New64a()
		h.Write([]byte(key))
		r := rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
		perm := r.Perm(n)
		cum, lo := 0.0, 0
		for _, sh := range byKey[key] {
			cum += sh.Percent
			hi := min(n, int(math.Round(cum*float64(n)/100)))
			for _, i := range perm[lo:hi] {
				all[i].Tags = append(all[i].Tags, Tag{Key: key, Value: sh.Value})
			}
			lo = hi
		}
	}
}

// Seed names an instance the fleet must have and the blueprint it will be
// reset to, as a job file does.
type Seed struct {
	// InstanceID must be well formed; malformed IDs are skipped.
	InstanceID string
	// BlueprintID is the target blueprint; "" means none (reinstall the
	// current image). Malformed IDs are skipped.
	BlueprintID string
	// Region holds the instance; "" means the first of
	// FleetOptions.Regions, or ap-guangzhou.
	Region string
}

// fleetRand returns the random source for a fleet with seed.
func fleetRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x853c49e6748fea9b))
}

// fleetBlueprints draws the generated catalogue: a Linux target, the Linux
// image instances run now, and a Windows image, with IDs not in taken.
func fleetBlueprints(r *rand.Rand, taken map[string]bool) (target, current, windows Blueprint) {
	id := func() string {
		for {
			id := "lhbp-" + randomSuffix(r)
			if !taken[id] {
				taken[id] = true
				return id
			}
		}
	}
	target = Blueprint{ID: id(), Name: "Ubuntu", Type: "PURE_OS", State: "NORMAL", Platform: "UBUNTU",
		PlatformType: "LINUX_UNIX", OsName: "Ubuntu Server 22.04 LTS 64bit", RequiredDiskSize: 20, RequiredMemory: 1}
	current = Blueprint{ID: id(), Name: "CentOS", Type: "PURE_OS", State: "NORMAL", Platform: "CENTOS",
		PlatformType: "LINUX_UNIX", OsName: "CentOS 7.6 64bit", RequiredDiskSize: 20, RequiredMemory: 1}
	windows = Blueprint{ID: id(), Name: "Windows Server", Type: "PURE_OS", State: "NORMAL", Platform: "WINDOWS",
		PlatformType: "WINDOWS", OsName: "Windows Server 2022 DataCenter 64bit CN", RequiredDiskSize: 40, RequiredMemory: 2}
	return target, current, windows
}

// category is what FleetOptions makes of one instance.
type category int

const (
	plain category = iota
	missingInstance
	busyInstance
	stoppedInstance
	otherPlatformInstance
)

// categories assigns the FleetOptions categories to n instances at random.
func categories(r *rand.Rand, n int, opts FleetOptions) []category {
	cats := make([]category, n)
	next := 0
	for _, c := range []struct {
		cat   category
		count int
	}{{missingInstance, opts.Missing}, {busyInstance, opts.Busy}, {stoppedInstance, opts.Stopped}, {otherPlatformInstance, opts.OtherPlatform}} {
		for range max(0, min(c.count, n-next)) {
			cats[next] = c.cat
			next++
		}
	}
	r.Shuffle(n, func(i, j int) { cats[i], cats[j] = cats[j], cats[i] })
	return cats
}

// shape applies cat to in, an instance running current whose target is
// Linux, and reports whether it stays in the fleet.
func shape(in *Instance, cat category, opts FleetOptions, windows Blueprint) bool {
	switch cat {
	case missingInstance:
		return false
	case busyInstance:
		in.BusyFor = opts.BusyFor
		if in.BusyFor <= 0 {
			in.BusyFor = defaultBusyFor
		}
	case stoppedInstance:
		in.State = stateStopped
	case otherPlatformInstance:
		in.PlatformType, in.BlueprintID, in.Platform, in.OsName = windows.PlatformType, windows.ID, windows.Platform, windows.OsName
		in.Memory = max(in.Memory, windows.RequiredMemory)
		in.DiskSize = max(in.DiskSize, windows.RequiredDiskSize)
	}
	return true
}

// GenerateFleet returns n instances, less opts.Missing, and the blueprints
// they use, ready for Config. Blueprints[0] is the LINUX_UNIX target every
// instance can be reset to except the OtherPlatform ones; the others are
// the image the instances run now and a Windows image. Instance IDs are
// "lhins-" plus 8 characters of [a-z0-9], regions follow opts.Regions
// round-robin, and names are "emu-00000", "emu-00001"…
//
// The result depends only on n and opts. IDs do not depend on the counts,
// so GenerateFleet(n, FleetOptions{Seed: s}) lists every ID, including
// those a call with the same seed and Missing > 0 leaves out.
func GenerateFleet(n int, opts FleetOptions) ([]Instance, []Blueprint) {
	all, keep, blueprints := generate(n, opts)
	instances := make([]Instance, 0, len(all))
	for i := range all {
		if keep[i] {
			instances = append(instances, all[i])
		}
	}
	return instances, blueprints
}

// FleetJobs returns the jobs of the fleet GenerateFleet(n, opts) makes: one
// per instance, the Missing ones included, each to be reset to the
// fleet's target blueprint (Blueprints[0]) in its region; store/csv's
// WriteJobs writes them as a jobs CSV.
func FleetJobs(n int, opts FleetOptions) []Seed {
	all, _, blueprints := generate(n, opts)
	jobs := make([]Seed, len(all))
	for i, in := range all {
		jobs[i] = Seed{InstanceID: in.ID, BlueprintID: blueprints[0].ID, Region: in.Region}
	}
	return jobs
}

// generate makes GenerateFleet's n instances, reporting which stay in the
// fleet (the Missing ones do not), and its blueprints.
func generate(n int, opts FleetOptions) (all []Instance, keep []bool, blueprints []Blueprint) {
	n = max(n, 0)
	r := fleetRand(opts.Seed)
	regions := opts.Regions
	if len(regions) == 0 {
		regions = []string{defaultRegion}
	}
	target, current, windows := fleetBlueprints(r, map[string]bool{})
	all = make([]Instance, n)
	ids := make(map[string]bool, n)
	for i := range all {
		id := "lhins-" + randomSuffix(r)
		for ids[id] {
			id = "lhins-" + randomSuffix(r)
		}
		ids[id] = true
		region := regions[i%len(regions)]
		all[i] = Instance{
			ID:           id,
			Region:       region,
			Zone:         fmt.Sprintf("%s-%d", region, 1+r.IntN(3)),
			Name:         fmt.Sprintf("emu-%05d", i),
			State:        stateRunning,
			PlatformType: current.PlatformType,
			Platform:     current.Platform,
			OsName:       current.OsName,
			BlueprintID:  current.ID,
			CPU:          2,
			Memory:       2 << r.IntN(2),
			DiskSize:     40 + 20*r.IntN(3),
		}
	}
	cats := categories(r, n, opts)
	assignTags(all, opts.Tags, opts.Seed)
	keep = make([]bool, n)
	for i := range all {
		keep[i] = shape(&all[i], cats[i], opts, windows)
	}
	return all, keep, []Blueprint{target, current, windows}
}

// SeedFleet returns a fleet holding every instance seeds name, less
// opts.Missing of them, and blueprints holding every BlueprintID they name,
// so that a job file's resets can succeed. Named blueprints are LINUX_UNIX
// images every instance can install, available in every region; instances
// run a different, generated Linux image, so a successful reset visibly
// changes BlueprintId. Busy, Stopped and OtherPlatform pick instances at
// random (seeded by opts.Seed); OtherPlatform instances run Windows and so
// cannot be reset to their (Linux) targets. A seed repeating an instance ID
// adds nothing but its blueprint.
func SeedFleet(seeds []Seed, opts FleetOptions) ([]Instance, []Blueprint) {
	r := fleetRand(opts.Seed)
	region := defaultRegion
	if len(opts.Regions) > 0 {
		region = opts.Regions[0]
	}
	taken := make(map[string]bool)
	var blueprints []Blueprint
	var all []Instance
	seen := make(map[string]bool)
	for _, sd := range seeds {
		if blueprintIDPattern.MatchString(sd.BlueprintID) && !taken[sd.BlueprintID] {
			taken[sd.BlueprintID] = true
			blueprints = append(blueprints, Blueprint{ID: sd.BlueprintID, Name: "Ubuntu " + sd.BlueprintID,
				Type: "PURE_OS", State: "NORMAL", Platform: "UBUNTU", PlatformType: "LINUX_UNIX",
				OsName: "Ubuntu Server 22.04 LTS 64bit", RequiredDiskSize: 20, RequiredMemory: 1})
		}
		if !instanceIDPattern.MatchString(sd.InstanceID) || seen[sd.InstanceID] {
			continue
		}
		seen[sd.InstanceID] = true
		in := Instance{ID: sd.InstanceID, Region: sd.Region, State: stateRunning, CPU: 2, Memory: 2, DiskSize: 50}
		if in.Region == "" {
			in.Region = region
		}
		all = append(all, in)
	}
	_, current, windows := fleetBlueprints(r, taken)
	blueprints = append(blueprints, current, windows)
	cats := categories(r, len(all), opts)
	instances := make([]Instance, 0, len(all))
	for i := range all {
		in := &all[i]
		in.Name = fmt.Sprintf("emu-%05d", i)
		in.Zone = in.Region + "-3"
		in.PlatformType, in.BlueprintID, in.Platform, in.OsName = current.PlatformType, current.ID, current.Platform, current.OsName
		if shape(in, cats[i], opts, windows) {
			instances = append(instances, *in)
		}
	}
	return instances, blueprints
}
