package lighthouse

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiServer is a minimal endpoint of Lighthouse and the other services the
// Client calls, for this package's tests (the emulator is a separate
// package). It checks each request's TC3-HMAC-SHA256 signature, recomputed
// independently as lighthouse-api.md §2.5 tells a server to, and the common
// headers; records the call; and answers with respond, or with the action's
// fixture from testdata when respond is nil. Temporary keys handed out by
// assumeRole are accepted with their token until they expire by clock.
type apiServer struct {
	t       *testing.T
	id, key string // the long-term credential
	respond func(w http.ResponseWriter, r *http.Request, c apiCall)
	clock   func() time.Time // expires temporary keys; nil means time.Now

	mu    sync.Mutex
	calls []apiCall
	temp  map[string]tempKey // by SecretId
}

// tempKey is a temporary key assumeRole handed out.
type tempKey struct {
	secret, token string
	expires       time.Time
}

// apiCall is one request the server accepted.
type apiCall struct {
	Action   string
	Region   string
	Language string
	Host     string
	SecretID string         // the key that signed it
	Params   map[string]any // the JSON body; numbers are float64
}

// testServices maps every action the tests call to its signing service
// and version, written out here rather than taken from the package.
var testServices = map[string]struct {
	service, version string
	regional         bool
}{
	"ResetInstance":                   {"lighthouse", "2020-03-24", true},
	"DescribeInstances":               {"lighthouse", "2020-03-24", true},
	"DescribeBlueprints":              {"lighthouse", "2020-03-24", true},
	"DescribeResetInstanceBlueprints": {"lighthouse", "2020-03-24", true},
	"DescribeKeyPairs":                {"lighthouse", "2020-03-24", true},
	"DescribeRegions":                 {"lighthouse", "2020-03-24", false},
	"GetResources":                    {"tag", "2018-08-13", false},
	"DescribeAutomationAgentStatus":   {"tat", "2020-10-28", true},
	"RunCommand":                      {"tat", "2020-10-28", true},
	"DescribeInvocationTasks":         {"tat", "2020-10-28", true},
	"AssumeRole":                      {"sts", "2018-08-13", false},
}

func (s *apiServer) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.t.Errorf("read request body: %v", err)
		return
	}
	c := apiCall{
		Action:   r.Header.Get("X-TC-Action"),
		Region:   r.Header.Get("X-TC-Region"),
		Language: r.Header.Get("X-TC-Language"),
		Host:     r.Host,
		SecretID: signedID(r),
	}
	secret, token, err := s.keyFor(c.SecretID, c.Action)
	if err == nil {
		err = verifyRequest(r, body, c.SecretID, secret, token, time.Now())
	}
	if err != nil {
		s.t.Errorf("%s request rejected: %v", c.Action, err)
		writeAPIError(w, http.StatusOK, "AuthFailure.SignatureFailure", err.Error())
		return
	}
	if err := json.Unmarshal(body, &c.Params); err != nil {
		s.t.Errorf("request body %q: %v", body, err)
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()

	if s.respond != nil {
		s.respond(w, r, c)
		return
	}
	writeFixture(s.t, w, c.Action+".json")
}

// signedID returns the SecretId in a request's Authorization header.
func signedID(r *http.Request) string {
	_, rest, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// keyFor returns the secret key and token a call signed by id must use:
// AssumeRole takes the long-term key, other calls either it or an
// unexpired temporary key.
func (s *apiServer) keyFor(id, action string) (secret, token string, err error) {
	if id == s.id {
		return s.key, "", nil
	}
	s.mu.Lock()
	k, ok := s.temp[id]
	s.mu.Unlock()
	switch {
	case !ok:
		return "", "", fmt.Errorf("unknown SecretId %q", id)
	case action == "AssumeRole":
		return "", "", errors.New("AssumeRole signed with a temporary key")
	case !s.now().Before(k.expires):
		return "", "", fmt.Errorf("temporary key %s used after it expired at %v", id, k.expires)
	}
	return k.secret, k.token, nil
}

// assumeRole answers an AssumeRole call with a new temporary key that
// lasts the DurationSeconds asked, by clock.
func (s *apiServer) assumeRole(w http.ResponseWriter, c apiCall) {
	s.mu.Lock()
	n := len(s.temp) + 1
	k := tempKey{secret: fmt.Sprintf("tmp-key-%d", n), token: fmt.Sprintf("tmp-token-%d", n)}
	k.expires = s.now().Add(time.Duration(c.Params["DurationSeconds"].(float64)) * time.Second).Truncate(time.Second)
	id := fmt.Sprintf("AKIDtemporary%04d", n)
	if s.temp == nil {
		s.temp = make(map[string]tempKey)
	}
	s.temp[id] = k
	s.mu.Unlock()
	writeJSON(w, map[string]any{"Response": map[string]any{
		"Credentials": map[string]any{"Token": k.token, "TmpSecretId": id, "TmpSecretKey": k.secret},
		"ExpiredTime": k.expires.Unix(),
		"Expiration":  k.expires.UTC().Format(time.RFC3339),
		"RequestId":   fmt.Sprintf("sts-%d", n),
	}})
}

// Calls returns the calls received so far.
func (s *apiServer) Calls() []apiCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// verifyRequest checks what a server checks before acting: method and
// path, the common headers, the token, and the TC3 signature over the
// canonical request built from the SignedHeaders list and the raw body.
func verifyRequest(r *http.Request, body []byte, secretID, secretKey, token string, now time.Time) error {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		return fmt.Errorf("%s %s, want POST /", r.Method, r.URL.Path)
	}
	a := r.Header.Get("X-TC-Action")
	svc, ok := testServices[a]
	if !ok {
		return fmt.Errorf("X-TC-Action = %q", a)
	}
	if v := r.Header.Get("X-TC-Version"); v != svc.version {
		return fmt.Errorf("X-TC-Version = %q, want %q", v, svc.version)
	}
	if svc.regional && r.Header.Get("X-TC-Region") == "" {
		return errors.New("no X-TC-Region")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("Content-Type = %q", ct)
	}
	if got := r.Header.Get("X-TC-Token"); got != token {
		return fmt.Errorf("X-TC-Token = %q, want %q", got, token)
	}
	return verifySignature(r, body, svc.service, secretID, secretKey, now)
}

