package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// A limit belongs to an identity: the action, the API server the endpoint
// reaches and the sub-account the key belongs to (more-apis.md §1f). These
// tests run two commands that share the identity but differ in how it is
// spelled or where they run from, at once, each asking for the emulator's
// whole limit (--rate equal to it), over disjoint halves of one fleet: the
// emulator must never see more than its limit in a second. Commands that
// kept two limits would send twice as many.

// identityLimit is the emulator's ResetInstance limit in these tests, and
// identityJobs the instances of each half.
const (
	identityLimit = 20
	identityJobs  = 40
)

// halves writes the jobs of f in two files of disjoint instances.
func halves(t *testing.T, f *fleet) [2]string {
	t.Helper()
	b, err := os.ReadFile(f.jobsPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var parts [2]strings.Builder
	for i := range parts {
		parts[i].WriteString(lines[0] + "\n")
	}
	for i, l := range lines[1:] {
		parts[i%2].WriteString(l + "\n")
	}
	var paths [2]string
	for i := range parts {
		paths[i] = filepath.Join(t.TempDir(), "jobs.csv")
		writeFile(t, paths[i], parts[i].String())
	}
	return paths
}

// withEndpoint returns args with the value of --endpoint replaced.
func withEndpoint(args []string, endpoint string) []string {
	out := append([]string(nil), args...)
	for i := range out[:len(out)-1] {
		if out[i] == "--endpoint" {
			out[i+1] = endpoint
		}
	}
	return out
}

// identityFleet is a fleet of two halves at identityLimit, each run at the
// limit.
func identityFleet(t *testing.T, edit func(*emulator.Config)) *fleet {
	t.Helper()
	return newFleet(t, fleetOptions{n: 2 * identityJobs, limit: identityLimit, rate: identityLimit, edit: edit})
}

// checkOnce checks that the emulator applied exactly one reset to each
// instance of f.
func checkOnce(t *testing.T, f *fleet) {
	t.Helper()
	ledger := f.emu.Stats().Resets
	for _, in := range f.instances {
		if n := len(ledger[in.ID]); n != 1 {
			t.Errorf("%s: reset %d times (%v), want exactly once", in.ID, n, ledger[in.ID])
		}
	}
}

// waitBoth waits for both processes to end with exit 0.
func waitBoth(t *testing.T, procs ...*proc) {
	t.Helper()
	for _, p := range procs {
		p.wantExit(t, 90*time.Second, exitOK)
	}
}

// TestEndpointSpellingsShareLimit runs two CSV runs at one emulator, one
// given its endpoint with a trailing slash and an upper-case scheme, the
// other as printed: one API server, one limit and one registry of
// instances in flight.
func TestEndpointSpellingsShareLimit(t *testing.T) {
	t.Parallel()
	t.Run("Disjoint", func(t *testing.T) {
		t.Parallel()
		f := identityFleet(t, nil)
		jobs := halves(t, f)
		spelled := "HTTP://" + strings.TrimPrefix(f.url, "http://") + "/"
		a := startProcess(t, "plain", nil, csvRun(f, jobs[0])...)
		b := startProcess(t, "spelled", nil, withEndpoint(csvRun(f, jobs[1]), spelled)...)
		waitBoth(t, a, b)
		checkOnce(t, f)
		checkRate(t, f)
	})
	// Both runs over the same instances, with a visibility lag longer than
	// a reset: only the host's registry keeps the second run from resetting
	// an instance the first reset a moment ago.
	t.Run("SameFleet", func(t *testing.T) {
		t.Parallel()
		f := identityFleet(t, func(c *emulator.Config) { c.VisibilityLag = time.Second })
		var copies [2]string
		b, err := os.ReadFile(f.jobsPath)
		if err != nil {
			t.Fatal(err)
		}
		for i := range copies {
			copies[i] = filepath.Join(t.TempDir(), "jobs.csv")
			writeFile(t, copies[i], string(b))
		}
		// --settle-time must exceed the lag plus --request-timeout.
		p1 := startProcess(t, "plain", nil, csvRun(f, copies[0], "--settle-time", "3s")...)
		p2 := startProcess(t, "spelled", nil, withEndpoint(csvRun(f, copies[1], "--settle-time", "3s"), f.url+"/")...)
		for _, p := range []*proc{p1, p2} {
			if code := p.wait(t, 90*time.Second); code != exitOK && code != exitFailures {
				t.Errorf("%s: exit %d, want 0 or 1", p.name, code)
			}
		}
		checkOnce(t, f)
		checkRate(t, f)
	})
}

// TestStateDirIgnoresTMPDIR runs two CSV runs of one account from two
// temporary directories (as sudo, tmux, cron or a systemd unit with
// PrivateTmp give them): the host's state is where BATCHRESET_STATE_DIR
// says (TestMain sets it for every process of the package), so they share
// one limit.
func TestStateDirIgnoresTMPDIR(t *testing.T) {
	t.Parallel()
	f := identityFleet(t, nil)
	jobs := halves(t, f)
	a := startProcess(t, "tmp-a", []string{"TMPDIR=" + t.TempDir()}, csvRun(f, jobs[0])...)
	b := startProcess(t, "tmp-b", []string{"TMPDIR=" + t.TempDir()}, csvRun(f, jobs[1])...)
	waitBoth(t, a, b)
	checkOnce(t, f)
	checkRate(t, f)
}

// TestKeysOfOneSubUserShareLimit runs two CSV runs signed with two keys of
// one sub-user, as GetCallerIdentity tells: one limit.
func TestKeysOfOneSubUserShareLimit(t *testing.T) {
	t.Parallel()
	const otherID, otherKey, subUser = "AKIDcmdtestsecondkey01", "cmdtest-second-S3cr3t-77a1", "200000000002"
	f := identityFleet(t, func(c *emulator.Config) {
		c.Credentials[otherID] = otherKey
		c.Users = map[string]string{testSecretID: subUser, otherID: subUser}
	})
	jobs := halves(t, f)
	a := startProcess(t, "first-key", nil, csvRun(f, jobs[0])...)
	b := startProcess(t, "second-key", []string{"TENCENTCLOUD_SECRET_ID=" + otherID, "TENCENTCLOUD_SECRET_KEY=" + otherKey}, csvRun(f, jobs[1])...)
	waitBoth(t, a, b)
	checkOnce(t, f)
	checkRate(t, f)
	if calls := f.emu.Stats().Actions["GetCallerIdentity"].Calls; calls != 2 {
		t.Errorf("%d GetCallerIdentity calls, want one per command", calls)
	}
}

// TestCSVAndPostgresShareLimit runs a CSV run and a Postgres runner of one
// account on one host at once: the runner takes its database slots under
// the host's lock, so both space their calls together.
func TestCSVAndPostgresShareLimit(t *testing.T) {
	t.Parallel()
	needBinary(t)
	url := postgrestest.NewSchema(t)
	f := identityFleet(t, nil)
	jobs := halves(t, f)
	batchreset(t, "import", "--database-url", url, "--jobs", jobs[1], "--run", "fleet").wantCode(t, exitOK, "import")
	a := startProcess(t, "csv", nil, csvRun(f, jobs[0])...)
	b := startProcess(t, "postgres", nil, pgRun(url, "fleet", f)...)
	waitBoth(t, a, b)
	checkOnce(t, f)
	checkRate(t, f)
}
