// Package lighthouse is a typed client for the Tencent Cloud Lighthouse API
// (version 2020-03-24) and the Tag, TAT and STS actions batchreset uses,
// built on the Tencent Cloud SDK's common client.
package lighthouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
)

// Defaults for zero Config fields.
const (
	DefaultTimeout             = 30 * time.Second
	DefaultMaxIdleConnsPerHost = 64
	DefaultLanguage            = "en-US"
)

// maxMessageLen caps APIError.Message: the SDK puts whole response bodies
// (a proxy's HTML error page, say) into its client-side messages.
const maxMessageLen = 512

// Config configures a Client. Zero fields take the defaults given.
type Config struct {
	// Endpoint is the Lighthouse API's base URL: "https://host" or, for the
	// emulator, "http://host:port", normalised by NormalizeEndpoint: it
	// may end in "/" but have no other path. When the host's first label is "lighthouse", the other services
	// get the same host with their own first label (tag.tencentcloudapi.com,
	// tat.ap-guangzhou.tencentcloudapi.com, sts.intl.tencentcloudapi.com);
	// any other host (an emulator, a proxy) serves every service.
	// Default DefaultEndpoint.
	Endpoint string
	// Credential signs every request, or, with a Role, the STS calls that
	// assume the role. Required.
	Credential Credential
	// Role, when its ARN is set, is assumed through STS with Credential, and
	// every other call is signed with the role's temporary key, assumed on
	// first use and again before it expires. Default: no role.
	Role Role
	// Timeout bounds each call (one HTTP request and its response), on top
	// of any deadline of the caller's context. Default 30s (the SDK's is
	// 60s): a ResetInstance that times out is ambiguous and must be
	// reconciled, so the timeout sits far above the API's normal latency
	// but stops a stuck call from holding a worker for minutes.
	Timeout time.Duration
	// MaxIdleConnsPerHost is how many connections to the endpoint are kept
	// open for reuse. It also caps the connections open at once: calls
	// beyond it wait for a free connection, within their Timeout. Default 64.
	MaxIdleConnsPerHost int
	// Language is sent as X-TC-Language and selects the language of error
	// messages: "en-US" or "zh-CN". Default "en-US".
	Language string
}

// Client calls the Lighthouse, Tag, TAT and STS APIs. It keeps one SDK
// client per region and signing key, all sharing one HTTP transport. The
// SDK signs and sends; the Client decodes each reply once, itself. The SDK's
// own retries, region breaker and debug dump are off: every call is sent
// exactly once (a call refused for an expired role token is re-signed and
// sent once more), and every failure is returned as an *APIError whose
// Class tells the caller what to do.
//
// Create one with New. A Client is safe for concurrent use by multiple
// goroutines.
type Client struct {
	scheme string // "http" or "https"
	host   string // host[:port] of Lighthouse
	// hostSuffix follows the first label of host ("." + the rest) when each
	// service has its own host; "" when host serves every service.
	hostSuffix string
	// stsScheme and stsHost are Role.STSEndpoint's, or "" to derive them.
	stsScheme, stsHost string
	timeout            time.Duration
	language           string
	transport          *http.Transport
	roundTripper       http.RoundTripper // transport, decoding each reply

	key  *common.Credential // Config.Credential
	role *roleKey           // nil without a Role
	now  func() time.Time

	mu      sync.Mutex
	clients map[sdkKey]*common.Client
}

// sdkKey names one SDK client: a region and the key it signs with.
type sdkKey struct {
	region   string
	longTerm bool // signs with Config.Credential even when there is a Role
}

