package lighthouse

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const testRoleARN = "qcs::cam::uin/100000000001:roleName/reset"

// roleBundle is what setupRole returns.
type roleBundle struct {
	client *Client
	server *apiServer
	clock  *fakeClock
}

// setupRole starts an apiServer that hands out temporary keys, with
// respond answering everything else (nil: the fixtures), and a Client that
// assumes testRoleARN for duration; server and client share a fake clock.
func setupRole(t *testing.T, duration time.Duration, respond func(w http.ResponseWriter, r *http.Request, c apiCall)) *roleBundle {
	t.Helper()
	clk := &fakeClock{now: time.Now()}
	srv := &apiServer{t: t, id: testSecretID, key: testSecretKey, clock: clk.Now}
	srv.respond = func(w http.ResponseWriter, r *http.Request, c apiCall) {
		switch {
		case c.Action == ActionAssumeRole:
			srv.assumeRole(w, c)
		case respond != nil:
			respond(w, r, c)
		default:
			writeFixture(t, w, c.Action+".json")
		}
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	c := newTestClient(t, Config{Endpoint: ts.URL, Role: Role{ARN: testRoleARN, SessionName: "test-session", Duration: duration}})
	c.now = clk.Now
	return &roleBundle{client: c, server: srv, clock: clk}
}

// callsOf returns the calls of action, in order.
func callsOf(s *apiServer, action string) []apiCall {
	var out []apiCall
	for _, c := range s.Calls() {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// TestRoleAssumedOnce checks that concurrent first calls wait for one
// AssumeRole, signed with the long-term key, and are signed with the
// temporary key and its token (apiServer rejects anything else).
func TestRoleAssumedOnce(t *testing.T) {
	t.Parallel()
	b := setupRole(t, time.Hour, nil)

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := b.client.DescribeInstances(t.Context(), testRegion, []string{"lhins-ruy9d2tw"}); err != nil {
				t.Errorf("DescribeInstances = %v", err)
			}
		})
	}
	wg.Wait()

	sts := callsOf(b.server, ActionAssumeRole)
	if len(sts) != 1 {
		t.Fatalf("%d AssumeRole calls, want 1", len(sts))
	}
	wantParams := map[string]any{"RoleArn": testRoleARN, "RoleSessionName": "test-session", "DurationSeconds": 3600.0}
	if diff := cmp.Diff(wantParams, sts[0].Params); diff != "" {
		t.Errorf("AssumeRole parameters mismatch (-want +got):\n%s", diff)
	}
	if sts[0].SecretID != testSecretID || sts[0].Region != stsRegion {
		t.Errorf("AssumeRole signed by %s in %q, want %s in %s", sts[0].SecretID, sts[0].Region, testSecretID, stsRegion)
	}
	for _, c := range callsOf(b.server, ActionDescribeInstances) {
		if c.SecretID != "AKIDtemporary0001" {
			t.Errorf("DescribeInstances signed by %s, want the temporary key", c.SecretID)
		}
	}

	got, err := b.client.CurrentCredential(t.Context())
	want := Credential{SecretID: "AKIDtemporary0001", SecretKey: "tmp-key-1", Token: "tmp-token-1"}
	if err != nil || got != want {
		t.Errorf("CurrentCredential() = %v, %v; want %v", got, err, want)
	}
}

// TestRoleRefreshedBeforeExpiry moves the clock: the key is replaced once
// less than 5 minutes (or a third of its life) remain, and calls after the
// first key expired are signed with the second.
func TestRoleRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	b := setupRole(t, 15*time.Minute, nil)
	describe := func() {
		t.Helper()
		if _, err := b.client.DescribeInstances(t.Context(), testRegion, []string{"lhins-ruy9d2tw"}); err != nil {
			t.Fatalf("DescribeInstances = %v", err)
		}
	}
	signers := func() []string {
		var ids []string
		for _, c := range callsOf(b.server, ActionDescribeInstances) {
			ids = append(ids, c.SecretID)
		}
		return ids
	}

	describe()
	b.clock.Advance(9 * time.Minute) // 6 minutes left: keep the key
	describe()
	b.clock.Advance(2 * time.Minute) // 4 minutes left: replace it
	describe()
	b.clock.Advance(5 * time.Minute) // the first key has expired
	describe()

	want := []string{"AKIDtemporary0001", "AKIDtemporary0001", "AKIDtemporary0002", "AKIDtemporary0002"}
	if diff := cmp.Diff(want, signers()); diff != "" {
		t.Errorf("signing keys mismatch (-want +got):\n%s", diff)
	}
	if n := len(callsOf(b.server, ActionAssumeRole)); n != 2 {
		t.Errorf("%d AssumeRole calls, want 2", n)
	}
}

