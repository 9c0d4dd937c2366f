// Package lighthouse is a typed client for the Tencent Cloud Lighthouse API
// (version 2020-03-24), built on the Tencent Cloud SDK's common client.
package lighthouse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
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
	// Endpoint is the API's base URL: "https://host" or, for the emulator,
	// "http://host:port". It may end in "/" but have no other path.
	// Default DefaultEndpoint.
	Endpoint string
	// Credential signs every request. Required.
	Credential Credential
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

// Client calls the Lighthouse API. It keeps one SDK client per region, all
// sharing one HTTP transport. The SDK's own retries, region breaker and debug
// dump are off: every call is sent exactly once, and every failure is
// returned as an *APIError whose Class tells the caller what to do.
//
// Create one with New. A Client is safe for concurrent use by multiple
// goroutines.
type Client struct {
	cred      *common.Credential
	scheme    string // "http" or "https"
	host      string // host[:port]
	timeout   time.Duration
	language  string
	transport *http.Transport

	mu      sync.Mutex
	clients map[string]*common.Client // by region
}

// New returns a Client for cfg.
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

	return &Client{
		cred:      common.NewTokenCredential(cfg.Credential.SecretID, cfg.Credential.SecretKey, cfg.Credential.Token),
		scheme:    scheme,
		host:      host,
		timeout:   cfg.Timeout,
		language:  cfg.Language,
		transport: tr,
		clients:   make(map[string]*common.Client),
	}, nil
}

// parseEndpoint splits an endpoint URL into the SDK profile's Scheme and
// Endpoint (host[:port]).
func parseEndpoint(endpoint string) (scheme, host string, err error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", "", fmt.Errorf("endpoint: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", "", fmt.Errorf("endpoint %q: scheme must be https or http", endpoint)
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("endpoint %q: no host", endpoint)
	}
	// The SDK always signs the canonical URI "/", so the API must sit at /.
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("endpoint %q: must be scheme://host[:port] with no path, query or user", endpoint)
	}
	return u.Scheme, u.Host, nil
}

// CloseIdleConnections closes the connections kept for reuse. The Client
// stays usable.
func (c *Client) CloseIdleConnections() {
	c.transport.CloseIdleConnections()
}

// sdk returns the SDK client for region, creating it on first use.
func (c *Client) sdk(region string) *common.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sc, ok := c.clients[region]; ok {
		return sc
	}
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.ReqMethod = "POST" // GET drops CommonRequest parameters
	cpf.HttpProfile.Scheme = c.scheme
	cpf.HttpProfile.Endpoint = c.host
	cpf.HttpProfile.ReqTimeout = 0 // no http.Client timeout: each call's context has one
	cpf.Language = c.language
	cpf.Debug = false // the debug dump would print X-TC-Token
	// The breaker would send traffic to a backup host (past the emulator);
	// retries would resend ResetInstance, which is not idempotent.
	cpf.DisableRegionBreaker = true
	cpf.NetworkFailureMaxRetries = 0
	cpf.RateLimitExceededMaxRetries = 0
	cpf.UnsafeRetryOnConnectionFailure = false
	sc := common.NewCommonClient(c.cred, region, cpf).WithHttpTransport(c.transport)
	c.clients[region] = sc
	return sc
}

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

// rawResponse keeps the body the SDK received, so that this package decodes
// it with encoding/json and reports a body it cannot decode as an *APIError.
// The SDK has already turned an error envelope into an error by then.
type rawResponse struct {
	*tchttp.BaseResponse
	body []byte
}

func (r *rawResponse) UnmarshalJSON(b []byte) error {
	r.body = bytes.Clone(b)
	return nil
}

// ParseErrorFromHTTPResponse does nothing. The SDK calls it on every reply,
// after its TryReadErr has already looked for an error envelope in the same
// body in the same way: the repeated look (two more passes of the SDK's
// slow JSON decoder) cost a quarter of the client's CPU on a 100-instance
// DescribeInstances (BenchmarkRunUnlimited in package runner). TryReadErr
// skips replies served as application/octet-stream; call catches an error
// envelope in those from meta.Error, in the pass it makes anyway.
func (r *rawResponse) ParseErrorFromHTTPResponse([]byte) error { return nil }

