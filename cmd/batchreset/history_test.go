package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// TestHistories drives one emulated fleet with random histories, Jepsen's
// way: 2–4 runs (CSV and Postgres, 1–3 runners each) over overlapping
// instances, started at staggered times with varied endpoint spellings and
// rollouts, under the emulator's faults, half of them over a fleet split
// among accounts (see splitAccounts), with operator actions and process
// faults at random times (pause, resume, cancel, runners joining, SIGKILL
// and rerun, SIGINT and rerun, SIGSTOP and SIGCONT, database connections
// terminated, throttle storms). At the end every paused run is resumed and
// every run driven to its end (bounded); then the emulator's ledger judges
// the history (see checkHistory for the invariants).
//
// Each history comes from a seed (math/rand/v2, PCG), printed at its start
// and with any violation. BATCHRESET_HISTORY_SEED=N replays one history
// (the schedule, not the machine's timing); BATCHRESET_HISTORIES=N runs N
// histories (default 4), one after another.
func TestHistories(t *testing.T) {
	needBinary(t)
	var seeds []uint64
	if s := os.Getenv("BATCHRESET_HISTORY_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BATCHRESET_HISTORY_SEED=%q: not a number", s)
		}
		seeds = []uint64{seed}
	} else {
		n := 4
		if s := os.Getenv("BATCHRESET_HISTORIES"); s != "" {
			var err error
			if n, err = strconv.Atoi(s); err != nil || n < 1 {
				t.Fatalf("BATCHRESET_HISTORIES=%q: not a positive number", s)
			}
		}
		for range n {
			seeds = append(seeds, rand.Uint64()%1e12)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("history seed %d (replay: BATCHRESET_HISTORY_SEED=%d go test -race -run 'TestHistories' ./cmd/batchreset/)", seed, seed)
			h := newHistory(t, seed)
			h.play()
			h.finish()
			h.check()
			h.report()
		})
	}
}

// History bounds.
const (
	historyIdle    = 20 * time.Second // a run whose jobs do not move this long while a process of it runs is stuck
	historyEndWait = 90 * time.Second // the end phase: every run driven to its end
	historyReruns  = 4                // reruns of one run in the end phase
	historySettle  = "3s"             // > request timeout 1s + visibility lag ≤ 1.5s
)

// endpointSpellings are the ways a history writes the emulator's endpoint;
// each must name the same API, and so the same limits.
var endpointSpellings = []func(url string) string{
	func(u string) string { return u },
	func(u string) string { return u + "/" },
}

// history is one generated history and what happened when it was played.
type history struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand

	f      *fleet
	jobs   []store.Job // every instance of the fleet, in order
	limits map[string]int
	url    string // the history's schema
	app    string // application_name of every runner's database connections
	faults []emulator.Fault
	attr   *attribution

	accounts []*hAccount       // the fleet's named accounts; none in half the histories
	owner    map[string]string // instance ID → UIN of the account that owns it
	env      []string          // the runs' environment: the accounts' credentials file

	runs  []*hRun
	steps []step
	start time.Time

	mu         sync.Mutex
	executed   []string
	violations []string
}

// hRun is one run of the history: its command, its instances and its
// processes.
type hRun struct {
	name     string
	pg       bool
	lo, hi   int // instances [lo, hi) of the fleet
	args     []string
	results  string // CSV: the results file
	runners  int    // Postgres: runners started at first
	at       time.Duration
	cancel   bool // the schedule cancels it
	paused   bool // paused by the last control the history gave it
	procs    []*hProc
	reruns   int
	given    bool // the end phase gave up on it
	describe string
}

type hProc struct {
	name    string
	run     *hRun
	p       *proc
	stopped bool
}

// hAccount is a named account of a history's fleet, an emulated account
// of its own, with a key (a profile of the history's credentials file) and
// a role (which the run's key assumes). Each run reaches it one way or the
// other, drawn per run: runs reaching one account by its key and by a role
// are different principals, with limits of their own, that must still see
// each other's holds.
type hAccount struct {
	name       string
	uin        string
	keyID, key string
	role       string
}

// def is the account's --account value, by its role or by its profile.
func (a *hAccount) def(byRole bool) string {
	if byRole {
		return a.name + "=role:" + a.role
	}
	return a.name + "=profile:history-" + a.name
}

// step is one scheduled event.
type step struct {
	at   time.Duration
	what string
	do   func() string // what it did, for the log
}

