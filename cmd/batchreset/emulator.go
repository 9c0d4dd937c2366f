package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// emulatorOptions shape the emulated fleet and its behaviour.
type emulatorOptions struct {
	resetMin, resetMax time.Duration
	failureRate        float64
	lag                time.Duration
	latency            time.Duration
	dropRate           float64
	throttleRate       float64
	missing, busy      int
	stopped, platform  int
	unlimited          bool
	resetLimit         int
	agentLost          int
	drainFail          int

	// keyPairs are the run-wide --key-ids, which the emulated account
	// holds, as it holds the jobs' key_ids (see fleetKeyPairs).
	keyPairs []string

	// Set by the emulator command's own flags (addFleetFlags); zero for
	// run --emulate.
	regions            []string
	tags               []string
	tagShares          []emulator.TagShare
	agentOnlineAfter   time.Duration
	agentLossRate      float64
	commandFailureRate float64
	commandTimeoutRate float64
	credentialLifetime time.Duration
}

// addFleetFlags adds the flags only the emulator command has: where the
// generated fleet lives and how it is tagged, and how STS and TAT behave.
func (e *emulatorOptions) addFleetFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&e.regions, "regions", nil, "regions the generated instances are spread over, round-robin (default ap-guangzhou)")
	fs.StringArrayVar(&e.tags, "tags", nil, "tag shares of the generated fleet, such as 'env=staging:30%,env=prod:70%' (repeatable)")
	fs.DurationVar(&e.agentOnlineAfter, "agent-online-after", 0, "how long after a reset ends the TAT agent is Online again (default 10s)")
	fs.Float64Var(&e.agentLossRate, "agent-loss-rate", 0, "share of resets after which the TAT agent never comes back")
	fs.Float64Var(&e.commandFailureRate, "command-failure-rate", 0, "share of TAT commands that exit 1")
	fs.Float64Var(&e.commandTimeoutRate, "command-timeout-rate", 0, "share of TAT commands that time out")
	fs.DurationVar(&e.credentialLifetime, "credential-lifetime", 0, "lifetime of AssumeRole's temporary credentials (default: DurationSeconds as asked)")
}

// parseTags reads e.tags into e.tagShares.
func (e *emulatorOptions) parseTags() error {
	e.tagShares = nil
	for _, spec := range e.tags {
		shares, err := emulator.ParseTagShares(spec)
		if err != nil {
			return usageError("--tags: %v", err)
		}
		e.tagShares = append(e.tagShares, shares...)
	}
	return nil
}

func (e *emulatorOptions) addFlags(fs *pflag.FlagSet, prefix string) {
	fs.DurationVar(&e.resetMin, prefix+"reset-min", 2*time.Second, "emulator: shortest reset")
	fs.DurationVar(&e.resetMax, prefix+"reset-max", 5*time.Second, "emulator: longest reset")
	fs.Float64Var(&e.failureRate, prefix+"failure-rate", 0.03, "emulator: share of resets that end FAILED")
	fs.DurationVar(&e.lag, prefix+"visibility-lag", 0, "emulator: how long DescribeInstances shows the previous operation after a reset")
	fs.DurationVar(&e.latency, prefix+"latency", 0, "emulator: added latency of every ResetInstance answer")
	fs.Float64Var(&e.dropRate, prefix+"drop-rate", 0, "emulator: share of resets applied whose answer is lost (connection dropped)")
	fs.Float64Var(&e.throttleRate, prefix+"throttle-rate", 0, "emulator: share of calls answered RequestLimitExceeded")
	fs.IntVar(&e.missing, prefix+"missing", 0, "emulator: instances of the jobs left out of the fleet")
	fs.IntVar(&e.busy, prefix+"busy", 0, "emulator: instances busy with another operation at the start")
	fs.IntVar(&e.stopped, prefix+"stopped", 0, "emulator: instances STOPPED at the start")
	fs.IntVar(&e.platform, prefix+"other-platform", 0, "emulator: instances whose target blueprint is of another platform")
	fs.BoolVar(&e.unlimited, prefix+"unlimited", false, "emulator: lift the API rate limits (benchmarks)")
	fs.IntVar(&e.resetLimit, prefix+"reset-limit", lighthouse.ResetInstanceRateLimit, "emulator: ResetInstance calls accepted per second")
	fs.IntVar(&e.agentLost, prefix+"agent-lost", 0, "emulator: instances (the last of the fleet) whose TAT agent never comes back after a reset")
	fs.IntVar(&e.drainFail, prefix+"drain-fail", 0, "emulator: instances (the first of the fleet) whose TAT commands exit 1 until they are reset (a failing tat: before-reset hook)")
}

