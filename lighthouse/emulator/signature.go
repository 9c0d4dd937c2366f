package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// TC3-HMAC-SHA256 constants (reference §2).
const (
	tc3Algorithm    = "TC3-HMAC-SHA256"
	tc3Terminator   = "tc3_request"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	scopeDateLayout = "2006-01-02"
	// maxClockSkew is how far X-TC-Timestamp may be from the server's clock.
	maxClockSkew = 300 * time.Second
)

// authorization is a parsed Authorization header.
type authorization struct {
	secretID      string
	date          string // credential scope date, YYYY-MM-DD
	service       string // credential scope service
	signedHeaders string // as sent, e.g. "content-type;host"
	headers       []string
	signature     string // lowercase hex
}

// parseAuthorization parses
// "TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=a;b, Signature=HEX".
func parseAuthorization(h string) (authorization, error) {
	var a authorization
	algorithm, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok {
		return a, errors.New("no credential")
	}
	if algorithm != tc3Algorithm {
		return a, fmt.Errorf("unsupported algorithm %q", algorithm)
	}
	var credential string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, fmt.Errorf("malformed part %q", part)
		}
		switch k {
		case "Credential":
			credential = v
		case "SignedHeaders":
			a.signedHeaders = v
		case "Signature":
			a.signature = v
		default:
			return a, fmt.Errorf("unknown part %q", k)
		}
	}
	scope := strings.Split(credential, "/")
	if len(scope) != 4 || scope[0] == "" || scope[2] == "" || scope[3] != tc3Terminator {
		return a, errors.New("malformed Credential")
	}
	a.secretID, a.date, a.service = scope[0], scope[1], scope[2]
	if _, err := time.Parse(scopeDateLayout, a.date); err != nil {
		return a, errors.New("malformed credential date")
	}
	if a.signedHeaders == "" {
		return a, errors.New("no SignedHeaders")
	}
	a.headers = strings.Split(a.signedHeaders, ";")
	var hasHost, hasContentType bool
	for _, name := range a.headers {
		if name == "" || name != strings.ToLower(name) {
			return a, fmt.Errorf("malformed SignedHeaders %q", a.signedHeaders)
		}
		hasHost = hasHost || name == "host"
		hasContentType = hasContentType || name == "content-type"
	}
	if !hasHost || !hasContentType {
		return a, errors.New("SignedHeaders must include content-type and host")
	}
	if len(a.signature) != 64 {
		return a, errors.New("malformed Signature")
	}
	if _, err := hex.DecodeString(a.signature); err != nil {
		return a, errors.New("malformed Signature")
	}
	return a, nil
}

// canonicalRequest builds the TC3 canonical request (reference §2.1).
// headers holds "name:value" lines, already canonical, in SignedHeaders
// order.
func canonicalRequest(method, query string, headers []string, signedHeaders, payloadHash string) string {
	var b strings.Builder
	b.WriteString(method)
	b.WriteString("\n/\n")
	b.WriteString(query)
	b.WriteByte('\n')
	for _, h := range headers {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(signedHeaders)
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// stringToSign builds the TC3 string to sign (reference §2.2).
func stringToSign(timestamp, date, service, canonicalRequestHash string) string {
	return tc3Algorithm + "\n" + timestamp + "\n" + date + "/" + service + "/" + tc3Terminator + "\n" + canonicalRequestHash
}

// signingKey derives the TC3 signing key (reference §2.3).
func signingKey(secretKey, date, service string) []byte {
	k := hmacSHA256([]byte("TC3"+secretKey), date)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, tc3Terminator)
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// verify checks r's TC3-HMAC-SHA256 signature over body, following the
// server recipe of reference §2.5, and returns the credential scope's
// service, or the API error to answer with. A temporary SecretId (from
// AssumeRole) must come with its X-TC-Token and be unexpired; a permanent
// one must come without a token.
func (s *Server) verify(r *http.Request, body []byte, now time.Time) (string, *apiError) {
	a, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return "", errorf("AuthFailure.InvalidAuthorization", "The Authorization header is invalid: %v.", err)
	}
	pk, ok := s.keys[a.secretID]
	key := pk.secret
	temp := s.tempCredential(a.secretID)
	if !ok && temp == nil {
		return "", errorf("AuthFailure.SecretIdNotFound", "The SecretId is not found; check that it is correct and enabled.")
	}
	if !ok {
		key = temp.key
	}
	ts := r.Header.Get("X-TC-Timestamp")
	if ts == "" {
		return "", errorf("MissingParameter", "The request is missing a required parameter `Timestamp`.")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", errorf("InvalidParameter", "The parameter `Timestamp` must be Unix seconds.")
	}
	signedAt := time.Unix(sec, 0)
	if skew := now.Sub(signedAt); skew > maxClockSkew || skew < -maxClockSkew {
		return "", errorf("AuthFailure.SignatureExpire",
			"The signature expired: the request timestamp %d is more than 5 minutes from the server time %d.", sec, now.Unix())
	}
	if a.date != signedAt.UTC().Format(scopeDateLayout) {
		return "", errorf("AuthFailure.SignatureFailure",
			"The credential scope date %s is not the UTC date of the request timestamp.", a.date)
	}

	payloadHash := sha256Hex(body)
	if strings.EqualFold(r.Header.Get("X-TC-Content-SHA256"), unsignedPayload) {
		payloadHash = sha256Hex([]byte(unsignedPayload))
	}
	k := signingKey(key, a.date, a.service)
	want, err := hex.DecodeString(a.signature)
	if err != nil {
		return "", errorf("AuthFailure.InvalidAuthorization", "The Authorization header is invalid: malformed Signature.")
	}
	// Go signs the Host header as sent (with the port); Node signs the host
	// name without it (reference §2.5). The documentation lowercases header
	// values; the Go SDK signs them as they are. Try each reading.
	for _, host := range hostCandidates(r.Host) {
		for _, lower := range []bool{true, false} {
			headers, differs := canonicalHeaders(r, a.headers, host, lower)
			if !lower && !differs {
				continue
			}
			cr := canonicalRequest(r.Method, r.URL.RawQuery, headers, a.signedHeaders, payloadHash)
			got := hmacSHA256(k, stringToSign(ts, a.date, a.service, sha256Hex([]byte(cr))))
			if hmac.Equal(got, want) {
				return a.service, checkToken(temp, r.Header.Get("X-TC-Token"), now)
			}
		}
	}
	return "", errorf("AuthFailure.SignatureFailure",
		"The provided credentials could not be validated; check your signature is correct.")
}

// hostCandidates returns the host values a client may have signed: the Host
// header as received, then the host without its port.
func hostCandidates(host string) []string {
	hosts := []string{host}
	if h, _, err := net.SplitHostPort(host); err == nil && h != "" {
		hosts = append(hosts, h)
		if strings.Contains(h, ":") {
			hosts = append(hosts, "["+h+"]")
		}
	}
	return hosts
}

// canonicalHeaders returns the canonical "name:value" lines for names, with
// values trimmed and, if lower, lowercased. differs reports whether
// lowercasing changed any value.
func canonicalHeaders(r *http.Request, names []string, host string, lower bool) (lines []string, differs bool) {
	lines = make([]string, len(names))
	for i, name := range names {
		v := host
		if name != "host" {
			v = r.Header.Get(name)
		}
		v = strings.TrimSpace(v)
		if l := strings.ToLower(v); l != v {
			differs = true
			if lower {
				v = l
			}
		}
		lines[i] = name + ":" + v
	}
	return lines, differs
}
