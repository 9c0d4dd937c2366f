package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/batchreset/batchreset/hoststate"
	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the output seen")

// bin is the batchreset binary that TestMain builds for the multi-process
// tests; "" under -short, which skips them.
var bin string

// Credentials of the test emulators. The key doubles as the secret that no
// output may ever contain.
const (
	testSecretID  = "AKIDcmdtest0123456789"
	testSecretKey = "cmdtest-S3cr3tK3y-5f1e9a7c"
)

// resultsHeader is the header of the results CSV, as the README documents
// it under "CSV formats".
var resultsHeader = func() string {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		panic(err)
	}
	m := regexp.MustCompile("(?m)^`(instance_id,[a-z_,]+)`$").FindSubmatch(b)
	if m == nil {
		panic("README.md documents no results header")
	}
	return string(m[1])
}()

// envScrubbed are variables a test must never inherit: with them a test
// could reach a real account (a reset formats disks) or a real database.
var envScrubbed = []string{
	"TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN",
	"TENCENTCLOUD_REGION", "TENCENTCLOUD_CREDENTIALS_FILE", "DATABASE_URL", "BATCHRESET_FAILPOINT",
	"BATCHRESET_ENDPOINT", "BATCHRESET_SITE",
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	for _, k := range envScrubbed {
		os.Unsetenv(k)
	}
	scratch, err := os.MkdirTemp("", "batchreset-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(scratch)
	// Nor ~/.tencentcloud/credentials: the SDK reads this profile file
	// instead, and it does not exist.
	os.Setenv("TENCENTCLOUD_CREDENTIALS_FILE", filepath.Join(scratch, "no-credentials"))
	// The host's shared state (rate limits, the CSV runs' registry) of
	// every command and subprocess of the package, which inherit it: the
	// tests share it with each other, never with the host's real runs.
	os.Setenv(hoststate.EnvDir, filepath.Join(scratch, "state"))

	if b := os.Getenv("BATCHRESET_TEST_BINARY"); b != "" && !testing.Short() {
		// A binary built elsewhere: a release candidate, or a mutant that
		// the multi-process tests should catch.
		bin = b
	} else if !testing.Short() {
		bin = filepath.Join(scratch, "batchreset")
		// go test puts its own GOROOT/bin first on PATH.
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build batchreset for the multi-process tests: %v\n", err)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		// Every run must have stopped what it started: emulators, metrics
		// servers, signal watchers, pools.
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			return 1
		}
	}
	return code
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// needBinary skips a test of subprocesses under -short.
func needBinary(t *testing.T) {
	t.Helper()
	if bin == "" {
		t.Skip("skipping multi-process test in -short mode")
	}
}

// commandTimeout bounds one in-process command.
const commandTimeout = 2 * time.Minute

var errCommandTimeout = errors.New("command timed out")

// result is what one in-process command did.
type result struct {
	code           int
	stdout, stderr string
}

// batchreset runs the command line args in-process, as main does, and
// returns its exit code and output.
func batchreset(t *testing.T, args ...string) result {
	t.Helper()
	return batchresetIn(t, strings.NewReader(""), args...)
}

func batchresetIn(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	var stdout, stderr syncBuffer
	// No command of these tests takes long: a hang fails the test with the
	// command's logs rather than the whole binary at its timeout.
	ctx, cancel := context.WithTimeoutCause(t.Context(), commandTimeout, errCommandTimeout)
	defer cancel()
	code := run(ctx, args, stdin, &stdout, &stderr)
	res := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	if context.Cause(ctx) == errCommandTimeout {
		t.Fatalf("batchreset %s: still running after %s; cancelled it (exit %d)\nstderr:\n%s", redact(strings.Join(args, " ")), commandTimeout, code, indent(tail(res.stderr, 150)))
	}
	if testing.Verbose() {
		t.Logf("batchreset %s → %d\nstdout:\n%s\nstderr:\n%s", redact(strings.Join(args, " ")), code, indent(res.stdout), indent(res.stderr))
	}
	return res
}

// wantCode fails the test unless res exited with want.
func (res result) wantCode(t *testing.T, want int, args ...any) {
	t.Helper()
	if res.code != want {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", fmt.Sprint(args...), res.code, want, indent(res.stdout), indent(tail(res.stderr, 60)))
	}
}

// redact hides the test's secrets in what it logs: secrets never reach
// test output either.
func redact(s string) string {
	u := regexp.MustCompile(`(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@`)
	s = u.ReplaceAllString(s, "${1}xxxxx@")
	// Webhook URLs show scheme and host only, as the notifier shows them.
	s = regexp.MustCompile(`(?i)\b(https?://)(?:[^@/\s]*@)?([^/?#\s]+)[/?#]\S*`).ReplaceAllString(s, "${1}${2}/…")
	return strings.ReplaceAll(s, testSecretKey, "[REDACTED]")
}

func indent(s string) string {
	return "\t" + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n\t")
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[… %d lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a command's
// goroutines and a test that reads while the command runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fleetAccounts numbers the fleets' accounts (see newFleet).
var fleetAccounts atomic.Int64

// fleet is an emulated account served over real HTTP, and a jobs file
// naming its instances.
type fleet struct {
	emu       *emulator.Server
	url       string
	instances []emulator.Instance
	jobsPath  string
	limit     int     // ResetInstance calls per second the emulator accepts
	uin       string  // the emulated account's root UIN, its own per fleet
	rate      float64 // --rate for runners against it (see fleetOptions.rate)
}

type fleetOptions struct {
	n     int
	limit int // ResetInstance per second; default 50
	// rate is the --rate runners use; default 90% of limit. Not the limit
	// itself: the runner takes its rate-limit slot before it commits the
	// intent, and the commit's latency (a new pool connection, waits behind
	// outcome writes, fsync) can vary by more than the limiter's 20ms guard;
	// on a loaded 2-core machine two runners at rate == limit made the
	// emulator see limit+1 calls in one second in 3 runs of 4 (none of 9
	// when idle). BATCHRESET_STRICT_RATE=1 runs at the limit.
	rate    float64
	opts    emulator.FleetOptions // categories of instances
	edit    func(*emulator.Config)
	handler func(http.Handler) http.Handler // wraps the emulator
}

// newFleet serves an emulator of o.n instances (less o.opts.Missing) whose
// resets take 100–300ms and always succeed, and writes a jobs file with
// every instance, missing ones included, reset to the fleet's target image.
func newFleet(t *testing.T, o fleetOptions) *fleet {
	t.Helper()
	if o.limit == 0 {
		o.limit = 50
	}
	if o.rate == 0 {
		o.rate = float64(o.limit) * 0.9
		if os.Getenv("BATCHRESET_STRICT_RATE") != "" {
			o.rate = float64(o.limit)
		}
	}
	if o.opts.Seed == 0 {
		o.opts.Seed = 42
	}
	all, _ := emulator.GenerateFleet(o.n, emulator.FleetOptions{Seed: o.opts.Seed, Regions: o.opts.Regions})
	instances, blueprints := emulator.GenerateFleet(o.n, o.opts)
	// Each fleet is an account of its own: its identity, and so its host
	// state (limits, holds), is its own, however the tests' emulators
	// reuse ports and instance IDs.
	uin := strconv.FormatInt(300000000000+fleetAccounts.Add(1), 10)
	cfg := emulator.Config{
		UIN:           uin,
		Credentials:   map[string]string{testSecretID: testSecretKey},
		Instances:     instances,
		Blueprints:    blueprints,
		RateLimits:    map[string]int{lighthouse.ActionResetInstance: o.limit},
		ResetDuration: emulator.Duration{Min: 100 * time.Millisecond, Max: 300 * time.Millisecond},
		Seed:          7,
		Logger:        slog.New(slog.DiscardHandler),
	}
	if o.edit != nil {
		o.edit(&cfg)
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = emu
	if o.handler != nil {
		h = o.handler(emu)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		emu.Close() // ends latency faults first, so Close does not wait for them
		ts.Close()
	})

	var b strings.Builder
	b.WriteString("instance_id,blueprint_id,region\n")
	for _, in := range all {
		fmt.Fprintf(&b, "%s,%s,%s\n", in.ID, blueprints[0].ID, in.Region)
	}
	path := filepath.Join(t.TempDir(), "jobs.csv")
	writeFile(t, path, b.String())
	return &fleet{emu: emu, url: ts.URL, instances: instances, jobsPath: path, limit: o.limit, rate: o.rate, uin: cfg.UIN}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// resets returns how many resets the emulator has applied in all.
func (f *fleet) resets() int {
	n := 0
	for _, ids := range f.emu.Stats().Resets {
		n += len(ids)
	}
	return n
}

// setCredentials puts the test emulator's credentials in the environment,
// for in-process commands that talk to it. Tests calling it cannot be
// parallel.
func setCredentials(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", testSecretID)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", testSecretKey)
}

// verdict says what a finished run may contain besides successes.
type verdict struct {
	allowOther bool // failed, skipped or unknown jobs are fine (each checked against the ledger)
}

// checkOutcomes checks jobs, the final records of a run over f, against
// what the emulator saw: one record per instance of the jobs file, each
// terminal; no instance reset twice; a job that succeeded, or failed in the
// cloud, names the RequestId that the emulator applied; a job whose
// instance was never reset claims no reset. It returns the totals.
func checkOutcomes(t *testing.T, f *fleet, jobs []store.Job, v verdict) store.Totals {
	t.Helper()
	input, err := csvstore.ReadJobs(f.jobsPath, csvstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(input))
	for i, j := range input {
		ids[i] = j.InstanceID
	}
	allow := runnertest.Allow{}
	if v.allowOther {
		allow = runnertest.All
	}
	return runnertest.Check(t, jobs, runnertest.Ledger{Input: ids, Applied: f.emu.Stats().Resets}, allow)
}

// checkRate checks that the emulator never saw more ResetInstance calls in
// one second than its limit (runners ask for f.rate).
func checkRate(t *testing.T, f *fleet) {
	t.Helper()
	runnertest.CheckRates(t, f.emu.Stats().Actions, map[string]int{lighthouse.ActionResetInstance: f.limit})
}

func countJobs(t *testing.T, path string) int {
	t.Helper()
	jobs, err := csvstore.ReadJobs(path, csvstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs)
}

// readResults reads a results CSV, checking its header against the README.
func readResults(t *testing.T, path string) []store.Job {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read results: %v", err)
	}
	return parseResults(t, b)
}

func parseResults(t *testing.T, b []byte) []store.Job {
	t.Helper()
	header, _, _ := strings.Cut(string(b), "\n")
	// The account column comes last, when the jobs name accounts.
	if got := strings.TrimSuffix(header, "\r"); got != resultsHeader && got != resultsHeader+",account" {
		t.Errorf("results header = %q, want %q (and account, if the jobs name accounts)", got, resultsHeader)
	}
	jobs, err := decodeResults(b)
	if err != nil {
		t.Fatalf("parse results: %v", err)
	}
	// Cross-check with a plain CSV reader: one row per job, the same width.
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("results are not valid CSV: %v", err)
	}
	if len(rows)-1 != len(jobs) {
		t.Errorf("results: %d rows, decodeResults found %d jobs", len(rows)-1, len(jobs))
	}
	return jobs
}

// decodeResults decodes a results CSV by its columns' names: a job a row,
// with the row's line as its ID, and a value that the writer defused with a
// leading ' (a formula trigger follows it) as the cloud gave it.
func decodeResults(b []byte) ([]store.Job, error) {
	cr := csv.NewReader(bytes.NewReader(b))
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	col := map[string]int{}
	for i, name := range header {
		col[name] = i
	}
	var jobs []store.Job
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return jobs, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		get := func(name string) string {
			i, ok := col[name]
			if !ok {
				return ""
			}
			if v := rec[i]; len(v) >= 2 && v[0] == '\'' && strings.IndexByte("=+-@\t\r'", v[1]) >= 0 {
				return v[1:]
			}
			return rec[i]
		}
		j := store.Job{
			ID: int64(line), InstanceID: get("instance_id"), BlueprintID: get("blueprint_id"), Region: get("region"),
			Status: store.Status(get("status")), RequestID: get("request_id"), ErrorCode: get("error_code"),
			ErrorMessage: get("error_message"), PrevBlueprintID: get("previous_blueprint_id"), Account: get("account"),
			HookPhase: store.HookPhase(get("hook_phase")),
		}
		if !j.Status.Valid() || j.InstanceID == "" {
			return nil, fmt.Errorf("line %d: instance %q, status %q", line, j.InstanceID, j.Status)
		}
		if j.Attempts, err = strconv.Atoi(get("attempts")); err != nil {
			return nil, fmt.Errorf("line %d: attempts: %w", line, err)
		}
		for name, at := range map[string]*time.Time{"submitted_at": &j.SubmittedAt, "finished_at": &j.FinishedAt} {
			if v := get(name); v != "" {
				if *at, err = time.Parse(time.RFC3339, v); err != nil {
					return nil, fmt.Errorf("line %d: %s: %w", line, name, err)
				}
			}
		}
		jobs = append(jobs, j)
	}
}

// golden compares got with testdata/name.golden, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got); run go test -update if the change is intended:\n%s", path, diff)
	}
}

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