func newHistory(t *testing.T, seed uint64) *history {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := &history{t: t, seed: seed, rng: rng, app: fmt.Sprintf("batchreset-history-%d", seed)}
	n := 20 + rng.IntN(41)
	limit := 10 + rng.IntN(11)
	h.attr = &attribution{pids: map[int]string{}, runs: map[string][]string{}}

	// The cloud: faults the emulator has, each in some histories.
	var notes []string
	maybe := func(p float64) bool { return rng.Float64() < p }
	if maybe(0.5) {
		h.faults = append(h.faults, emulator.Fault{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultDropAfterApply, Probability: 0.05 + 0.1*rng.Float64()})
	}
	if maybe(0.4) {
		h.faults = append(h.faults, emulator.Fault{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultUnavailable, Probability: 0.05 + 0.05*rng.Float64()})
	}
	if maybe(0.4) {
		h.faults = append(h.faults, emulator.Fault{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultLatency, Latency: 1500 * time.Millisecond, Probability: 0.05 + 0.05*rng.Float64()})
	}
	if maybe(0.3) {
		h.faults = append(h.faults, emulator.Fault{Kind: emulator.FaultThrottle, Probability: 0.05 + 0.1*rng.Float64()})
	}
	for _, f := range h.faults {
		notes = append(notes, fmt.Sprintf("%s %s %.0f%%", cmp.Or(f.Action, "every action"), f.Kind, 100*f.Probability))
	}
	var lag, skew time.Duration
	if maybe(0.4) {
		lag = time.Duration(200+rng.IntN(1300)) * time.Millisecond
		notes = append(notes, fmt.Sprintf("visibility lag %s", lag))
	}
	if maybe(0.3) {
		skew = time.Duration(rng.IntN(581)-290) * time.Second
		notes = append(notes, fmt.Sprintf("cloud clock %+ds", int(skew.Seconds())))
	}
	failureRate := 0.0
	if maybe(0.3) {
		failureRate = 0.03
		notes = append(notes, "3% of resets end FAILED")
	}
	fleetSeed := int64(rng.Uint32()) + 1
	emuSeed := int64(rng.Uint32()) + 1
	// Accounts come from a stream of their own: a history without them is
	// the one its seed gave before accounts existed.
	arng := rand.New(rand.NewPCG(seed^0x5851f42d4c957f2d, seed))
	var accounts []string
	if arng.Float64() < 0.5 {
		accounts = []string{"a", "b", "c"}[:2+arng.IntN(2)]
	}
	h.f = newFleet(t, fleetOptions{n: n, limit: limit, opts: emulator.FleetOptions{Seed: fleetSeed},
		edit: func(c *emulator.Config) {
			c.ResetDuration = emulator.Duration{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond}
			c.Faults, c.VisibilityLag, c.FailureRate, c.Seed = h.faults, lag, failureRate, emuSeed
			if skew != 0 {
				c.Now = func() time.Time { return time.Now().Add(skew) }
			}
			h.splitAccounts(c, accounts, arng)
		},
		handler: h.attr.wrap,
	})
	h.attr.emu = h.f.emu
	h.attr.serverPort = portOf(t, h.f.url)
	h.limits = emulator.DefaultRateLimits()
	h.limits[lighthouse.ActionResetInstance] = limit
	jobs, err := csvstore.ReadJobs(h.f.jobsPath, csvstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.jobs = jobs
	h.logf("fleet of %d instances, ResetInstance limit %d/s, runs at --rate %g; %s", n, limit, h.f.rate, cmp.Or(strings.Join(notes, ", "), "no faults"))
	if len(h.accounts) > 0 {
		h.writeAccounts()
	}

	// The runs.
	nRuns := 2 + rng.IntN(3)
	for i := range nRuns {
		r := &hRun{name: string(rune('A' + i)), pg: maybe(0.5)}
		r.lo = rng.IntN(n / 2)
		r.hi = r.lo + n/3 + rng.IntN(n-r.lo-n/3+1)
		if i > 0 {
			r.at = time.Duration(rng.IntN(10_000)) * time.Millisecond
		}
		endpoint := endpointSpellings[rng.IntN(len(endpointSpellings))](h.f.url)
		var extra []string
		switch rng.IntN(4) {
		case 0:
			extra = append(extra, "--canary", strconv.Itoa(1+rng.IntN(3)))
		case 1:
			extra = append(extra, "--waves", []string{"5,25%", "3,10,100%", "50%"}[rng.IntN(3)])
			if maybe(0.5) {
				extra = append(extra, "--pause-between-waves", "1s")
			}
		}
		if maybe(0.4) {
			// Stop: the end phase reruns a run until it has finished, which
			// a run its budget paused (the default) would not without a
			// person's resume.
			extra = append(extra, "--max-failures", []string{"none", "1", "20%"}[rng.IntN(3)], "--on-failure", "stop")
		}
		// Once the run holding an instance has ended, another run's reset
		// of it is a new decision; --skip-reset-since is how the operator
		// makes that decision "no", so with it no instance is ever reset
		// twice.
		extra = append(extra, "--skip-reset-since", "1h")
		extra = append(extra, h.accountFlags(r, arng)...)
		rate := fmt.Sprint(h.f.rate)
		if r.pg {
			r.runners = 1 + rng.IntN(3)
			r.args = append([]string{"run", "--database-url", "", "--run", "run" + r.name, "--endpoint", endpoint, "--yes",
				"--rate", rate, "--poll-interval", "200ms", "--lease-ttl", "2s", "--request-timeout", "1s", "--settle-time", historySettle}, extra...)
		} else {
			r.runners = 1
			r.args = append([]string{"run", "--jobs", "", "--endpoint", endpoint, "--yes",
				"--rate", rate, "--poll-interval", "200ms", "--request-timeout", "1s", "--settle-time", historySettle}, extra...)
		}
		kind := "csv"
		if r.pg {
			kind = fmt.Sprintf("postgres (%d runner(s))", r.runners)
		}
		r.describe = fmt.Sprintf("%s run %s over instances %d-%d --endpoint %s %s", kind, r.name, r.lo, r.hi-1, endpoint, strings.Join(extra, " "))
		h.runs = append(h.runs, r)
	}
	h.prepareRuns()
	h.schedule()
	return h
}

// splitAccounts makes names (none, two or three) accounts of the fleet c
// configures, each an emulated account with a key and a role of its own
// (UINs derived from the fleet's, so that no two histories share one), and
// gives each instance to one of them or to the fleet's own account (the
// rows that name no account), at random. It records every instance's
// owner, and the accounts, in h.
func (h *history) splitAccounts(c *emulator.Config, names []string, rng *rand.Rand) {
	h.owner = map[string]string{}
	base, err := strconv.ParseInt(c.UIN, 10, 64)
	if err != nil {
		h.t.Fatalf("fleet UIN %q: %v", c.UIN, err)
	}
	for i, name := range names {
		uin := strconv.FormatInt(base+int64(i+1)*10_000_000_000, 10)
		h.accounts = append(h.accounts, &hAccount{
			name:  name,
			uin:   uin,
			keyID: "AKIDhistory" + name + uin,
			key:   "history-" + name + "-S3cr3tK3y-" + uin,
			role:  "qcs::cam::uin/" + uin + ":roleName/batchreset-history",
		})
	}
	own := c.Instances
	c.Instances = nil
	emuAccounts := make([]emulator.Account, len(h.accounts))
	for i, a := range h.accounts {
		emuAccounts[i] = emulator.Account{Name: a.name, UIN: a.uin, Credentials: map[string]string{a.keyID: a.key},
			Roles: []string{a.role}, Blueprints: c.Blueprints}
	}
	for _, in := range own {
		k := 0
		if len(names) > 0 {
			k = rng.IntN(len(names) + 1)
		}
		if k == 0 {
			c.Instances = append(c.Instances, in)
			h.owner[in.ID] = c.UIN
			continue
		}
		emuAccounts[k-1].Instances = append(emuAccounts[k-1].Instances, in)
		h.owner[in.ID] = h.accounts[k-1].uin
	}
	c.Accounts = emuAccounts
}

// writeAccounts names each job's account, writes the accounts' keys as
// profiles history-NAME of a credentials file the runs are given, and logs
// the split.
func (h *history) writeAccounts() {
	byUIN := map[string]*hAccount{}
	var profiles strings.Builder
	for _, a := range h.accounts {
		byUIN[a.uin] = a
		fmt.Fprintf(&profiles, "[history-%s]\nsecret_id = %s\nsecret_key = %s\n", a.name, a.keyID, a.key)
	}
	count := map[string]int{}
	for i, j := range h.jobs {
		if a := byUIN[h.owner[j.InstanceID]]; a != nil {
			h.jobs[i].Account = a.name
		}
		count[h.jobs[i].Account]++
	}
	path := filepath.Join(h.t.TempDir(), "credentials")
	if err := os.WriteFile(path, []byte(profiles.String()), 0o600); err != nil {
		h.t.Fatal(err)
	}
	h.env = []string{"TENCENTCLOUD_CREDENTIALS_FILE=" + path}
	parts := []string{fmt.Sprintf("no account %d instance(s) (UIN %s, the run's key)", count[""], h.f.uin)}
	for _, a := range h.accounts {
		parts = append(parts, fmt.Sprintf("%s %d instance(s) (UIN %s, by profile history-%s or role %s)", a.name, count[a.name], a.uin, a.name, a.role))
	}
	h.logf("fleet split over %d accounts and the run's own: %s", len(h.accounts), strings.Join(parts, "; "))
}

// accountFlags returns r's --account flags, one for each account its
// instances name, each by its profile or its role (drawn for the run: every
// runner of a Postgres run defines its accounts alike), and in some runs
// over accounts a failure budget of each account's own.
func (h *history) accountFlags(r *hRun, rng *rand.Rand) []string {
	var flags []string
	for _, a := range h.accounts {
		if slices.ContainsFunc(h.jobs[r.lo:r.hi], func(j store.Job) bool { return j.Account == a.name }) {
			flags = append(flags, "--account", a.def(rng.IntN(2) == 0))
		}
	}
	if len(flags) > 0 && rng.Float64() < 0.3 {
		flags = append(flags, "--max-failures-per-account", []string{"1", "20%"}[rng.IntN(2)])
	}
	return flags
}

// portOf returns the port of a URL's host.
func portOf(t *testing.T, u string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// prepareRuns writes each CSV run's jobs file in a folder of its own and
// imports each Postgres run into the history's schema.
func (h *history) prepareRuns() {
	t := h.t
	needPG := slices.ContainsFunc(h.runs, func(r *hRun) bool { return r.pg })
	if needPG {
		h.url = postgrestest.NewSchema(t)
	}
	for _, r := range h.runs {
		var b strings.Builder
		b.WriteString("instance_id,blueprint_id,region")
		if len(h.accounts) > 0 {
			b.WriteString(",account")
		}
		for _, j := range h.jobs[r.lo:r.hi] {
			fmt.Fprintf(&b, "\n%s,%s,%s", j.InstanceID, j.BlueprintID, j.Region)
			if len(h.accounts) > 0 {
				b.WriteString("," + j.Account)
			}
		}
		b.WriteString("\n")
		path := filepath.Join(t.TempDir(), "jobs.csv")
		writeFile(t, path, b.String())
		if r.pg {
			batchreset(t, "import", "--database-url", h.url, "--jobs", path, "--run", "run"+r.name).wantCode(t, exitOK, "import run ", r.name)
			r.args[2] = h.url + "&application_name=" + h.app
		} else {
			r.args[2] = path
			r.results = filepath.Join(filepath.Dir(path), "results.csv")
		}
	}
}

// schedule generates the history's steps: each run's start, then operator
// actions and faults at random times.
func (h *history) schedule() {
	rng := h.rng
	add := func(at time.Duration, what string, do func() string) {
		h.steps = append(h.steps, step{at: at, what: what, do: do})
	}
	var pgRuns []*hRun
	for _, r := range h.runs {
		if r.pg {
			pgRuns = append(pgRuns, r)
		}
		at, what := r.at, "start "+r.describe
		for range r.runners {
			add(at, what, func() string { return h.startProc(r) })
			at += time.Duration(rng.IntN(2000)) * time.Millisecond
			what = "another runner of run " + r.name
		}
	}
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo)) * time.Millisecond }
	for range 2 + rng.IntN(5) {
		// While the run works, most of the time: a run of n jobs takes
		// about n/rate seconds.
		r := h.runs[rng.IntN(len(h.runs))]
		busy := int(1000*float64(r.hi-r.lo)/h.f.rate) + 1000
		at := r.at + ms(200, busy+200)
		switch k := rng.IntN(8); {
		case k == 0 && r.pg && !r.cancel:
			add(at, "pause run "+r.name, func() string { return h.control("pause", r) })
			if rng.Float64() < 0.7 {
				add(at+ms(1000, 5000), "resume run "+r.name, func() string { return h.control("resume", r) })
			}
		case k == 1 && r.pg && !r.cancel && rng.Float64() < 0.5:
			// No pause of r follows: a resume must not undo the cancel.
			paused := slices.ContainsFunc(h.steps, func(s step) bool { return s.what == "pause run "+r.name })
			if !paused {
				r.cancel = true
				add(at, "cancel run "+r.name, func() string { return h.control("cancel", r) })
			}
		case k == 2 && r.pg:
			add(at, "a runner joins run "+r.name, func() string { return h.startProc(r) })
		case k == 3:
			add(at, "SIGKILL a runner of run "+r.name, func() string { return h.signal(h.live(r), syscall.SIGKILL) })
			if rng.Float64() < 0.7 {
				add(at+ms(500, 3000), "rerun run "+r.name+" (its command again)", func() string { return h.rerun(r) })
			}
		case k == 4:
			add(at, "SIGINT a runner of run "+r.name, func() string { return h.signal(h.live(r), syscall.SIGINT) })
			add(at+ms(1000, 4000), "rerun run "+r.name+" (its command again)", func() string { return h.rerun(r) })
		case k == 5:
			var target *hProc
			add(at, "SIGSTOP a runner of run "+r.name, func() string {
				target = h.live(r)
				return h.signal(target, syscall.SIGSTOP)
			})
			add(at+ms(1000, 5000), "SIGCONT it", func() string { return h.signal(target, syscall.SIGCONT) })
		case k == 6 && len(pgRuns) > 0:
			add(at, "terminate every runner's Postgres connection (a database restart)", h.terminateBackends)
		case k == 7:
			d := ms(1000, 3000)
			add(at, fmt.Sprintf("throttle storm: every ResetInstance refused for %s", d), func() string {
				storm := append([]emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultThrottle}}, h.faults...)
				if err := h.f.emu.SetFaults(storm); err != nil {
					return "failed: " + err.Error()
				}
				return ""
			})
			add(at+d, "throttle storm ends", func() string {
				if err := h.f.emu.SetFaults(h.faults); err != nil {
					return "failed: " + err.Error()
				}
				return ""
			})
		}
	}
	slices.SortStableFunc(h.steps, func(a, b step) int { return int(a.at - b.at) })
}