// emulatorSeed seeds the emulator's draws (reset durations, failures,
// faults): one jobs file fails the same resets in every run of the demo,
// whatever order the calls arrive in (with jobs.example.csv, one reset
// ends FAILED: the demo shows a failure and exit 1).
const emulatorSeed = 6

func (e *emulatorOptions) config(creds map[string]string, instances []emulator.Instance, blueprints []emulator.Blueprint) emulator.Config {
	cfg := emulator.Config{
		Seed:          emulatorSeed,
		Credentials:   creds,
		Instances:     instances,
		Blueprints:    blueprints,
		ResetDuration: emulator.Duration{Min: e.resetMin, Max: e.resetMax},
		FailureRate:   e.failureRate,
		VisibilityLag: e.lag,

		AgentOnlineAfter:   e.agentOnlineAfter,
		AgentLossRate:      e.agentLossRate,
		CommandFailureRate: e.commandFailureRate,
		CommandTimeoutRate: e.commandTimeoutRate,
		CredentialLifetime: e.credentialLifetime,
	}
	cfg.RateLimits = map[string]int{lighthouse.ActionResetInstance: e.resetLimit}
	if e.unlimited {
		cfg.RateLimits = emulator.DefaultRateLimits()
		for action := range cfg.RateLimits {
			cfg.RateLimits[action] = -1
		}
	}
	if e.latency > 0 {
		cfg.Faults = append(cfg.Faults, emulator.Fault{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultLatency, Probability: 1, Latency: e.latency})
	}
	if e.dropRate > 0 {
		cfg.Faults = append(cfg.Faults, emulator.Fault{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultDropAfterApply, Probability: e.dropRate})
	}
	if e.throttleRate > 0 {
		cfg.Faults = append(cfg.Faults, emulator.Fault{Kind: emulator.FaultThrottle, Probability: e.throttleRate})
	}
	return cfg
}

func (e *emulatorOptions) fleet() emulator.FleetOptions {
	return emulator.FleetOptions{Missing: e.missing, Busy: e.busy, Stopped: e.stopped, OtherPlatform: e.platform, BusyFor: 20 * time.Second,
		Regions: e.regions, Tags: e.tagShares}
}

// emulatorHandle is a running emulator on a loopback port.
type emulatorHandle struct {
	srv      *emulator.Server
	http     *http.Server
	endpoint string
	cred     lighthouse.Credential // the first account's key: the run's
	// accounts are the further accounts, one per account the jobs name, in
	// the order the jobs first name them.
	accounts []emulatedAccount
}

// emulatedAccount is one account of the emulator beside its first: the
// jobs naming it are its fleet.
type emulatedAccount struct {
	name string
	uin  string
	cred lighthouse.Credential
	role string // a role of the account, which any of the emulator's keys may assume
}

// account returns the emulated account the jobs call name, if any.
func (h *emulatorHandle) account(name string) (emulatedAccount, bool) {
	for _, a := range h.accounts {
		if a.name == name {
			return a, true
		}
	}
	return emulatedAccount{}, false
}

// Close stops the emulator; a nil handle is fine.
func (h *emulatorHandle) Close() {
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h.http.Shutdown(ctx)
	h.srv.Close()
}

// firstEmulatedUIN is the UIN of the emulator's first account; the further
// accounts have the numbers that follow.
const firstEmulatedUIN = 100000000001

