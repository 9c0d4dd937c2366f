package emulator

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// signatureVector is a test vector from reference §2.6.
type signatureVector struct {
	name, service, host, contentType, body string
	payloadHash, canonicalHash, signature  string
}

const (
	vectorSecretID  = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
	vectorSecretKey = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
	vectorTimestamp = 1551113065 // 2019-02-25 UTC
)

var signatureVectors = []signatureVector{
	{
		name:          "Doc",
		service:       "cvm",
		host:          "cvm.tencentcloudapi.com",
		contentType:   "application/json; charset=utf-8",
		body:          `{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`,
		payloadHash:   "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064",
		canonicalHash: "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031",
		signature:     "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
	},
	{
		name:          "Lighthouse",
		service:       "lighthouse",
		host:          "lighthouse.tencentcloudapi.com",
		contentType:   "application/json",
		body:          `{"InstanceId":"lhins-ruy9d2tw","BlueprintId":"lhbp-5e8807lo"}`,
		payloadHash:   "ff929afd3f6de87dd69e9201f58e201290ba1f40d426e7591f0512b9d0df9d0a",
		canonicalHash: "74a780c215bb2ca3ced9dc7c109e185a5fd0521c6417abbcef9a11a57b08de21",
		signature:     "a1d427eb378fe62da89919a7cbf44b4d3504e0e27e9290db179880cad625f163",
	},
}

func (v signatureVector) authorization() string {
	return "TC3-HMAC-SHA256 Credential=" + vectorSecretID + "/2019-02-25/" + v.service +
		"/tc3_request, SignedHeaders=content-type;host, Signature=" + v.signature
}

func (v signatureVector) request(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://"+v.host+"/", strings.NewReader(body))
	r.Header.Set("Content-Type", v.contentType)
	r.Header.Set("X-TC-Timestamp", "1551113065")
	r.Header.Set("Authorization", v.authorization())
	return r
}

func TestSignatureVectors(t *testing.T) {
	t.Parallel()
	for _, v := range signatureVectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			if got := sha256Hex([]byte(v.body)); got != v.payloadHash {
				t.Errorf("payload hash = %s, want %s", got, v.payloadHash)
			}
			cr := canonicalRequest("POST", "", []string{"content-type:" + v.contentType, "host:" + v.host}, "content-type;host", v.payloadHash)
			if got := sha256Hex([]byte(cr)); got != v.canonicalHash {
				t.Errorf("canonical request hash = %s, want %s\n%s", got, v.canonicalHash, cr)
			}
			key := signingKey(vectorSecretKey, "2019-02-25", v.service)
			sts := stringToSign("1551113065", "2019-02-25", v.service, v.canonicalHash)
			if got := hex.EncodeToString(hmacSHA256(key, sts)); got != v.signature {
				t.Errorf("signature = %s, want %s", got, v.signature)
			}
		})
	}
}

// TestVerifyVectors runs the vectors through the server-side check.
func TestVerifyVectors(t *testing.T) {
	t.Parallel()
	for _, v := range signatureVectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			newServer := func(now time.Time, secretID string) *Server {
				s, err := New(Config{Credentials: map[string]string{secretID: vectorSecretKey}, Now: func() time.Time { return now }})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			signedAt := time.Unix(vectorTimestamp, 0)
			tests := []struct {
				name     string
				now      time.Time
				secretID string
				req      func() *http.Request
				body     string
				want     string // "" for accepted
			}{
				{name: "Accepted", now: signedAt},
				{name: "AcceptedAtSkewLimit", now: signedAt.Add(maxClockSkew)},
				{name: "AcceptedBeforeSkewLimit", now: signedAt.Add(-maxClockSkew)},
				{name: "Expired", now: signedAt.Add(maxClockSkew + time.Second), want: "AuthFailure.SignatureExpire"},
				{name: "FromTheFuture", now: signedAt.Add(-maxClockSkew - time.Second), want: "AuthFailure.SignatureExpire"},
				{name: "UnknownSecretID", now: signedAt, secretID: "AKIDother", want: "AuthFailure.SecretIdNotFound"},
				{name: "BodyChanged", now: signedAt, body: v.body + " ", want: "AuthFailure.SignatureFailure"},
				{name: "HostChanged", now: signedAt, req: func() *http.Request {
					r := v.request(v.body)
					r.Host = "evil.example.com"
					return r
				}, want: "AuthFailure.SignatureFailure"},
				{name: "SignatureChanged", now: signedAt, req: func() *http.Request {
					flipped := v.signature[:63] + "0"
					if v.signature[63] == '0' {
						flipped = v.signature[:63] + "1"
					}
					r := v.request(v.body)
					r.Header.Set("Authorization", strings.Replace(v.authorization(), v.signature, flipped, 1))
					return r
				}, want: "AuthFailure.SignatureFailure"},
				{name: "ScopeDateWrong", now: signedAt, req: func() *http.Request {
					r := v.request(v.body)
					r.Header.Set("Authorization", strings.Replace(v.authorization(), "2019-02-25", "2019-02-24", 1))
					return r
				}, want: "AuthFailure.SignatureFailure"},
				{name: "MissingTimestamp", now: signedAt, req: func() *http.Request {
					r := v.request(v.body)
					r.Header.Del("X-TC-Timestamp")
					return r
				}, want: "MissingParameter"},
				{name: "HostWithPort", now: signedAt, req: func() *http.Request {
					// Node signs the host name without the port it sends.
					r := v.request(v.body)
					r.Host = v.host + ":443"
					return r
				}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					s := newServer(tt.now, orDefault(tt.secretID, vectorSecretID))
					r := v.request(orDefault(tt.body, v.body))
					if tt.req != nil {
						r = tt.req()
					}
					_, e := s.verify(r, []byte(orDefault(tt.body, v.body)), tt.now)
					got := ""
					if e != nil {
						got = e.Code
					}
					if got != tt.want {
						t.Errorf("verify() = %v, want code %q", e, tt.want)
					}
				})
			}
		})
	}
}