// schedule returns the generated steps, one a line.
func (h *history) scheduleText() string {
	var b strings.Builder
	for _, s := range h.steps {
		fmt.Fprintf(&b, "\tt+%.1fs %s\n", s.at.Seconds(), s.what)
	}
	return b.String()
}

func (h *history) logf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	at := 0.0
	if !h.start.IsZero() {
		at = time.Since(h.start).Seconds()
	}
	h.executed = append(h.executed, fmt.Sprintf("t+%.1fs %s", at, fmt.Sprintf(format, args...)))
}

// violate records a broken invariant.
func (h *history) violate(invariant int, format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.violations = append(h.violations, fmt.Sprintf("invariant %d: %s", invariant, fmt.Sprintf(format, args...)))
}

// play runs the schedule.
func (h *history) play() {
	h.t.Logf("history seed %d:\n%s", h.seed, h.scheduleText())
	h.start = time.Now()
	for _, s := range h.steps {
		if d := time.Until(h.start.Add(s.at)); d > 0 {
			time.Sleep(d)
		}
		note := s.do()
		h.logf("%s%s", s.what, cmp.Or(note, ""))
	}
}

// startProc starts one more process of r.
func (h *history) startProc(r *hRun) string {
	name := fmt.Sprintf("%s%d", r.name, len(r.procs)+1)
	if !r.pg && h.live(r) != nil {
		return fmt.Sprintf(": no-op, %s still runs (one process per CSV run)", h.live(r).name)
	}
	p := &hProc{name: name, run: r, p: startProcess(h.t, name, h.env, r.args...)}
	h.attr.add(p.p.cmd.Process.Pid, r.name)
	r.procs = append(r.procs, p)
	return fmt.Sprintf(": %s pid %d", name, p.p.cmd.Process.Pid)
}

