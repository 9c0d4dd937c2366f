package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// csvRun are the flags of a fast CSV-mode run against f.
func csvRun(f *fleet, jobs string, extra ...string) []string {
	return append([]string{"run", "--jobs", jobs, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--poll-interval", "200ms", "--request-timeout", "1s", "--settle-time", "2s"}, extra...)
}

// TestTwoCSVRunsAtOnce runs two copies of one jobs file, in two folders, at
// once against one account: the host's registry of instances in flight and
// the cloud's own record keep every instance to one reset; the other run's
// job for it ends skipped, and both runs end on their own.
func TestTwoCSVRunsAtOnce(t *testing.T) {
	t.Parallel()
	twoCSVRunsAtOnce(t, newFleet(t, fleetOptions{n: 40}), nil)
}

// TestTwoCSVRunsKeyAndRole is TestTwoCSVRunsAtOnce with the second run
// signed by a session of a role of the account, assumed with the same key:
// another principal, with limits of its own, but the same account, whose
// instances the first run holds.
func TestTwoCSVRunsKeyAndRole(t *testing.T) {
	t.Parallel()
	f := newFleet(t, fleetOptions{n: 40})
	twoCSVRunsAtOnce(t, f, []string{"--role-arn", "qcs::cam::uin/" + f.uin + ":roleName/emulator"})
}

// twoCSVRunsAtOnce runs two copies of f's jobs at once, the second with
// extra flags, and checks that each instance was reset once, by one run,
// the other run's job for it skipped.
func twoCSVRunsAtOnce(t *testing.T, f *fleet, second []string) {
	var copies [2]string
	for i := range copies {
		copies[i] = filepath.Join(t.TempDir(), "jobs.csv")
		b, err := os.ReadFile(f.jobsPath)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, copies[i], string(b))
	}
	procs := [2]*proc{startProcess(t, "first", nil, csvRun(f, copies[0])...), startProcess(t, "second", nil, csvRun(f, copies[1], second...)...)}
	for _, p := range procs {
		if code := p.wait(t, 90*time.Second); code != exitOK && code != exitFailures {
			t.Errorf("%s: exit %d, want 0 or 1", p.name, code)
		}
	}
	ledger := f.emu.Stats().Resets
	outcomes := map[string][]store.Job{}
	for _, c := range copies {
		for _, j := range readResults(t, filepath.Join(filepath.Dir(c), "results.csv")) {
			outcomes[j.InstanceID] = append(outcomes[j.InstanceID], j)
		}
	}
	for _, in := range f.instances {
		applied := ledger[in.ID]
		if len(applied) != 1 {
			t.Errorf("%s: reset %d times (%v), want exactly once", in.ID, len(applied), applied)
			continue
		}
		var succeeded, skipped int
		for _, j := range outcomes[in.ID] {
			switch {
			case j.Status == store.StatusSucceeded && j.RequestID == applied[0]:
				succeeded++
			case j.Status == store.StatusSkipped && (j.ErrorCode == runner.CodeHeldByRun || j.ErrorCode == runner.CodeResetByOther):
				skipped++
			default:
				t.Errorf("%s: %s %s %q", in.ID, j.Status, j.ErrorCode, j.ErrorMessage)
			}
		}
		if succeeded != 1 || skipped != 1 {
			t.Errorf("%s: succeeded in %d runs and skipped in %d, want one each", in.ID, succeeded, skipped)
		}
	}
}

// TestSuspendedRunner stops runner A with SIGSTOP (as Ctrl-Z, a paused VM
// or a sleeping laptop do) while it holds committed intents waiting for rate
// slots. Runner B takes the expired leases over, proves A's calls absent and
// resets the instances. Resumed, A sends nothing more and ends by itself;
// every instance is reset exactly once.
func TestSuspendedRunner(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 20, limit: 10, rate: 4})
	a := startProcess(t, "runnerA", nil, pgRun(f.url, "fleet", f.fleet)...)
	eventually(t, 30*time.Second, "runner A's first resets", func() bool { return f.resets() >= 2 })
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := f.emu.Stats().Actions["ResetInstance"].Calls
	b := startProcess(t, "runnerB", nil, pgRun(f.url, "fleet", f.fleet)...)
	if code := b.wait(t, 90*time.Second); code != exitOK {
		t.Errorf("runner B: exit %d, want 0", code)
	}
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := a.wait(t, 60*time.Second); code != exitOK && code != exitFailures {
		t.Errorf("runner A: exit %d after resuming, want 0 or 1", code)
	}
	jobs, totals := f.check(t, verdict{})
	if totals[store.StatusSucceeded] != len(jobs) {
		t.Errorf("totals = %v, want all succeeded", totals)
	}
	t.Logf("%d ResetInstance calls when A was stopped, %d in all", stoppedAt, f.emu.Stats().Actions["ResetInstance"].Calls)
}

// TestPausedBeforeStart: a run paused before any runner starts (as from
// cron) sends nothing; the runner says so and exits 4: the run waits for a
// person.
func TestPausedBeforeStart(t *testing.T) {
	t.Parallel()
	f := newPGFleet(t, fleetOptions{n: 30})
	batchreset(t, "pause", "--database-url", f.url, "--run", "fleet").wantCode(t, exitOK, "pause")
	p := startProcess(t, "runner", nil, pgRun(f.url, "fleet", f.fleet)...)
	p.wantExit(t, 30*time.Second, exitPaused)
	if calls := f.emu.Stats().Actions["ResetInstance"].Calls; calls != 0 {
		t.Errorf("%d ResetInstance calls for a paused run, want none", calls)
	}
	if out := p.stdout.String() + p.stderr.String(); !strings.Contains(out, "paused") {
		t.Errorf("the runner did not say the run is paused:\n%s", out)
	}
}

