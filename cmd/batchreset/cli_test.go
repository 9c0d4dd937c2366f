package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// fastEmulate are the flags that make an --emulate run take seconds.
var fastEmulate = []string{"--emulate-reset-min", "100ms", "--emulate-reset-max", "300ms", "--poll-interval", "100ms"}

// copyExample copies the README's jobs.example.csv into a fresh directory.
func copyExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "jobs.example.csv"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jobs.example.csv")
	writeFile(t, path, string(b))
	return path
}

// TestRunExample runs the README's main command, `run --jobs
// jobs.example.csv --emulate --yes`, and checks the results file against
// the README's contract: its header, one row per input instance in input
// order, only documented statuses, a RequestId for every success, and an
// exit code that says whether everything succeeded.
func TestRunExample(t *testing.T) {
	t.Parallel()
	jobsPath := copyExample(t)
	dir := filepath.Dir(jobsPath)
	out, report := filepath.Join(dir, "results.csv"), filepath.Join(dir, "report.json")
	res := batchreset(t, append([]string{"run", "--jobs", jobsPath, "--emulate", "--yes", "--out", out, "--report", report}, fastEmulate...)...)
	if res.code != exitOK && res.code != exitFailures {
		res.wantCode(t, exitOK, "run --emulate")
	}

	input, err := csvstore.ReadJobs(jobsPath, csvstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	jobs := readResults(t, out)
	if got, want := instanceIDs(jobs), instanceIDs(input); !cmp.Equal(got, want) {
		t.Fatalf("results list instances %v, want the input's %v", got, want)
	}
	allowed := []store.Status{store.StatusSucceeded, store.StatusFailed, store.StatusSkipped, store.StatusUnknown}
	allSucceeded := true
	for i, j := range jobs {
		if j.BlueprintID != input[i].BlueprintID || j.Region != input[i].Region {
			t.Errorf("%s: blueprint, region = %q, %q, want the input's %q, %q", j.InstanceID, j.BlueprintID, j.Region, input[i].BlueprintID, input[i].Region)
		}
		if !slices.Contains(allowed, j.Status) {
			t.Errorf("%s: status %q, want one of %v", j.InstanceID, j.Status, allowed)
		}
		switch j.Status {
		case store.StatusSucceeded:
			if j.RequestID == "" || j.Attempts < 1 || j.SubmittedAt.IsZero() || j.FinishedAt.IsZero() {
				t.Errorf("%s: succeeded with request_id %q, attempts %d, submitted_at %v, finished_at %v; want all set", j.InstanceID, j.RequestID, j.Attempts, j.SubmittedAt, j.FinishedAt)
			}
		default:
			allSucceeded = false
			if j.ErrorMessage == "" && j.ErrorCode == "" {
				t.Errorf("%s: %s without an error code or message", j.InstanceID, j.Status)
			}
		}
	}
	if want := map[bool]int{true: exitOK, false: exitFailures}[allSucceeded]; res.code != want {
		t.Errorf("exit %d, want %d (every instance succeeded: %v)", res.code, want, allSucceeded)
	}
	if !fileExists(out + ".state") {
		t.Errorf("no state file %s.state beside the results", out)
	}

	// The JSON report agrees with the results file.
	var rep struct {
		Instances int            `json:"instances"`
		Totals    map[string]int `json:"totals"`
		Outcomes  []struct {
			InstanceID string `json:"instance_id"`
			Status     string `json:"status"`
			RequestID  string `json:"request_id"`
		} `json:"outcomes"`
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	totals := map[string]int{}
	for _, j := range jobs {
		totals[string(j.Status)]++
	}
	if rep.Instances != len(jobs) || !cmp.Equal(rep.Totals, totals) || len(rep.Outcomes) != len(jobs) {
		t.Errorf("report: %d instances, totals %v, %d outcomes; want %d, %v, %d", rep.Instances, rep.Totals, len(rep.Outcomes), len(jobs), totals, len(jobs))
	}
	if want := fmt.Sprintf("%d instances: %d succeeded", len(jobs), totals["succeeded"]); !strings.Contains(res.stdout, want) {
		t.Errorf("stdout has no summary %q:\n%s", want, tail(res.stdout, 10))
	}
}

func instanceIDs(jobs []store.Job) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.InstanceID
	}
	return ids
}

