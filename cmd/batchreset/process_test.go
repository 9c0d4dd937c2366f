package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// proc is a batchreset subprocess.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{} // closed when it has exited
}

// subprocessEnv is the environment of a subprocess: this process's, which
// TestMain scrubbed, the test emulators' credentials, and extra.
func subprocessEnv(extra ...string) []string {
	env := append(os.Environ(), "TENCENTCLOUD_SECRET_ID="+testSecretID, "TENCENTCLOUD_SECRET_KEY="+testSecretKey)
	return append(env, extra...)
}

// startProcess starts the binary with args. The process is killed, if still
// running, when the test ends; its output is logged if the test failed.
func startProcess(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	needBinary(t)
	p := &proc{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = subprocessEnv(env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s (pid %d, %s): %s\nstdout:\n%s\nstderr:\n%s", name, p.cmd.Process.Pid, redact(strings.Join(args, " ")),
				p.cmd.ProcessState, indent(p.stdout.String()), indent(tail(p.stderr.String(), 80)))
		}
	})
	return p
}

// wait waits for p to exit, killing it and failing the test after timeout
// (0: if it has not exited yet), and returns its exit code (-1 when a signal
// ended it).
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s still running after %s; killed it", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// wantExit waits for p and fails the test unless it exited with code.
func (p *proc) wantExit(t *testing.T, timeout time.Duration, code int) {
	t.Helper()
	if got := p.wait(t, timeout); got != code {
		t.Fatalf("%s: exit %d, want %d\nstderr:\n%s", p.name, got, code, indent(tail(p.stderr.String(), 40)))
	}
}

// wantKilled waits for p and fails the test unless SIGKILL ended it.
func (p *proc) wantKilled(t *testing.T, timeout time.Duration) {
	t.Helper()
	p.wait(t, timeout)
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s: %s, want killed by SIGKILL\nstderr:\n%s", p.name, p.cmd.ProcessState, indent(tail(p.stderr.String(), 40)))
	}
}

var callsLine = regexp.MustCompile(`API calls: (\d+) ResetInstance`)

