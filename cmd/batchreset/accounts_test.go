package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// Two accounts in one run, over one emulator serving both over real HTTP:
// account a reached by a profile of its own key, account b by the run's
// key assuming b's role, the rows naming no account with the run's key.
// Every instance is reset exactly once, each call signed in the account
// that owns the instance (the emulator's ledger).

const (
	uinRun = "400000000001"
	uinA   = "400000000002"
	uinB   = "400000000003"
	keyIDA = "AKIDaccounta0123456789"
	keyOfA = "accounta-S3cr3tK3y-0a1b2c"
	roleB  = "qcs::cam::uin/" + uinB + ":roleName/batchreset"
)

// twoAccounts serves an emulator of three accounts (the run's, a and b) of
// 6 instances each, and writes a jobs file naming a and b on their rows and
// no account on the run's, and a credentials file with profile acct-a.
func twoAccounts(t *testing.T) (f *fleet, jobsPath string, byAccount map[string]string) {
	t.Helper()
	const n = 6
	fleets := map[string][]emulator.Instance{}
	var blueprints []emulator.Blueprint
	for i, name := range []string{"", "a", "b"} {
		ins, bps := emulator.GenerateFleet(n, emulator.FleetOptions{Seed: int64(100 + i)})
		fleets[name], blueprints = ins, bps
	}
	f = newFleet(t, fleetOptions{n: n, edit: func(c *emulator.Config) {
		c.UIN = uinRun
		c.Instances = fleets[""]
		c.Blueprints = blueprints
		c.Accounts = []emulator.Account{
			{Name: "a", UIN: uinA, Credentials: map[string]string{keyIDA: keyOfA}, Instances: fleets["a"], Blueprints: blueprints},
			{Name: "b", UIN: uinB, Roles: []string{roleB}, Instances: fleets["b"], Blueprints: blueprints},
		}
	}})
	byAccount = map[string]string{} // instance ID → account UIN
	var b strings.Builder
	b.WriteString("instance_id,blueprint_id,region,account\n")
	for i := range n {
		for _, name := range []string{"", "a", "b"} {
			in := fleets[name][i]
			fmt.Fprintf(&b, "%s,%s,%s,%s\n", in.ID, blueprints[0].ID, in.Region, name)
			byAccount[in.ID] = map[string]string{"": uinRun, "a": uinA, "b": uinB}[name]
		}
	}
	jobsPath = filepath.Join(t.TempDir(), "jobs.csv")
	writeFile(t, jobsPath, b.String())
	creds := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(creds, []byte("[acct-a]\nsecret_id = "+keyIDA+"\nsecret_key = "+keyOfA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TENCENTCLOUD_CREDENTIALS_FILE", creds)
	setCredentials(t)
	return f, jobsPath, byAccount
}

func TestRunTwoAccounts(t *testing.T) {
	f, jobs, byAccount := twoAccounts(t)
	res := batchreset(t, "run", "--jobs", jobs, "--endpoint", f.url, "--yes", "--max-failures", "none",
		"--account", "a=profile:acct-a", "--account", "b=role:"+roleB)
	res.wantCode(t, 0, "run over two accounts") // every instance succeeded
	if strings.Contains(res.stdout+res.stderr, keyOfA) || strings.Contains(res.stdout+res.stderr, testSecretKey) {
		t.Errorf("a secret key is in the output")
	}
	for _, want := range []string{"3 accounts", "a (--account a=profile:acct-a", "b (--account b=role:" + roleB} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("the banner lacks %q:\n%s", want, res.stderr)
		}
	}
	ledger := f.emu.Stats().ResetLog
	if len(ledger) != len(byAccount) {
		t.Errorf("the emulator reset %d instances, want %d", len(ledger), len(byAccount))
	}
	for id, uin := range byAccount {
		recs := ledger[id]
		if len(recs) != 1 {
			t.Errorf("%s: reset %d times, want once", id, len(recs))
			continue
		}
		if r := recs[0]; r.Account != uin || r.SignedBy != uin {
			t.Errorf("%s: reset of account %s signed by %s, want both %s", id, r.Account, r.SignedBy, uin)
		}
	}
}

