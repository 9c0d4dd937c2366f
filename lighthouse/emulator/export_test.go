package emulator

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"time"
)

// SignTC3 signs req, whose body is body, as a client would: it sets
// X-TC-Timestamp to at and Authorization to a TC3-HMAC-SHA256 signature over
// content-type and signedHost, with credential scope service. Tests use it
// for requests the SDK cannot make (stale timestamps, malformed bodies,
// Node-style hosts); the signer itself is checked against the reference's
// test vectors.
func SignTC3(req *http.Request, body []byte, secretID, secretKey string, at time.Time, signedHost, service string) {
	ts := strconv.FormatInt(at.Unix(), 10)
	date := at.UTC().Format(scopeDateLayout)
	const signed = "content-type;host"
	cr := canonicalRequest(req.Method, "", []string{"content-type:" + req.Header.Get("Content-Type"), "host:" + signedHost}, signed, sha256Hex(body))
	sig := hex.EncodeToString(hmacSHA256(signingKey(secretKey, date, service), stringToSign(ts, date, service, sha256Hex([]byte(cr)))))
	req.Header.Set("X-TC-Timestamp", ts)
	req.Header.Set("Authorization", tc3Algorithm+" Credential="+secretID+"/"+date+"/"+service+"/"+tc3Terminator+
		", SignedHeaders="+signed+", Signature="+sig)
}
