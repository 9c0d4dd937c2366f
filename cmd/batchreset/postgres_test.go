package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// dbJobs reads the jobs of run straight from the database.
func dbJobs(t *testing.T, url, run string) []store.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	jobs, err := db.Jobs(ctx, run)
	if err != nil {
		t.Fatalf("jobs of run %q: %v", run, err)
	}
	return jobs
}

// writeJobs writes a jobs file of n generated instances, with bad rows
// replacing the rows at the given lines (counting the header as line 1).
func writeJobs(t *testing.T, n int, bad map[int]string) string {
	t.Helper()
	instances, blueprints := emulator.GenerateFleet(n, emulator.FleetOptions{Seed: 3})
	var b strings.Builder
	b.WriteString("instance_id,blueprint_id,region\n")
	for i, in := range instances {
		if row, ok := bad[i+2]; ok {
			b.WriteString(row + "\n")
			continue
		}
		fmt.Fprintf(&b, "%s,%s,%s\n", in.ID, blueprints[0].ID, in.Region)
	}
	path := filepath.Join(t.TempDir(), "jobs.csv")
	writeFile(t, path, b.String())
	return path
}

// TestMigrate: commands refuse a schema that was never migrated, naming
// `batchreset migrate`; migrate brings it up to date and is idempotent.
func TestMigrate(t *testing.T) {
	t.Parallel()
	url := postgrestest.NewEmptySchema(t)
	jobsPath := writeJobs(t, 3, nil)
	for _, args := range [][]string{
		{"run", "--database-url", url, "--yes", "--emulate"},
		{"status", "--database-url", url},
		{"import", "--database-url", url, "--jobs", jobsPath},
	} {
		res := batchreset(t, args...)
		res.wantCode(t, exitFatal, args)
		if !strings.Contains(res.stderr, "run `batchreset migrate`") {
			t.Errorf("%s on an empty schema: stderr = %q, want it to say run `batchreset migrate`", args[0], res.stderr)
		}
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	for i, want := range []string{
		fmt.Sprintf("applied %d migrations; schema at version %d\n", len(files), len(files)),
		fmt.Sprintf("schema is up to date at version %d\n", len(files)),
	} {
		res := batchreset(t, "migrate", "--database-url", url)
		res.wantCode(t, exitOK, "migrate #", i+1)
		if res.stdout != want {
			t.Errorf("migrate #%d: stdout = %q, want %q", i+1, res.stdout, want)
		}
	}
	batchreset(t, "import", "--database-url", url, "--jobs", jobsPath).wantCode(t, exitOK, "import after migrate")
}

// TestImport: import validates the whole file first (exit 2, every bad row
// named, nothing imported), imports 150 rows in one go, refuses to import
// an instance twice, and status shows the new run.
func TestImport(t *testing.T) {
	t.Parallel()
	url := postgrestest.NewSchema(t)
	bad := writeJobs(t, 150, map[int]string{17: "lhins-BAD,,ap-guangzhou", 90: "lhins-abcdefgh,lhbp-nope,ap-guangzhou", 151: ",,ap-guangzhou"})
	res := batchreset(t, "import", "--database-url", url, "--jobs", bad, "--run", "night")
	res.wantCode(t, exitUsage, "import of an invalid file")
	for _, w := range []string{":17: instance_id: ", ":90: blueprint_id: ", ":151: instance_id: "} {
		if !strings.Contains(res.stderr, bad+w) {
			t.Errorf("stderr does not name %s%s:\n%s", bad, w, res.stderr)
		}
	}
	res = batchreset(t, "status", "--database-url", url, "--run", "night")
	res.wantCode(t, exitUsage, "status of a run never imported")
	if !strings.Contains(res.stderr, `run "night" does not exist`) {
		t.Errorf("status: stderr = %q, want it to say the run does not exist", res.stderr)
	}

	good := writeJobs(t, 150, nil)
	res = batchreset(t, "import", "--database-url", url, "--jobs", good, "--run", "night")
	res.wantCode(t, exitOK, "import")
	if want := "imported 150 jobs into run \"night\"\n"; res.stdout != want {
		t.Errorf("import: stdout = %q, want %q", res.stdout, want)
	}
	res = batchreset(t, "import", "--database-url", url, "--jobs", good, "--run", "night")
	res.wantCode(t, exitUsage, "second import of the same instances")
	if !strings.Contains(res.stderr, "already in the run") {
		t.Errorf("second import: stderr = %q, want it to say the instances are already in the run", res.stderr)
	}
	if jobs := dbJobs(t, url, "night"); len(jobs) != 150 {
		t.Errorf("run holds %d jobs, want 150", len(jobs))
	}
	res = batchreset(t, "status", "--database-url", url, "--run", "night")
	res.wantCode(t, exitOK, "status")
	golden(t, "status-imported", res.stdout)
}

// TestPostgresRun runs a Postgres run in-process against the test's
// emulator, then checks what status and report say about it: report's CSV
// has the results file's columns and agrees with the database and the
// emulator's ledger, its JSON has the same totals; commands naming a run
// that does not exist exit 2.
// Not parallel: the credentials come from the environment.
func TestPostgresRun(t *testing.T) {
	setCredentials(t)
	url := postgrestest.NewSchema(t)
	f := newFleet(t, fleetOptions{n: 120, limit: 200, opts: emulator.FleetOptions{Missing: 2, OtherPlatform: 3}})
	batchreset(t, "import", "--database-url", url, "--jobs", f.jobsPath, "--run", "night").wantCode(t, exitOK, "import")
	res := batchreset(t, "run", "--database-url", url, "--run", "night", "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--poll-interval", "100ms", "--request-timeout", "1s", "--settle-time", "2s", "--lease-ttl", "2s")
	res.wantCode(t, exitFailures, "run (5 instances are skipped by preflight)")
	jobs := dbJobs(t, url, "night")
	totals := checkOutcomes(t, f, jobs, verdict{allowOther: true})
	if want := (store.Totals{store.StatusSucceeded: 115, store.StatusSkipped: 5}); !cmp.Equal(totals, want) {
		t.Errorf("totals = %v, want %v", totals, want)
	}
	checkRate(t, f)

	res = batchreset(t, "status", "--database-url", url, "--run", "night")
	res.wantCode(t, exitOK, "status")
	for _, want := range []string{"run night (finished)", "succeeded   115", "skipped     5", "pending     0", "in flight: 0", "last errors:", "Preflight"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status does not show %q:\n%s", want, res.stdout)
		}
	}

	res = batchreset(t, "report", "--database-url", url, "--run", "night", "--format", "csv")
	res.wantCode(t, exitOK, "report --format csv")
	reported := parseResults(t, []byte(res.stdout))
	if diff := cmp.Diff(resultsView(jobs), reported, cmp.Comparer(func(a, b time.Time) bool {
		return a.Truncate(time.Second).Equal(b.Truncate(time.Second))
	}), cmpIgnoreInternal); diff != "" {
		t.Errorf("report CSV differs from the database (-db +report):\n%s", diff)
	}

	out := filepath.Join(t.TempDir(), "night.json")
	batchreset(t, "report", "--database-url", url, "--run", "night", "--format", "json", "--out", out).wantCode(t, exitOK, "report --format json --out")
	res = batchreset(t, "report", "--database-url", url, "--run", "night", "--format", "json")
	res.wantCode(t, exitOK, "report --format json")
	var rep struct {
		Instances int            `json:"instances"`
		Totals    map[string]int `json:"totals"`
		Outcomes  []struct {
			InstanceID string `json:"instance_id"`
			Status     string `json:"status"`
			RequestID  string `json:"request_id"`
		} `json:"outcomes"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	if rep.Instances != 120 || !cmp.Equal(rep.Totals, map[string]int{"succeeded": 115, "skipped": 5}) || len(rep.Outcomes) != 120 {
		t.Errorf("report JSON: %d instances, totals %v, %d outcomes", rep.Instances, rep.Totals, len(rep.Outcomes))
	}
	for i, o := range rep.Outcomes {
		if o.InstanceID != jobs[i].InstanceID || o.Status != string(jobs[i].Status) || o.RequestID != jobs[i].RequestID {
			t.Errorf("report JSON outcome %d = %+v, want %s %s %s", i, o, jobs[i].InstanceID, jobs[i].Status, jobs[i].RequestID)
		}
	}

	// reconcile finds nothing left unknown.
	res = batchreset(t, "reconcile", "--database-url", url, "--run", "night", "--endpoint", f.url)
	res.wantCode(t, exitOK, "reconcile")
	if !strings.Contains(res.stdout, "0 job(s) settled") {
		t.Errorf("reconcile: stdout = %q, want 0 job(s) settled", res.stdout)
	}

	// A rerun has nothing to do and sends nothing.
	calls := f.emu.Stats().Actions["ResetInstance"].Calls
	batchreset(t, "run", "--database-url", url, "--run", "night", "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--request-timeout", "1s", "--settle-time", "2s").wantCode(t, exitOK, "rerun of a finished run")
	if got := f.emu.Stats().Actions["ResetInstance"].Calls; got != calls {
		t.Errorf("rerun sent %d ResetInstance calls, want none", got-calls)
	}

	for _, args := range [][]string{
		{"status", "--database-url", url, "--run", "nope"},
		{"report", "--database-url", url, "--run", "nope"},
		{"pause", "--database-url", url, "--run", "nope"},
		{"run", "--database-url", url, "--run", "nope", "--yes", "--endpoint", f.url},
	} {
		res := batchreset(t, args...)
		res.wantCode(t, exitUsage, args)
		if !strings.Contains(res.stderr, `run "nope"`) {
			t.Errorf("%s: stderr = %q, want it to name run \"nope\"", args[0], res.stderr)
		}
	}
	for _, verb := range []string{"pause", "resume", "cancel"} {
		res := batchreset(t, verb, "--database-url", url, "--run", "night")
		res.wantCode(t, exitOK, verb)
	}
	if res := batchreset(t, "status", "--database-url", url, "--run", "night"); !strings.HasPrefix(res.stdout, "run night (finished, cancelled)") {
		t.Errorf("status after cancel:\n%s", res.stdout)
	}
}

// cmpIgnoreInternal ignores the fields a results file does not carry.
var cmpIgnoreInternal = cmp.Transformer("results", func(j store.Job) store.Job {
	return store.Job{InstanceID: j.InstanceID, BlueprintID: j.BlueprintID, Region: j.Region, Status: j.Status,
		RequestID: j.RequestID, ErrorCode: j.ErrorCode, ErrorMessage: j.ErrorMessage, Attempts: j.Attempts,
		SubmittedAt: j.SubmittedAt.UTC().Truncate(time.Second), FinishedAt: j.FinishedAt.UTC().Truncate(time.Second)}
})

// TestCronNothingDue: jobs imported with a future --not-before are left
// alone. A cron run finds nothing due, sends nothing, says so and exits 0;
// once due, a run resets them.
func TestCronNothingDue(t *testing.T) {
	setCredentials(t)
	url := postgrestest.NewSchema(t)
	f := newFleet(t, fleetOptions{n: 8, limit: 50})
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	batchreset(t, "import", "--database-url", url, "--jobs", f.jobsPath, "--run", "nightly", "--not-before", later).wantCode(t, exitOK, "import")
	args := []string{"run", "--database-url", url, "--run", "nightly", "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--poll-interval", "100ms", "--request-timeout", "1s", "--settle-time", "2s", "--lease-ttl", "2s"}
	res := batchreset(t, args...)
	res.wantCode(t, exitOK, "run with nothing due")
	if !strings.Contains(res.stdout, "8 not finished: not yet due") {
		t.Errorf("run with nothing due: the summary does not say the jobs are not yet due:\n%s", res.stdout)
	}
	if st := f.emu.Stats(); st.Actions["ResetInstance"].Calls != 0 || st.Actions["DescribeInstances"].Calls != 0 {
		t.Errorf("run with nothing due called the API: %+v", st.Actions)
	}
	for _, j := range dbJobs(t, url, "nightly") {
		if j.Status != store.StatusPending {
			t.Errorf("%s: %s, want pending until due", j.InstanceID, j.Status)
		}
	}

	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), `UPDATE jobs SET not_before = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	batchreset(t, args...).wantCode(t, exitOK, "run once due")
	checkOutcomes(t, f, dbJobs(t, url, "nightly"), verdict{})
}
