package lighthouse

import (
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

// TestCallerIdentity asks the emulator who calls, over real HTTP with real
// signing: two keys of one sub-user are one rate-limit owner, the root
// account's key another, and sessions of one role, whoever assumed them,
// the role's.
func TestCallerIdentity(t *testing.T) {
	t.Parallel()
	const subUser = "200000000002"
	keys := map[string]string{"AKIDsubuserone": "key-one", "AKIDsubusertwo": "key-two", "AKIDroot": "key-root"}
	emu, err := emulator.New(emulator.Config{
		Credentials: keys,
		Users:       map[string]string{"AKIDsubuserone": subUser, "AKIDsubusertwo": subUser},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	ask := func(id string, role Role) CallerIdentity {
		t.Helper()
		c, err := New(Config{Endpoint: srv.URL + "/", Credential: Credential{SecretID: id, SecretKey: keys[id]}, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseIdleConnections()
		got, err := c.GetCallerIdentity(t.Context())
		if err != nil {
			t.Fatalf("GetCallerIdentity(%s) = %v", id, err)
		}
		return got
	}

	one, two, root := ask("AKIDsubuserone", Role{}), ask("AKIDsubusertwo", Role{}), ask("AKIDroot", Role{})
	want := CallerIdentity{AccountID: "100000000001", UserID: subUser, PrincipalID: subUser, ARN: "qcs::cam::uin/100000000001:uin/" + subUser, Type: "CAMUser"}
	if diff := cmp.Diff(want, one); diff != "" {
		t.Errorf("GetCallerIdentity(sub-user key) mismatch (-want +got):\n%s", diff)
	}
	if one.RateLimitOwner() != two.RateLimitOwner() {
		t.Errorf("two keys of one sub-user: owners %q and %q, want one", one.RateLimitOwner(), two.RateLimitOwner())
	}
	if root.RateLimitOwner() == one.RateLimitOwner() || root.UserID != "100000000001" {
		t.Errorf("root key: %+v, want the root account, another owner than the sub-user's", root)
	}

	roleARN := "qcs::cam::uin/100000000001:roleName/emulator"
	a := ask("AKIDsubuserone", Role{ARN: roleARN, SessionName: "session-a"})
	b := ask("AKIDroot", Role{ARN: roleARN, SessionName: "session-b"})
	if a.Type != "CAMRole" || a.PrincipalID != subUser || b.PrincipalID != "100000000001" {
		t.Errorf("role sessions: %+v and %+v, want CAMRole, each with the UIN that assumed it", a, b)
	}
	if a.UserID == b.UserID {
		t.Errorf("role sessions: UserId %q for both, want each session's", a.UserID)
	}
	if a.RateLimitOwner() != b.RateLimitOwner() || a.RateLimitOwner() == one.RateLimitOwner() {
		t.Errorf("role sessions: owners %q and %q (sub-user %q), want the role's, one for both", a.RateLimitOwner(), b.RateLimitOwner(), one.RateLimitOwner())
	}
}
