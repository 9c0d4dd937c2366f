package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
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
// 6 instances each, the resets of account a's instances failA (their
// indexes) always failing, and writes a jobs file naming a and b on their
// rows and no account on the run's, and a credentials file with profile
// acct-a.
func twoAccounts(t *testing.T, failA ...int) (f *fleet, jobsPath string, byAccount map[string]string) {
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
		for _, i := range failA {
			c.FailInstances = append(c.FailInstances, fleets["a"][i].ID)
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

// TestPlanTwoAccounts plans a run over two accounts of the built-in
// emulator, each holding only its own instances: every instance is found
// and resettable only if it is checked through its own account's
// connection. The plan lists each account with its credential, masked,
// its regions and its instances; the usage errors are run's.
func TestPlanTwoAccounts(t *testing.T) {
	t.Parallel()
	jobs := filepath.Join(t.TempDir(), "jobs.csv")
	var b strings.Builder
	b.WriteString("instance_id,region,account\n")
	for i, acct := range []string{"a", "a", "a", "b", "b", "", ""} {
		region := []string{"ap-guangzhou", "ap-shanghai"}[i%2]
		fmt.Fprintf(&b, "lhins-plan%04d,%s,%s\n", i, region, acct)
	}
	writeFile(t, jobs, b.String())
	const role = "qcs::cam::uin/100000000003:roleName/ops"
	args := []string{"plan", "--jobs", jobs, "--emulate", "--account", "a=profile:acct-a", "--account", "b=role:" + role}
	res := batchreset(t, args...)
	res.wantCode(t, 0, "plan over two accounts")
	for _, want := range []string{
		"3 accounts: (none) (the run's credential, the built-in emulator, SecretId ",
		"a (--account a=profile:acct-a, the built-in emulator's account a (UIN 100000000002), SecretId ",
		"): 3 instance(s) in ap-guangzhou, ap-shanghai; b (--account b=role:" + role + ", role " + role + " via STS",
		"): 2 instance(s) in ap-guangzhou, ap-shanghai",
		"\n7 to reset, 0 to skip",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout+res.stderr, emulatorCredential().SecretKey) {
		t.Errorf("the emulator's secret key is in the output")
	}

	res = batchreset(t, append(slices.Clone(args), "--output", "json")...)
	res.wantCode(t, 0, "plan --output json over two accounts")
	var plan struct {
		Accounts []struct {
			Name, Definition, Credential string
			Instances                    int
			Regions                      []string
		}
	}
	if err := json.Unmarshal([]byte(res.stdout), &plan); err != nil {
		t.Fatalf("plan --output json: %v\n%s", err, res.stdout)
	}
	var got []string
	for _, a := range plan.Accounts {
		got = append(got, fmt.Sprintf("%s %s %d %v", a.Name, a.Definition, a.Instances, a.Regions))
		if a.Credential == "" || strings.Contains(a.Credential, emulatorCredential().SecretKey) {
			t.Errorf("account %q: credential %q, want who signs, without a secret", a.Name, a.Credential)
		}
	}
	want := []string{"  2 [ap-guangzhou ap-shanghai]", "a profile:acct-a 3 [ap-guangzhou ap-shanghai]", "b role:" + role + " 2 [ap-guangzhou ap-shanghai]"}
	if !slices.Equal(got, want) {
		t.Errorf("plan's accounts = %q, want %q", got, want)
	}

	res = batchreset(t, append(args[:len(args)-2], "--account", "b=role:"+role, "--account", "b=profile:x")...)
	res.wantCode(t, exitUsage, "an account defined twice")
	if want := `account "b" is defined twice`; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
	}
	res = batchreset(t, args[:len(args)-2]...)
	res.wantCode(t, exitUsage, "an account undefined")
	if want := `account "b": 2 job(s) name it`; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
	}
}