// verifySignature follows lighthouse-api.md §2.1–2.5.
func verifySignature(r *http.Request, body []byte, service, secretID, secretKey string, now time.Time) error {
	algorithm, rest, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if algorithm != "TC3-HMAC-SHA256" {
		return fmt.Errorf("algorithm %q", algorithm)
	}
	parts := map[string]string{}
	for p := range strings.SplitSeq(rest, ", ") {
		k, v, _ := strings.Cut(p, "=")
		parts[k] = v
	}
	scope := strings.Split(parts["Credential"], "/")
	if len(scope) != 4 || scope[0] != secretID || scope[2] != service || scope[3] != "tc3_request" {
		return fmt.Errorf("credential scope %q", parts["Credential"])
	}
	timestamp := r.Header.Get("X-TC-Timestamp")
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("X-TC-Timestamp: %v", err)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %d is %v from now", ts, d)
	}
	date := time.Unix(ts, 0).UTC().Format("2006-01-02")
	if scope[1] != date {
		return fmt.Errorf("scope date %s, want %s", scope[1], date)
	}

	signed := strings.Split(parts["SignedHeaders"], ";")
	if !slices.IsSorted(signed) || !slices.Contains(signed, "content-type") || !slices.Contains(signed, "host") {
		return fmt.Errorf("SignedHeaders %q", parts["SignedHeaders"])
	}
	var headers strings.Builder
	for _, name := range signed {
		v := r.Header.Get(name)
		if name == "host" {
			v = r.Host
		}
		fmt.Fprintf(&headers, "%s:%s\n", name, strings.ToLower(strings.TrimSpace(v)))
	}
	canonical := strings.Join([]string{
		r.Method, "/", r.URL.RawQuery, headers.String(), parts["SignedHeaders"], sha256Hex(body),
	}, "\n")
	stringToSign := strings.Join([]string{
		algorithm, timestamp, date + "/" + service + "/tc3_request", sha256Hex([]byte(canonical)),
	}, "\n")
	key := hmacSHA256([]byte("TC3"+secretKey), date)
	key = hmacSHA256(key, service)
	key = hmacSHA256(key, "tc3_request")
	want := hex.EncodeToString(hmacSHA256(key, stringToSign))
	if !hmac.Equal([]byte(parts["Signature"]), []byte(want)) {
		return errors.New("signature mismatch")
	}
	return nil
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func writeFixture(t *testing.T, w http.ResponseWriter, name string) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Errorf("fixture: %v", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	writeBody(w, http.StatusOK, b)
}

func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	b, _ := json.Marshal(map[string]any{"Response": map[string]any{
		"Error":     map[string]string{"Code": code, "Message": message},
		"RequestId": "err-" + code,
	}})
	writeBody(w, status, b)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	writeBody(w, http.StatusOK, b)
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// TestVerifySignature checks the test server's verifier against the
// reference's Lighthouse test vector (§2.6), so that the client's signatures
// are judged by a verifier known to be right.
func TestVerifySignature(t *testing.T) {
	t.Parallel()
	const (
		secretID  = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
		secretKey = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
		body      = `{"InstanceId":"lhins-ruy9d2tw","BlueprintId":"lhbp-5e8807lo"}`
		signature = "a1d427eb378fe62da89919a7cbf44b4d3504e0e27e9290db179880cad625f163"
	)
	ts := time.Unix(1551113065, 0)
	newRequest := func() *http.Request {
		r, err := http.NewRequest(http.MethodPost, "https://lighthouse.tencentcloudapi.com/", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-TC-Timestamp", "1551113065")
		r.Header.Set("Authorization", "TC3-HMAC-SHA256 Credential="+secretID+"/2019-02-25/lighthouse/tc3_request, SignedHeaders=content-type;host, Signature="+signature)
		return r
	}

	if err := verifySignature(newRequest(), []byte(body), "lighthouse", secretID, secretKey, ts); err != nil {
		t.Errorf("verifySignature(test vector) = %v, want nil", err)
	}
	tampered := strings.Replace(body, "lo", "lx", 1)
	if err := verifySignature(newRequest(), []byte(tampered), "lighthouse", secretID, secretKey, ts); err == nil {
		t.Error("verifySignature(tampered body) = nil, want an error")
	}
	if err := verifySignature(newRequest(), []byte(body), "lighthouse", secretID, "wrong", ts); err == nil {
		t.Error("verifySignature(wrong key) = nil, want an error")
	}
	if err := verifySignature(newRequest(), []byte(body), "lighthouse", secretID, secretKey, ts.Add(time.Hour)); err == nil {
		t.Error("verifySignature(an hour later) = nil, want an error")
	}
}
