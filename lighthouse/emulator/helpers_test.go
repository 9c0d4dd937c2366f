package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"

	"github.com/batchreset/batchreset/lighthouse/emulator"
)

const (
	testSecretID  = "AKIDemulatortest"
	testSecretKey = "emulator-test-secret-key"
	testRegion    = "ap-guangzhou"
)

// fakeClock is a clock a test moves by hand. It starts at the real time
// because the SDK signs with the real clock and the emulator rejects
// signatures more than five minutes off.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// bundle is what most tests need: an emulator served over real HTTP and an
// SDK client for it.
type bundle struct {
	emu    *emulator.Server
	srv    *httptest.Server
	client *common.Client
}

// setup starts cfg's emulator (with the test credentials when cfg has none)
// and a client signing for testRegion.
func setup(t *testing.T, cfg emulator.Config) *bundle {
	t.Helper()
	if cfg.Credentials == nil {
		cfg.Credentials = map[string]string{testSecretID: testSecretKey}
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(func() {
		emu.Close()
		srv.Close()
	})
	return &bundle{emu: emu, srv: srv, client: newClient(t, srv, testSecretID, testSecretKey, testRegion, nil)}
}

// newClient returns the official SDK's common client for srv, set up as the
// reference recommends: POST, http, no region breaker, no retries. edit, if
// not nil, changes the profile first.
func newClient(t testing.TB, srv *httptest.Server, secretID, secretKey, region string, edit func(*profile.ClientProfile)) *common.Client {
	t.Helper()
	return newCredentialClient(t, srv, common.NewCredential(secretID, secretKey), region, edit)
}

// newCredentialClient is newClient for any credential, such as a
// temporary one with a token.
func newCredentialClient(t testing.TB, srv *httptest.Server, cred common.CredentialIface, region string, edit func(*profile.ClientProfile)) *common.Client {
	t.Helper()
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.ReqMethod = http.MethodPost
	cpf.HttpProfile.Scheme = "http"
	cpf.HttpProfile.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	cpf.HttpProfile.ReqTimeout = 30
	cpf.Language = "en-US"
	cpf.DisableRegionBreaker = true
	cpf.NetworkFailureMaxRetries = 0
	cpf.RateLimitExceededMaxRetries = 0
	if edit != nil {
		edit(cpf)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return common.NewCommonClient(cred, region, cpf).WithHttpTransport(tr)
}

// send calls action with params through c and decodes the "Response"
// object into out (when not nil).
func send(t testing.TB, c *common.Client, action string, params map[string]any, out any) error {
	t.Helper()
	return sendVersion(t, c, "2020-03-24", action, params, out)
}

func sendVersion(t testing.TB, c *common.Client, version, action string, params map[string]any, out any) error {
	t.Helper()
	return sendContext(t.Context(), t, c, version, action, params, out)
}

func sendContext(ctx context.Context, t testing.TB, c *common.Client, version, action string, params map[string]any, out any) error {
	t.Helper()
	return sendService(ctx, t, c, "lighthouse", version, action, params, out)
}

// Services and versions other than Lighthouse's.
const (
	stsVersion = "2018-08-13"
	tagVersion = "2018-08-13"
	tatVersion = "2020-10-28"
)

// sendService calls action of service (which the SDK signs as the credential
// scope) through c and decodes the "Response" object into out.
func sendService(ctx context.Context, t testing.TB, c *common.Client, service, version, action string, params map[string]any, out any) error {
	t.Helper()
	req := tchttp.NewCommonRequest(service, version, action)
	req.SetContext(ctx)
	if params == nil {
		params = map[string]any{}
	}
	if err := req.SetActionParameters(params); err != nil {
		t.Fatalf("SetActionParameters: %v", err)
	}
	resp := tchttp.NewCommonResponse()
	if err := c.Send(req, resp); err != nil {
		return err
	}
	if out != nil {
		var env struct{ Response json.RawMessage }
		if err := json.Unmarshal(resp.GetBody(), &env); err != nil {
			t.Fatalf("decode %s response: %v", action, err)
		}
		if err := json.Unmarshal(env.Response, out); err != nil {
			t.Fatalf("decode %s response: %v", action, err)
		}
	}
	return nil
}

// code returns the API error code of err, "" for nil.
func code(err error) string {
	if err == nil {
		return ""
	}
	var e *tcerr.TencentCloudSDKError
	if errors.As(err, &e) {
		return e.Code
	}
	return "not an SDK error: " + err.Error()
}

// instance is the part of DescribeInstances' Instance the tests read.
type instance struct {
	InstanceID                 string `json:"InstanceId"`
	BlueprintID                string `json:"BlueprintId"`
	Zone                       string `json:"Zone"`
	OsName                     string `json:"OsName"`
	Platform                   string `json:"Platform"`
	PlatformType               string `json:"PlatformType"`
	InstanceState              string `json:"InstanceState"`
	LatestOperation            string `json:"LatestOperation"`
	LatestOperationState       string `json:"LatestOperationState"`
	LatestOperationRequestID   string `json:"LatestOperationRequestId"`
	LatestOperationStartedTime string `json:"LatestOperationStartedTime"`
}

type describeInstancesResponse struct {
	TotalCount  int
	InstanceSet []instance
	RequestID   string `json:"RequestId"`
}

// describe returns instance id as DescribeInstances shows it.
func describe(t *testing.T, c *common.Client, id string) instance {
	t.Helper()
	var r describeInstancesResponse
	if err := send(t, c, "DescribeInstances", map[string]any{"InstanceIds": []string{id}}, &r); err != nil {
		t.Fatalf("DescribeInstances(%s) error: %v", id, err)
	}
	if len(r.InstanceSet) != 1 {
		t.Fatalf("DescribeInstances(%s) returned %d instances, want 1", id, len(r.InstanceSet))
	}
	return r.InstanceSet[0]
}

// reset calls ResetInstance and returns its RequestId.
func reset(t *testing.T, c *common.Client, id, blueprintID string) (string, error) {
	t.Helper()
	p := map[string]any{"InstanceId": id}
	if blueprintID != "" {
		p["BlueprintId"] = blueprintID
	}
	var r struct{ RequestId string }
	err := send(t, c, "ResetInstance", p, &r)
	return r.RequestId, err
}

// rawRequest is a hand-built API call.
type rawRequest struct {
	action, version, region, contentType string
	body                                 string
	secretID, secretKey                  string
	signedAt                             time.Time
	signedHost                           string // "" means the Host sent
	service                              string // "" means lighthouse
	method                               string // "" means POST
}

// rawResponse is what came back.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
	env    struct {
		Response struct {
			Error struct {
				Code    string
				Message string
			}
			RequestID string `json:"RequestId"`
		}
	}
}

// do sends rr to srv, signed with the test credentials unless it says
// otherwise.
func (rr rawRequest) do(t *testing.T, srv *httptest.Server) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), orDefault(rr.method, http.MethodPost), srv.URL+"/", strings.NewReader(rr.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", orDefault(rr.contentType, "application/json"))
	req.Header.Set("X-TC-Action", rr.action)
	req.Header.Set("X-TC-Version", orDefault(rr.version, "2020-03-24"))
	if rr.region != "-" {
		req.Header.Set("X-TC-Region", orDefault(rr.region, testRegion))
	}
	signedAt := rr.signedAt
	if signedAt.IsZero() {
		signedAt = time.Now()
	}
	emulator.SignTC3(req, []byte(rr.body), orDefault(rr.secretID, testSecretID), orDefault(rr.secretKey, testSecretKey),
		signedAt, orDefault(rr.signedHost, req.URL.Host), orDefault(rr.service, "lighthouse"))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("raw %s: %v", rr.action, err)
	}
	defer resp.Body.Close()
	out := rawResponse{status: resp.StatusCode, header: resp.Header}
	if out.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("raw %s: read body: %v", rr.action, err)
	}
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.NewDecoder(bytes.NewReader(out.body)).Decode(&out.env); err != nil {
			t.Fatalf("raw %s: decode %q: %v", rr.action, out.body, err)
		}
	}
	return out
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// ids returns n instance IDs: lhins-t0000000, lhins-t0000001…
func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("lhins-t%07d", i)
	}
	return out
}

