package runner_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// Test credentials; the emulator checks every signature.
const (
	testSecretID  = "AKIDrunnertest"
	testSecretKey = "runner-test-secret-key-0123456789"
)

// bundle is one scenario's real parts: an emulator over real HTTP, a
// signing client, and a crash-safe CSV store in a temporary directory (or a
// Postgres schema, see runOn).
type bundle struct {
	emu       *emulator.Server
	url       string             // the endpoint the runner's client calls (through scenario.wrap, if set)
	client    *lighthouse.Client // the runner's client
	direct    *lighthouse.Client // straight to the emulator, never through scenario.wrap: for verification
	jobs      []store.Job
	statePath string
	limit     int            // the emulator's ResetInstance limit
	limits    map[string]int // every action's limit at the emulator; negative means none
	logs      *syncBuffer    // everything the runners logged, for the secrets check
	// before is the emulator's ledger before the run under verification
	// (see baseline): verify judges only the resets applied since.
	before map[string][]string
}

type scenario struct {
	n       int
	limit   int // ResetInstance per second at the emulator; default 10
	fleet   emulator.FleetOptions
	emu     func(*emulator.Config)
	timeout time.Duration // client call timeout; default 1s
	// wrap, if set, puts a handler between the runner's client and the
	// emulator: the network of the scenario (see network).
	wrap func(http.Handler) http.Handler
}