// TestInvalidJobs: an invalid jobs file stops every command that reads it
// with exit 2 before anything starts; every bad row is named as
// file:line: field; run creates neither a results nor a state file.
func TestInvalidJobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    []string // file:line: field prefixes, after the path
	}{
		{
			name: "BadRows",
			content: "instance_id,blueprint_id,region\n" +
				"lhins-aaaaaaaa,,ap-guangzhou\n" +
				"lhins-XYZ,,ap-guangzhou\n" +
				"lhins-bbbbbbbb,lhbp-x,ap-guangzhou\n" +
				"lhins-aaaaaaaa,,ap-guangzhou\n" +
				"lhins-cccccccc,,Guangzhou!\n" +
				"lhins-dddddddd,,\n" +
				"lhins-eeeeeeee,,ap-shanghai\n",
			want: []string{":3: instance_id: ", ":4: blueprint_id: ", ":5: instance_id: ", ":6: region: ", ":7: region: "},
		},
		{
			name:    "MissingColumn",
			content: "id,blueprint_id,region\nlhins-aaaaaaaa,,ap-guangzhou\n",
			want:    []string{":1: instance_id: "},
		},
		{
			name:    "RaggedRows",
			content: "instance_id,region\nlhins-aaaaaaaa,ap-guangzhou,extra\nlhins-bbbbbbbb\nlhins-cccccccc,ap-guangzhou\n",
			want:    []string{":2: ", ":3: "},
		},
	}
	for _, tt := range tests {
		for _, command := range []string{"run", "plan", "emulator"} {
			t.Run(tt.name+"/"+command, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				path := filepath.Join(dir, "jobs.csv")
				writeFile(t, path, tt.content)
				args := []string{command, "--jobs", path}
				if command == "run" {
					args = append(args, "--yes", "--emulate")
				}
				if command == "plan" {
					args = append(args, "--emulate")
				}
				res := batchreset(t, args...)
				res.wantCode(t, exitUsage, command)
				for _, w := range tt.want {
					if !strings.Contains(res.stderr, path+w) {
						t.Errorf("stderr does not name %q:\n%s", path+w, res.stderr)
					}
				}
				if n := strings.Count(res.stderr, path+":"); n != len(tt.want) {
					t.Errorf("stderr names %d problems, want %d:\n%s", n, len(tt.want), res.stderr)
				}
				entries, _ := os.ReadDir(dir)
				if len(entries) != 1 {
					var names []string
					for _, e := range entries {
						names = append(names, e.Name())
					}
					t.Errorf("directory holds %v, want only jobs.csv: nothing may be created", names)
				}
			})
		}
	}
}

// TestResultsFileProtected: a results file with no state file beside it
// belongs to another run; run refuses to overwrite it (exit 2, nothing
// created, the file untouched) unless --force.
func TestResultsFileProtected(t *testing.T) {
	t.Parallel()
	jobsPath := copyExample(t)
	out := filepath.Join(filepath.Dir(jobsPath), "results.csv")
	const precious = "someone else's results\n"
	writeFile(t, out, precious)

	args := append([]string{"run", "--jobs", jobsPath, "--emulate", "--yes"}, fastEmulate...)
	res := batchreset(t, args...)
	res.wantCode(t, exitUsage, "run over a foreign results.csv")
	if !strings.Contains(res.stderr, "--force") || !strings.Contains(res.stderr, out) {
		t.Errorf("stderr = %q, want it to name %s and --force", res.stderr, out)
	}
	if b, _ := os.ReadFile(out); string(b) != precious {
		t.Errorf("results.csv changed to %q", b)
	}
	if fileExists(out + ".state") {
		t.Errorf("%s.state created by a refused run", out)
	}

	res = batchreset(t, append(args, "--force")...)
	if res.code != exitOK && res.code != exitFailures {
		res.wantCode(t, exitOK, "run --force")
	}
	if jobs := readResults(t, out); len(jobs) != countJobs(t, jobsPath) {
		t.Errorf("results hold %d jobs, want %d", len(jobs), countJobs(t, jobsPath))
	}
}

