package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// Key pairs of the login tests' emulated account, in the fleet's region.
const (
	keyA       = "lhkp-aaaaaaa1"
	keyB       = "lhkp-bbbbbbb2"
	keyMissing = "lhkp-nothere9"
)

// testPassword is the run-wide password of the login tests: no output may
// ever contain it.
const testPassword = "Pa55-w0rd-n3ver-sh0wn"

// healthArgs are the flags of a fast run against a test fleet.
func healthArgs(f *fleet, out string) []string {
	return []string{"run", "--jobs", f.jobsPath, "--out", out, "--yes", "--endpoint", f.url, "--rate", fmt.Sprint(f.rate),
		"--poll-interval", "100ms", "--settle-time", "2s", "--request-timeout", "1s", "--reset-timeout", "20s"}
}

// writeJobsWithKeys rewrites f's jobs file with a key_ids column: keys[i]
// for the i-th instance, "" for the others.
func writeJobsWithKeys(t *testing.T, f *fleet, keys map[int]string) {
	t.Helper()
	jobs := mustReadJobs(t, f.jobsPath)
	var b strings.Builder
	b.WriteString("instance_id,blueprint_id,region,key_ids\n")
	for i, j := range jobs {
		fmt.Fprintf(&b, "%s,%s,%s,%s\n", j.InstanceID, j.BlueprintID, j.Region, keys[i])
	}
	writeFile(t, f.jobsPath, b.String())
}

// describe returns the fleet's instances as DescribeInstances shows them.
func describe(t *testing.T, f *fleet, jobs []store.Job) map[string]lighthouse.Instance {
	t.Helper()
	c, err := lighthouse.New(lighthouse.Config{Endpoint: f.url, Credential: lighthouse.Credential{SecretID: testSecretID, SecretKey: testSecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]lighthouse.Instance{}
	for _, j := range jobs {
		ins, err := c.DescribeInstances(t.Context(), j.Region, []string{j.InstanceID})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			out[in.InstanceID] = in
		}
	}
	return out
}

// TestLoginKeyPairs: each job's key_ids, else the run-wide --key-ids, are
// bound by the reset (the emulator's ledger and DescribeInstances show
// them); a job naming a key pair its region lacks is skipped by preflight
// and by plan, and never reset. Not parallel: credentials come from the
// environment.
func TestLoginKeyPairs(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 6, edit: func(c *emulator.Config) {
		c.KeyPairs = []emulator.KeyPair{{ID: keyA, Region: c.Instances[0].Region}, {ID: keyB, Region: c.Instances[0].Region}}
	}})
	writeJobsWithKeys(t, f, map[int]string{0: keyA + ";" + keyB, 1: keyMissing})
	jobs := mustReadJobs(t, f.jobsPath)
	if want := []string{keyA, keyB}; !cmp.Equal(jobs[0].KeyIDs, want) {
		t.Fatalf("ReadJobs: key IDs %v, want %v", jobs[0].KeyIDs, want)
	}

	plan := batchreset(t, "plan", "--jobs", f.jobsPath, "--endpoint", f.url, "--key-ids", keyB)
	plan.wantCode(t, exitOK, "plan")
	wantSkip := "key pair " + keyMissing + " not found in region " + jobs[1].Region
	for line := range strings.SplitSeq(plan.stdout, "\n") {
		if strings.HasPrefix(line, jobs[1].InstanceID) && !(strings.Contains(line, "skip") && strings.Contains(line, wantSkip)) {
			t.Errorf("plan: %q, want skip %q", line, wantSkip)
		}
	}

	out := filepath.Join(t.TempDir(), "results.csv")
	res := batchreset(t, append(healthArgs(f, out), "--key-ids", keyB)...)
	res.wantCode(t, exitFailures, "run (one job skipped)")
	results := readResults(t, out)
	log := f.emu.Stats().ResetLog
	now := describe(t, f, jobs)
	for i, j := range results {
		recs := log[j.InstanceID]
		want := []string{keyB} // the run-wide key
		switch i {
		case 0:
			want = []string{keyA, keyB}
		case 1:
			if j.Status != store.StatusSkipped || !strings.Contains(j.ErrorMessage, wantSkip) || len(recs) != 0 {
				t.Errorf("%s: %s %q, reset %d times; want skipped by preflight (%q), never reset", j.InstanceID, j.Status, j.ErrorMessage, len(recs), wantSkip)
			}
			continue
		}
		if j.Status != store.StatusSucceeded || len(recs) != 1 {
			t.Errorf("%s: %s (%s), reset %d times; want succeeded once", j.InstanceID, j.Status, j.ErrorMessage, len(recs))
			continue
		}
		if !cmp.Equal(recs[0].KeyIDs, want) || recs[0].PasswordSet {
			t.Errorf("%s: the reset sent key IDs %v (password %t), want %v and no password", j.InstanceID, recs[0].KeyIDs, recs[0].PasswordSet, want)
		}
		if got := now[j.InstanceID].LoginSettings.KeyIDs; !cmp.Equal(got, want) {
			t.Errorf("%s: DescribeInstances shows key IDs %v bound, want %v", j.InstanceID, got, want)
		}
	}

	// A rerun resumes only the same login settings: the state file says
	// which ones the run started with.
	writeJobsWithKeys(t, f, map[int]string{0: keyA, 1: keyMissing})
	again := batchreset(t, append(healthArgs(f, out), "--key-ids", keyB)...)
	if again.code == exitOK || again.code == exitFailures {
		t.Errorf("rerun with other key_ids: exit %d, want a refusal to resume another input", again.code)
	}
	if n := f.resets(); n != 5 {
		t.Errorf("the emulator applied %d resets in all, want 5", n)
	}
}