// TestStatusByAccount runs over two accounts, two of account a's resets
// failing, in CSV mode and in Postgres mode: the end-of-run summary,
// status (text and JSON) and the status page (its JSON, and the page in
// headless Chromium) count each account's instances by status and its
// failures. A run without accounts shows no breakdown.
func TestStatusByAccount(t *testing.T) {
	f, jobs, _ := twoAccounts(t, 0, 1)
	acct := []string{"--endpoint", f.url, "--yes", "--max-failures", "none", "--account", "a=profile:acct-a", "--account", "b=role:" + roleB}
	totals := func(succeeded, failed int) map[string]int {
		m := zeroTotals()
		m[string(store.StatusSucceeded)], m[string(store.StatusFailed)] = succeeded, failed
		return m
	}
	want := []statuspage.AccountStatus{
		{Account: "", Jobs: 6, Totals: totals(6, 0)},
		{Account: "a", Jobs: 6, Totals: totals(4, 2), Failures: 2},
		{Account: "b", Jobs: 6, Totals: totals(6, 0)},
	}
	wantText := []string{"by account:", "(none) 6 instance(s) 6 succeeded failures: 0",
		"a 6 instance(s) 4 succeeded, 2 failed failures: 2", "b 6 instance(s) 6 succeeded failures: 0"}
	checkText := func(what, out string) {
		t.Helper()
		var lines []string
		for l := range strings.Lines(out) {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
		for _, w := range wantText {
			if !slices.Contains(lines, w) {
				t.Errorf("%s lacks the line %q:\n%s", what, w, out)
			}
		}
	}
	checkJSON := func(what string, got []statuspage.AccountStatus) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: accounts (-want +got):\n%s", what, diff)
		}
	}
	statusJSON := func(args ...string) []statuspage.AccountStatus {
		t.Helper()
		res := batchreset(t, append([]string{"status", "--output", "json"}, args...)...)
		res.wantCode(t, exitOK, "status --output json")
		var st runStatus
		if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
			t.Fatalf("status --output json: %v\n%s", err, res.stdout)
		}
		return st.Accounts
	}

	res := batchreset(t, append([]string{"run", "--jobs", jobs}, acct...)...)
	res.wantCode(t, exitFailures, "CSV run with two failures")
	checkText("the CSV run's summary", res.stdout)
	res = batchreset(t, "status", "--jobs", jobs)
	res.wantCode(t, exitOK, "status")
	checkText("CSV status", res.stdout)
	checkJSON("CSV status --output json", statusJSON("--jobs", jobs))

	url := postgrestest.NewSchema(t)
	batchreset(t, "import", "--database-url", url, "--jobs", jobs, "--run", "accts").wantCode(t, exitOK, "import")
	batchreset(t, "import", "--database-url", url, "--jobs", writeJobs(t, 3, nil), "--run", "plain").wantCode(t, exitOK, "import")
	res = batchreset(t, append([]string{"run", "--database-url", url, "--run", "accts"}, acct...)...)
	res.wantCode(t, exitFailures, "Postgres run with two failures")
	checkText("the Postgres run's summary", res.stdout)
	res = batchreset(t, "status", "--database-url", url, "--run", "accts")
	res.wantCode(t, exitOK, "status")
	checkText("Postgres status", res.stdout)
	checkJSON("Postgres status --output json", statusJSON("--database-url", url, "--run", "accts"))
	res = batchreset(t, "status", "--database-url", url, "--run", "plain")
	if strings.Contains(res.stdout, "by account") {
		t.Errorf("status of a run without accounts breaks it down by account:\n%s", res.stdout)
	}
	if got := statusJSON("--database-url", url, "--run", "plain"); got != nil {
		t.Errorf("status --output json of a run without accounts: accounts %+v, want none", got)
	}

	lr := startRun(t, "serve", "--database-url", url, "--status-addr", "127.0.0.1:0")
	page := lr.pageURL(t)
	var v statuspage.View
	getJSON(t, page+"api/runs/accts", &v)
	checkJSON("/api/runs/accts", v.Status.Accounts)
	var plain statuspage.View
	getJSON(t, page+"api/runs/plain", &plain)
	if plain.Status.Accounts != nil {
		t.Errorf("/api/runs/plain: accounts %+v, want none", plain.Status.Accounts)
	}
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(page+"runs/accts"), chromedp.WaitVisible(chromedp.CSS("#accounts"))); err != nil {
		t.Fatalf("load %s: %v", page+"runs/accts", err)
	}
	script := `[...document.querySelectorAll("#accounts tr")].map(r => [...r.cells].map(c => c.textContent.trim()).join(" ")).join("\n")`
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[string](script))
	if err != nil {
		t.Fatal(err)
	}
	wantRows := "account instances failures failed unknown unhealthy submitting submitted pending succeeded skipped\n" +
		"(none) 6 0 0 0 0 0 0 0 6 0\n" +
		"a 6 2 2 0 0 0 0 0 4 0\n" +
		"b 6 0 0 0 0 0 0 0 6 0"
	if rows != wantRows {
		t.Errorf("the page's accounts table:\n%s\nwant:\n%s", rows, wantRows)
	}
	if bad, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#accounts tr[data-account="a"] td.bad').textContent`)); err != nil || bad != "2" {
		t.Errorf("account a's failures are not marked: %q, %v", bad, err)
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
	jobs := writeRoundRobinAccounts(t, dir, 9)
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
	jobs, out := writeRoundRobinAccounts(t, dir, 6), filepath.Join(dir, "results.csv")
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

// writeRoundRobinAccounts writes dir/jobs.csv: n instances of one image and
// region, named by no account, a and b in turn, and returns its path.
func writeRoundRobinAccounts(t *testing.T, dir string, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("instance_id,blueprint_id,region,account\n")
	for i := range n {
		fmt.Fprintf(&b, "lhins-%08d,lhbp-00000001,ap-guangzhou,%s\n", i, []string{"", "a", "b"}[i%3])
	}
	path := filepath.Join(dir, "jobs.csv")
	writeFile(t, path, b.String())
	return path
}