// startEmulator serves an emulator whose fleet holds every instance and
// blueprint of jobs, or n generated instances when jobs is empty. Each
// account the jobs name is an emulated account of its own, with its own
// UIN, key and fleet (its jobs' instances), and a role: roles[name] when
// given (an --account NAME=role:ARN), else
// qcs::cam::uin/UIN:roleName/emulator. The jobs naming no account are the
// first account's.
func startEmulator(addr string, jobs []store.Job, n int, roles map[string]string, o emulatorOptions, log *slog.Logger) (*emulatorHandle, error) {
	h := &emulatorHandle{cred: emulatorCredential()}
	var names []string // the jobs' accounts, in order
	byAccount := map[string][]store.Job{}
	for _, j := range jobs {
		if _, ok := byAccount[j.Account]; !ok && j.Account != "" {
			names = append(names, j.Account)
		}
		byAccount[j.Account] = append(byAccount[j.Account], j)
	}
	var instances []emulator.Instance
	var blueprints []emulator.Blueprint
	if len(jobs) == 0 {
		instances, blueprints = emulator.GenerateFleet(n, o.fleet())
	} else {
		instances, blueprints = seedFleet(byAccount[""], o.fleet())
	}
	cfg := o.config(map[string]string{h.cred.SecretID: h.cred.SecretKey}, instances, blueprints)
	cfg.KeyPairs = fleetKeyPairs(instances, byAccount[""], o.keyPairs)
	all := instances
	for i, name := range names {
		fo := o.fleet()
		fo.Seed = int64(i + 2) // each account's busy, missing and stopped instances of its own
		ins, bps := seedFleet(byAccount[name], fo)
		a := emulatedAccount{name: name, uin: strconv.Itoa(firstEmulatedUIN + 1 + i), cred: emulatorKey(), role: roles[name]}
		if a.role == "" {
			a.role = "qcs::cam::uin/" + a.uin + ":roleName/emulator"
		}
		h.accounts = append(h.accounts, a)
		cfg.Accounts = append(cfg.Accounts, emulator.Account{
			Name: name, UIN: a.uin, Credentials: map[string]string{a.cred.SecretID: a.cred.SecretKey},
			Roles: []string{a.role}, Instances: ins, Blueprints: bps, KeyPairs: fleetKeyPairs(ins, byAccount[name], nil),
		})
		all = append(all, ins...)
	}
	if len(names) > 0 {
		cfg.UIN = strconv.Itoa(firstEmulatedUIN)
	}
	for i := max(0, len(all)-o.agentLost); i < len(all); i++ {
		cfg.AgentLostInstances = append(cfg.AgentLostInstances, all[i].ID)
	}
	for i := range min(o.drainFail, len(all)) {
		cfg.CommandFailBeforeResetInstances = append(cfg.CommandFailBeforeResetInstances, all[i].ID)
	}
	srv, err := emulator.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("emulator: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go hs.Serve(ln)
	h.srv, h.http, h.endpoint = srv, hs, "http://"+ln.Addr().String()
	return h, nil
}

// seedFleet returns the fleet of jobs: their instances and blueprints.
func seedFleet(jobs []store.Job, o emulator.FleetOptions) ([]emulator.Instance, []emulator.Blueprint) {
	if len(jobs) == 0 {
		return nil, nil
	}
	seeds := make([]emulator.Seed, len(jobs))
	for i, j := range jobs {
		seeds[i] = emulator.Seed{InstanceID: j.InstanceID, BlueprintID: j.BlueprintID, Region: j.Region}
	}
	return emulator.SeedFleet(seeds, o)
}

// fleetKeyPairs returns the key pairs an emulated account needs for jobs:
// each job's key_ids in its region, and the run-wide ones in the region of
// the fleet's first instance (a key pair belongs to one region).
func fleetKeyPairs(instances []emulator.Instance, jobs []store.Job, runWide []string) []emulator.KeyPair {
	var out []emulator.KeyPair
	seen := map[string]bool{} // key ID; an emulated key pair is in one region
	add := func(id, region string) {
		if !seen[id] && keyIDPattern(id) {
			seen[id] = true
			out = append(out, emulator.KeyPair{ID: id, Region: region})
		}
	}
	for _, j := range jobs {
		for _, id := range j.KeyIDs {
			add(id, j.Region)
		}
	}
	if len(instances) > 0 {
		for _, id := range runWide {
			add(id, instances[0].Region)
		}
	}
	return out
}

// emulatorCredential returns the credentials from the environment when set,
// otherwise a made-up pair.
func emulatorCredential() lighthouse.Credential {
	id, key := os.Getenv("TENCENTCLOUD_SECRET_ID"), os.Getenv("TENCENTCLOUD_SECRET_KEY")
	if id != "" && key != "" {
		return lighthouse.Credential{SecretID: id, SecretKey: key}
	}
	return emulatorKey()
}

// emulatorKey makes up a key pair for an emulated account.
func emulatorKey() lighthouse.Credential {
	return lighthouse.Credential{SecretID: "AKIDemulator" + randomHex(8), SecretKey: randomHex(16)}
}

func (a *app) emulatorCommand() *cobra.Command {
	var (
		listen    string
		jobsPath  string
		region    string
		instances int
		writeJobs string
		writeCred string
		o         emulatorOptions
		allowCols bool
	)
	cmd := &cobra.Command{
		Use:   "emulator [flags]",
		Short: "Serve a local, wire-compatible Lighthouse API emulator",
		Long: `Serve an emulator of the Lighthouse API (2020-03-24): TC3-HMAC-SHA256 signatures,
per-action rate limits, asynchronous resets, fault injection. Any Tencent Cloud
SDK pointed at the printed endpoint works unchanged.

Its fleet holds every instance and blueprint of --jobs, or --instances generated
ones (over --regions, tagged by --tags); --write-jobs saves the generated fleet as
a jobs CSV for batchreset run. The same listener serves STS AssumeRole, the Tag
service's GetResources and TAT (agent status, RunCommand). It uses
TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY when set, and otherwise makes
up a pair and prints it. What it saw (resets applied per instance, calls per
second per action) is at GET /_emulator/stats.`,
		Example: `  batchreset emulator --jobs jobs.example.csv
  batchreset emulator --listen 127.0.0.1:8080 --instances 2000 --failure-rate 0.05 --busy 10
  batchreset emulator --instances 2000 --regions ap-guangzhou,ap-singapore --tags 'env=staging:30%,env=prod:70%' --write-jobs fleet.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var jobs []store.Job
			if jobsPath != "" {
				var err error
				if region == "" {
					region = os.Getenv("TENCENTCLOUD_REGION")
				}
				if jobs, err = csvstore.ReadJobs(jobsPath, csvstore.ReadOptions{DefaultRegion: region, AllowUnknownColumns: allowCols}); err != nil {
					return err
				}
			} else if instances <= 0 {
				return usageError("give --jobs FILE.csv or --instances N")
			}
			if writeJobs != "" && jobsPath != "" {
				return usageError("--write-jobs writes a generated fleet: give --instances N, not --jobs")
			}
			if err := o.parseTags(); err != nil {
				return err
			}
			if host, _, err := net.SplitHostPort(listen); err == nil {
				if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
					a.log.Warn("emulator listening beyond loopback", "listen", listen)
				}
			}
			h, err := startEmulator(listen, jobs, instances, nil, o, a.log)
			if err != nil {
				return err
			}
			defer h.Close()
			if writeJobs != "" {
				if err := writeFleetJobs(writeJobs, emulator.FleetJobs(instances, o.fleet())); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "wrote %d jobs to %s\n", instances, writeJobs)
			}
			fmt.Fprintf(a.stdout, "emulator listening on %s\n", h.endpoint)
			if os.Getenv("TENCENTCLOUD_SECRET_KEY") == "" {
				fmt.Fprintf(a.stdout, "export TENCENTCLOUD_SECRET_ID=%s TENCENTCLOUD_SECRET_KEY=%s\n", h.cred.SecretID, h.cred.SecretKey)
			}
			for _, acc := range h.accounts {
				fmt.Fprintf(a.stdout, "account %s: UIN %s, SecretId %s, role %s\n", acc.name, acc.uin, acc.cred.SecretID, acc.role)
			}
			if writeCred != "" {
				if err := writeEmulatorCredentials(writeCred, h.accounts); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "wrote the accounts' keys to %s: give TENCENTCLOUD_CREDENTIALS_FILE=%s and --account NAME=profile:NAME\n", writeCred, writeCred)
			}
			fmt.Fprintf(a.stdout, "batchreset run --endpoint %s ...\n", h.endpoint)
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (loopback unless told otherwise)")
	cmd.Flags().StringVar(&jobsPath, "jobs", "", "seed the fleet from this jobs CSV")
	cmd.Flags().StringVar(&region, "region", "", "region for job rows that name none")
	addAllowUnknownColumns(cmd.Flags(), &allowCols)
	cmd.Flags().IntVar(&instances, "instances", 0, "generate this many instances")
	cmd.Flags().StringVar(&writeCred, "write-credentials", "", "write the keys of the accounts the jobs name to this SDK credentials file (mode 0600), one [NAME] section each, for run --account NAME=profile:NAME")
	cmd.Flags().StringVar(&writeJobs, "write-jobs", "", "write the generated fleet as a jobs CSV to this file")
	o.addFlags(cmd.Flags(), "")
	o.addFleetFlags(cmd.Flags())
	return cmd
}

// writeEmulatorCredentials writes the keys of accounts to path as an SDK
// credentials file, one [name] section each, readable by its owner alone.
func writeEmulatorCredentials(path string, accounts []emulatedAccount) error {
	if len(accounts) == 0 {
		return usageError("--write-credentials: the jobs name no account")
	}
	var b strings.Builder
	for _, acc := range accounts {
		fmt.Fprintf(&b, "[%s]\nsecret_id = %s\nsecret_key = %s\n\n", acc.name, acc.cred.SecretID, acc.cred.SecretKey)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}

// writeFleetJobs writes the jobs of a generated fleet as a jobs CSV to
// path.
func writeFleetJobs(path string, seeds []emulator.Seed) error {
	jobs := make([]store.Job, len(seeds))
	for i, sd := range seeds {
		jobs[i] = store.Job{InstanceID: sd.InstanceID, BlueprintID: sd.BlueprintID, Region: sd.Region}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write jobs: %w", err)
	}
	if err := csvstore.WriteJobs(f, "", jobs); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write jobs: %w", err)
	}
	return nil
}
