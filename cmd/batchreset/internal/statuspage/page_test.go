package statuspage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

// memRun is a run held in memory, for what the command's end-to-end tests
// cannot set up at will: a run caught in a given state.
type memRun struct {
	info  RunInfo
	jobs  []store.Job
	reads *int
	mu    sync.Mutex
	set   []store.Control
}

func (m *memRun) PageName() string                          { return "mem:" + m.info.Name }
func (m *memRun) PageInfo(context.Context) (RunInfo, error) { return m.info, nil }
func (m *memRun) EachJob(_ context.Context, fn func(*store.Job) error) error {
	if m.reads != nil {
		*m.reads++
	}
	for i := range m.jobs {
		j := m.jobs[i]
		if err := fn(&j); err != nil {
			return err
		}
	}
	return nil
}
func (m *memRun) SetControl(_ context.Context, c store.Control) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set = append(m.set, c)
	return nil
}

var t0 = time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)

// wavedRun is a run of 10 jobs in waves of 2 (canary), then 3 repeating:
// the canary done, wave 2 sent with one failure, one unhealthy and one in
// flight, the rest pending. Jobs are listed out of the order they were sent.
func wavedRun() *memRun {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	jobs := []store.Job{
		{ID: 1, InstanceID: "lhins-0000000a", Status: store.StatusPending},
		{ID: 2, InstanceID: "lhins-0000000b", Status: store.StatusSucceeded, IntentAt: at(1), SubmittedAt: at(1)},
		{ID: 3, InstanceID: "lhins-0000000c", Status: store.StatusFailed, ErrorCode: "OperationFailed", IntentAt: at(10), SubmittedAt: at(10)},
		{ID: 4, InstanceID: "lhins-0000000d", Status: store.StatusSucceeded, IntentAt: at(2), SubmittedAt: at(2)},
		{ID: 5, InstanceID: "lhins-0000000e", Status: store.StatusUnhealthy, ErrorCode: "HealthCheckFailed", IntentAt: at(11), SubmittedAt: at(11)},
		{ID: 6, InstanceID: "lhins-0000000f", Status: store.StatusSubmitted, IntentAt: at(12), SubmittedAt: at(12)},
	}
	for i := range 4 {
		jobs = append(jobs, store.Job{ID: int64(7 + i), InstanceID: "lhins-1000000" + string(rune('a'+i)), Status: store.StatusPending})
	}
	return &memRun{info: RunInfo{Name: "night", Mode: "csv", StartedAt: t0, Runners: -1}, jobs: jobs}
}

func wavedLive() *Live {
	return &Live{RateLimit: 2, Sent: 6, Wave: 2, Failures: 2, ResetP50: 10 * time.Second, PauseBetweenWaves: time.Minute,
		Rollout: store.RolloutPlan{Canary: 2, Waves: []int{3}, MaxFailures: 3}}
}

// TestView: the view of a waved run caught mid-way counts unhealthy among
// failures against the run's own budget, lays out its waves as the runner
// admits them, lists failures first and puts unsent jobs in no wave.
func TestView(t *testing.T) {
	t.Parallel()
	run, live := wavedRun(), wavedLive()
	p, err := New(Config{Run: run, Live: func() *Live { return live }})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(20 * time.Second)
	v, err := p.view(t.Context(), run, Filter{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status.Failures != 2 || v.Status.Done != 4 || v.Status.InFlight != 1 || v.Status.Jobs != 10 {
		t.Errorf("status = %+v, want 2 failures (failed and unhealthy), 4 done, 1 in flight, 10 jobs", v.Status)
	}
	if v.Plan == nil || v.Plan.Max != 3 || v.Plan.Failures != 2 || v.Plan.Over {
		t.Errorf("budget = %+v, want the run's 3, 2 failures, not exceeded", v.Plan)
	}
	type wave struct {
		n, size, sent, failures int
		state                   string
	}
	var got []wave
	for _, w := range v.Waves {
		got = append(got, wave{w.N, w.Size, w.Sent, w.Failures, w.State})
	}
	want := []wave{{1, 2, 2, 0, "done"}, {2, 3, 3, 2, "current"}, {3, 3, 0, 0, "next"}, {4, 2, 0, 0, "later"}}
	if !slices.Equal(got, want) {
		t.Errorf("waves = %+v, want %+v", got, want)
	}
	var rows []string
	for _, r := range v.Rows {
		rows = append(rows, r.Status)
		if r.Status == string(store.StatusPending) && r.Wave != 0 {
			t.Errorf("pending %s in wave %d, want none", r.InstanceID, r.Wave)
		}
	}
	if !slices.Equal(rows[:2], []string{"failed", "unhealthy"}) {
		t.Errorf("rows = %v, want the failures first", rows)
	}
	if v.Status.State != "waiting" || !strings.Contains(v.Status.WaitsFor, "wave 2") {
		t.Errorf("state = %q (%q), want waiting for wave 2's resets in flight", v.Status.State, v.Status.WaitsFor)
	}
	// 5 pending at 2/s, then the end of wave 2, waves 3 and 4 drained and
	// rested: 2.5 + 10 + 2*(10+60).
	if v.ETA == nil || v.ETA.Left != 153 {
		t.Errorf("ETA = %+v, want 153s left", v.ETA)
	}
	if len(v.Codes) != 2 {
		t.Errorf("codes = %v, want OperationFailed and HealthCheckFailed", v.Codes)
	}

	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "page.html", pageData{View: v, Base: "/"}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"[2 3]", "wave 0", "running · paused", "<nil>"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page shows %q", bad)
		}
	}
	for _, good := range []string{`id="state">waiting<`, "not sent", `<svg class="spark"`, "budget 3"} {
		if !strings.Contains(page, good) {
			t.Errorf("the page lacks %q", good)
		}
	}
}