// TestRunResumeSendsNothing runs against an emulator the test owns, so its
// ledger proves what was sent: a finished run, rerun, resumes from its state
// file, sends no ResetInstance at all and rewrites the same results.
// Not parallel: the credentials come from the environment.
func TestRunResumeSendsNothing(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 30})
	out := filepath.Join(t.TempDir(), "results.csv")
	args := []string{"run", "--jobs", f.jobsPath, "--out", out, "--endpoint", f.url, "--yes",
		"--rate", fmt.Sprint(f.rate), "--poll-interval", "100ms", "--request-timeout", "1s", "--settle-time", "2s"}
	batchreset(t, args...).wantCode(t, exitOK, "first run")
	checkOutcomes(t, f, readResults(t, out), verdict{})
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	calls := f.emu.Stats().Actions[lighthouse.ActionResetInstance].Calls

	// The rerun answers from the run's done mark; without the mark it
	// reads the journal, and resumes with nothing left.
	for _, want := range []string{"nothing to do: every one of the 30 instances has an outcome", "resuming: 30 of 30 instances already finished"} {
		res := batchreset(t, args...)
		res.wantCode(t, exitOK, "rerun")
		if got := f.emu.Stats().Actions[lighthouse.ActionResetInstance].Calls; got != calls {
			t.Errorf("the rerun sent %d ResetInstance calls, want none", got-calls)
		}
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, res.stderr)
		}
		if second, _ := os.ReadFile(out); string(second) != string(first) {
			t.Errorf("the rerun changed the results:\n%s", cmp.Diff(string(first), string(second)))
		}
		if err := os.Remove(out + ".done"); err != nil {
			t.Fatal(err)
		}
	}
	checkRate(t, f)
}

// TestRunNeedsConfirmation: against a real endpoint, run refuses to start
// without a terminal to ask on unless --yes is given, even when stdin says
// yes; it exits 2 before touching the network, and leaves no file behind.
// Not parallel: it needs credentials (made up) in the environment.
func TestRunNeedsConfirmation(t *testing.T) {
	setCredentials(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() { fmt.Fprintln(w, "yes"); w.Close() }()
	for name, stdin := range map[string]io.Reader{"Reader": strings.NewReader("yes\n"), "Pipe": r} {
		t.Run(name, func(t *testing.T) {
			jobsPath := copyExample(t)
			dir := filepath.Dir(jobsPath)
			// The real endpoint (made-up credentials): a regression fails
			// fast rather than doing anything.
			res := batchresetIn(t, stdin, "run", "--jobs", jobsPath, "--request-timeout", "2s", "--settle-time", "3s")
			res.wantCode(t, exitUsage, "run without --yes")
			for _, want := range []string{"--yes", "no terminal", "24 instance(s)", "FORMATS"} {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr = %q, want it to mention %q", res.stderr, want)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the jobs file: an unconfirmed run must leave nothing", len(entries))
			}
		})
	}
}

