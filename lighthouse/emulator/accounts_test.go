package emulator_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// The second account of the multi-account tests.
const (
	uinB       = "200000000002"
	secretIDB  = "AKIDaccountbtest"
	secretKeyB = "account-b-secret-key"
	roleB      = "qcs::cam::uin/200000000002:roleName/reset-operator"
	bpPrivateB = "lhbp-privateb" // a custom image of account B
	keyPairB   = "lhkp-accountb"
)

// idsB returns n instance IDs of account B: lhins-b0000000, lhins-b0000001…
func idsB(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("lhins-b%07d", i)
	}
	return out
}

// accountB returns account B with n instances like fleet(n)'s and the
// test blueprints (the public ones are the same blueprints as account A's;
// the private ones are B's own copies) plus a private image of its own.
func accountB(n int) emulator.Account {
	instances := make([]emulator.Instance, n)
	for i, id := range idsB(n) {
		instances[i] = emulator.Instance{ID: id, Region: testRegion, BlueprintID: bpCurrent, CPU: 2, Memory: 2, DiskSize: 50}
	}
	return emulator.Account{
		Name:        "team-b",
		UIN:         uinB,
		Credentials: map[string]string{secretIDB: secretKeyB},
		Roles:       []string{roleB},
		Instances:   instances,
		Blueprints:  append(testBlueprints(), emulator.Blueprint{ID: bpPrivateB, Type: "PRIVATE", Name: "B's image"}),
		KeyPairs:    []emulator.KeyPair{{ID: keyPairB, Region: testRegion}},
	}
}

// describeIDs returns the IDs DescribeInstances lists for c in testRegion.
func describeIDs(t *testing.T, c *common.Client, params map[string]any) []string {
	t.Helper()
	var r describeInstancesResponse
	if params == nil {
		params = map[string]any{"Limit": 100}
	}
	if err := send(t, c, "DescribeInstances", params, &r); err != nil {
		t.Fatalf("DescribeInstances(%v) error: %v", params, err)
	}
	var out []string
	for _, in := range r.InstanceSet {
		out = append(out, in.InstanceID)
	}
	return out
}

