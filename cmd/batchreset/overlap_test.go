package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// overlapRun is one of the two runs of TestSecondRunDuringFirst: a CSV run
// (a copy of the jobs file in a folder of its own, so a results file of its
// own) or a Postgres run (the jobs imported under its own name).
type overlapRun struct {
	name    string
	args    []string
	results func(t *testing.T) []store.Job
}

func newOverlapRun(t *testing.T, f *fleet, kind, name, dbURL string, rate float64) overlapRun {
	t.Helper()
	extra := []string{"--rate", fmt.Sprint(rate), "--max-failures", "none"}
	switch kind {
	case "csv":
		jobs := filepath.Join(t.TempDir(), "jobs.csv")
		b, err := os.ReadFile(f.jobsPath)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, jobs, string(b))
		return overlapRun{name: name, args: csvRun(f, jobs, extra...), results: func(t *testing.T) []store.Job {
			return readResults(t, filepath.Join(filepath.Dir(jobs), "results.csv"))
		}}
	default:
		batchreset(t, "import", "--database-url", dbURL, "--jobs", f.jobsPath, "--run", name).wantCode(t, exitOK, "import")
		return overlapRun{name: name, args: pgRun(dbURL, name, f, extra...), results: func(t *testing.T) []store.Job {
			return dbJobs(t, dbURL, name)
		}}
	}
}

// TestSecondRunDuringFirst starts a second run over the same fleet 0, 2, 6
// and 30 seconds into a first run that is still going: two CSV runs with
// their own results files, two Postgres runs, and one of each in both
// orders. A run holds its instances from its start to its end, so the
// second resets none of them, however far the first has got with each
// (finished, in flight or not yet sent), and each of its jobs ends skipped
// naming the first run. The emulator's ledger judges: every instance reset
// exactly once, by the first run, whose outcome is the ledger's.
func TestSecondRunDuringFirst(t *testing.T) {
	t.Parallel()
	needBinary(t)
	for _, pair := range [][2]string{{"csv", "csv"}, {"postgres", "postgres"}, {"csv", "postgres"}, {"postgres", "csv"}} {
		for _, offset := range []time.Duration{0, 2 * time.Second, 6 * time.Second, 30 * time.Second} {
			t.Run(fmt.Sprintf("%s-then-%s-after-%s", pair[0], pair[1], offset), func(t *testing.T) {
				t.Parallel()
				// The first run takes about 36 s at 1 reset a second, so it
				// is still going when the second one starts.
				f := newFleet(t, fleetOptions{n: 36, limit: 10})
				dbURL := ""
				if pair[0] == "postgres" || pair[1] == "postgres" {
					dbURL = postgrestest.NewSchema(t)
				}
				first := newOverlapRun(t, f, pair[0], "first", dbURL, 1)
				firstName := map[string]string{"csv": "the CSV run of ", "postgres": `Postgres run "first"`}[pair[0]]
				second := newOverlapRun(t, f, pair[1], "second", dbURL, 8)
				p1 := startProcess(t, "first", nil, first.args...)
				if offset == 0 {
					// "At once": the first has at least begun.
					eventually(t, 20*time.Second, "the first run's first call", func() bool { return f.resets() >= 1 || len(f.emu.Stats().Actions) > 0 })
				} else {
					time.Sleep(offset)
				}
				if f.resets() >= len(f.instances) {
					t.Fatalf("the first run finished all %d resets before the second began: the test proves nothing", f.resets())
				}
				p2 := startProcess(t, "second", nil, second.args...)
				if code := p2.wait(t, 60*time.Second); code != exitOK && code != exitFailures {
					t.Errorf("second: exit %d, want 0 or 1", code)
				}
				if f.resets() >= len(f.instances) {
					t.Errorf("the first run had finished when the second ended: the test does not show the second ending while the first holds the fleet")
				}
				if code := p1.wait(t, 120*time.Second); code != exitOK {
					t.Errorf("first: exit %d, want 0", code)
				}

				ledger := f.emu.Stats().Resets
				firstJobs := first.results(t)
				checkOutcomes(t, f, firstJobs, verdict{})
				for _, j := range second.results(t) {
					if n := len(ledger[j.InstanceID]); n != 1 {
						t.Errorf("%s: reset %d times, want once", j.InstanceID, n)
					}
					if j.Status != store.StatusSkipped || j.ErrorCode != runner.CodeHeldByRun || !strings.Contains(j.ErrorMessage, firstName) {
						t.Errorf("%s: second run's outcome %s %s %q, want skipped, %s, naming the first run", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage, runner.CodeHeldByRun)
					}
				}
				checkRate(t, f)
			})
		}
	}
}