// TestUsageErrors: bad flags, arguments and values exit 2 with a message.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	// Each case gets its own copy: a bug could make it write beside it.
	const jobsPath = "JOBS"
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"UnknownCommand", []string{"frobnicate"}, "unknown command"},
		{"UnknownFlag", []string{"run", "--jobs", jobsPath, "--frobnicate"}, "unknown flag"},
		{"FlagNeedsValue", []string{"run", "--jobs"}, "flag needs an argument"},
		{"BadDuration", []string{"run", "--jobs", jobsPath, "--poll-interval", "soon"}, "invalid argument"},
		{"PositionalArg", []string{"run", "jobs.csv"}, "unknown command"},
		{"NoSource", []string{"run", "--yes"}, "--jobs"},
		{"NoSourcePlan", []string{"plan"}, "--jobs"},
		{"BothSources", []string{"run", "--jobs", jobsPath, "--database-url", "postgres://127.0.0.1:1/x", "--yes", "--emulate"}, "not both"},
		{"LeaseTTLZero", []string{"run", "--database-url", "postgres://127.0.0.1:1/x", "--lease-ttl", "0", "--yes", "--emulate"}, "--lease-ttl"},
		{"RateZero", []string{"run", "--jobs", jobsPath, "--rate", "0", "--yes"}, "--rate"},
		{"SettleBelowTimeout", []string{"run", "--jobs", jobsPath, "--settle-time", "1s", "--request-timeout", "2s", "--yes"}, "--settle-time"},
		{"BadMaxFailures", []string{"run", "--jobs", jobsPath, "--max-failures", "lots", "--yes", "--emulate"}, "--max-failures"},
		{"WindowTwice", []string{"run", "--jobs", jobsPath, "--window", "1h", "--window-end", "23:00", "--yes", "--emulate"}, "not both"},
		{"BadWindowEnd", []string{"run", "--jobs", jobsPath, "--window-end", "teatime", "--yes", "--emulate"}, "--window-end"},
		{"BadLogFormat", []string{"--log-format", "xml", "run", "--jobs", jobsPath}, "--log-format"},
		{"BadLogLevel", []string{"--log-level", "loud", "plan", "--jobs", jobsPath}, "--log-level"},
		{"ReportFormat", []string{"report", "--database-url", "postgres://127.0.0.1:1/x", "--format", "xml"}, "--format"},
		{"ImportNoJobs", []string{"import", "--database-url", "postgres://127.0.0.1:1/x"}, "--jobs"},
		{"ImportNotBefore", []string{"import", "--database-url", "postgres://127.0.0.1:1/x", "--jobs", jobsPath, "--not-before", "tomorrow"}, "--not-before"},
		{"PauseNoRun", []string{"pause", "--database-url", "postgres://127.0.0.1:1/x"}, "--run"},
		{"StatusNoDatabase", []string{"status"}, "--database-url"},
		{"MigrateNoDatabase", []string{"migrate"}, "--database-url"},
		{"EmulatorNoFleet", []string{"emulator"}, "--instances"},
		{"MissingJobsFile", []string{"run", "--jobs", "nope.csv", "--yes", "--emulate"}, "nope.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := copyExample(t)
			args := slices.Clone(tt.args)
			for i, a := range args {
				if a == jobsPath {
					args[i] = path
				}
			}
			res := batchreset(t, args...)
			res.wantCode(t, exitUsage, args)
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr = %q, want it to mention %q", res.stderr, tt.want)
			}
			if res.stdout != "" {
				t.Errorf("stdout = %q, want nothing", res.stdout)
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
				t.Errorf("%d files beside the jobs file, want none: a usage error must leave nothing behind", len(entries)-1)
			}
		})
	}
}

// TestMissingCredentials: with no credentials anywhere, every command that
// calls the API exits 3 and says where credentials come from.
// Not parallel: it sets the environment.
func TestMissingCredentials(t *testing.T) {
	jobsPath := copyExample(t)
	home := t.TempDir()
	tests := []struct {
		name string
		set  map[string]string // variables set, possibly empty; the others are unset
	}{
		{"FileMissing", map[string]string{"TENCENTCLOUD_CREDENTIALS_FILE": filepath.Join(home, "nope")}},
		{"NoProfile", nil},
		{"EmptyVariables", map[string]string{"TENCENTCLOUD_SECRET_ID": "", "TENCENTCLOUD_SECRET_KEY": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			for _, k := range []string{"TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_CREDENTIALS_FILE"} {
				t.Setenv(k, "") // restored after the test
				if v, ok := tt.set[k]; ok {
					os.Setenv(k, v)
				} else {
					os.Unsetenv(k)
				}
			}
			out := filepath.Join(t.TempDir(), "results.csv")
			for _, args := range [][]string{
				{"run", "--jobs", jobsPath, "--yes", "--out", out},
				{"plan", "--jobs", jobsPath},
			} {
				res := batchreset(t, args...)
				res.wantCode(t, exitFatal, args)
				for _, v := range []string{lighthouse.EnvSecretID, lighthouse.EnvSecretKey} {
					if !strings.Contains(res.stderr, v) {
						t.Errorf("%s: stderr = %q, want it to name %s", args[0], res.stderr, v)
					}
				}
			}
			if fileExists(out) || fileExists(out+".state") {
				t.Errorf("%s or its state file written by a run that could not start", out)
			}
		})
	}
}