// TestRoleRefreshFails checks that a failed refresh keeps the old key while
// it works, asks STS again only after a pause, and fails calls, unsent,
// with STS's class once the key has expired.
func TestRoleRefreshFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code      string
		wantClass Class
	}{
		{"RequestLimitExceeded", ClassRetryable},
		{"InternalError", ClassRetryable}, // ambiguous for STS, but the call was never sent
		{"AuthFailure.SecretIdNotFound", ClassFatal},
		{"ResourceNotFound.RoleNotFound", ClassFatal},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			var b *roleBundle
			var mu sync.Mutex
			failSTS := false
			b = setupRole(t, 15*time.Minute, func(w http.ResponseWriter, r *http.Request, c apiCall) {
				writeFixture(t, w, c.Action+".json")
			})
			inner := b.server.respond
			b.server.respond = func(w http.ResponseWriter, r *http.Request, c apiCall) {
				mu.Lock()
				fail := failSTS
				mu.Unlock()
				if c.Action == ActionAssumeRole && fail {
					writeAPIError(w, http.StatusOK, tt.code, "no role for you")
					return
				}
				inner(w, r, c)
			}
			ctx := t.Context()
			if _, err := b.client.ResetInstance(ctx, testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"}); err != nil {
				t.Fatalf("ResetInstance = %v", err)
			}
			mu.Lock()
			failSTS = true
			mu.Unlock()

			b.clock.Advance(11 * time.Minute) // due for refresh, still valid
			for range 2 {
				if _, err := b.client.ResetInstance(ctx, testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"}); err != nil {
					t.Fatalf("ResetInstance with a failing STS and a valid key = %v", err)
				}
			}
			if n := len(callsOf(b.server, ActionAssumeRole)); n != 2 {
				t.Errorf("%d AssumeRole calls, want 2 (one failed refresh, then a pause)", n)
			}

			b.clock.Advance(5 * time.Minute) // expired
			_, err := b.client.ResetInstance(ctx, testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
			want := APIError{Code: tt.code, RequestID: "err-" + tt.code, Class: tt.wantClass}
			e := checkAPIError(t, err, ActionResetInstance, want, "assume role: AssumeRole: "+tt.code)
			if _, ok := errors.AsType[*APIError](e.Err); !ok {
				t.Errorf("error %v does not wrap AssumeRole's *APIError", err)
			}
			if n := len(callsOf(b.server, ActionResetInstance)); n != 3 {
				t.Errorf("%d ResetInstance calls, want 3: none after the key expired", n)
			}
		})
	}
}

// TestRoleTokenFailureResent checks that a call refused for its token is
// sent once more with a newly assumed key, and only once.
func TestRoleTokenFailureResent(t *testing.T) {
	t.Parallel()
	for _, refusals := range []int{1, 2} {
		t.Run(strings.Repeat("Refused", refusals), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			n := 0
			b := setupRole(t, time.Hour, func(w http.ResponseWriter, r *http.Request, c apiCall) {
				mu.Lock()
				n++
				refuse := n <= refusals
				mu.Unlock()
				if refuse {
					writeAPIError(w, http.StatusOK, codeTokenFailure, "token revoked")
					return
				}
				writeFixture(t, w, c.Action+".json")
			})

			id, err := b.client.ResetInstance(t.Context(), testRegion, ResetInstanceRequest{InstanceID: "lhins-ruy9d2tw"})
			resets := callsOf(b.server, ActionResetInstance)
			if len(resets) != 2 || resets[0].SecretID != "AKIDtemporary0001" || resets[1].SecretID != "AKIDtemporary0002" {
				t.Errorf("ResetInstance calls signed by %v, want two, by the first and the second key", resets)
			}
			if refusals == 1 {
				if err != nil || id != "cb7aaa99-b31a-4767-9d41-4ebdbdf3ba9c" {
					t.Errorf("ResetInstance = %q, %v; want the fixture's RequestId", id, err)
				}
				return
			}
			checkAPIError(t, err, ActionResetInstance, APIError{Code: codeTokenFailure, RequestID: "err-" + codeTokenFailure, Class: ClassFatal}, "token revoked")
		})
	}
}

// TestRoleSTSEndpoint checks that Role.STSEndpoint sends AssumeRole
// elsewhere while the other calls stay on Endpoint.
func TestRoleSTSEndpoint(t *testing.T) {
	t.Parallel()
	api := &apiServer{t: t, id: testSecretID, key: testSecretKey}
	sts := &apiServer{t: t, id: testSecretID, key: testSecretKey}
	sts.respond = func(w http.ResponseWriter, r *http.Request, c apiCall) { sts.assumeRole(w, c) }
	apiTS, stsTS := httptest.NewServer(api), httptest.NewServer(sts)
	t.Cleanup(apiTS.Close)
	t.Cleanup(stsTS.Close)
	// The API server accepts the keys the STS server hands out.
	api.respond = func(w http.ResponseWriter, r *http.Request, c apiCall) { writeFixture(t, w, c.Action+".json") }
	c := newTestClient(t, Config{Endpoint: apiTS.URL, Role: Role{ARN: testRoleARN, STSEndpoint: stsTS.URL}})

	key, err := c.CurrentCredential(t.Context())
	if err != nil {
		t.Fatalf("CurrentCredential() = %v", err)
	}
	sts.mu.Lock()
	api.temp = sts.temp
	sts.mu.Unlock()
	if _, err := c.DescribeRegions(t.Context()); err != nil {
		t.Fatalf("DescribeRegions = %v", err)
	}
	if n := len(callsOf(sts, ActionAssumeRole)); n != 1 || len(api.Calls()) != 1 || len(sts.Calls()) != 1 {
		t.Errorf("STS server got %d calls, API server %d; want 1 each", len(sts.Calls()), len(api.Calls()))
	}
	if got := api.Calls()[0].SecretID; got != key.SecretID {
		t.Errorf("DescribeRegions signed by %s, want %s", got, key.SecretID)
	}
	if p := sts.Calls()[0].Params; !strings.HasPrefix(p["RoleSessionName"].(string), DefaultRoleSessionPrefix) || p["DurationSeconds"] != 7200.0 {
		t.Errorf("AssumeRole parameters %v, want the default session name and duration", p)
	}
}