// TestState: the run's state in one word, with what it waits for, and no
// estimate where there is no honest one.
func TestState(t *testing.T) {
	t.Parallel()
	now := t0.Add(20 * time.Second)
	for _, tt := range []struct {
		name        string
		edit        func(*memRun, *Live)
		live        bool
		state, wait string
		eta         bool
	}{
		{"Paused", func(_ *memRun, l *Live) { l.Paused = true }, true, "paused", "resume", false},
		{"BetweenWaves", func(m *memRun, l *Live) {
			m.jobs[5].Status = store.StatusSucceeded
			l.NextWave = now.Add(30 * time.Second)
		}, true, "waiting", "wave 3, which opens at 01:00:50Z", true},
		{"Stopping", func(_ *memRun, l *Live) { l.Stopped = "failure budget exceeded" }, true, "stopping", "failure budget exceeded", false},
		{"Running", func(m *memRun, l *Live) {
			m.jobs[5].Status = store.StatusSucceeded
			m.jobs[0].Status, m.jobs[0].IntentAt = store.StatusSubmitting, t0.Add(13*time.Second)
			l.Wave = 3
		}, true, "running", "", true},
		{"Finished", func(m *memRun, _ *Live) {
			for i := range m.jobs {
				if !m.jobs[i].Status.Terminal() {
					m.jobs[i].Status = store.StatusSkipped
				}
			}
		}, true, "finished", "", false},
		{"NoDurationYet", func(_ *memRun, l *Live) { l.ResetP50 = 0 }, true, "waiting", "", false},
		{"IdleWithoutRunner", func(m *memRun, _ *Live) { m.info.Runners = 0 }, false, "idle", "none holds its jobs", false},
		{"NotStarted", func(m *memRun, _ *Live) { m.info.StartedAt = time.Time{}; m.info.Control = store.ControlPaused }, false, "not started", "paused", false},
		{"PausedInStore", func(m *memRun, _ *Live) { m.info.Control = store.ControlPaused; m.info.Runners = 2 }, false, "paused", "resume", false},
		{"AwaitingApproval", func(m *memRun, l *Live) {
			l.Paused, m.info.Control, m.info.PauseReason = true, store.ControlPaused, "approval of wave 2"
		}, true, "paused", "approval of wave 2 (resume or cancel)", false},
		{"StoppedInStore", func(m *memRun, _ *Live) { m.info.Stopped = "canary failed"; m.jobs[5].Status = store.StatusFailed }, false, "stopped", "canary failed", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run, live := wavedRun(), wavedLive()
			tt.edit(run, live)
			cfg := Config{Run: run}
			if tt.live {
				cfg.Live = func() *Live { return live }
			} else {
				run.info.Rollout = &live.Rollout
			}
			p, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			v, err := p.view(t.Context(), run, Filter{}, now)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status.State != tt.state || !strings.Contains(v.Status.WaitsFor, tt.wait) {
				t.Errorf("state = %q (%q), want %q (%q)", v.Status.State, v.Status.WaitsFor, tt.state, tt.wait)
			}
			if (v.ETA != nil) != tt.eta {
				t.Errorf("ETA = %+v, want one: %v", v.ETA, tt.eta)
			}
		})
	}
}