// TestAccountsIsolation checks that each account's key sees its own
// instances, key pairs, custom images and TAT tasks only, and that a reset
// of another account's instance is an unknown instance that changes
// nothing.
func TestAccountsIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t, emulator.Config{Instances: fleet(2), Blueprints: testBlueprints(), Accounts: []emulator.Account{accountB(2)}})
	clientB := newClient(t, b.srv, secretIDB, secretKeyB, testRegion, nil)

	if got, want := describeIDs(t, b.client, nil), ids(2); !cmp.Equal(got, want) {
		t.Errorf("DescribeInstances with account A's key = %v, want %v", got, want)
	}
	if got, want := describeIDs(t, clientB, nil), idsB(2); !cmp.Equal(got, want) {
		t.Errorf("DescribeInstances with account B's key = %v, want %v", got, want)
	}
	if got := describeIDs(t, b.client, map[string]any{"InstanceIds": idsB(2)}); len(got) != 0 {
		t.Errorf("DescribeInstances(%v) with account A's key = %v, want none", idsB(2), got)
	}

	other := idsB(1)[0]
	if _, err := reset(t, b.client, other, bpTarget); code(err) != "ResourceNotFound.InstanceIdNotFound" {
		t.Errorf("ResetInstance(%s of account B) with account A's key = %v, want ResourceNotFound.InstanceIdNotFound", other, err)
	}
	if err := send(t, b.client, "DescribeResetInstanceBlueprints", map[string]any{"InstanceId": other}, nil); code(err) != "ResourceNotFound.InstanceIdNotFound" {
		t.Errorf("DescribeResetInstanceBlueprints(%s of account B) with account A's key = %v, want ResourceNotFound.InstanceIdNotFound", other, err)
	}
	if got := describe(t, clientB, other); got.LatestOperation != "StartInstances" || got.BlueprintID != bpCurrent {
		t.Errorf("instance %s after account A's reset = %s on %s, want untouched (StartInstances on %s)", other, got.LatestOperation, got.BlueprintID, bpCurrent)
	}
	if st := b.emu.Stats(); len(st.Resets) != 0 {
		t.Errorf("Stats().Resets after a reset of another account's instance = %v, want none", st.Resets)
	}

	// Public images are every account's; a custom image is its account's.
	blueprints := func(c *common.Client, id string) int {
		var r struct{ TotalCount int }
		if err := send(t, c, "DescribeBlueprints", map[string]any{"BlueprintIds": []string{id}}, &r); err != nil {
			t.Fatalf("DescribeBlueprints(%s) error: %v", id, err)
		}
		return r.TotalCount
	}
	for _, tt := range []struct {
		name   string
		client *common.Client
		id     string
		want   int
	}{
		{"PublicForA", b.client, bpTarget, 1},
		{"PublicForB", clientB, bpTarget, 1},
		{"PrivateOfBForB", clientB, bpPrivateB, 1},
		{"PrivateOfBForA", b.client, bpPrivateB, 0},
	} {
		if got := blueprints(tt.client, tt.id); got != tt.want {
			t.Errorf("%s: DescribeBlueprints(%s) TotalCount = %d, want %d", tt.name, tt.id, got, tt.want)
		}
	}
	if _, err := reset(t, b.client, ids(1)[0], bpPrivateB); code(err) != "ResourceNotFound.BlueprintIdNotFound" {
		t.Errorf("ResetInstance to account B's custom image with account A's key = %v, want ResourceNotFound.BlueprintIdNotFound", err)
	}
	var keys struct{ TotalCount int }
	if err := send(t, b.client, "DescribeKeyPairs", map[string]any{"KeyIds": []string{keyPairB}}, &keys); err != nil || keys.TotalCount != 0 {
		t.Errorf("DescribeKeyPairs(%s of account B) with account A's key = %d key pairs, %v; want none", keyPairB, keys.TotalCount, err)
	}

	// TAT: A cannot run a command on B's instance, and B does not see A's tasks.
	run := func(c *common.Client, id string) error {
		return sendService(t.Context(), t, c, "tat", tatVersion, "RunCommand",
			map[string]any{"Content": base64.StdEncoding.EncodeToString([]byte("true")), "InstanceIds": []string{id}}, nil)
	}
	if err := run(b.client, other); code(err) != "ResourceNotFound.InstanceNotFound" {
		t.Errorf("RunCommand on %s of account B with account A's key = %v, want ResourceNotFound.InstanceNotFound", other, err)
	}
	if err := run(b.client, ids(1)[0]); err != nil {
		t.Fatalf("RunCommand on account A's own instance: %v", err)
	}
	tasks := func(c *common.Client) int {
		var r struct{ TotalCount int }
		if err := sendService(t.Context(), t, c, "tat", tatVersion, "DescribeInvocationTasks", nil, &r); err != nil {
			t.Fatalf("DescribeInvocationTasks error: %v", err)
		}
		return r.TotalCount
	}
	if a, bb := tasks(b.client), tasks(clientB); a != 1 || bb != 0 {
		t.Errorf("DescribeInvocationTasks: account A sees %d tasks, B %d; want 1 and 0", a, bb)
	}
	if inv := b.emu.Stats().Invocations; len(inv) != 1 || inv[0].Account != rootUIN {
		t.Errorf("Stats().Invocations = %+v, want one in account %s", inv, rootUIN)
	}

	for _, tt := range []struct {
		client *common.Client
		want   string
	}{{b.client, rootUIN}, {clientB, uinB}} {
		var id struct{ AccountId, Arn string }
		if err := sendService(t.Context(), t, tt.client, "sts", stsVersion, "GetCallerIdentity", nil, &id); err != nil {
			t.Fatalf("GetCallerIdentity error: %v", err)
		}
		if id.AccountId != tt.want || !strings.HasPrefix(id.Arn, "qcs::cam::uin/"+tt.want+":") {
			t.Errorf("GetCallerIdentity = %+v, want account %s", id, tt.want)
		}
	}

	own := idsB(2)[1]
	requestID, err := reset(t, clientB, own, bpPrivateB)
	if err != nil {
		t.Fatalf("ResetInstance(%s) with account B's key to its own image: %v", own, err)
	}
	want := []emulator.ResetRecord{{RequestID: requestID, Account: uinB, SignedBy: uinB, BlueprintID: bpPrivateB}}
	if diff := cmp.Diff(want, b.emu.Stats().ResetLog[own], ignoreTimes); diff != "" {
		t.Errorf("Stats().ResetLog[%s] mismatch (-want +got):\n%s", own, diff)
	}
}

// ignoreTimes leaves out the times of ResetRecords.
var ignoreTimes = cmp.FilterPath(func(p cmp.Path) bool {
	f, ok := p.Last().(cmp.StructField)
	return ok && (f.Name() == "At" || f.Name() == "Ends")
}, cmp.Ignore())