// TestPlan checks a fleet against a standalone emulator: plan sends no
// ResetInstance, and prints per instance whether run would reset or skip
// it and why. Not parallel: the credentials come from the environment.
func TestPlan(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 12, opts: emulator.FleetOptions{Missing: 2, Stopped: 2, OtherPlatform: 2, Busy: 1, BusyFor: time.Hour}})
	res := batchreset(t, "plan", "--jobs", f.jobsPath, "--endpoint", f.url)
	res.wantCode(t, exitOK, "plan")
	if st := f.emu.Stats(); st.Actions[lighthouse.ActionResetInstance].Calls != 0 || len(st.Resets) != 0 {
		t.Fatalf("plan sent %d ResetInstance calls (%d applied), want none", st.Actions[lighthouse.ActionResetInstance].Calls, len(st.Resets))
	}

	type row struct{ action, note string }
	want := map[string]row{}
	present := map[string]emulator.Instance{}
	for _, in := range f.instances {
		present[in.ID] = in
	}
	for _, j := range mustReadJobs(t, f.jobsPath) {
		in, ok := present[j.InstanceID]
		switch {
		case !ok:
			want[j.InstanceID] = row{"skip", "instance not found in region " + j.Region}
		case in.PlatformType == "WINDOWS":
			want[j.InstanceID] = row{"skip", "a reset cannot switch platform"}
		case in.BusyFor > 0:
			want[j.InstanceID] = row{"reset", "busy with RebootInstances now; the run waits for it"}
		default: // running or stopped: both can be reset
			want[j.InstanceID] = row{"reset", ""}
		}
	}
	got := map[string]row{}
	sep := regexp.MustCompile(`\s{2,}`)
	for line := range strings.SplitSeq(res.stdout, "\n") {
		if !strings.HasPrefix(line, "lhins-") {
			continue
		}
		fields := sep.Split(strings.TrimSpace(line), 5)
		if len(fields) < 4 {
			t.Fatalf("plan line %q: want INSTANCE REGION BLUEPRINT ACTION [NOTE]", line)
		}
		r := row{action: fields[3]}
		if len(fields) == 5 {
			r.note = fields[4]
		}
		got[fields[0]] = r
	}
	if len(got) != len(want) {
		t.Errorf("plan lists %d instances, want %d", len(got), len(want))
	}
	for id, w := range want {
		g := got[id]
		if g.action != w.action || !strings.Contains(g.note, w.note) || (w.note == "" && g.note != "") {
			t.Errorf("%s: plan says %s %q, want %s %q", id, g.action, g.note, w.action, w.note)
		}
	}
	if bad := batchreset(t, "plan", "--jobs", f.jobsPath, "--endpoint", "ftp://"+strings.TrimPrefix(f.url, "http://")); bad.code != exitUsage || !strings.Contains(bad.stderr, "scheme") {
		t.Errorf("plan --endpoint ftp://…: exit %d, stderr %q; want 2 and a message about the scheme", bad.code, bad.stderr)
	}
	if !strings.Contains(res.stdout, "8 to reset, 4 to skip") {
		t.Errorf("plan totals missing or wrong:\n%s", res.stdout)
	}
	golden(t, "plan-output", res.stdout)
}

func mustReadJobs(t *testing.T, path string) []store.Job {
	t.Helper()
	jobs, err := csvstore.ReadJobs(path, csvstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// TestHelp compares every command's --help with testdata/<command>.golden.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, command := range []string{"", "run", "plan", "reconcile", "emulator", "migrate", "import", "status", "runs", "retry", "serve", "report", "pause", "resume", "cancel", "rollback"} {
		name := command
		if name == "" {
			name = "batchreset"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{"--help"}
			if command != "" {
				args = []string{command, "--help"}
			}
			res := batchreset(t, args...)
			res.wantCode(t, exitOK, args)
			if res.stderr != "" {
				t.Errorf("stderr = %q, want nothing", res.stderr)
			}
			golden(t, name, res.stdout)
		})
	}
}