// TestLoginPassword: the run-wide password from --password-file or the
// environment is sent with every reset and never appears in any output,
// log (text or JSON, debug), results, state or report; a password a
// platform refuses is skipped by preflight without being quoted.
func TestLoginPassword(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 4, opts: emulator.FleetOptions{OtherPlatform: 1}})
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	writeFile(t, pwFile, testPassword+"\n")
	var seen []string
	var files []string
	for _, format := range []string{"text", "json"} {
		out, report := filepath.Join(dir, format+".csv"), filepath.Join(dir, format+".json")
		files = append(files, out, out+".state", report)
		// The Windows instance's target is Linux: preflight skips it for the
		// platform before the password is judged.
		res := batchreset(t, append([]string{"--log-level", "debug", "--log-format", format}, append(healthArgs(f, out), "--password-file", pwFile, "--report", report)...)...)
		res.wantCode(t, exitFailures, "run --password-file")
		seen = append(seen, res.stdout, res.stderr)
	}
	for id, recs := range f.emu.Stats().ResetLog {
		for _, r := range recs {
			if !r.PasswordSet || len(r.KeyIDs) > 0 {
				t.Errorf("%s: reset with password %t, keys %v; want the password alone", id, r.PasswordSet, r.KeyIDs)
			}
		}
	}
	if n := f.resets(); n != 6 {
		t.Errorf("%d resets applied, want 6: 3 per run (the Windows instance skipped)", n)
	}

	// From the environment, and a password too short for any platform.
	t.Setenv(envPassword, testPassword)
	plan := batchreset(t, "--log-level", "debug", "plan", "--jobs", f.jobsPath, "--endpoint", f.url)
	plan.wantCode(t, exitOK, "plan with "+envPassword)
	seen = append(seen, plan.stdout, plan.stderr)
	t.Setenv(envPassword, "Sh0rt!")
	weak := batchreset(t, "--log-level", "debug", "plan", "--jobs", f.jobsPath, "--endpoint", f.url)
	weak.wantCode(t, exitOK, "plan with a short password")
	if !strings.Contains(weak.stdout, "password refused for a LINUX_UNIX instance: it must be 8 to 30 characters long") {
		t.Errorf("plan with a short password does not skip for it:\n%s", weak.stdout)
	}
	seen = append(seen, weak.stdout, weak.stderr)
	t.Setenv(envPassword, "")

	// Usage errors name the problem, not the password.
	both := batchreset(t, append(healthArgs(f, filepath.Join(dir, "both.csv")), "--password-file", pwFile, "--key-ids", keyA)...)
	both.wantCode(t, exitUsage, "--password-file with --key-ids")
	seen = append(seen, both.stdout, both.stderr)

	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, string(b))
	}
	for _, text := range seen {
		for _, secret := range []string{testPassword, "Sh0rt!", testSecretKey} {
			if strings.Contains(text, secret) {
				t.Errorf("secret %q printed:\n%s", secret, redact(strings.ReplaceAll(text, secret, "«HERE»")))
			}
		}
	}
}