// TestDeadEndpoint: a run against a closed port ends by itself with exit 3
// and a message naming the endpoint, sends nothing, and leaves every job
// for a rerun.
func TestDeadEndpoint(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close()
	jobs := copyExample(t)
	p := startProcess(t, "run", nil, "run", "--jobs", jobs, "--endpoint", endpoint, "--yes", "--poll-interval", "200ms",
		"--request-timeout", "1s", "--settle-time", "2s", "--unreachable-timeout", "3s")
	p.wantExit(t, 60*time.Second, exitFatal)
	if !strings.Contains(p.stderr.String(), endpoint) {
		t.Errorf("stderr does not name the endpoint %s:\n%s", endpoint, tail(p.stderr.String(), 10))
	}
	input, err := csvstore.ReadInput(jobs, csvstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := csvstore.OpenInput(filepath.Join(filepath.Dir(jobs), "results.csv.state"), input)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, j := range st.Jobs() {
		if j.Status != store.StatusPending || j.Attempts != 0 {
			t.Errorf("%s: %s, %d attempts; want pending, untouched", j.InstanceID, j.Status, j.Attempts)
		}
	}
}

// TestEmptyJobsFile: a jobs file with a header and no rows is a usage error
// that names the file; nothing starts.
func TestEmptyJobsFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobs.csv")
	writeFile(t, path, "instance_id,blueprint_id,region\n")
	res := batchreset(t, "run", "--jobs", path, "--emulate", "--yes")
	res.wantCode(t, exitUsage, "run")
	if !strings.Contains(res.stderr, path) || !strings.Contains(res.stderr, "no jobs") {
		t.Errorf("stderr = %q, want it to name %s and say it has no jobs", res.stderr, path)
	}
}

// credentialRun runs plan against f with exactly env (and HOME set to a
// fresh directory) and returns its exit code and output.
func credentialRun(t *testing.T, f *fleet, home string, env []string, args ...string) (int, string) {
	t.Helper()
	needBinary(t)
	cmd := exec.Command(bin, append([]string{"plan", "--jobs", f.jobsPath, "--endpoint", f.url}, args...)...)
	cmd.Env = append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestCredentialChain: profiles from the SDK's file and tccli's, a named
// profile that does not exist, hostile files, and a role assumed through
// the emulator's STS. No file makes the command panic or print a secret.
func TestCredentialChain(t *testing.T) {
	t.Parallel()
	f := newFleet(t, fleetOptions{n: 5})
	sdkFile := fmt.Sprintf("[prod]\nsecret_id = %s\nsecret_key = %s\n", testSecretID, testSecretKey)
	tccli := fmt.Sprintf(`{"secretId": %q, "secretKey": %q, "region": "ap-guangzhou"}`, testSecretID, testSecretKey)
	cases := []struct {
		name  string
		files map[string]string // relative to HOME
		env   []string
		args  []string
		code  int
		want  string // in the output
	}{
		{name: "OnlyProdNoDefault", files: map[string]string{".tencentcloud/credentials": sdkFile}, code: exitFatal, want: "default"},
		{name: "ProfileFlag", files: map[string]string{".tencentcloud/credentials": sdkFile}, args: []string{"--profile", "prod"}, code: exitOK},
		{name: "ProfileEnv", files: map[string]string{".tencentcloud/credentials": sdkFile}, env: []string{"TENCENTCLOUD_PROFILE=prod"}, code: exitOK},
		{name: "ProfileMissing", files: map[string]string{".tencentcloud/credentials": sdkFile}, args: []string{"--profile", "nope"}, code: exitFatal, want: ".tccli/nope.credential"},
		{name: "Tccli", files: map[string]string{".tccli/ops.credential": tccli}, env: []string{"TCCLI_PROFILE=ops"}, code: exitOK},
		{name: "Hostile", files: map[string]string{".tencentcloud/credentials": "[default\nsecret_id\x00=\xff\n[[[]]]\nsecret_key = " + testSecretKey + "\n"}, code: exitFatal},
		{name: "Role", env: []string{"TENCENTCLOUD_SECRET_ID=" + testSecretID, "TENCENTCLOUD_SECRET_KEY=" + testSecretKey},
			args: []string{"--role-arn", "qcs::cam::uin/" + f.uin + ":roleName/emulator"}, code: exitOK},
		{name: "RoleUnknown", env: []string{"TENCENTCLOUD_SECRET_ID=" + testSecretID, "TENCENTCLOUD_SECRET_KEY=" + testSecretKey},
			args: []string{"--role-arn", "qcs::cam::uin/" + f.uin + ":roleName/nobody"}, code: exitFatal, want: "RoleNotFound"},
	}
	t.Run("Cases", func(t *testing.T) { // returns once every case has run
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				home := t.TempDir()
				for rel, content := range tc.files {
					path := filepath.Join(home, rel)
					if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
						t.Fatal(err)
					}
					writeFile(t, path, content)
				}
				code, out := credentialRun(t, f, home, tc.env, tc.args...)
				if code != tc.code || !strings.Contains(out, tc.want) {
					t.Errorf("exit %d, want %d; output (want %q in it):\n%s", code, tc.code, tc.want, tail(out, 15))
				}
				if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
					t.Errorf("the command panicked:\n%s", tail(out, 30))
				}
				if strings.Contains(out, testSecretKey) {
					t.Error("the output contains the SecretKey")
				}
			})
		}
	})
	if n := len(f.emu.Stats().AssumedRoles); n == 0 {
		t.Error("no role was assumed through the emulator's STS")
	}
}