// TestSentWaves: a job's wave is its place in the order of first intents,
// not in the input (runs go region by region); jobs not sent are in none.
func TestSentWaves(t *testing.T) {
	t.Parallel()
	at := func(s int) time.Time { return time.Date(2026, 12, 1, 1, 0, s, 0, time.UTC) }
	sent := []sentJob{{at(5), 0}, {at(1), 1}, {at(3), 3}, {at(2), 4}, {at(9), 5}}
	if got, want := sentWaves(store.RolloutPlan{Waves: []int{1, 2}}, sent, 6), []int32{3, 1, 0, 2, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("sentWaves(1, 2) = %v, want %v", got, want)
	}
}

// TestViewCache: pages refreshing at once read the run's jobs once; a
// control, or the view's age, makes it read again.
func TestViewCache(t *testing.T) {
	t.Parallel()
	var reads int
	run := &memRun{info: RunInfo{Name: "r"}, jobs: []store.Job{{InstanceID: "lhins-00000001", Status: store.StatusSucceeded}}, reads: &reads}
	p, err := New(Config{Run: run})
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	for range 5 {
		if v, err := p.cachedView(t.Context(), run, Filter{}, now); err != nil || v.Matched != 1 {
			t.Fatalf("cachedView() = %+v, %v", v, err)
		}
	}
	if reads != 1 {
		t.Errorf("5 views read the jobs %d times, want 1", reads)
	}
	if _, err := p.cachedView(t.Context(), run, Filter{Status: "failed"}, now); err != nil || reads != 2 {
		t.Errorf("another filter: %d reads, %v; want 2", reads, err)
	}
	p.forget(run)
	if _, err := p.cachedView(t.Context(), run, Filter{}, now); err != nil || reads != 3 {
		t.Errorf("after a control: %d reads, %v; want 3", reads, err)
	}
	if _, err := p.cachedView(t.Context(), run, Filter{}, now.Add(2*viewMaxAge)); err != nil || reads != 4 {
		t.Errorf("an old view: %d reads, %v; want 4", reads, err)
	}
}

// TestExposed: controls need credentials; a page bound beyond loopback
// warns in the log and on the page, and still answers only to its own
// names.
func TestExposed(t *testing.T) {
	t.Parallel()
	run := wavedRun()
	if _, err := New(Config{Run: run, Controls: true, HowToControl: "give a password"}); err == nil || !strings.Contains(err.Error(), "give a password") {
		t.Errorf("New(controls, no credentials) = %v, want an error saying how", err)
	}
	var log syncBuffer
	p, err := New(Config{Run: run, Controls: true, Auth: NewCredentials("op", "pw-secret-1"),
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	u, stop, err := p.Serve("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "beyond loopback") {
		t.Errorf("no warning logged for a page bound beyond loopback:\n%s", log.String())
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="exposed"`) {
		t.Errorf("GET %s = HTTP %d, want 200 with the warning", u, resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Host = "attacker.example"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET with Host attacker.example = HTTP %d, want 421", resp.StatusCode)
	}
	if strings.Contains(log.String(), "pw-secret-1") || strings.Contains(fmt.Sprintf("%+v %#v", p.cfg, p.cfg), "pw-secret-1") {
		t.Errorf("credentials printed")
	}
}

// TestReadCredentials: from a file of one USER:PASSWORD line, or from the
// environment; half of a pair is an error.
func TestReadCredentials(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(path, []byte("op:pa:ss\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tt := range []struct {
		name    string
		file    string
		env     map[string]string
		want    Credentials
		wantErr bool
	}{
		{"File", path, nil, NewCredentials("op", "pa:ss"), false},
		{"Env", "", map[string]string{"U": "op", "P": "pw"}, NewCredentials("op", "pw"), false},
		{"None", "", nil, Credentials{}, false},
		{"HalfEnv", "", map[string]string{"P": "pw"}, Credentials{}, true},
		{"NoFile", filepath.Join(t.TempDir(), "none"), nil, Credentials{}, true},
	} {
		got, err := ReadCredentials(tt.file, env(tt.env), "U", "P")
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: ReadCredentials() = %v, %v; want %v, error %v", tt.name, got == tt.want, err, tt.want == got, tt.wantErr)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
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