// TestHealthAgentOffline: with --health agent, exactly the instances whose
// agent never comes back end unhealthy (AgentOffline), never failed, and
// their resets did happen once; the others succeed.
func TestHealthAgentOffline(t *testing.T) {
	setCredentials(t)
	var lost []string
	f := newFleet(t, fleetOptions{n: 12, edit: func(c *emulator.Config) {
		c.AgentOnlineAfter = 200 * time.Millisecond
		for _, i := range []int{2, 5, 9} {
			lost = append(lost, c.Instances[i].ID)
		}
		c.AgentLostInstances = lost
	}})
	out := filepath.Join(t.TempDir(), "results.csv")
	res := batchreset(t, append(healthArgs(f, out), "--health", "agent", "--health-timeout", "4s", "--max-failures", "none")...)
	res.wantCode(t, exitFailures, "run --health agent")
	jobs := readResults(t, out)
	totals := checkOutcomes(t, f, jobs, verdict{allowOther: true})
	if totals[store.StatusUnhealthy] != 3 || totals[store.StatusSucceeded] != 9 {
		t.Errorf("totals %v, want 3 unhealthy and 9 succeeded", totals)
	}
	ledger := f.emu.Stats().Resets
	for _, j := range jobs {
		if !slices.Contains(lost, j.InstanceID) {
			continue
		}
		if j.Status != store.StatusUnhealthy || j.ErrorCode != runner.CodeAgentOffline || !strings.Contains(j.ErrorMessage, "agent Offline") {
			t.Errorf("%s: %s %s %q, want unhealthy AgentOffline naming the agent's status", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage)
		}
		if applied := ledger[j.InstanceID]; len(applied) != 1 || applied[0] != j.RequestID {
			t.Errorf("%s: unhealthy with RequestId %q, emulator applied %v; want the one reset recorded", j.InstanceID, j.RequestID, applied)
		}
	}
	if !strings.Contains(res.stdout, "3 unhealthy") {
		t.Errorf("summary does not count the unhealthy instances:\n%s", tail(res.stdout, 12))
	}
	// Every agent call went through the limiter: none over TAT's limit.
	if st := f.emu.Stats().Actions[lighthouse.ActionDescribeAutomationAgentStatus]; st.Calls == 0 || st.OverLimit != 0 {
		t.Errorf("DescribeAutomationAgentStatus: %d calls, %d over the limit; want some, none over", st.Calls, st.OverLimit)
	}
}

// TestHealthCommandStopsNextWave: a health command that exits 1 on three
// instances of the first wave, with --max-failures 2, ends those three
// unhealthy with the command's output, and no instance of the next wave is
// reset. One sender, so that the first wave is the first five jobs.
func TestHealthCommandStopsNextWave(t *testing.T) {
	setCredentials(t)
	var failing []string
	f := newFleet(t, fleetOptions{n: 10, edit: func(c *emulator.Config) {
		c.AgentOnlineAfter = 100 * time.Millisecond
		c.CommandDuration = emulator.Duration{Min: 100 * time.Millisecond, Max: 200 * time.Millisecond}
		failing = []string{c.Instances[0].ID, c.Instances[1].ID, c.Instances[2].ID}
		c.CommandFailInstances = failing
		c.CommandOutputFunc = func(id string, _ []byte, exit int) string {
			return fmt.Sprintf("checking nginx on %s\nexit %d\n", id, exit)
		}
	}})
	script := filepath.Join(t.TempDir(), "health.sh")
	writeFile(t, script, "#!/bin/sh\nsystemctl is-active nginx\n")
	out := filepath.Join(t.TempDir(), "results.csv")
	res := batchreset(t, append(healthArgs(f, out), "--health", "command:"+script, "--health-timeout", "10s",
		"--waves", "5", "--max-failures", "2", "--on-failure", "stop", "--workers", "1")...)
	res.wantCode(t, exitFailures, "run --health command")
	jobs := readResults(t, out)
	checkOutcomes(t, f, jobs, verdict{allowOther: true})
	ledger := f.emu.Stats().Resets
	for i, j := range jobs {
		switch {
		case i < 3:
			if j.Status != store.StatusUnhealthy || j.ErrorCode != runner.CodeHealthCommandFailed ||
				!strings.Contains(j.ErrorMessage, "exited 1: checking nginx on "+j.InstanceID+" | exit 1") {
				t.Errorf("%s: %s %s %q, want unhealthy HealthCommandFailed with the command's output", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage)
			}
		case i < 5:
			if j.Status != store.StatusSucceeded {
				t.Errorf("%s (first wave): %s %q, want succeeded", j.InstanceID, j.Status, j.ErrorMessage)
			}
		default:
			if j.Status != store.StatusSkipped || !strings.Contains(j.ErrorMessage, "failure budget exceeded") || len(ledger[j.InstanceID]) != 0 {
				t.Errorf("%s (second wave): %s %q, reset %v; want skipped for the budget, never reset", j.InstanceID, j.Status, j.ErrorMessage, ledger[j.InstanceID])
			}
		}
	}
	invs := f.emu.Stats().Invocations
	ran := 0
	for _, inv := range invs {
		ran += len(inv.InstanceIDs)
		if !strings.Contains(string(inv.Script), "systemctl is-active nginx") {
			t.Errorf("invocation %s ran %q, want the health script", inv.InvocationID, inv.Script)
		}
	}
	if ran != 5 {
		t.Errorf("the health command ran on %d instances, want the first wave's 5", ran)
	}
}

