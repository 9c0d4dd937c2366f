package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batchreset/batchreset/lighthouse/emulator"
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