// TestSecretsNeverPrinted runs every command with a known SecretKey in the
// environment, and the database commands with a password in the URL, with
// debug logs in both formats, through successes and failures (throttling,
// dropped connections, rejected credentials, a database that does not
// answer): neither secret may appear in any output or file written.
// Not parallel: the credentials come from the environment.
func TestSecretsNeverPrinted(t *testing.T) {
	const dbPassword = "s3cr3tpw"
	badDSN := "postgres://postgres:" + dbPassword + "@127.0.0.1:1/test?connect_timeout=2"
	setCredentials(t)
	// Every reset also sets the default user's password, from the
	// environment (or the file below): it must never show either.
	t.Setenv(envPassword, testPassword)
	f := newFleet(t, fleetOptions{n: 12, opts: emulator.FleetOptions{OtherPlatform: 1}, edit: func(c *emulator.Config) {
		c.Faults = []emulator.Fault{
			{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultThrottle, Probability: 0.1},
			{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultDropAfterApply, Probability: 0.15},
		}
	}})
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	writeFile(t, pwFile, testPassword+"\n")
	var seen, files []string
	check := func(res result, args ...string) {
		t.Helper()
		// The command line itself holds the secrets: name the command only.
		seen = append(seen, fmt.Sprintf("$ batchreset %s …\n%s\n%s", args[slices.IndexFunc(args, func(a string) bool { return !strings.HasPrefix(a, "-") && a != "debug" && a != "text" && a != "json" })], res.stdout, res.stderr))
	}
	do := func(args ...string) result {
		t.Helper()
		res := batchreset(t, args...)
		check(res, args...)
		return res
	}
	api := []string{"--endpoint", f.url, "--request-timeout", "1s"}
	for _, format := range []string{"text", "json"} {
		out, report := filepath.Join(dir, format+"-results.csv"), filepath.Join(dir, format+"-report.json")
		files = append(files, out, out+".state", report)
		logs := []string{"--log-level", "debug", "--log-format", format}
		runArgs := append([]string{"run", "--jobs", f.jobsPath, "--out", out, "--report", report, "--yes", "--rate", fmt.Sprint(f.rate),
			"--poll-interval", "100ms", "--settle-time", "2s", "--no-preflight", "--reset-timeout", "5s", "--password-file", pwFile}, api...)
		if res := do(append(logs, runArgs...)...); res.code != exitOK && res.code != exitFailures {
			res.wantCode(t, exitOK, "run")
		}
		do(append(logs, append([]string{"plan", "--jobs", f.jobsPath}, api...)...)...).wantCode(t, exitOK, "plan")
		do(append(logs, append([]string{"reconcile", "--jobs", f.jobsPath, "--out", out}, api...)...)...).wantCode(t, exitOK, "reconcile")
	}
	// Credentials the API rejects: a fatal error.
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "wrong-"+testSecretKey)
	rejected := filepath.Join(dir, "rejected.csv")
	do("--log-level", "debug", "run", "--jobs", f.jobsPath, "--out", rejected, "--yes", "--endpoint", f.url, "--settle-time", "2s", "--request-timeout", "1s", "--no-preflight").wantCode(t, exitFatal, "run with a rejected key")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", testSecretKey)

	// The emulator command with credentials in the environment.
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--log-level", "debug", "emulator", "--listen", "127.0.0.1:0", "--instances", "3"}, strings.NewReader(""), &stdout, &stderr)
	}()
	eventually(t, 10*time.Second, "the emulator to listen", func() bool { return strings.Contains(stdout.String(), "listening on") })
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("emulator: exit %d, want 0", code)
	}
	check(result{stdout: stdout.String(), stderr: stderr.String()}, "emulator")

	// A database URL with a password that works (the test database trusts
	// local connections, so any password does): every Postgres command.
	if good, ok := withPassword(postgrestest.NewSchema(t), dbPassword); ok {
		pgReport, pgResults := filepath.Join(dir, "pg-report.json"), filepath.Join(dir, "pg-results.csv")
		files = append(files, pgReport, pgResults)
		debug := []string{"--log-level", "debug"}
		for _, args := range [][]string{
			{"migrate", "--database-url", good},
			{"import", "--database-url", good, "--jobs", f.jobsPath, "--run", "s"},
			{"pause", "--database-url", good, "--run", "s"},
			{"resume", "--database-url", good, "--run", "s"},
			{"run", "--database-url", good, "--run", "s", "--yes", "--endpoint", f.url, "--rate", fmt.Sprint(f.rate), "--poll-interval", "100ms",
				"--settle-time", "2s", "--request-timeout", "1s", "--reset-timeout", "5s", "--lease-ttl", "2s", "--no-preflight", "--report", pgReport},
			{"status", "--database-url", good, "--run", "s"},
			{"report", "--database-url", good, "--run", "s", "--out", pgResults},
			{"report", "--database-url", good, "--run", "s", "--format", "json"},
			{"reconcile", "--database-url", good, "--run", "s", "--endpoint", f.url},
		} {
			res := do(append(debug, args...)...)
			if res.code != exitOK && !(args[0] == "run" && res.code == exitFailures) {
				res.wantCode(t, exitOK, args[0])
			}
		}
	}

	// A database URL with a password that cannot connect: exit 3.
	for _, args := range [][]string{
		{"migrate", "--database-url", badDSN},
		{"import", "--database-url", badDSN, "--jobs", f.jobsPath},
		{"status", "--database-url", badDSN},
		{"report", "--database-url", badDSN},
		{"pause", "--database-url", badDSN, "--run", "x"},
		{"run", "--database-url", badDSN, "--yes", "--endpoint", f.url},
		{"plan", "--database-url", badDSN, "--endpoint", f.url},
		{"reconcile", "--database-url", badDSN, "--endpoint", f.url},
	} {
		do(append([]string{"--log-level", "debug"}, args...)...).wantCode(t, exitFatal, args)
	}
	t.Setenv("DATABASE_URL", badDSN)
	do("--log-level", "debug", "status").wantCode(t, exitFatal, "status with DATABASE_URL")

	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read %s: %v", path, err)
		}
		seen = append(seen, path+":\n"+string(b))
	}
	for _, text := range seen {
		for _, secret := range []string{testSecretKey, dbPassword, testPassword} {
			if strings.Contains(text, secret) {
				t.Errorf("secret %q printed:\n%s", secret, text)
			}
		}
	}
	if !strings.Contains(strings.Join(seen, "\n"), "xxxxx") {
		t.Errorf("no redacted database URL in any output; did the database commands run?")
	}
}