// TestWavesWaitForHealth: with --health agent and --bake, no reset of a
// wave is sent before every job of the previous wave has passed its
// health check and baked (its outcome recorded): the state file's times
// are this runner's own, in order.
func TestWavesWaitForHealth(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 6, edit: func(c *emulator.Config) {
		// The agent comes back well after the reset ends: a wave that
		// did not wait for health would start in between.
		c.AgentOnlineAfter = time.Second
	}})
	out := filepath.Join(t.TempDir(), "results.csv")
	res := batchreset(t, append(healthArgs(f, out), "--health", "agent", "--health-timeout", "20s", "--waves", "2", "--bake", "300ms")...)
	res.wantCode(t, exitOK, "run --health agent --waves 2")
	checkOutcomes(t, f, readResults(t, out), verdict{})

	recs := readState(t, out+".state")
	sort.Slice(recs, func(i, j int) bool { return recs[i].IntentAt.Before(recs[j].IntentAt) })
	for wave := 2; wave < len(recs); wave += 2 {
		var lastDone time.Time
		for _, r := range recs[:wave] {
			if r.FinishedAt.After(lastDone) {
				lastDone = r.FinishedAt
			}
		}
		for _, r := range recs[wave:] {
			if r.IntentAt.Before(lastDone) {
				t.Errorf("%s was sent at %s, before the previous waves' last outcome at %s", r.InstanceID, r.IntentAt.Format(time.RFC3339Nano), lastDone.Format(time.RFC3339Nano))
			}
		}
	}
}

// stateRecord is what TestWavesWaitForHealth reads of a journal record.
type stateRecord struct {
	InstanceID           string
	Status               string
	IntentAt, FinishedAt time.Time
}