// resetCalls returns the ResetInstance calls a finished run reports.
func (p *proc) resetCalls(t *testing.T) int {
	t.Helper()
	m := callsLine.FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("%s printed no summary:\n%s", p.name, tail(p.stdout.String(), 20))
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// bigLimit is the emulator's ResetInstance limit in the tests of hundreds
// of jobs: above the real 10/s so that they take seconds.
const bigLimit = 100

// pgRun are the flags of a fast Postgres-mode runner against f.
func pgRun(url, run string, f *fleet, extra ...string) []string {
	return append([]string{"run", "--database-url", url, "--run", run, "--endpoint", f.url, "--yes",
		"--rate", fmt.Sprint(f.rate), "--poll-interval", "200ms", "--lease-ttl", "2s",
		"--request-timeout", "1s", "--settle-time", "2s"}, extra...)
}

// pgFleet is a fleet whose jobs are imported into a fresh schema as run
// "fleet", with every ResetInstance checked for a committed intent.
type pgFleet struct {
	*fleet
	url    string
	intent *intentCheck
}

func newPGFleet(t *testing.T, o fleetOptions) *pgFleet {
	t.Helper()
	needBinary(t)
	url := postgrestest.NewSchema(t)
	t.Cleanup(func() {
		if t.Failed() {
			logUnfinished(t, url)
		}
	})
	ic := newIntentCheck(t, url)
	o.handler = ic.wrap
	f := newFleet(t, o)
	batchreset(t, "import", "--database-url", url, "--jobs", f.jobsPath, "--run", "fleet").wantCode(t, exitOK, "import")
	return &pgFleet{fleet: f, url: url, intent: ic}
}

// logUnfinished logs the jobs of url's run that are not terminal, with
// their leases, to diagnose a run that did not finish.
func logUnfinished(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Logf("log unfinished jobs: %v", err)
		return
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT id, instance_id, status, attempts, coalesce(lease_owner, ''), lease_token,
		coalesce(to_char(lease_expires_at - now(), 'SS.MS'), ''), coalesce(to_char(updated_at, 'HH24:MI:SS.MS'), ''), error_code, error_message
		FROM jobs WHERE status IN ('pending', 'submitting', 'submitted') ORDER BY id`)
	if err != nil {
		t.Logf("log unfinished jobs: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, token                                            int64
			attempts                                             int
			instance, status, owner, expires, updated, code, msg string
		)
		if err := rows.Scan(&id, &instance, &status, &attempts, &owner, &token, &expires, &updated, &code, &msg); err != nil {
			t.Logf("log unfinished jobs: %v", err)
			return
		}
		t.Logf("unfinished job %d %s: %s, attempts %d, lease %q token %d expires in %ss, updated %s, error %s %s", id, instance, status, attempts, owner, token, expires, updated, code, msg)
	}
}

// check checks the run's final records against the emulator's ledger, and
// that every ResetInstance found its intent committed.
func (f *pgFleet) check(t *testing.T, v verdict) ([]store.Job, store.Totals) {
	t.Helper()
	jobs := dbJobs(t, f.url, "fleet")
	totals := checkOutcomes(t, f.fleet, jobs, v)
	checkRate(t, f.fleet)
	f.intent.verify(t, f.fleet)
	return jobs, totals
}

// intentCheck sits in front of the emulator and, for every ResetInstance
// that arrives, reads the job from the database: the runner must have
// committed the job as submitting, with its intent time, before sending.
type intentCheck struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	checked int
	bad     []string
}

func newIntentCheck(t *testing.T, url string) *intentCheck {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &intentCheck{pool: pool}
}

func (ic *intentCheck) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-TC-Action") != lighthouse.ActionResetInstance {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var params struct{ InstanceId string }
		if err == nil {
			err = json.Unmarshal(body, &params)
		}
		var (
			status string
			intent bool
		)
		if err == nil {
			// Not the request's context: the runner may die (failpoints)
			// with its request on the wire, and the check still counts.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = ic.pool.QueryRow(ctx, `SELECT status, intent_at IS NOT NULL FROM jobs WHERE instance_id = $1`, params.InstanceId).Scan(&status, &intent)
			cancel()
		}
		ic.mu.Lock()
		ic.checked++
		if err != nil || status != string(store.StatusSubmitting) || !intent {
			ic.bad = append(ic.bad, fmt.Sprintf("ResetInstance %s arrived with the job %q, intent recorded %v (err %v)", params.InstanceId, status, intent, err))
		}
		ic.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (ic *intentCheck) verify(t *testing.T, f *fleet) {
	t.Helper()
	ic.mu.Lock()
	defer ic.mu.Unlock()
	for _, b := range ic.bad {
		t.Errorf("no committed intent: %s", b)
	}
	if calls := f.emu.Stats().Actions[lighthouse.ActionResetInstance].Calls; ic.checked != calls {
		t.Errorf("intent checked for %d ResetInstance calls, the emulator saw %d", ic.checked, calls)
	}
}

// TestRunnersShareRateLimit runs two and four runner processes on one run
// of 250 jobs per runner, one database and one emulator that accepts 100
// ResetInstance calls a second, each runner asked for the whole account's
// rate (90/s; see fleetOptions.rate): every job ends succeeded with the
// RequestId the emulator applied, no instance is reset twice, every runner
// does part of the work, and the emulator never sees more than 100 calls in
// a second (runners that did not share the rate would send 180 or 360).
// (Each runner claims up to two batches of 100 ahead, and the runners'
// starts are spaced by their GetCallerIdentity calls, which share that
// action's limit: with fewer jobs, the first runners could claim them all
// before the last one starts.)
func TestRunnersShareRateLimit(t *testing.T) {
	t.Parallel()
	for _, runners := range []int{2, 4} {
		t.Run(fmt.Sprintf("Runners%d", runners), func(t *testing.T) {
			t.Parallel()
			n := 250 * runners
			f := newPGFleet(t, fleetOptions{n: n, limit: bigLimit})
			var procs []*proc
			for i := range runners {
				procs = append(procs, startProcess(t, fmt.Sprintf("runner%d", i), nil, pgRun(f.url, "fleet", f.fleet)...))
			}
			total := 0
			for _, p := range procs {
				p.wantExit(t, 90*time.Second, exitOK)
				n := p.resetCalls(t)
				if n == 0 {
					t.Errorf("%s sent no reset: the runners did not share the work", p.name)
				}
				total += n
			}
			f.check(t, verdict{})
			if total != n {
				t.Errorf("the runners report %d ResetInstance calls in all, want %d (one per job)", total, n)
			}
		})
	}
}

// leasedBy counts the unfinished jobs of run leased by process pid.
func leasedBy(t *testing.T, url string, pid int) int {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	const q = `SELECT count(*) FROM jobs WHERE status IN ('pending', 'submitting', 'submitted') AND lease_owner LIKE '%:' || $1 || ':%'`
	if err := pool.QueryRow(t.Context(), q, strconv.Itoa(pid)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRunnerKilled kills one of two runners with SIGKILL in the middle of
// a run, holding leases and resets in flight: the other takes over its jobs
// once their leases expire and finishes the run, with no instance reset
// twice and every job succeeded with the RequestId the emulator applied.
func TestRunnerKilled(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 300, limit: bigLimit})
	a := startProcess(t, "runnerA", nil, pgRun(f.url, "fleet", f.fleet)...)
	b := startProcess(t, "runnerB", nil, pgRun(f.url, "fleet", f.fleet)...)
	eventually(t, 30*time.Second, "60 resets", func() bool { return f.resets() >= 60 })
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.wantKilled(t, 10*time.Second)
	if f.resets() >= 300 {
		t.Fatalf("the run had finished before the kill")
	}
	if n := leasedBy(t, f.url, a.cmd.Process.Pid); n == 0 {
		t.Fatalf("runner A held no unfinished jobs when killed: nothing to take over")
	} else {
		t.Logf("runner A died holding %d unfinished jobs", n)
	}
	b.wantExit(t, 90*time.Second, exitOK)
	f.check(t, verdict{})
}

// TestFailpoints kills a runner (SIGKILL, from inside) at each dangerous
// point of a reset: after claiming, after recording the intent, while the
// call is on the wire, after the call returned, before recording the
// outcome. Then the same command (CSV mode: resuming from the state file)
// or another runner (Postgres mode: once the lease expires) finishes the
// run: no instance is reset twice, every job succeeds with the RequestId
// the emulator applied.
func TestFailpoints(t *testing.T) {
	t.Parallel()
	points := []string{runner.FailpointAfterClaim, runner.FailpointAfterIntent, runner.FailpointDuringCall,
		runner.FailpointAfterCall, runner.FailpointBeforeOutcome}
	for _, mode := range []string{"CSV", "Postgres"} {
		for _, point := range points {
			t.Run(mode+"/"+point, func(t *testing.T) {
				t.Parallel()
				needBinary(t)
				o := fleetOptions{n: 20}
				if point == runner.FailpointDuringCall {
					// The answer comes 300ms after the reset is applied, and
					// the failpoint fires 20ms into the call: the process dies
					// with the request on the wire and the reset done.
					o.edit = func(c *emulator.Config) {
						c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultLatency, Latency: 300 * time.Millisecond}}
					}
				}
				armed := []string{"BATCHRESET_FAILPOINT=" + point}
				var (
					f    *fleet
					args []string
					pg   *pgFleet
					out  string
				)
				if mode == "CSV" {
					f = newFleet(t, o)
					out = filepath.Join(t.TempDir(), "results.csv")
					args = []string{"run", "--jobs", f.jobsPath, "--out", out, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
						"--poll-interval", "100ms", "--request-timeout", "500ms", "--settle-time", "1s"}
				} else {
					pg = newPGFleet(t, o)
					f = pg.fleet
					args = pgRun(pg.url, "fleet", f, "--poll-interval", "100ms", "--lease-ttl", "1s", "--request-timeout", "500ms", "--settle-time", "1s")
				}
				startProcess(t, "armed", armed, args...).wantKilled(t, 30*time.Second)
				sent := f.resets()
				switch point {
				case runner.FailpointAfterClaim:
					if sent != 0 {
						t.Errorf("%d resets applied before the process died after claiming, want 0", sent)
					}
				case runner.FailpointDuringCall, runner.FailpointAfterCall, runner.FailpointBeforeOutcome:
					if sent == 0 {
						t.Errorf("no reset applied before the process died at %s: the failpoint fired too early", point)
					}
				}
				f.emu.SetFaults(nil)
				rerun := startProcess(t, "rerun", nil, args...)
				rerun.wantExit(t, 60*time.Second, exitOK)
				if mode == "CSV" {
					checkOutcomes(t, f, readResults(t, out), verdict{})
					checkRate(t, f)
				} else {
					pg.check(t, verdict{})
				}
				// The job the process died on was settled the right way.
				want := map[string]string{
					runner.FailpointAfterIntent: "in-doubt reset proven not applied; sending again",
					runner.FailpointDuringCall:  "in-doubt reset found applied; adopting it",
					runner.FailpointAfterCall:   "in-doubt reset found applied; adopting it",
				}[point]
				if !strings.Contains(rerun.stderr.String(), want) {
					t.Errorf("the rerun never logged %q", want)
				}
			})
		}
	}
}

// TestPauseResumeCancel drives a run of two runner processes with pause,
// resume and cancel: a pause stops new ResetInstance calls within a bounded
// time and for as long as it lasts; resume restarts them; cancel skips every
// job not yet sent, with the reason, while resets already sent are tracked
// to their end.
func TestPauseResumeCancel(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 500, limit: bigLimit})
	const poll = 200 * time.Millisecond
	a := startProcess(t, "runnerA", nil, pgRun(f.url, "fleet", f.fleet)...)
	b := startProcess(t, "runnerB", nil, pgRun(f.url, "fleet", f.fleet)...)
	calls := func() int { return f.emu.Stats().Actions[lighthouse.ActionResetInstance].Calls }
	eventually(t, 30*time.Second, "40 resets", func() bool { return f.resets() >= 40 })

	batchreset(t, "pause", "--database-url", f.url, "--run", "fleet").wantCode(t, exitOK, "pause")
	paused := time.Now()
	atPause := calls()
	// Paused: no new call for five poll intervals in a row.
	last, lastChange := atPause, time.Now()
	eventually(t, 5*time.Second, "the runners to stop sending", func() bool {
		if n := calls(); n != last {
			last, lastChange = n, time.Now()
		}
		return time.Since(lastChange) >= 5*poll
	})
	stoppedAfter := lastChange.Sub(paused)
	t.Logf("paused: %d calls after the pause, the last %s after it", last-atPause, stoppedAfter.Round(time.Millisecond))
	// Runners read the control once a poll interval; calls that had already
	// reserved their rate-limit slot may still go: up to 8 workers each.
	// (Known runner issue: send checks a stop after the limiter wait, not a
	// pause.)
	maxAfter := int(f.rate*poll.Seconds()) + 2*8
	if last-atPause > maxAfter || stoppedAfter > time.Second {
		t.Errorf("%d calls in the %s after pause, want at most %d, within 1s", last-atPause, stoppedAfter, maxAfter)
	}
	res := batchreset(t, "status", "--database-url", f.url, "--run", "fleet")
	if !strings.HasPrefix(res.stdout, "run fleet (paused)") {
		t.Errorf("status while paused:\n%s", res.stdout)
	}

	batchreset(t, "resume", "--database-url", f.url, "--run", "fleet").wantCode(t, exitOK, "resume")
	eventually(t, 10*time.Second, "resets after resume", func() bool { return calls() >= last+40 })

	batchreset(t, "cancel", "--database-url", f.url, "--run", "fleet").wantCode(t, exitOK, "cancel")
	// Exit 1 for a runner that skipped jobs; one that happened to hold none
	// when the cancel came exits 0.
	codes := []int{a.wait(t, 60*time.Second), b.wait(t, 60*time.Second)}
	if slices.ContainsFunc(codes, func(c int) bool { return c != exitOK && c != exitFailures }) || !slices.Contains(codes, exitFailures) {
		t.Errorf("runners exited %v after cancel, want 1 (skipped jobs) or 0, at least one 1", codes)
	}

	jobs, totals := f.check(t, verdict{allowOther: true})
	ledger := f.emu.Stats().Resets
	for _, j := range jobs {
		switch {
		case len(ledger[j.InstanceID]) > 0 && j.Status != store.StatusSucceeded:
			t.Errorf("%s: reset sent, but the job ended %s (%s): a reset sent must be tracked to its end", j.InstanceID, j.Status, j.ErrorMessage)
		case len(ledger[j.InstanceID]) == 0 && (j.Status != store.StatusSkipped || !strings.Contains(j.ErrorMessage, "cancelled")):
			t.Errorf("%s: never sent, ended %s (%s), want skipped as cancelled", j.InstanceID, j.Status, j.ErrorMessage)
		}
	}
	if totals[store.StatusSkipped] < 100 || totals[store.StatusSucceeded] < 80 {
		t.Errorf("totals = %v, want the cancel to have skipped many jobs after many succeeded", totals)
	}
}

// TestDatabaseConnectionsKilled terminates the runners' database
// connections again and again while they work: they retry and complete the
// run; every ResetInstance is sent with its intent committed, no instance is
// reset twice, every job succeeds.
func TestDatabaseConnectionsKilled(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 300, limit: bigLimit})
	app := "batchreset-test-" + randomHex(4)
	url := f.url + "&application_name=" + app
	// Without preflight: a failed DescribeBlueprints rate-bucket wait makes
	// preflight skip the job as "blueprint not found" (known runner bug).
	args := pgRun(url, "fleet", f.fleet, "--no-preflight")
	a := startProcess(t, "runnerA", nil, args...)
	b := startProcess(t, "runnerB", nil, args...)

	pool, err := pgxpool.New(t.Context(), postgrestest.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	terminated := 0
	for round := 0; round < 8; round++ {
		eventually(t, 30*time.Second, "progress between terminations", func() bool { return f.resets() >= 25*(round+1) })
		var n int
		err := pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`, app).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		terminated += n
	}
	t.Logf("terminated %d runner connections in 8 rounds", terminated)
	if terminated < 8 {
		t.Errorf("terminated %d connections, want at least one per round", terminated)
	}
	if stranded := waitUnlessStranded(t, f, a, b); stranded != "" {
		a.cmd.Process.Kill()
		b.cmd.Process.Kill()
		t.Fatalf("runners stranded: %s", stranded)
	}
	a.wantExit(t, 0, exitOK)
	b.wantExit(t, 0, exitOK)
	f.check(t, verdict{})
}