// TestRunRejectedCredentials: credentials the API rejects are a fatal
// error at the command's first call (GetCallerIdentity, which names the
// identity the limits belong to), before the run starts: exit 3 naming the
// API's error, nothing reset, and no results, as no instance was started.
// Not parallel: the credentials come from the environment.
func TestRunRejectedCredentials(t *testing.T) {
	setCredentials(t)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "wrong-"+testSecretKey)
	f := newFleet(t, fleetOptions{n: 5})
	out := filepath.Join(t.TempDir(), "results.csv")
	res := batchreset(t, "run", "--jobs", f.jobsPath, "--out", out, "--yes", "--endpoint", f.url, "--settle-time", "2s", "--request-timeout", "1s")
	res.wantCode(t, exitFatal, "run with a rejected key")
	if len(f.emu.Stats().Resets) != 0 {
		t.Errorf("resets applied with rejected credentials")
	}
	if calls := f.emu.Stats().Actions["ResetInstance"].Calls; calls != 0 {
		t.Errorf("%d ResetInstance calls with rejected credentials, want none", calls)
	}
	if fileExists(out) {
		t.Errorf("%s written for a run that never started", out)
	}
	if !strings.Contains(res.stderr, "AuthFailure") || !strings.Contains(res.stderr, "GetCallerIdentity") {
		t.Errorf("stderr does not name the API's error and the call:\n%s", tail(res.stderr, 5))
	}
}