// call sends action to region with params and decodes the Response object
// of the reply into out.
func (c *Client) call(ctx context.Context, region, action string, params any, out response) error {
	if region == "" {
		return invalidParameter(action, errors.New("region is empty"))
	}
	body, err := json.Marshal(params)
	if err != nil {
		return invalidParameter(action, err)
	}
	req := tchttp.NewCommonRequest(Service, Version, action)
	if err := req.SetActionParameters(body); err != nil {
		return invalidParameter(action, err)
	}

	// Cancelling also closes a connection whose response body the SDK left
	// open (it does on some failures), so no call holds a connection after
	// it returns.
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, fmt.Errorf("call timeout %v: %w", c.timeout, context.DeadlineExceeded))
	defer cancel()
	// A request that never got a connection never left: resending it is
	// safe even for ResetInstance.
	var gotConn atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
	})
	req.SetContext(ctx)

	raw := &rawResponse{BaseResponse: &tchttp.BaseResponse{}}
	if err := c.sdk(region).Send(req, raw); err != nil {
		return c.apiError(ctx, action, err, !gotConn.Load())
	}

	// Nulls leave fields zero and unknown fields are ignored, as the API
	// adds fields over time.
	env := struct {
		Response any `json:"Response"`
	}{Response: out}
	if err := json.Unmarshal(raw.body, &env); err != nil {
		return &APIError{Action: action, Code: CodeParseJSONError, Message: truncate("decode response: " + err.Error()), Class: Classify(action, CodeParseJSONError), Err: err}
	}
	if e := out.envelopeError(); e != nil && e.Code != "" {
		// Only a reply TryReadErr skipped gets here (see
		// rawResponse.ParseErrorFromHTTPResponse): report it as the SDK would.
		return c.apiError(ctx, action, tcerr.NewTencentCloudSDKError(e.Code, e.Message, out.requestID()), false)
	}
	if out.requestID() == "" {
		// The API names every reply it processed with a RequestId; a reply
		// without one is not the API's, and a reset may still have landed.
		return &APIError{Action: action, Code: CodeParseJSONError, Message: "response has no RequestId", Class: Classify(action, CodeParseJSONError)}
	}
	return nil
}

// invalidParameter reports a call that was not sent because of its
// arguments.
func invalidParameter(action string, err error) *APIError {
	return &APIError{Action: action, Code: CodeInvalidParameter, Message: err.Error(), Class: Classify(action, CodeInvalidParameter), Err: err}
}

// apiError turns an error from the SDK into an *APIError. neverSent means no
// connection was obtained for the request.
func (c *Client) apiError(ctx context.Context, action string, err error, neverSent bool) *APIError {
	e := &APIError{Action: action, Err: err}
	var sdkErr *tcerr.TencentCloudSDKError
	if errors.As(err, &sdkErr) {
		e.Code, e.Message, e.RequestID = sdkErr.Code, sdkErr.Message, sdkErr.RequestId
		if cause := sdkErr.Unwrap(); cause != nil {
			e.Message += ": " + cause.Error()
		}
	} else {
		// Not the SDK's own error: a response body it could not read, such
		// as an unsupported Content-Encoding.
		e.Code, e.Message = CodeIOError, err.Error()
	}
	// The SDK drops the context's error when the context cuts a body read
	// short; keep it reachable by errors.Is. (A reply with a RequestId came
	// from the API, whatever the context did afterwards.)
	if cause := context.Cause(ctx); cause != nil && e.RequestID == "" && !errors.Is(err, cause) {
		e.Err = errors.Join(err, cause)
		e.Message += " (" + cause.Error() + ")"
	}
	e.Message = truncate(e.Message)
	e.Class = Classify(action, e.Code)
	if e.Code == CodeNetworkError && (neverSent || isDialError(err)) {
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