// TestAccountsAssumeRole checks that a role of account B assumed with
// account A's key acts in B, that B needs no key of its own, and that the
// reset is recorded as B's, signed by B.
func TestAccountsAssumeRole(t *testing.T) {
	t.Parallel()
	accB := accountB(1)
	accB.Credentials = nil // reached only by its role
	b := setup(t, emulator.Config{Instances: fleet(1), Blueprints: testBlueprints(), Accounts: []emulator.Account{accB}})

	if _, err := assumeRole(t, b, map[string]any{"RoleArn": "qcs::cam::uin/300000000003:roleName/reset-operator", "RoleSessionName": "s1"}); code(err) != "ResourceNotFound.RoleNotFound" {
		t.Errorf("AssumeRole(a role of no account) = %v, want ResourceNotFound.RoleNotFound", err)
	}
	r, err := assumeRole(t, b, map[string]any{"RoleArn": roleB, "RoleSessionName": "batchreset-b"})
	if err != nil {
		t.Fatalf("AssumeRole(%s) with account A's key: %v", roleB, err)
	}
	c := r.Credentials
	temp := newCredentialClient(t, b.srv, common.NewTokenCredential(c.TmpSecretId, c.TmpSecretKey, c.Token), testRegion, nil)

	if got, want := describeIDs(t, temp, nil), idsB(1); !cmp.Equal(got, want) {
		t.Errorf("DescribeInstances as %s = %v, want account B's %v", roleB, got, want)
	}
	var id struct{ AccountId, PrincipalId, Type string }
	if err := sendService(t.Context(), t, temp, "sts", stsVersion, "GetCallerIdentity", nil, &id); err != nil {
		t.Fatalf("GetCallerIdentity as %s: %v", roleB, err)
	}
	if id.AccountId != uinB || id.PrincipalId != rootUIN || id.Type != "CAMRole" {
		t.Errorf("GetCallerIdentity as %s = %+v, want account %s, principal %s (the assuming key's), CAMRole", roleB, id, uinB, rootUIN)
	}
	if _, err := reset(t, temp, ids(1)[0], bpTarget); code(err) != "ResourceNotFound.InstanceIdNotFound" {
		t.Errorf("ResetInstance(%s of account A) as %s = %v, want ResourceNotFound.InstanceIdNotFound", ids(1)[0], roleB, err)
	}
	target := idsB(1)[0]
	requestID, err := reset(t, temp, target, bpTarget)
	if err != nil {
		t.Fatalf("ResetInstance(%s) as %s: %v", target, roleB, err)
	}

	want := []emulator.ResetRecord{{RequestID: requestID, Account: uinB, SignedBy: uinB, BlueprintID: bpTarget}}
	st := b.emu.Stats()
	if diff := cmp.Diff(want, st.ResetLog[target], ignoreTimes); diff != "" {
		t.Errorf("Stats().ResetLog[%s] mismatch (-want +got):\n%s", target, diff)
	}
	// The AssumeRole calls were signed by A; the rest acted in B.
	wantByAccount := map[string]map[string]emulator.ActionStats{
		rootUIN: {"AssumeRole": {Calls: 2, Errors: 1}},
		uinB: {
			"DescribeInstances": {Calls: 1},
			"GetCallerIdentity": {Calls: 1},
			"ResetInstance":     {Calls: 2, Errors: 1},
		},
	}
	// MaxPerSecond depends on how the calls fell into seconds; it has its
	// own test.
	ignoreMax := cmp.FilterPath(func(p cmp.Path) bool {
		f, ok := p.Last().(cmp.StructField)
		return ok && f.Name() == "MaxPerSecond"
	}, cmp.Ignore())
	if diff := cmp.Diff(wantByAccount, st.ByAccount, ignoreMax); diff != "" {
		t.Errorf("Stats().ByAccount mismatch (-want +got):\n%s", diff)
	}

	// GET /_emulator/stats serves the same, the new fields included.
	resp, err := b.srv.Client().Get(b.srv.URL + emulator.StatsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var served struct {
		ResetLog  map[string][]struct{ Account, SignedBy string }
		ByAccount map[string]map[string]struct{ Calls int }
	}
	if err := json.NewDecoder(resp.Body).Decode(&served); err != nil {
		t.Fatal(err)
	}
	if got := served.ResetLog[target]; len(got) != 1 || got[0].Account != uinB || got[0].SignedBy != uinB {
		t.Errorf("GET %s ResetLog[%s] = %+v, want one reset with Account and SignedBy %s", emulator.StatsPath, target, got, uinB)
	}
	if got := served.ByAccount[uinB]["ResetInstance"].Calls; got != 2 {
		t.Errorf("GET %s ByAccount[%s][ResetInstance].Calls = %d, want 2", emulator.StatsPath, uinB, got)
	}

	// Trust goes both ways: account A's default role, assumed by a key
	// acting in B, acts in A.
	r, err = assumeRoleWith(t, temp, map[string]any{"RoleArn": "qcs::cam::uin/" + rootUIN + ":roleName/emulator", "RoleSessionName": "back"})
	if err != nil {
		t.Fatalf("AssumeRole(A's default role) as %s: %v", roleB, err)
	}
	c = r.Credentials
	tempA := newCredentialClient(t, b.srv, common.NewTokenCredential(c.TmpSecretId, c.TmpSecretKey, c.Token), testRegion, nil)
	if got, want := describeIDs(t, tempA, nil), ids(1); !cmp.Equal(got, want) {
		t.Errorf("DescribeInstances as A's default role = %v, want account A's %v", got, want)
	}
}

// assumeRoleWith calls STS AssumeRole through c.
func assumeRoleWith(t *testing.T, c *common.Client, params map[string]any) (assumeRoleResponse, error) {
	t.Helper()
	var r assumeRoleResponse
	err := sendService(t.Context(), t, c, "sts", stsVersion, "AssumeRole", params, &r)
	return r, err
}

// TestAccountsRateLimit checks that each account has its own ResetInstance
// budget: 20 calls in one second, 10 to each of two accounts, are all
// accepted; 11 to one account in the next second leave one rejected.
func TestAccountsRateLimit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, emulator.Config{Instances: fleet(21), Blueprints: testBlueprints(), Accounts: []emulator.Account{accountB(10)}, Now: clock.Now})
	clientB := newClient(t, b.srv, secretIDB, secretKeyB, testRegion, nil)

	burst := func(calls map[string]*common.Client) map[string]int {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			outcomes = map[string]int{}
		)
		for id, c := range calls {
			wg.Go(func() {
				_, err := reset(t, c, id, bpTarget)
				mu.Lock()
				defer mu.Unlock()
				outcomes[code(err)]++
			})
		}
		wg.Wait()
		return outcomes
	}
	split := map[string]*common.Client{}
	for i := range 10 {
		split[ids(21)[i]] = b.client
		split[idsB(10)[i]] = clientB
	}
	if diff := cmp.Diff(map[string]int{"": 20}, burst(split)); diff != "" {
		t.Errorf("outcomes of 20 resets in one second over two accounts mismatch (-want +got):\n%s", diff)
	}

	clock.Add(time.Second)
	one := map[string]*common.Client{}
	for _, id := range ids(21)[10:] {
		one[id] = b.client
	}
	if diff := cmp.Diff(map[string]int{"": 10, "RequestLimitExceeded": 1}, burst(one)); diff != "" {
		t.Errorf("outcomes of 11 resets in one second to one account mismatch (-want +got):\n%s", diff)
	}

	st := b.emu.Stats()
	wantByAccount := map[string]emulator.ActionStats{
		rootUIN: {Calls: 21, Rejected: 1, OverLimit: 1, MaxPerSecond: 11},
		uinB:    {Calls: 10, MaxPerSecond: 10},
	}
	for uin, want := range wantByAccount {
		if diff := cmp.Diff(want, st.ByAccount[uin]["ResetInstance"]); diff != "" {
			t.Errorf("Stats().ByAccount[%s][ResetInstance] mismatch (-want +got):\n%s", uin, diff)
		}
	}
	want := emulator.ActionStats{Calls: 31, Rejected: 1, OverLimit: 1, MaxPerSecond: 20}
	if diff := cmp.Diff(want, st.Actions["ResetInstance"]); diff != "" {
		t.Errorf("Stats().Actions[ResetInstance] (every account) mismatch (-want +got):\n%s", diff)
	}
	for id, log := range st.ResetLog {
		wantUIN := rootUIN
		if slices.Contains(idsB(10), id) {
			wantUIN = uinB
		}
		if len(log) != 1 || log[0].Account != wantUIN || log[0].SignedBy != wantUIN {
			t.Errorf("Stats().ResetLog[%s] = %+v, want one reset of account %s signed by it", id, log, wantUIN)
		}
	}
	if len(st.ResetLog) != 30 {
		t.Errorf("Stats().ResetLog has %d instances, want the 30 accepted", len(st.ResetLog))
	}
}