// TestReconcileWithoutState: reconcile needs the state file a run left; with
// none it exits 2, creates nothing and leaves an existing results file
// alone. Not parallel: reconcile loads credentials from the environment.
func TestReconcileWithoutState(t *testing.T) {
	setCredentials(t)
	jobsPath := copyExample(t)
	out := filepath.Join(filepath.Dir(jobsPath), "results.csv")
	const precious = "results of a run whose state file was lost\n"
	writeFile(t, out, precious)
	res := batchreset(t, "reconcile", "--jobs", jobsPath, "--endpoint", "http://127.0.0.1:1")
	res.wantCode(t, exitUsage, "reconcile with no state file")
	if !strings.Contains(res.stderr, "no state file") {
		t.Errorf("stderr = %q, want it to say there is no state file", res.stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != precious {
		t.Errorf("reconcile replaced results.csv with:\n%s", b)
	}
	if fileExists(out + ".state") {
		t.Errorf("reconcile created a state file")
	}
}

// TestRunDroppedCallToMissingInstance: a ResetInstance to an instance that
// does not exist, whose connection drops, leaves the call in doubt; as
// DescribeInstances never shows the instance, no reset of it can have
// landed, and the job should fail once the settle time has passed, not wait
// for the reset timeout. Not parallel: credentials come from the environment.
func TestRunDroppedCallToMissingInstance(t *testing.T) {
	setCredentials(t)
	all, _ := emulator.GenerateFleet(3, emulator.FleetOptions{Seed: 42})
	f := newFleet(t, fleetOptions{n: 3, opts: emulator.FleetOptions{Missing: 1}, edit: func(c *emulator.Config) {
		c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultDropAfterApply, Probability: 1}}
	}})
	missing := ""
	for _, in := range all {
		if !slices.ContainsFunc(f.instances, func(i emulator.Instance) bool { return i.ID == in.ID }) {
			missing = in.ID
		}
	}
	out := filepath.Join(t.TempDir(), "results.csv")
	start := time.Now()
	res := batchreset(t, "run", "--jobs", f.jobsPath, "--out", out, "--yes", "--endpoint", f.url, "--no-preflight",
		"--rate", fmt.Sprint(f.rate), "--poll-interval", "100ms", "--request-timeout", "1s", "--settle-time", "1500ms", "--reset-timeout", "2s")
	res.wantCode(t, exitFailures, "run")
	took := time.Since(start)
	jobs := readResults(t, out)
	checkOutcomes(t, f, jobs, verdict{allowOther: true})
	for _, j := range jobs {
		if j.InstanceID != missing {
			continue
		}
		if j.Status != store.StatusFailed {
			t.Errorf("%s (missing): %s after %s (%s), want failed once the settle time has passed", missing, j.Status, took.Round(time.Second), j.ErrorMessage)
		}
	}
}

// withPassword returns url with password set, unless it has one already.
func withPassword(rawURL, password string) (string, bool) {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return "", false
	}
	if _, set := u.User.Password(); set {
		return "", false
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String(), true
}

// TestPlanLargeFleet plans a Postgres run of 60 instances, more than the
// 20 DescribeResetInstanceBlueprints calls a second the API allows: plan
// must pace its calls (or retry throttled ones), list every instance, and
// send no reset. Not parallel: the credentials come from the environment.
func TestPlanLargeFleet(t *testing.T) {
	setCredentials(t)
	url := postgrestest.NewSchema(t)
	f := newFleet(t, fleetOptions{n: 60})
	batchreset(t, "import", "--database-url", url, "--jobs", f.jobsPath, "--run", "big").wantCode(t, exitOK, "import")
	res := batchreset(t, "plan", "--database-url", url, "--run", "big", "--endpoint", f.url)
	res.wantCode(t, exitOK, "plan")
	if n := strings.Count(res.stdout, " reset "); n < 60 {
		t.Errorf("plan lists %d instances to reset, want 60:\n%s", n, res.stdout)
	}
	if !strings.Contains(res.stdout, "60 to reset, 0 to skip") {
		t.Errorf("plan totals missing or wrong:\n%s", res.stdout)
	}
	if calls := f.emu.Stats().Actions[lighthouse.ActionResetInstance].Calls; calls != 0 {
		t.Errorf("plan sent %d ResetInstance calls, want none", calls)
	}
}
