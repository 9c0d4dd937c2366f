package runner_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
)

// TestResolveIdentity asks the emulator who calls: the owner is the
// sub-user the key belongs to, for either of its keys; when STS refuses
// the question, the key's own identity, with a warning naming the
// consequence; when STS cannot answer, an error.
func TestResolveIdentity(t *testing.T) {
	t.Parallel()
	keys := map[string]string{"AKIDidentityone": "key-one", "AKIDidentitytwo": "key-two", "AKIDidentityroot": "key-root"}
	var resolveAs func(t *testing.T, faults []emulator.Fault, id, role string) (runner.Identity, string, error)
	const endpoint = "http://127.0.0.1:1" // the Identity's, not where the calls go
	resolve := func(t *testing.T, faults []emulator.Fault, id string) (runner.Identity, string, error) {
		t.Helper()
		return resolveAs(t, faults, id, "")
	}
	resolveAs = func(t *testing.T, faults []emulator.Fault, id, role string) (runner.Identity, string, error) {
		t.Helper()
		emu, err := emulator.New(emulator.Config{Credentials: keys, Faults: faults,
			Users: map[string]string{"AKIDidentityone": "200000000002", "AKIDidentitytwo": "200000000002"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(emu.Close)
		srv := httptest.NewServer(emu)
		t.Cleanup(srv.Close)
		client, err := lighthouse.New(lighthouse.Config{Endpoint: srv.URL, Credential: lighthouse.Credential{SecretID: id, SecretKey: keys[id]},
			Role: lighthouse.Role{ARN: role, SessionName: "identity-test"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		cloud, err := runner.NewCloud(runner.CloudConfig{API: client})
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		got, err := runner.ResolveIdentity(t.Context(), cloud, endpoint, id, slog.New(slog.NewTextHandler(&log, nil)))
		return got, log.String(), err
	}

	t.Run("SubUser", func(t *testing.T) {
		t.Parallel()
		one, _, err := resolve(t, nil, "AKIDidentityone")
		if err != nil {
			t.Fatal(err)
		}
		two, _, err := resolve(t, nil, "AKIDidentitytwo")
		if err != nil {
			t.Fatal(err)
		}
		want := runner.Identity{Endpoint: endpoint, Owner: "qcs::cam::uin/100000000001:uin/200000000002", Account: "100000000001"}
		if one != want || two != want || one.Key() != two.Key() {
			t.Errorf("ResolveIdentity = %+v and %+v, want %+v for both keys", one, two, want)
		}
	})
	// The account's root key, a sub-user and a session of a role of the
	// account: three limits, one record of the instances runs hold.
	t.Run("OneAccount", func(t *testing.T) {
		t.Parallel()
		root, _, err := resolveAs(t, nil, "AKIDidentityroot", "")
		if err != nil {
			t.Fatal(err)
		}
		sub, _, err := resolveAs(t, nil, "AKIDidentityone", "")
		if err != nil {
			t.Fatal(err)
		}
		role, _, err := resolveAs(t, nil, "AKIDidentityroot", "qcs::cam::uin/100000000001:roleName/emulator")
		if err != nil {
			t.Fatal(err)
		}
		if root.Key() == sub.Key() || root.Key() == role.Key() || sub.Key() == role.Key() {
			t.Errorf("Key() = %s, %s, %s for the root key, a sub-user and a role session: want three limits", root.Key(), sub.Key(), role.Key())
		}
		if root.HoldsKey() != sub.HoldsKey() || root.HoldsKey() != role.HoldsKey() {
			t.Errorf("HoldsKey() = %s, %s, %s for the root key, a sub-user and a role session of one account: want one record of holds", root.HoldsKey(), sub.HoldsKey(), role.HoldsKey())
		}
	})
	t.Run("Denied", func(t *testing.T) {
		t.Parallel()
		denied := []emulator.Fault{{Action: lighthouse.ActionGetCallerIdentity, Kind: emulator.FaultError, Code: "UnauthorizedOperation"}}
		one, log, err := resolve(t, denied, "AKIDidentityone")
		if err != nil {
			t.Fatal(err)
		}
		two, _, _ := resolve(t, denied, "AKIDidentitytwo")
		if !strings.HasPrefix(one.Owner, "key-") || one == two || strings.Contains(one.Owner, "AKID") {
			t.Errorf("ResolveIdentity = %+v and %+v, want each key's own, the SecretId hashed", one, two)
		}
		if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "another key of the same sub-account") {
			t.Errorf("log = %q, want a warning naming the consequence", log)
		}
	})
	t.Run("Unavailable", func(t *testing.T) {
		t.Parallel()
		down := []emulator.Fault{{Action: lighthouse.ActionGetCallerIdentity, Kind: emulator.FaultUnavailable}}
		if got, _, err := resolve(t, down, "AKIDidentityone"); err == nil {
			t.Errorf("ResolveIdentity = %+v, want an error when STS cannot answer", got)
		}
	})
}
