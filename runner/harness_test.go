package runner_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// Test credentials; the emulator checks every signature.
const (
	testSecretID  = "AKIDrunnertest"
	testSecretKey = "runner-test-secret-key-0123456789"
)

// bundle is one scenario's real parts: an emulator over real HTTP, a
// signing client, and a crash-safe CSV store in a temporary directory.
type bundle struct {
	emu       *emulator.Server
	url       string
	client    *lighthouse.Client
	jobs      []store.Job
	statePath string
	limit     int // the emulator's ResetInstance limit
}

type scenario struct {
	n       int
	limit   int // ResetInstance per second at the emulator; default 10
	fleet   emulator.FleetOptions
	emu     func(*emulator.Config)
	timeout time.Duration // client call timeout; default 1s
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
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(emu)
	t.Cleanup(func() {
		ts.Close()
		emu.Close()
	})
	client, err := lighthouse.New(lighthouse.Config{
		Endpoint:   ts.URL,
		Credential: lighthouse.Credential{SecretID: testSecretID, SecretKey: testSecretKey},
		Timeout:    sc.timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{emu: emu, url: ts.URL, client: client, jobs: jobs, statePath: filepath.Join(t.TempDir(), "results.csv.state"), limit: sc.limit}
}

// config returns a runner configuration fit for fast tests.
func (b *bundle) config(t *testing.T, st runner.Store) runner.Config {
	return runner.Config{
		API:          b.client,
		Store:        st,
		Rate:         float64(b.limit),
		Workers:      8,
		PollInterval: 100 * time.Millisecond,
		ResetTimeout: 10 * time.Second,
		SettleTime:   1500 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// open opens (or reopens, to resume) the scenario's CSV store.
func (b *bundle) open(t *testing.T) *csvstore.Store {
	t.Helper()
	st, err := csvstore.Open(b.statePath, b.jobs, "test-run")
	if err != nil {
		t.Fatal(err)
	}
	return st
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
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	return sum, st.Jobs()
}

// verdict says which outcomes a scenario allows.
type verdict struct {
	allowUnknown bool
}

// verify checks every job against the emulator's ledger, the truth: exactly
// one terminal outcome, at most one applied reset, outcome and RequestId as
// the ledger has them, and no call over the rate limit.
func (b *bundle) verify(t *testing.T, jobs []store.Job, v verdict) store.Totals {
	t.Helper()
	stats := b.emu.Stats()
	if len(jobs) != len(b.jobs) {
		t.Fatalf("got %d job records, want %d", len(jobs), len(b.jobs))
	}
	byRegion := map[string][]string{}
	for _, j := range jobs {
		byRegion[j.Region] = append(byRegion[j.Region], j.InstanceID)
	}
	now := map[string]lighthouse.Instance{}
	for region, ids := range byRegion {
		insts, err := b.client.DescribeInstances(context.Background(), region, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range insts {
			now[in.InstanceID] = in
		}
	}
	totals := store.Totals{}
	for _, j := range jobs {
		totals[j.Status]++
		applied := stats.Resets[j.InstanceID]
		in := now[j.InstanceID]
		where := fmt.Sprintf("%s (status %s, request %s, %s: %s)", j.InstanceID, j.Status, j.RequestID, j.ErrorCode, j.ErrorMessage)
		if len(applied) > 1 {
			t.Errorf("%s: reset applied %d times (%v), want at most once", where, len(applied), applied)
		}
		switch j.Status {
		case store.StatusSucceeded:
			if len(applied) != 1 || applied[0] != j.RequestID {
				t.Errorf("%s: succeeded but the emulator applied %v", where, applied)
			}
			if in.LatestOperationRequestID != j.RequestID || in.LatestOperationState != lighthouse.OperationSuccess {
				t.Errorf("%s: succeeded but the instance shows %s %s", where, in.LatestOperationRequestID, in.LatestOperationState)
			}
		case store.StatusFailed:
			if j.ErrorCode == "" {
				t.Errorf("%s: failed without an error code", where)
			}
			if j.ErrorCode == "OperationFailed" {
				if len(applied) != 1 || applied[0] != j.RequestID || in.LatestOperationState != lighthouse.OperationFailed {
					t.Errorf("%s: failed as an operation, but the emulator applied %v and shows %s", where, applied, in.LatestOperationState)
				}
			} else if len(applied) != 0 {
				t.Errorf("%s: failed as refused, but the emulator applied %v", where, applied)
			}
		case store.StatusSkipped:
			if len(applied) != 0 || j.ErrorMessage == "" {
				t.Errorf("%s: skipped, but applied %v / no reason", where, applied)
			}
		case store.StatusUnknown:
			if !v.allowUnknown {
				t.Errorf("%s: unknown, and this scenario leaves nothing unknowable", where)
			}
			if j.ErrorMessage == "" {
				t.Errorf("%s: unknown without an explanation", where)
			}
		default:
			t.Errorf("%s: not terminal", where)
		}
	}
	rs := stats.Actions[lighthouse.ActionResetInstance]
	if rs.OverLimit != 0 || rs.MaxPerSecond > b.limit {
		t.Errorf("ResetInstance: %d calls over the limit, at most %d in one second; want 0 and at most %d", rs.OverLimit, rs.MaxPerSecond, b.limit)
	}
	return totals
}