func TestCurrentCredentialWithoutRole(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	got, err := b.client.CurrentCredential(context.Background())
	if want := (Credential{SecretID: testSecretID, SecretKey: testSecretKey}); err != nil || got != want {
		t.Errorf("CurrentCredential() = %v, %v; want %v", got, err, want)
	}
	if n := len(b.server.Calls()); n != 0 {
		t.Errorf("CurrentCredential made %d calls, want 0", n)
	}
}

// TestEndpoints checks which scheme and host serve each service.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		endpoint, sts string
		want          map[string]string // service -> scheme://host
	}{
		{
			endpoint: "https://lighthouse.tencentcloudapi.com",
			want: map[string]string{
				"lighthouse": "https://lighthouse.tencentcloudapi.com", "tag": "https://tag.tencentcloudapi.com",
				"tat": "https://tat.tencentcloudapi.com", "sts": "https://sts.tencentcloudapi.com",
			},
		},
		{
			endpoint: "https://lighthouse.ap-guangzhou.tencentcloudapi.com/",
			want: map[string]string{
				"lighthouse": "https://lighthouse.ap-guangzhou.tencentcloudapi.com", "tag": "https://tag.ap-guangzhou.tencentcloudapi.com",
				"tat": "https://tat.ap-guangzhou.tencentcloudapi.com", "sts": "https://sts.ap-guangzhou.tencentcloudapi.com",
			},
		},
		{
			endpoint: IntlEndpoint, // the international site: every service on its .intl domain
			want: map[string]string{
				"lighthouse": "https://lighthouse.intl.tencentcloudapi.com", "tag": "https://tag.intl.tencentcloudapi.com",
				"tat": "https://tat.intl.tencentcloudapi.com", "sts": "https://sts.intl.tencentcloudapi.com",
			},
		},
		{
			endpoint: "https://lighthouse.intl.tencentcloudapi.com", sts: "https://sts.tencentcloudapi.com",
			want: map[string]string{
				"lighthouse": "https://lighthouse.intl.tencentcloudapi.com", "tag": "https://tag.intl.tencentcloudapi.com",
				"tat": "https://tat.intl.tencentcloudapi.com", "sts": "https://sts.tencentcloudapi.com",
			},
		},
		{
			endpoint: "http://127.0.0.1:8080",
			want: map[string]string{
				"lighthouse": "http://127.0.0.1:8080", "tag": "http://127.0.0.1:8080",
				"tat": "http://127.0.0.1:8080", "sts": "http://127.0.0.1:8080",
			},
		},
		{
			endpoint: "http://lighthouse:8080", // a host named lighthouse, no domain
			want: map[string]string{
				"lighthouse": "http://lighthouse:8080", "tag": "http://lighthouse:8080",
				"tat": "http://lighthouse:8080", "sts": "http://lighthouse:8080",
			},
		},
	}
	for _, tt := range tests {
		cfg := Config{Endpoint: tt.endpoint, Credential: Credential{SecretID: testSecretID, SecretKey: testSecretKey}}
		if tt.sts != "" {
			cfg.Role = Role{ARN: testRoleARN, STSEndpoint: tt.sts}
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatalf("New(%s) = %v", tt.endpoint, err)
		}
		got := make(map[string]string)
		for _, s := range []service{serviceLighthouse, serviceTag, serviceTAT, serviceSTS} {
			scheme, host := c.endpoint(s)
			got[s.name] = scheme + "://" + host
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("New(%s) endpoints mismatch (-want +got):\n%s", tt.endpoint, diff)
		}
	}
}

func TestNewRoleErrors(t *testing.T) {
	t.Parallel()
	cred := Credential{SecretID: testSecretID, SecretKey: testSecretKey}
	for _, role := range []Role{
		{ARN: testRoleARN, Duration: 13 * time.Hour},
		{ARN: testRoleARN, Duration: 1500 * time.Millisecond},
		{ARN: testRoleARN, SessionName: "x"},
		{ARN: testRoleARN, SessionName: "no spaces"},
		{ARN: testRoleARN, STSEndpoint: "sts.tencentcloudapi.com"},
	} {
		if _, err := New(Config{Credential: cred, Role: role}); err == nil {
			t.Errorf("New(Role %+v) = nil error, want one", role)
		}
	}
}