// New returns a Client for cfg. It makes no call: a Role is first assumed
// by the first call that needs it (see CurrentCredential).
func New(cfg Config) (*Client, error) {
	if cfg.Credential.SecretID == "" || cfg.Credential.SecretKey == "" {
		return nil, errors.New("new lighthouse client: credential has no secret ID or key")
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	scheme, host, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("new lighthouse client: %w", err)
	}
	if cfg.Timeout < 0 || cfg.MaxIdleConnsPerHost < 0 {
		return nil, errors.New("new lighthouse client: negative Timeout or MaxIdleConnsPerHost")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxIdleConnsPerHost == 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.Language == "" {
		cfg.Language = DefaultLanguage
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = cfg.MaxIdleConnsPerHost
	tr.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerHost
	tr.MaxConnsPerHost = cfg.MaxIdleConnsPerHost

	c := &Client{
		scheme:       scheme,
		host:         host,
		hostSuffix:   hostSuffix(host),
		timeout:      cfg.Timeout,
		language:     cfg.Language,
		transport:    tr,
		roundTripper: &replyDecoder{base: tr},
		key:          common.NewTokenCredential(cfg.Credential.SecretID, cfg.Credential.SecretKey, cfg.Credential.Token),
		now:          time.Now,
		clients:      make(map[sdkKey]*common.Client),
	}
	if cfg.Role.ARN != "" {
		role, err := cfg.Role.withDefaults(c.now())
		if err != nil {
			return nil, fmt.Errorf("new lighthouse client: %w", err)
		}
		if role.STSEndpoint != "" {
			if c.stsScheme, c.stsHost, err = parseEndpoint(role.STSEndpoint); err != nil {
				return nil, fmt.Errorf("new lighthouse client: STS %w", err)
			}
		}
		c.role = &roleKey{client: c, role: role}
	}
	return c, nil
}

// hostSuffix returns what follows the first label of host when that label
// is Service, so that other services can swap in their own; otherwise "".
func hostSuffix(host string) string {
	if rest, ok := strings.CutPrefix(host, Service+"."); ok && rest != "" {
		return "." + rest
	}
	return ""
}

// parseEndpoint splits an endpoint URL, normalised (NormalizeEndpoint),
// into the SDK profile's Scheme and Endpoint (host[:port]).
func parseEndpoint(endpoint string) (scheme, host string, err error) {
	norm, err := NormalizeEndpoint(endpoint)
	if err != nil {
		return "", "", err
	}
	scheme, host, _ = strings.Cut(norm, "://")
	return scheme, host, nil
}

// CloseIdleConnections closes the connections kept for reuse. The Client
// stays usable.
func (c *Client) CloseIdleConnections() {
	c.transport.CloseIdleConnections()
}

// sdk returns the SDK client for region signing with the long-term key
// or the current one, creating it on first use.
func (c *Client) sdk(region string, longTerm bool) *common.Client {
	k := sdkKey{region: region, longTerm: longTerm || c.role == nil}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sc, ok := c.clients[k]; ok {
		return sc
	}
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.ReqMethod = "POST" // GET drops CommonRequest parameters
	cpf.HttpProfile.ReqTimeout = 0     // no http.Client timeout: each call's context has one
	cpf.Language = c.language
	cpf.Debug = false // the debug dump would print X-TC-Token
	// The breaker would send traffic to a backup host (past the emulator);
	// retries would resend ResetInstance, which is not idempotent.
	cpf.DisableRegionBreaker = true
	cpf.NetworkFailureMaxRetries = 0
	cpf.RateLimitExceededMaxRetries = 0
	cpf.UnsafeRetryOnConnectionFailure = false
	var cred common.CredentialIface = c.key
	if !k.longTerm {
		cred = c.role
	}
	sc := common.NewCommonClient(cred, region, cpf).WithHttpTransport(c.roundTripper)
	c.clients[k] = sc
	return sc
}

// endpoint returns the scheme and host that serve s.
func (c *Client) endpoint(s service) (scheme, host string) {
	if s == serviceSTS && c.stsHost != "" {
		return c.stsScheme, c.stsHost
	}
	if c.hostSuffix == "" {
		return c.scheme, c.host
	}
	return c.scheme, s.name + c.hostSuffix
}

// service is one API the Client calls.
type service struct {
	name     string // signing name and the host's first label
	version  string // X-TC-Version
	regional bool   // calls must name a region
}

// The services the Client calls.
var (
	serviceLighthouse = service{name: Service, version: Version, regional: true}
	serviceTag        = service{name: TagService, version: TagVersion}
	serviceTAT        = service{name: TATService, version: TATVersion, regional: true}
	serviceSTS        = service{name: STSService, version: STSVersion}
)

// response is implemented by every response struct, through meta.
type response interface {
	requestID() string
	envelopeError() *envelopeError
}

// meta holds the fields every response has. Error is set only in an error
// envelope.
type meta struct {
	RequestID string         `json:"RequestId"`
	Error     *envelopeError `json:"Error"`
}

// envelopeError is the Error object of an error envelope.
type envelopeError struct {
	Code    string `json:"Code"`
	Message string `json:"Message"`
}

func (m meta) requestID() string             { return m.RequestID }
func (m meta) envelopeError() *envelopeError { return m.Error }

// call sends action of s to region with params and decodes the Response
// object of the reply into out. region is required for a regional service;
// "" sends no X-TC-Region. A Role is assumed or refreshed first, and a
// call the API refuses with AuthFailure.TokenFailure (the temporary key
// was revoked or expired early) is sent once more with a fresh key: the API
// checks the token before it acts, so even a ResetInstance is safe to resend.
func (c *Client) call(ctx context.Context, s service, region, action string, params any, out response) error {
	if s.regional && region == "" {
		return invalidParameter(action, errors.New("region is empty"))
	}
	body, err := json.Marshal(params)
	if err != nil {
		return invalidParameter(action, err)
	}
	// AssumeRole is signed with the long-term key; every other call, even
	// STS's GetCallerIdentity, with the key the Lighthouse calls use.
	longTerm := action == ActionAssumeRole
	if c.role == nil || longTerm {
		return c.send(ctx, s, region, action, body, longTerm, out)
	}
	for attempt := 0; ; attempt++ {
		used, err := c.role.current(ctx)
		if err != nil {
			return roleError(action, err)
		}
		err = c.send(ctx, s, region, action, body, false, out)
		if ae, ok := errors.AsType[*APIError](err); attempt > 0 || !ok || ae.Code != codeTokenFailure {
			return err
		}
		c.role.expire(used)
	}
}

// send makes one call with the request body and decodes the reply into out.
func (c *Client) send(ctx context.Context, s service, region, action string, body []byte, longTerm bool, out response) error {
	req := tchttp.NewCommonRequest(s.name, s.version, action)
	if err := req.SetActionParameters(body); err != nil {
		return invalidParameter(action, err)
	}
	scheme, host := c.endpoint(s)
	req.SetScheme(scheme)
	req.SetDomain(host)
	req.SetPath("/")

	// Cancelling also closes a connection whose response body was left
	// open, so no call holds a connection after it returns.
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, fmt.Errorf("call timeout %v: %w", c.timeout, context.DeadlineExceeded))
	defer cancel()
	// A request that never got a connection never left: resending it is
	// safe even for ResetInstance.
	var gotConn atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
	})
	x := &exchange{out: out}
	req.SetContext(context.WithValue(ctx, exchangeKey{}, x))

	if err := c.sdk(region, longTerm).Send(req, &decodedResponse{}); err != nil {
		return finish(ctx, sdkError(action, err), !gotConn.Load())
	}
	if x.code != "" {
		return finish(ctx, &APIError{Action: action, Code: x.code, Message: x.message, RequestID: x.requestID, Err: x.cause}, false)
	}
	return nil
}