func TestRunAccountsUsage(t *testing.T) {
	f, jobs, _ := twoAccounts(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"undefined", []string{"--account", "a=profile:acct-a"}, `account "b"`},
		{"unused", []string{"--account", "a=profile:acct-a", "--account", "b=role:" + roleB, "--account", "c=profile:x"}, `no job names account "c"`},
		{"duplicate", []string{"--account", "a=profile:acct-a", "--account", "a=profile:y"}, `account "a" is defined twice`},
		{"malformed", []string{"--account", "a=acct-a"}, `want profile:NAME or role:ARN`},
		{"no equals", []string{"--account", "a"}, `want NAME=profile:P or NAME=role:ARN`},
		{"bad name", []string{"--account", "A=profile:acct-a"}, `account name "A"`},
		{"budget", []string{"--account", "a=profile:acct-a", "--max-failures-per-account", "x"}, `--max-failures-per-account`},
		{"none", nil, `account "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--jobs", jobs, "--endpoint", f.url, "--yes"}, tc.args...)
			res := batchreset(t, args...)
			res.wantCode(t, exitUsage, tc.name)
			if !strings.Contains(res.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, res.stderr)
			}
		})
	}
	if n := f.resets(); n != 0 {
		t.Errorf("usage errors reset %d instances, want none", n)
	}
}

// TestPostgresRunTwoAccounts: the jobs of three accounts imported into one
// Postgres run, worked by two runners at once, each runner with one
// connection per account. Every instance is reset exactly once, in its own
// account; the run's record keeps the accounts the first runner defined,
// and a runner that defines them otherwise is refused, naming both.
func TestPostgresRunTwoAccounts(t *testing.T) {
	f, jobs, byAccount := twoAccounts(t)
	url := postgrestest.NewSchema(t)
	batchreset(t, "import", "--database-url", url, "--jobs", jobs, "--run", "accts").wantCode(t, exitOK, "import")
	args := []string{"run", "--database-url", url, "--run", "accts", "--endpoint", f.url, "--yes", "--max-failures", "none",
		"--poll-interval", "100ms", "--lease-ttl", "5s", "--account", "a=profile:acct-a", "--account", "b=role:" + roleB}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = batchreset(t, args...) })
	}
	wg.Wait()
	for i, res := range results {
		res.wantCode(t, exitOK, "runner ", i+1)
	}
	ledger := f.emu.Stats().ResetLog
	for id, uin := range byAccount {
		recs := ledger[id]
		if len(recs) != 1 {
			t.Errorf("%s: reset %d times, want once", id, len(recs))
			continue
		}
		if r := recs[0]; r.Account != uin || r.SignedBy != uin {
			t.Errorf("%s: reset of account %s signed by %s, want both %s", id, r.Account, r.SignedBy, uin)
		}
	}
	for _, j := range dbJobs(t, url, "accts") {
		if j.Status != store.StatusSucceeded {
			t.Errorf("%s: %s, want succeeded", j.InstanceID, j.Status)
		}
	}

	res := batchreset(t, "run", "--database-url", url, "--run", "accts", "--endpoint", f.url, "--yes",
		"--account", "a=role:"+roleB, "--account", "b=role:"+roleB)
	res.wantCode(t, exitUsage, "a runner defining account a otherwise than the run's record")
	for _, want := range []string{"a=profile:acct-a", "a=role:" + roleB} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("the refusal does not name %q:\n%s", want, res.stderr)
		}
	}
}

// TestEmulatorAccountsWindow: what a user without a cloud account does for
// a two-account window. `batchreset emulator --jobs FILE --write-credentials
// F` serves each account the jobs name and writes their keys, one profile
// each; a run by profile (account a) and by role (account b, assumed with
// the key of the first account) resets every instance once, in its own
// account, as the emulator's stats say.
func TestEmulatorAccountsWindow(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("instance_id,blueprint_id,region,account\n")
	for i := range 9 {
		fmt.Fprintf(&b, "lhins-%08d,lhbp-00000001,ap-guangzhou,%s\n", i, []string{"", "a", "b"}[i%3])
	}
	jobs := filepath.Join(dir, "jobs.csv")
	writeFile(t, jobs, b.String())
	creds := filepath.Join(dir, "credentials")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"emulator", "--listen", "127.0.0.1:0", "--jobs", jobs, "--write-credentials", creds,
			"--failure-rate", "0", "--reset-min", "100ms", "--reset-max", "200ms"}, strings.NewReader(""), &stdout, &stderr)
	}()
	eventually(t, 10*time.Second, "the emulator to write the credentials", func() bool { return strings.Contains(stdout.String(), "wrote the accounts' keys") })
	out := stdout.String()
	endpoint := regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(out)
	key := regexp.MustCompile(`export TENCENTCLOUD_SECRET_ID=(\S+) TENCENTCLOUD_SECRET_KEY=(\S+)`).FindStringSubmatch(out)
	role := regexp.MustCompile(`account b: UIN \d+, SecretId \S+, role (\S+)`).FindStringSubmatch(out)
	if endpoint == nil || key == nil || role == nil {
		t.Fatalf("the emulator's output lacks its endpoint, its key or account b's role:\n%s", out)
	}
	if info, err := os.Stat(creds); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v; want mode 0600", err, info.Mode().Perm())
	}
	t.Setenv("TENCENTCLOUD_CREDENTIALS_FILE", creds)
	t.Setenv("TENCENTCLOUD_SECRET_ID", key[1])
	t.Setenv("TENCENTCLOUD_SECRET_KEY", key[2])
	res := batchreset(t, "run", "--jobs", jobs, "--endpoint", endpoint[1], "--yes", "--poll-interval", "100ms",
		"--account", "a=profile:a", "--account", "b=role:"+role[1])
	res.wantCode(t, exitOK, "a two-account window against `batchreset emulator`")

	resp, err := http.Get(endpoint[1] + "/_emulator/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats emulator.Stats
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if len(stats.ResetLog) != 9 {
		t.Errorf("%d instances reset, want 9", len(stats.ResetLog))
	}
	perAccount := map[string]int{}
	for id, recs := range stats.ResetLog {
		if len(recs) != 1 || recs[0].Account != recs[0].SignedBy {
			t.Errorf("%s: %d resets, the first of account %s signed by %s; want one, signed in its account", id, len(recs), recs[0].Account, recs[0].SignedBy)
		}
		perAccount[recs[0].Account]++
	}
	if len(perAccount) != 3 {
		t.Errorf("resets by account %v, want 3 of each of 3 accounts", perAccount)
	}
	for uin, n := range perAccount {
		if n != 3 {
			t.Errorf("account %s: %d resets, want 3", uin, n)
		}
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("emulator: exit %d, want 0", code)
	}
}