func TestAccountsConfig(t *testing.T) {
	t.Parallel()
	creds := map[string]string{testSecretID: testSecretKey}
	in := func(id string) emulator.Instance { return emulator.Instance{ID: id, BlueprintID: bpCurrent} }
	with := func(edit func(*emulator.Account)) []emulator.Account {
		a := accountB(1)
		edit(&a)
		return []emulator.Account{a}
	}
	errs := []struct {
		name string
		cfg  emulator.Config
		want string
	}{
		{"InstanceAcrossAccounts", emulator.Config{Instances: []emulator.Instance{in(idsB(1)[0])}, Accounts: with(func(*emulator.Account) {})},
			"accounts[0]: instance lhins-b0000000: duplicate ID, also in account " + rootUIN},
		{"InstanceWithinAccount", emulator.Config{Accounts: with(func(a *emulator.Account) { a.Instances = append(a.Instances, a.Instances[0]) })},
			"accounts[0]: instance lhins-b0000000: duplicate ID"},
		{"KeyPairAcrossAccounts", emulator.Config{KeyPairs: []emulator.KeyPair{{ID: keyPairB}}, Accounts: with(func(*emulator.Account) {})},
			"accounts[0]: key pair " + keyPairB + ": duplicate ID, also in account " + rootUIN},
		{"SecretIDAcrossAccounts", emulator.Config{Accounts: with(func(a *emulator.Account) { a.Credentials = creds })},
			"accounts[0]: credentials: SecretId \"" + testSecretID + "\" is also a key of account " + rootUIN},
		{"NoUIN", emulator.Config{Accounts: with(func(a *emulator.Account) { a.UIN = "" })}, "accounts[0]: uin \"\": not a number"},
		{"UINOfConfig", emulator.Config{Accounts: with(func(a *emulator.Account) { a.UIN = rootUIN })}, "accounts[0]: uin " + rootUIN + ": duplicate account"},
		{"RoleAcrossAccounts", emulator.Config{Roles: []string{roleB}, Accounts: with(func(*emulator.Account) {})},
			"accounts[0]: role \"" + roleB + "\": also a role of account " + rootUIN},
		{"Unreachable", emulator.Config{Accounts: with(func(a *emulator.Account) { a.Credentials, a.Roles = nil, []string{} })}, "accounts[0]: neither credentials nor roles"},
		{"UserOfOtherAccount", emulator.Config{Accounts: with(func(a *emulator.Account) { a.Users = map[string]string{testSecretID: "200000000009"} })},
			"accounts[0]: users: SecretId \"" + testSecretID + "\" has no credential"},
		{"PublicBlueprintDiffers", emulator.Config{Blueprints: testBlueprints(), Accounts: with(func(a *emulator.Account) { a.Blueprints[1].RequiredMemory = 4 })},
			"accounts[0]: blueprint " + bpTarget + ": duplicate ID"},
		{"PrivateOverPublic", emulator.Config{Blueprints: testBlueprints(), Accounts: with(func(a *emulator.Account) { a.Blueprints[1].Type = "PRIVATE" })},
			"accounts[0]: blueprint " + bpTarget + ": duplicate ID"},
		{"NoKeyAnywhere", emulator.Config{Accounts: with(func(a *emulator.Account) { a.Credentials = nil })}, "no credentials"},
		{"FailUnknownInstance", emulator.Config{FailInstances: []string{idsB(2)[1]}, Accounts: with(func(*emulator.Account) {})}, "unknown instance"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.cfg.Credentials == nil && tt.name != "NoKeyAnywhere" {
				tt.cfg.Credentials = creds
			}
			_, err := emulator.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}

	// A public image configured the same in both accounts is one image; a
	// custom image ID may repeat in another account, which sees its own;
	// an account's instance lists in FailInstances.
	emu, err := emulator.New(emulator.Config{Credentials: creds, Instances: fleet(1), Blueprints: testBlueprints(),
		FailInstances: idsB(1), Accounts: []emulator.Account{accountB(1)}})
	if err != nil {
		t.Fatalf("New(two accounts with the test blueprints) = %v, want success", err)
	}
	emu.Close()
}