// waitUnlessStranded waits up to a minute for the runners to exit, unless
// they are stuck, which it then describes: unstarted jobs pending under
// leases that are renewed but never worked (as when a runner whose Release
// failed kept renewing the job's lease), so that runners wait for each other
// for ever.
func waitUnlessStranded(t *testing.T, f *pgFleet, procs ...*proc) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	last, since := -1, time.Now()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		running := 0
		logs := ""
		for _, p := range procs {
			select {
			case <-p.done:
			default:
				running++
			}
			logs += p.stderr.String()
		}
		if running == 0 || time.Now().After(deadline) {
			return "" // wantExit reports a runner still running
		}
		if n := f.resets(); n != last {
			last, since = n, time.Now()
		}
		if time.Since(since) > 3*time.Second && strings.Contains(logs, `msg="release job"`) {
			if n, stranded := strandedJobs(t, f.url); n > 0 && n == stranded {
				return fmt.Sprintf("%d unstarted job(s) stranded under leases renewed by runners whose Release failed; the runners waited for each other", n)
			}
		}
		<-tick.C
	}
}

// strandedJobs counts the run's unfinished jobs, and those of them pending
// under a live lease.
func strandedJobs(t *testing.T, url string) (unfinished, stranded int) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const q = `SELECT count(*), count(*) FILTER (WHERE status = 'pending' AND lease_expires_at > now())
		FROM jobs WHERE status IN ('pending', 'submitting', 'submitted')`
	if err := pool.QueryRow(t.Context(), q).Scan(&unfinished, &stranded); err != nil {
		t.Fatal(err)
	}
	return unfinished, stranded
}