// TestEmulateAccounts: `run --emulate` over jobs naming two accounts makes
// each an emulated account of its own, reached by profile and by role as
// the flags say, and the results keep each row's account.
func TestEmulateAccounts(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("instance_id,blueprint_id,region,account\n")
	for i := range 6 {
		fmt.Fprintf(&b, "lhins-%08d,lhbp-00000001,ap-guangzhou,%s\n", i, []string{"", "a", "b"}[i%3])
	}
	jobs, out := filepath.Join(dir, "jobs.csv"), filepath.Join(dir, "results.csv")
	writeFile(t, jobs, b.String())
	res := batchreset(t, append([]string{"run", "--jobs", jobs, "--emulate", "--yes", "--out", out, "--emulate-failure-rate", "0",
		"--account", "a=profile:team-a", "--account", "b=role:qcs::cam::uin/100000000003:roleName/reset"}, fastEmulate...)...)
	res.wantCode(t, exitOK, "run --emulate over two accounts")
	for _, want := range []string{"3 accounts", "a (--account a=profile:team-a", "b (--account b=role:qcs::cam::uin/100000000003:roleName/reset"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("the banner lacks %q:\n%s", want, res.stderr)
		}
	}
	for i, j := range readResults(t, out) {
		if j.Status != store.StatusSucceeded || j.Account != []string{"", "a", "b"}[i%3] {
			t.Errorf("%s: %s in account %q, want succeeded in %q", j.InstanceID, j.Status, j.Account, []string{"", "a", "b"}[i%3])
		}
	}
}

// TestSelectInAccount: `select --account` selects with that account's
// credential, so among the instances of all the emulator's accounts it
// finds only the account's own, and every job it writes names the
// account: a list that `run --account` resets in that account.
func TestSelectInAccount(t *testing.T) {
	f, jobsPath, byAccount := twoAccounts(t)
	out := filepath.Join(t.TempDir(), "a.csv")
	all, err := csvstore.ReadJobs(jobsPath, csvstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var region, blueprint string
	for _, j := range all {
		if j.Account == "a" {
			region, blueprint = j.Region, j.BlueprintID
			break
		}
	}
	res := batchreset(t, "select", "--endpoint", f.url, "--region", region, "--blueprint-id", blueprint,
		"--account", "a=profile:acct-a", "--out", out)
	res.wantCode(t, exitOK, "select --account")
	jobs, err := csvstore.ReadJobs(out, csvstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(instancesIn(byAccount, uinA)); len(jobs) != want {
		t.Errorf("select --account a selected %d instances, want account a's %d", len(jobs), want)
	}
	if len(jobs) == 0 {
		t.Fatalf("select --account a selected nothing:\n%s", res.stdout)
	}
	for _, j := range jobs {
		if byAccount[j.InstanceID] != uinA || j.Account != "a" {
			t.Errorf("%s: selected in account %q, of account %s; want only account a's (%s), named a", j.InstanceID, j.Account, byAccount[j.InstanceID], uinA)
		}
	}
	res = batchreset(t, "select", "--endpoint", f.url, "--region", region, "--blueprint-id", blueprint, "--account", "a=acct-a")
	res.wantCode(t, exitUsage, "select --account with a malformed definition")
}

// instancesIn returns the instances of byAccount in the account of uin.
func instancesIn(byAccount map[string]string, uin string) []string {
	var ids []string
	for id, u := range byAccount {
		if u == uin {
			ids = append(ids, id)
		}
	}
	return ids
}