// fleet returns instances with IDs ids(n), running blueprint
// lhbp-current0, in testRegion, and the blueprints of testBlueprints.
func fleet(n int) []emulator.Instance {
	out := make([]emulator.Instance, n)
	for i, id := range ids(n) {
		out[i] = emulator.Instance{ID: id, Region: testRegion, BlueprintID: "lhbp-current0", CPU: 2, Memory: 2, DiskSize: 50}
	}
	return out
}

// Blueprints every test fleet can use.
const (
	bpCurrent     = "lhbp-current0" // installed on fleet(n)
	bpTarget      = "lhbp-target00" // Linux, fits
	bpWindows     = "lhbp-windows0" // other platform
	bpBig         = "lhbp-bigdisk0" // needs more disk than fleet(n) has
	bpSyncing     = "lhbp-syncing0" // not NORMAL
	bpOtherRegion = "lhbp-shanghai" // only in ap-shanghai
)

func testBlueprints() []emulator.Blueprint {
	return []emulator.Blueprint{
		{ID: bpCurrent, Name: "CentOS", Platform: "CENTOS", OsName: "CentOS 7.6 64bit", RequiredDiskSize: 20, RequiredMemory: 1},
		{ID: bpTarget, Name: "Ubuntu", Platform: "UBUNTU", OsName: "Ubuntu Server 22.04 LTS 64bit", RequiredDiskSize: 20, RequiredMemory: 1},
		{ID: bpWindows, Name: "Windows", PlatformType: "WINDOWS", Type: "APP_OS"},
		{ID: bpBig, Name: "Big", RequiredDiskSize: 100, RequiredMemory: 1},
		{ID: bpSyncing, Name: "Syncing", State: "SYNCING", Type: "PRIVATE"},
		{ID: bpOtherRegion, Name: "Shanghai only", Region: "ap-shanghai", Type: "PRIVATE"},
	}
}

// noLimits lifts every rate limit.
func noLimits() map[string]int {
	limits := emulator.DefaultRateLimits()
	for action := range limits {
		limits[action] = -1
	}
	return limits
}

// rootUIN is the UIN of Config's own account when Config.UIN is empty.
const rootUIN = "100000000001"