// live returns r's newest process still running, or nil.
func (h *history) live(r *hRun) *hProc {
	for _, p := range slices.Backward(r.procs) {
		if p.running() {
			return p
		}
	}
	return nil
}

func (p *hProc) running() bool {
	select {
	case <-p.p.done:
		return false
	default:
		return true
	}
}

func (h *history) signal(p *hProc, sig syscall.Signal) string {
	if p == nil || !p.running() {
		return ": no-op, no runner of it is running"
	}
	if err := p.p.cmd.Process.Signal(sig); err != nil {
		return fmt.Sprintf(": %s: %v", p.name, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	}
	return fmt.Sprintf(": %s (pid %d)", p.name, p.p.cmd.Process.Pid)
}

// rerun starts r's command again unless a process of r still runs (a
// CSV run takes one process; a Postgres rerun is a runner joining).
func (h *history) rerun(r *hRun) string {
	if len(r.procs) == 0 {
		return ": no-op, it has not started"
	}
	if p := h.live(r); p != nil && !r.pg {
		return fmt.Sprintf(": no-op, %s still runs", p.name)
	}
	return h.startProc(r)
}

// control pauses, resumes or cancels a Postgres run, as an operator does.
func (h *history) control(verb string, r *hRun) string {
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(h.t.Context(), 30*time.Second)
	defer cancel()
	code := run(ctx, []string{verb, "--database-url", h.url, "--run", "run" + r.name}, strings.NewReader(""), &stdout, &stderr)
	if code != exitOK {
		return fmt.Sprintf(": FAILED, exit %d: %s", code, strings.TrimSpace(stderr.String()))
	}
	r.paused = verb == "pause"
	return ""
}

// terminateBackends ends every database connection of the history's
// runners, as a database restart would, without touching anyone else's.
func (h *history) terminateBackends() string {
	ctx, cancel := context.WithTimeout(h.t.Context(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, postgrestest.DatabaseURL())
	if err != nil {
		return ": " + err.Error()
	}
	defer pool.Close()
	var n int
	err = pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`, h.app).Scan(&n)
	if err != nil {
		return ": " + err.Error()
	}
	return fmt.Sprintf(": %d connection(s)", n)
}

// finish ends the history as an operator would: every stopped process
// continued, the storm over, every paused run resumed; then every run is
// driven to its end, rerunning it while no process of it runs (at most
// historyReruns times), within historyEndWait. A run whose processes run
// while none of its jobs moves for historyIdle, or that is not done by
// then, is stuck (invariant 3).
func (h *history) finish() {
	h.logf("end phase")
	for _, r := range h.runs {
		for _, p := range r.procs {
			if p.stopped {
				h.logf("end: SIGCONT %s%s", p.name, h.signal(p, syscall.SIGCONT))
			}
		}
		if r.paused {
			h.logf("end: resume run %s%s", r.name, h.control("resume", r))
		}
	}
	if err := h.f.emu.SetFaults(h.faults); err != nil {
		h.t.Fatal(err)
	}
	deadline := time.Now().Add(historyEndWait)
	progress := map[*hRun]string{}
	since := map[*hRun]time.Time{}
	for {
		busy := false
		for _, r := range h.runs {
			if r.given {
				continue
			}
			if live := h.liveProcs(r); len(live) > 0 {
				busy = true
				if sig := h.progress(r); sig != progress[r] || since[r].IsZero() {
					progress[r], since[r] = sig, time.Now()
				}
				idle := time.Since(since[r])
				if idle < historyIdle && time.Now().Before(deadline) {
					continue
				}
				var dump strings.Builder
				for _, p := range live {
					fmt.Fprintf(&dump, "\n%s (pid %d) stderr ends:\n%s", p.name, p.p.cmd.Process.Pid, indent(tail(redact(p.p.stderr.String()), 25)))
					p.p.cmd.Process.Kill()
					<-p.p.done
				}
				h.violate(3, "run %s: stuck: %d process(es) still running, no job of the run changed for %s, %s into the end phase; killed them.%s",
					r.name, len(live), idle.Round(time.Second), (historyEndWait - time.Until(deadline)).Round(time.Second), dump.String())
				r.given = true
				continue
			}
			unfinished := h.unfinished(r)
			if unfinished == 0 {
				continue
			}
			if r.reruns >= historyReruns || time.Now().After(deadline) {
				last := r.procs[len(r.procs)-1]
				h.violate(3, "run %s: %d job(s) unfinished after %d reruns in the end phase; last exit %s. Its stderr ends:\n%s",
					r.name, unfinished, r.reruns, last.p.cmd.ProcessState, indent(tail(redact(last.p.stderr.String()), 25)))
				r.given = true
				continue
			}
			if last := r.procs[len(r.procs)-1]; last.p.cmd.ProcessState != nil && last.p.cmd.ProcessState.ExitCode() == exitPaused {
				// Paused by its own rule (its budget under --on-failure
				// pause, an approval), waiting for a person: be one.
				h.logf("end: resume run %s, paused by its own rule%s", r.name, h.control("resume", r))
			}
			r.reruns++
			h.logf("end: rerun run %s, %d job(s) unfinished%s", r.name, unfinished, h.startProc(r))
			busy = true
		}
		if !busy {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// liveProcs returns r's processes still running.
func (h *history) liveProcs(r *hRun) []*hProc {
	var live []*hProc
	for _, p := range r.procs {
		if p.running() {
			live = append(live, p)
		}
	}
	return live
}

// progress sums up where r's jobs are: the status, attempts and RequestId
// of each Postgres job, or the size of a CSV run's journal. It changes
// whenever a job moves.
func (h *history) progress(r *hRun) string {
	if !r.pg {
		fi, err := os.Stat(r.results + ".state")
		if err != nil {
			return err.Error()
		}
		return strconv.FormatInt(fi.Size(), 10)
	}
	ctx, cancel := context.WithTimeout(h.t.Context(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, h.url)
	if err != nil {
		return err.Error()
	}
	defer pool.Close()
	var sig string
	err = pool.QueryRow(ctx, `SELECT coalesce(string_agg(status || ':' || attempts || ':' || request_id, ',' ORDER BY id), '') FROM jobs WHERE run = $1`, "run"+r.name).Scan(&sig)
	if err != nil {
		return err.Error()
	}
	return sig
}

// unfinished counts r's jobs that are not terminal (all of them when a CSV
// run has written no results yet).
func (h *history) unfinished(r *hRun) int {
	n := 0
	for _, j := range h.outcomes(r) {
		if !j.Status.Terminal() {
			n++
		}
	}
	return n
}

// outcomes returns r's records: its results file, or its jobs in the
// database. A CSV run without results yet has every job pending.
func (h *history) outcomes(r *hRun) []store.Job {
	if r.pg {
		return dbJobs(h.t, h.url, "run"+r.name)
	}
	b, err := os.ReadFile(r.results)
	if err == nil {
		jobs, err := decodeResults(b)
		if err == nil {
			return jobs
		}
		h.t.Errorf("run %s: results %s: %v", r.name, r.results, err)
	}
	jobs := slices.Clone(h.jobs[r.lo:r.hi])
	for i := range jobs {
		jobs[i].Status = store.StatusPending
	}
	return jobs
}

// check judges the history on the emulator's ledger:
//  1. no instance reset twice;
//  2. no call over any action's limit in any one-second window, in any
//     account (each account has its own limits);
//  3. every run ended, nothing stuck (finish);
//  4. every outcome is the cloud's: a succeeded job names a RequestId the
//     ledger applied to its instance; an instance never reset is never
//     succeeded; a job whose instance this run reset is neither pending nor
//     skipped, and names that reset unless it ended unknown;
//  5. nothing held at the end: no process alive, no Postgres job
//     submitting, submitted or under a live lease;
//  6. every reset was signed in the account that owns the instance, the
//     one its row names (SignedBy == Account == the owner);
//  7. no process printed a secret key, the run's or an account's.
func (h *history) check() {
	st := h.f.emu.Stats()
	byInstance := map[string][]string{}
	for _, r := range h.runs {
		for _, j := range h.jobs[r.lo:r.hi] {
			byInstance[j.InstanceID] = append(byInstance[j.InstanceID], r.name)
		}
	}
	for _, j := range h.jobs {
		if applied := st.Resets[j.InstanceID]; len(applied) > 1 {
			h.violate(1, "%s of account %s reset %d times: %s (runs over it: %s)", j.InstanceID, h.accountName(h.owner[j.InstanceID]), len(applied), h.attr.describe(applied), strings.Join(byInstance[j.InstanceID], ", "))
		}
	}

	for uin, actions := range st.ByAccount {
		for action, as := range actions {
			if limit, ok := h.limits[action]; ok && limit >= 0 && (as.OverLimit != 0 || as.MaxPerSecond > limit) {
				h.violate(2, "account %s: %s: %d call(s) over the limit of %d/s, at most %d in one second", h.accountName(uin), action, as.OverLimit, limit, as.MaxPerSecond)
			}
		}
	}

	for _, j := range h.jobs {
		for _, rec := range st.ResetLog[j.InstanceID] {
			if owner := h.owner[j.InstanceID]; rec.Account != owner || rec.SignedBy != owner {
				h.violate(6, "%s (account %s): reset %s of account %s signed by account %s (%s)", j.InstanceID, h.accountName(owner),
					rec.RequestID, h.accountName(rec.Account), h.accountName(rec.SignedBy), h.attr.describe([]string{rec.RequestID}))
			}
		}
	}

	secrets := []string{testSecretKey}
	for _, a := range h.accounts {
		secrets = append(secrets, a.key)
	}
	for _, r := range h.runs {
		for _, p := range r.procs {
			for i, s := range secrets {
				if strings.Contains(p.p.stdout.String()+p.p.stderr.String(), s) {
					h.violate(7, "run %s: %s printed secret key %d of %d", r.name, p.name, i+1, len(secrets))
				}
			}
		}
	}

	for _, r := range h.runs {
		totals := store.Totals{}
		var unknown []string
		for _, j := range h.outcomes(r) {
			totals[j.Status]++
			applied := st.Resets[j.InstanceID]
			where := fmt.Sprintf("run %s: %s %s (request %q, %s: %s; ledger: %s)", r.name, j.InstanceID, j.Status, j.RequestID, j.ErrorCode, j.ErrorMessage, cmp.Or(h.attr.describe(applied), "never reset"))
			ours := h.attr.by(r.name, applied)
			switch {
			case j.Status == store.StatusSucceeded && !slices.Contains(applied, j.RequestID):
				h.violate(4, "%s: succeeded with a RequestId the cloud never applied to it", where)
			case (j.Status == store.StatusPending || j.Status == store.StatusSkipped) && len(ours) > 0:
				h.violate(4, "%s: this run reset it (%s), yet it is %s", where, strings.Join(ours, ", "), j.Status)
			case len(ours) > 0 && j.Status != store.StatusUnknown && !slices.Contains(ours, j.RequestID):
				h.violate(4, "%s: this run reset it (%s), yet the outcome names another request", where, strings.Join(ours, ", "))
			case j.Status == store.StatusUnknown:
				if j.ErrorMessage == "" {
					h.violate(4, "%s: unknown without a reason", where)
				}
				unknown = append(unknown, fmt.Sprintf("%s (%s)", j.InstanceID, j.ErrorCode))
			}
			if !j.Status.Terminal() && !r.given {
				h.violate(3, "%s: not finished", where)
			}
		}
		h.logf("run %s outcomes: %v; unknown: %s", r.name, totals, cmp.Or(strings.Join(unknown, ", "), "none"))
	}

	for _, r := range h.runs {
		for _, p := range r.procs {
			if p.running() {
				h.violate(5, "run %s: %s (pid %d) still alive after the end", r.name, p.name, p.p.cmd.Process.Pid)
			}
		}
	}
	if h.url != "" {
		h.checkHeld()
	}
	if amb := h.attr.ambiguous(); amb > 0 {
		h.logf("%d applied reset(s) could not be told to one run (calls on one instance overlapped)", amb)
	}
}

// accountName names the account of a UIN for a violation: its name, or
// "(none)" for the fleet's own account, with the UIN.
func (h *history) accountName(uin string) string {
	for _, a := range h.accounts {
		if a.uin == uin {
			return a.name + " (UIN " + uin + ")"
		}
	}
	if uin == h.f.uin {
		return "(none) (UIN " + uin + ")"
	}
	return "UIN " + uin
}

// checkHeld finds Postgres jobs still in flight or leased.
func (h *history) checkHeld() {
	ctx, cancel := context.WithTimeout(h.t.Context(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, h.url)
	if err != nil {
		h.t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT run, instance_id, status, coalesce(lease_owner, ''), coalesce(lease_expires_at > now(), false)
		FROM jobs WHERE status IN ('submitting', 'submitted') OR (status = 'pending' AND lease_expires_at > now()) ORDER BY run, id`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var run, instance, status, owner string
		var leased bool
		if err := rows.Scan(&run, &instance, &status, &owner, &leased); err != nil {
			h.t.Fatal(err)
		}
		if i := slices.IndexFunc(h.runs, func(r *hRun) bool { return "run"+r.name == run }); i < 0 || !h.runs[i].given {
			h.violate(5, "%s: %s left %s, lease %q live %v", run, instance, status, owner, leased)
		}
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
}

// report fails the test with everything needed to replay and understand
// the history, or logs what it did.
func (h *history) report() {
	h.mu.Lock()
	defer h.mu.Unlock()
	text := fmt.Sprintf("history seed %d (replay: BATCHRESET_HISTORY_SEED=%d go test -race -run 'TestHistories' ./cmd/batchreset/)\nschedule:\n%sexecuted:\n\t%s",
		h.seed, h.seed, h.scheduleText(), strings.Join(h.executed, "\n\t"))
	if len(h.violations) == 0 {
		h.t.Log(text)
		return
	}
	h.t.Errorf("%s\n%d violation(s):\n\t%s", text, len(h.violations), strings.Join(h.violations, "\n\t"))
}

// attribution tells which run sent each reset the emulator applied: for
// every ResetInstance it finds the process at the other end of the
// connection (Linux: /proc/net/tcp and the processes' descriptors) and
// the RequestIds the call added to the instance's ledger.
type attribution struct {
	emu        *emulator.Server
	serverPort int

	mu   sync.Mutex
	pids map[int]string      // process → run
	runs map[string][]string // RequestId → runs whose calls added it
}

func (a *attribution) add(pid int, run string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pids[pid] = run
}

func (a *attribution) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-TC-Action") != lighthouse.ActionResetInstance || a.emu == nil {
			next.ServeHTTP(w, r)
			return
		}
		run := a.runOf(r.RemoteAddr)
		body, err := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var params struct{ InstanceId string }
		if err == nil {
			err = json.Unmarshal(body, &params)
		}
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		before := len(a.emu.Stats().Resets[params.InstanceId])
		defer func() {
			after := a.emu.Stats().Resets[params.InstanceId]
			a.mu.Lock()
			defer a.mu.Unlock()
			for _, rid := range after[min(before, len(after)):] {
				if !slices.Contains(a.runs[rid], run) {
					a.runs[rid] = append(a.runs[rid], run)
				}
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// runOf names the run whose process holds the client end of a connection
// from remote, or "?".
func (a *attribution) runOf(remote string) string {
	_, p, err := net.SplitHostPort(remote)
	if err != nil {
		return "?"
	}
	client, _ := strconv.Atoi(p)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return "?"
	}
	inode := ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		if hexPort(f[1]) == client && hexPort(f[2]) == a.serverPort {
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return "?"
	}
	a.mu.Lock()
	pids := make(map[int]string, len(a.pids))
	for pid, run := range a.pids {
		pids[pid] = run
	}
	a.mu.Unlock()
	want := "socket:[" + inode + "]"
	for pid, run := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join(dir, fd.Name())); l == want {
				return run
			}
		}
	}
	return "?"
}

// hexPort returns the port of a /proc/net/tcp address (ADDR:PORT in hex).
func hexPort(addr string) int {
	_, p, ok := strings.Cut(addr, ":")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(p, 16, 32)
	if err != nil {
		return -1
	}
	return int(n)
}

// by returns the RequestIds of applied told to run alone.
func (a *attribution) by(run string, applied []string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, rid := range applied {
		if rs := a.runs[rid]; len(rs) == 1 && rs[0] == run {
			out = append(out, rid)
		}
	}
	return out
}

// describe names each RequestId of applied with the runs that sent it.
func (a *attribution) describe(applied []string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	parts := make([]string, len(applied))
	for i, rid := range applied {
		parts[i] = fmt.Sprintf("%s by run %s", rid, cmp.Or(strings.Join(a.runs[rid], "/"), "?"))
	}
	return strings.Join(parts, ", ")
}

// ambiguous counts the applied resets told to more than one run, or none.
func (a *attribution) ambiguous() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, rs := range a.runs {
		if len(rs) != 1 || rs[0] == "?" {
			n++
		}
	}
	return n
}