// TestDatabaseUnreachable puts a proxy between the runners and Postgres
// and cuts it, closing every connection and refusing new ones, for longer
// than the lease TTL in the middle of a run: the runners wait, retry, and
// complete the run once the database is back; every ResetInstance is sent
// with its intent committed, no instance is reset twice, every job succeeds.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 300, limit: bigLimit})
	u, err := neturl.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, u.Host)
	u.Host = px.addr()
	args := pgRun(u.String(), "fleet", f.fleet, "--no-preflight") // see TestDatabaseConnectionsKilled
	a := startProcess(t, "runnerA", nil, args...)
	b := startProcess(t, "runnerB", nil, args...)
	eventually(t, 30*time.Second, "100 resets", func() bool { return f.resets() >= 100 })
	px.cut()
	atCut := f.resets()
	time.Sleep(3 * time.Second) // longer than --lease-ttl: the outage is the test
	px.restore()
	// No intent can be recorded meanwhile, so no reset can be sent: only
	// calls whose intent was committed before the cut (8 workers each).
	if during := f.resets() - atCut; during > 2*8 {
		t.Errorf("%d resets applied while the database was unreachable, want at most 16", during)
	}
	t.Logf("database unreachable for 3s from %d resets, %d more meanwhile", atCut, f.resets()-atCut)
	if stranded := waitUnlessStranded(t, f, a, b); stranded != "" {
		a.cmd.Process.Kill()
		b.cmd.Process.Kill()
		t.Fatalf("runners stranded: %s", stranded)
	}
	a.wantExit(t, 0, exitOK)
	b.wantExit(t, 0, exitOK)
	f.check(t, verdict{})
}

// proxy forwards TCP connections to a target until cut.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *proxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.untrack(c, up)
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// cut closes every connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