// roleError reports a call not sent because its role could not be
// assumed: err is AssumeRole's *APIError, or the context's cause when the
// call gave up waiting for another's AssumeRole. Nothing of the call left,
// so what would be ambiguous is retryable.
func roleError(action string, err error) *APIError {
	e := &APIError{Action: action, Code: CodeNetworkError, Message: "assume role: " + err.Error(), Class: ClassRetryable, Err: err}
	if ae, ok := errors.AsType[*APIError](err); ok {
		e.Code, e.RequestID, e.Class = ae.Code, ae.RequestID, ae.Class
		if e.Class == ClassAmbiguous {
			e.Class = ClassRetryable
		}
	}
	e.Message = truncate(e.Message)
	return e
}

// invalidParameter reports a call that was not sent because of its
// arguments.
func invalidParameter(action string, err error) *APIError {
	return &APIError{Action: action, Code: CodeInvalidParameter, Message: err.Error(), Class: Classify(action, CodeInvalidParameter), Err: err}
}

// sdkError turns an error from the SDK's Send into an *APIError, not yet
// finished.
func sdkError(action string, err error) *APIError {
	e := &APIError{Action: action, Err: err}
	var sdkErr *tcerr.TencentCloudSDKError
	if errors.As(err, &sdkErr) {
		e.Code, e.Message, e.RequestID = sdkErr.Code, sdkErr.Message, sdkErr.RequestId
		if cause := sdkErr.Unwrap(); cause != nil {
			e.Message += ": " + cause.Error()
		}
	} else {
		e.Code, e.Message = CodeIOError, err.Error()
	}
	return e
}

// finish completes e: the context's cause, a bounded Message and the Class.
// neverSent means no connection was obtained for the request.
func finish(ctx context.Context, e *APIError, neverSent bool) *APIError {
	// The transport drops the context's error when the context cuts a body
	// read short; keep it reachable by errors.Is. (A reply with a RequestId
	// came from the API, whatever the context did afterwards.)
	if cause := context.Cause(ctx); cause != nil && e.RequestID == "" && !errors.Is(e.Err, cause) {
		e.Err = errors.Join(e.Err, cause)
		e.Message += " (" + cause.Error() + ")"
	}
	e.Message = truncate(e.Message)
	e.Class = Classify(e.Action, e.Code)
	if e.Code == CodeNetworkError && (neverSent || isDialError(e.Err)) {
		e.Class = ClassRetryable
	}
	return e
}

// isDialError reports whether err comes from connecting (refused, no route,
// DNS failure): the request provably never left.
func isDialError(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}

// truncate cuts s to maxMessageLen bytes at a rune boundary.
func truncate(s string) string {
	if len(s) <= maxMessageLen {
		return s
	}
	n := maxMessageLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.TrimSpace(s[:n]) + "..."
}