// readState returns the last record of each instance in a state file.
func readState(t *testing.T, path string) []stateRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]stateRecord{}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			InstanceID string `json:"instance_id"`
			Status     string `json:"status"`
			IntentAt   string `json:"intent_at"`
			FinishedAt string `json:"finished_at"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		if r.InstanceID == "" {
			continue // a header
		}
		rec := stateRecord{InstanceID: r.InstanceID, Status: r.Status}
		for _, f := range []struct {
			s string
			t *time.Time
		}{{r.IntentAt, &rec.IntentAt}, {r.FinishedAt, &rec.FinishedAt}} {
			if f.s == "" {
				continue
			}
			if *f.t, err = time.Parse(time.RFC3339Nano, f.s); err != nil {
				t.Fatalf("%s:%d: %v", path, i+1, err)
			}
		}
		last[r.InstanceID] = rec
	}
	var out []stateRecord
	for _, r := range last {
		if r.Status != string(store.StatusSucceeded) {
			t.Errorf("%s: %s, want succeeded", r.InstanceID, r.Status)
		}
		out = append(out, r)
	}
	return out
}

// TestHealthFlags maps the login and health flags to settings, without
// running anything.
func TestHealthFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	writeFile(t, pw, testPassword+"\r\n")
	script := filepath.Join(dir, "check.sh")
	writeFile(t, script, "exit 0\n")
	ps1 := filepath.Join(dir, "Check.PS1")
	writeFile(t, ps1, "exit 0\n")
	empty := filepath.Join(dir, "empty")
	writeFile(t, empty, "")
	for _, tc := range []struct {
		name   string
		args   []string
		env    map[string]string
		login  runner.Login
		health runner.Health
		usage  string // a usage error containing this
	}{
		{name: "Defaults", health: runner.Health{Timeout: runner.DefaultHealthTimeout}},
		{name: "KeyIDs", args: []string{"--key-ids", keyA + "," + keyB}, login: runner.Login{KeyIDs: []string{keyA, keyB}}, health: runner.Health{Timeout: runner.DefaultHealthTimeout}},
		{name: "KeyIDsSemicolon", args: []string{"--key-ids", keyA + ";" + keyB}, login: runner.Login{KeyIDs: []string{keyA, keyB}}, health: runner.Health{Timeout: runner.DefaultHealthTimeout}},
		{name: "BadKeyID", args: []string{"--key-ids", "lhkp-x"}, usage: `malformed key pair ID "lhkp-x"`},
		{name: "SixKeys", args: []string{"--key-ids", strings.Repeat(keyA+",", 5) + keyA}, usage: "6 key pairs, at most 5"},
		{name: "PasswordFile", args: []string{"--password-file", pw}, login: runner.Login{Password: testPassword}, health: runner.Health{Timeout: runner.DefaultHealthTimeout}},
		{name: "PasswordEnv", env: map[string]string{envPassword: testPassword}, login: runner.Login{Password: testPassword}, health: runner.Health{Timeout: runner.DefaultHealthTimeout}},
		{name: "EmptyPasswordFile", args: []string{"--password-file", empty}, usage: "is empty"},
		{name: "MissingPasswordFile", args: []string{"--password-file", filepath.Join(dir, "nope")}, usage: "--password-file"},
		{name: "PasswordAndKeys", args: []string{"--password-file", pw, "--key-ids", keyA}, usage: "exclude each other"},
		{name: "AutoAndEnvPassword", args: []string{"--auto-generate-password"}, env: map[string]string{envPassword: testPassword}, usage: "exclude each other"},
		{name: "Auto", args: []string{"--auto-generate-password"}, login: runner.Login{AutoGeneratePassword: true}, health: runner.Health{Timeout: runner.DefaultHealthTimeout}},
		{name: "Agent", args: []string{"--health", "agent", "--health-timeout", "3m", "--bake", "1m"}, health: runner.Health{Mode: runner.HealthAgent, Timeout: 3 * time.Minute, Bake: time.Minute}},
		{name: "Command", args: []string{"--health", "command:" + script}, health: runner.Health{Mode: runner.HealthCommand, Script: []byte("exit 0\n"), CommandType: "SHELL", Timeout: runner.DefaultHealthTimeout}},
		{name: "CommandPowerShell", args: []string{"--health", "command:" + ps1}, health: runner.Health{Mode: runner.HealthCommand, Script: []byte("exit 0\n"), CommandType: "POWERSHELL", Timeout: runner.DefaultHealthTimeout}},
		{name: "CommandEmpty", args: []string{"--health", "command:" + empty}, usage: "is empty"},
		{name: "CommandNoFile", args: []string{"--health", "command:"}, usage: "want none, agent or command:FILE"},
		{name: "UnknownMode", args: []string{"--health", "ping"}, usage: "want none, agent or command:FILE"},
		{name: "ZeroTimeout", args: []string{"--health-timeout", "0s"}, usage: "--health-timeout must be positive"},
		{name: "NegativeBake", args: []string{"--bake", "-1s"}, usage: "--bake must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := &runFlags{}
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			o.add(fs)
			if err := fs.Parse(append([]string{"--jobs", "jobs.csv"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			getenv := func(k string) string { return tc.env[k] }
			s, err := o.settings(time.Now(), getenv)
			if tc.usage != "" {
				var ue *exitError
				if !errors.As(err, &ue) || ue.code != exitUsage || !strings.Contains(err.Error(), tc.usage) {
					t.Fatalf("settings(%v) = %v, want a usage error containing %q", tc.args, err, tc.usage)
				}
				if strings.Contains(err.Error(), testPassword) {
					t.Errorf("the usage error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("settings(%v) = %v", tc.args, err)
			}
			if diff := cmp.Diff(tc.login, s.runner.Login); diff != "" {
				t.Errorf("Login differs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.health, s.runner.Health); diff != "" {
				t.Errorf("Health differs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestJobsKeyColumns: the jobs CSV's key_ids and auto_generate_password
// columns, and their errors with file:line: field.
func TestJobsKeyColumns(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobs.csv")
	writeFile(t, path, "instance_id,region,key_ids,auto_generate_password\n"+
		"lhins-aaaaaaaa,ap-guangzhou,"+keyA+" ; "+keyB+",\n"+
		"lhins-bbbbbbbb,ap-guangzhou,,yes\n"+
		"lhins-cccccccc,ap-guangzhou,,\n")
	jobs, err := csvstore.ReadJobs(path, csvstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := [][2]any{{jobs[0].KeyIDs, jobs[0].AutoGeneratePassword}, {jobs[1].KeyIDs, jobs[1].AutoGeneratePassword}, {jobs[2].KeyIDs, jobs[2].AutoGeneratePassword}}
	want := [][2]any{{[]string{keyA, keyB}, false}, {[]string(nil), true}, {[]string(nil), false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadJobs login settings differ (-want +got):\n%s", diff)
	}

	writeFile(t, path, "instance_id,region,key_ids,auto_generate_password\n"+
		"lhins-aaaaaaaa,ap-guangzhou,lhkp-bad,\n"+
		"lhins-bbbbbbbb,ap-guangzhou,"+keyA+";"+keyA+",\n"+
		"lhins-cccccccc,ap-guangzhou,lhkp-00000001;lhkp-00000002;lhkp-00000003;lhkp-00000004;lhkp-00000005;lhkp-00000006,\n"+
		"lhins-dddddddd,ap-guangzhou,,maybe\n"+
		"lhins-eeeeeeee,ap-guangzhou,"+keyA+",yes\n")
	_, err = csvstore.ReadJobs(path, csvstore.ReadOptions{})
	for _, want := range []string{
		path + `:2: key_ids: malformed key pair ID "lhkp-bad"`,
		path + ":3: key_ids: duplicate key pair " + keyA,
		path + ":4: key_ids: 6 key pairs, at most 5",
		path + `:5: auto_generate_password: "maybe": want yes or no`,
		path + ":6: auto_generate_password: yes together with key_ids",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadJobs() = %v, want an error containing %q", err, want)
		}
	}
}

// TestPostgresLoginHealth: import stores each job's key_ids, the run binds
// them, and a job whose agent never comes back is stored unhealthy (the
// migration's status constraint takes it).
func TestPostgresLoginHealth(t *testing.T) {
	setCredentials(t)
	url := postgrestest.NewSchema(t)
	var lost string
	f := newFleet(t, fleetOptions{n: 4, edit: func(c *emulator.Config) {
		c.KeyPairs = []emulator.KeyPair{{ID: keyA, Region: c.Instances[0].Region}}
		c.AgentOnlineAfter = 100 * time.Millisecond
		lost = c.Instances[3].ID
		c.AgentLostInstances = []string{lost}
	}})
	writeJobsWithKeys(t, f, map[int]string{0: keyA, 1: keyA})
	batchreset(t, "import", "--database-url", url, "--jobs", f.jobsPath, "--run", "login").wantCode(t, exitOK, "import")
	imported := dbJobs(t, url, "login")
	for i, j := range imported {
		if want := []string{keyA}; i < 2 && !cmp.Equal(j.KeyIDs, want) || i >= 2 && j.KeyIDs != nil {
			t.Errorf("%s: imported key IDs %v", j.InstanceID, j.KeyIDs)
		}
	}
	res := batchreset(t, "run", "--database-url", url, "--run", "login", "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--poll-interval", "100ms", "--request-timeout", "1s", "--settle-time", "2s", "--lease-ttl", "2s",
		"--health", "agent", "--health-timeout", "3s", "--max-failures", "none")
	res.wantCode(t, exitFailures, "run (one instance unhealthy)")
	jobs := dbJobs(t, url, "login")
	checkOutcomes(t, f, jobs, verdict{allowOther: true})
	log := f.emu.Stats().ResetLog
	for i, j := range jobs {
		want := store.StatusSucceeded
		if j.InstanceID == lost {
			want = store.StatusUnhealthy
		}
		if j.Status != want {
			t.Errorf("%s: %s %q, want %s", j.InstanceID, j.Status, j.ErrorMessage, want)
		}
		if recs := log[j.InstanceID]; len(recs) != 1 || (i < 2) != slices.Equal(recs[0].KeyIDs, []string{keyA}) {
			t.Errorf("%s: ledger %+v, want one reset binding %s only for the first two", j.InstanceID, recs, keyA)
		}
	}
}