func TestParseAuthorization(t *testing.T) {
	t.Parallel()
	const sig = "a1d427eb378fe62da89919a7cbf44b4d3504e0e27e9290db179880cad625f163"
	good := "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/lighthouse/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature=" + sig
	a, err := parseAuthorization(good)
	if err != nil {
		t.Fatalf("parseAuthorization(good) error: %v", err)
	}
	if a.secretID != "AKID" || a.date != "2019-02-25" || a.service != "lighthouse" || a.signedHeaders != "content-type;host;x-tc-action" || a.signature != sig {
		t.Errorf("parseAuthorization(good) = %+v", a)
	}
	bad := map[string]string{
		"Empty":            "",
		"OtherAlgorithm":   "HMAC-SHA256 Credential=AKID/2019-02-25/lighthouse/tc3_request, SignedHeaders=content-type;host, Signature=" + sig,
		"NoCredential":     "TC3-HMAC-SHA256 SignedHeaders=content-type;host, Signature=" + sig,
		"ShortScope":       "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/tc3_request, SignedHeaders=content-type;host, Signature=" + sig,
		"BadTerminator":    "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/lighthouse/tc2_request, SignedHeaders=content-type;host, Signature=" + sig,
		"BadDate":          "TC3-HMAC-SHA256 Credential=AKID/20190225/lighthouse/tc3_request, SignedHeaders=content-type;host, Signature=" + sig,
		"NoHost":           "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/lighthouse/tc3_request, SignedHeaders=content-type, Signature=" + sig,
		"NoContentType":    "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/lighthouse/tc3_request, SignedHeaders=host, Signature=" + sig,
		"UpperCaseHeaders": "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/lighthouse/tc3_request, SignedHeaders=Content-Type;Host, Signature=" + sig,
		"ShortSignature":   "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/lighthouse/tc3_request, SignedHeaders=content-type;host, Signature=abc",
		"NotHexSignature":  "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/lighthouse/tc3_request, SignedHeaders=content-type;host, Signature=" + strings.Repeat("z", 64),
		"UnknownPart":      good + ", Extra=1",
		"NoEquals":         "TC3-HMAC-SHA256 Credential",
	}
	for name, h := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if a, err := parseAuthorization(h); err == nil {
				t.Errorf("parseAuthorization(%q) = %+v, want error", h, a)
			}
		})
	}
}

// TestVerifyExtraSignedHeader signs x-tc-action too, as newer documentation
// samples do, with the header value lowercased as the documentation says.
func TestVerifyExtraSignedHeader(t *testing.T) {
	t.Parallel()
	now := time.Unix(vectorTimestamp, 0)
	s, err := New(Config{Credentials: map[string]string{vectorSecretID: vectorSecretKey}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const body = `{}`
	const signed = "content-type;host;x-tc-action"
	cr := canonicalRequest("POST", "", []string{"content-type:application/json", "host:lighthouse.tencentcloudapi.com", "x-tc-action:describeinstances"}, signed, sha256Hex([]byte(body)))
	sig := hex.EncodeToString(hmacSHA256(signingKey(vectorSecretKey, "2019-02-25", "lighthouse"), stringToSign("1551113065", "2019-02-25", "lighthouse", sha256Hex([]byte(cr)))))
	r := httptest.NewRequest(http.MethodPost, "http://lighthouse.tencentcloudapi.com/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-TC-Action", "DescribeInstances")
	r.Header.Set("X-TC-Timestamp", "1551113065")
	r.Header.Set("Authorization", "TC3-HMAC-SHA256 Credential="+vectorSecretID+"/2019-02-25/lighthouse/tc3_request, SignedHeaders="+signed+", Signature="+sig)
	if _, e := s.verify(r, []byte(body), now); e != nil {
		t.Errorf("verify(signed with x-tc-action) = %v, want accepted", e)
	}
	r.Header.Set("X-TC-Action", "ResetInstance")
	if _, e := s.verify(r, []byte(body), now); e == nil || e.Code != "AuthFailure.SignatureFailure" {
		t.Errorf("verify(x-tc-action changed after signing) = %v, want AuthFailure.SignatureFailure", e)
	}
}