func setup(t *testing.T, sc scenario) *bundle {
	t.Helper()
	if sc.limit == 0 {
		sc.limit = 10
	}
	if sc.timeout == 0 {
		sc.timeout = time.Second
	}
	if sc.fleet.Seed == 0 {
		sc.fleet.Seed = 1
	}
	sc.fleet.Missing = 0
	instances, blueprints := emulator.GenerateFleet(sc.n, sc.fleet)
	var jobs []store.Job
	for i, in := range instances {
		jobs = append(jobs, store.Job{ID: int64(i + 2), InstanceID: in.ID, BlueprintID: blueprints[0].ID, Region: in.Region, Status: store.StatusPending})
	}
	cfg := emulator.Config{
		Credentials:   map[string]string{testSecretID: testSecretKey},
		Instances:     instances,
		Blueprints:    blueprints,
		RateLimits:    map[string]int{lighthouse.ActionResetInstance: sc.limit},
		ResetDuration: emulator.Duration{Min: 100 * time.Millisecond, Max: 300 * time.Millisecond},
		Seed:          7,
	}
	if sc.emu != nil {
		sc.emu(&cfg)
	}
	limits := emulator.DefaultRateLimits() // every action is checked
	for action, l := range cfg.RateLimits {
		if l != 0 {
			limits[action] = l
		}
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw := httptest.NewServer(emu)
	ts := raw
	if sc.wrap != nil {
		ts = httptest.NewServer(sc.wrap(emu))
	}
	newClient := func(url string, timeout time.Duration) *lighthouse.Client {
		c, err := lighthouse.New(lighthouse.Config{
			Endpoint:   url,
			Credential: lighthouse.Credential{SecretID: testSecretID, SecretKey: testSecretKey},
			Timeout:    timeout,
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	b := &bundle{
		emu:       emu,
		url:       ts.URL,
		client:    newClient(ts.URL, sc.timeout),
		direct:    newClient(raw.URL, 10*time.Second),
		jobs:      jobs,
		statePath: filepath.Join(t.TempDir(), "results.csv.state"),
		limit:     limits[lighthouse.ActionResetInstance],
		limits:    limits,
		logs:      new(syncBuffer),
		before:    map[string][]string{},
	}
	t.Cleanup(func() {
		emu.Close() // ends FaultLatency waits first, so the servers close at once
		b.client.CloseIdleConnections()
		b.direct.CloseIdleConnections()
		if ts != raw {
			ts.Close()
		}
		raw.Close()
	})
	return b
}

// config returns a runner configuration fit for fast tests. Logs go to the
// test's output and to b.logs.
func (b *bundle) config(t *testing.T, st runner.Store) runner.Config {
	return runner.Config{
		API:          b.client,
		Store:        st,
		Rate:         float64(b.limit),
		Workers:      8,
		PollInterval: 100 * time.Millisecond,
		ResetTimeout: 10 * time.Second,
		SettleTime:   1500 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), b.logs), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// cloud returns a Cloud over the scenario's client, at its rate.
func (b *bundle) cloud(t *testing.T) *runner.Cloud {
	t.Helper()
	c, err := runner.NewCloud(runner.CloudConfig{API: b.client, Rate: float64(b.limit)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// open opens (or reopens, to resume) the scenario's CSV store.
func (b *bundle) open(t *testing.T) *csvstore.Store {
	t.Helper()
	return openCSV(t, b.statePath, b.jobs)
}

// run runs a runner over a fresh or reopened store until it finishes.
func (b *bundle) run(t *testing.T, edit func(*runner.Config)) (runner.Summary, []store.Job) {
	t.Helper()
	st := b.open(t)
	defer st.Close()
	cfg := b.config(t, st)
	if edit != nil {
		edit(&cfg)
	}
	sum := b.runWith(t, cfg)
	return sum, st.Jobs()
}

// runWith runs one runner with cfg until it finishes, failing the test if
// Run returns an error (without printing the error if it holds the secret).
func (b *bundle) runWith(t *testing.T, cfg runner.Config) runner.Summary {
	t.Helper()
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sum, err := r.Run(ctx)
	if err != nil {
		if strings.Contains(err.Error(), testSecretKey) {
			t.Fatal("Run() returned an error that contains the SecretKey")
		}
		t.Fatalf("Run() error = %v", err)
	}
	return sum
}

// backend names the store a scenario runs on.
type backend string

const (
	csvBackend backend = "CSV"
	pgBackend  backend = "Postgres"
)

// backends are the stores every applicable scenario runs on, as subtests.
var backends = []backend{csvBackend, pgBackend}

// runOn runs the scenario's jobs once on a fresh store of kind be: the CSV
// journal, or a new Postgres schema with one runner on a Queue and the
// store's shared Buckets as limiters.
func (b *bundle) runOn(t *testing.T, be backend, edit func(*runner.Config)) (runner.Summary, []store.Job) {
	t.Helper()
	if be == csvBackend {
		return b.run(t, edit)
	}
	pg := b.importPG(t, "faults")
	sum := b.runPG(t, pg, "runner-1", 30*time.Second, edit)
	return sum, pg.jobs(t)
}

// pgRun is a run of the scenario's jobs in a fresh Postgres schema.
type pgRun struct {
	st  *postgres.Store
	url string
	run string
}

// importPG creates a schema, opens a store on it and imports the jobs as run.
func (b *bundle) importPG(t *testing.T, run string) *pgRun {
	t.Helper()
	url := postgrestest.NewSchema(t)
	pg := &pgRun{st: openPG(t, url), url: url, run: run}
	if _, err := pg.st.Import(t.Context(), run, b.jobs, time.Time{}); err != nil {
		t.Fatal(err)
	}
	return pg
}

// openPG opens a store (its own pool, as another process would have) that
// closes when the test ends.
func openPG(t *testing.T, url string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// jobs returns every job of the run.
func (pg *pgRun) jobs(t *testing.T) []store.Job {
	t.Helper()
	jobs, err := pg.st.Jobs(context.Background(), pg.run)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// configPG returns the runner configuration for owner on st: a Queue with
// the lease ttl, and the limits the database shares for the account.
func (b *bundle) configPG(t *testing.T, st *postgres.Store, run, owner string, ttl time.Duration, edit func(*runner.Config)) runner.Config {
	cfg := b.config(t, st.Queue(run, owner, ttl))
	cfg.Shared = st.Limits("test-account")
	if edit != nil {
		edit(&cfg)
	}
	return cfg
}

// runPG runs one runner named owner over pg until it finishes.
func (b *bundle) runPG(t *testing.T, pg *pgRun, owner string, ttl time.Duration, edit func(*runner.Config)) runner.Summary {
	t.Helper()
	return b.runWith(t, b.configPG(t, pg.st, pg.run, owner, ttl, edit))
}

// baseline makes verify judge only the resets applied from now on: call it
// between two runs over the same emulator.
func (b *bundle) baseline() {
	b.before = b.emu.Stats().Resets
}

// applied returns the RequestIds of the resets the emulator applied to id
// since the baseline.
func (b *bundle) applied(stats emulator.Stats, id string) []string {
	return stats.Resets[id][len(b.before[id]):]
}

// verdict says which outcomes a scenario allows.
type verdict struct {
	allowUnknown bool
	// unknown lists the instances that may end unknown, each with the
	// reason the truth is unknowable for it.
	unknown map[string]string
}

// verify checks every job against the emulator's ledger, the truth: one
// record and exactly one terminal outcome per input instance, at most one
// applied reset, outcome and RequestId as the ledger has them, no call over
// any action's rate limit, and no SecretKey in the logs or the results
// file. It removes the emulator's injected faults first, so that its own
// DescribeInstances sees the truth.
func (b *bundle) verify(t *testing.T, jobs []store.Job, v verdict) store.Totals {
	t.Helper()
	if err := b.emu.SetFaults(nil); err != nil {
		t.Fatal(err)
	}
	stats := b.emu.Stats()
	byRegion := map[string][]string{}
	for _, j := range jobs {
		byRegion[j.Region] = append(byRegion[j.Region], j.InstanceID)
	}
	now := map[string]lighthouse.Instance{}
	for region, ids := range byRegion {
		insts, err := runnertest.DescribeInstances(context.Background(), b.direct, region, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range insts {
			now[in.InstanceID] = in
		}
	}
	ledger := runnertest.Ledger{Input: jobIDs(b.jobs), Applied: map[string][]string{}, Now: now}
	for id := range stats.Resets {
		ledger.Applied[id] = b.applied(stats, id)
	}
	totals := runnertest.Check(t, jobs, ledger, runnertest.Allow{Failed: true, Skipped: true, Unknown: v.unknown, AnyUnknown: v.allowUnknown})
	runnertest.CheckRates(t, stats.Actions, b.limits)
	b.checkSecrets(t, jobs)
	return totals
}

// checkSecrets fails the test if the SecretKey appears in what the runners
// logged or in the results file of jobs.
func (b *bundle) checkSecrets(t *testing.T, jobs []store.Job) {
	t.Helper()
	var results bytes.Buffer
	if err := csvstore.WriteResultsSeq(&results, slices.Values(jobs), false); err != nil {
		t.Errorf("WriteResults() error = %v", err)
	}
	for what, text := range map[string]string{"the logs": b.logs.String(), "the results file": results.String()} {
		if strings.Contains(text, testSecretKey) {
			t.Errorf("%s contain the SecretKey", what)
		}
	}
}

// syncBuffer is a bytes.Buffer that several goroutines may write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// openCSV opens a CSV store for a run over jobs as the command does: the
// jobs written to a jobs CSV beside statePath, read back and opened.
func openCSV(tb testing.TB, statePath string, jobs []store.Job) *csvstore.Store {
	tb.Helper()
	path := statePath + ".jobs.csv"
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := csvstore.WriteJobs(f, "", jobs); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	in, err := csvstore.ReadInput(path, csvstore.ReadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := csvstore.OpenInput(statePath, in)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}
