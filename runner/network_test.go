package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/runner"
)

// call is one API request as the network in front of the emulator sees it.
type call struct {
	action    string
	instances []string // InstanceId, or InstanceIds
	// n counts the calls of action naming the same first instance, this
	// one included: 1 for the first ResetInstance of an instance, 2 for the
	// next. For DescribeInstances it counts every call of the action.
	n int
}

// fate is what the network does to a call: whether the emulator sees it,
// and how the answer (the emulator's, in rec, when forwarded) reaches the
// client.
type fate struct {
	name    string
	forward bool
	reply   func(w http.ResponseWriter, rec *httptest.ResponseRecorder)
}

// Fates.
var (
	// deliver forwards the call and relays the answer.
	deliver = fate{name: "deliver", forward: true, reply: relay}
	// lostBefore closes the connection before the emulator sees the call:
	// nothing happened, but the client cannot know it.
	lostBefore = fate{name: "lost-before", reply: hangUp}
	// lostAfter forwards the call, so a reset is applied, then closes the
	// connection without an answer.
	lostAfter = fate{name: "lost-after", forward: true, reply: hangUp}
	// badGateway answers a gateway's HTML 502 without forwarding.
	badGateway = fate{name: "502-before", reply: func(w http.ResponseWriter, _ *httptest.ResponseRecorder) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
	}}
	// busy answers UnsupportedOperation.LatestOperationUnfinished without
	// forwarding, as the API does while an operation runs.
	busy = apiError("UnsupportedOperation.LatestOperationUnfinished", "The latest operation of the instance is unfinished.")
)

// apiError returns a fate that answers the error envelope code without
// forwarding.
func apiError(code, msg string) fate {
	return fate{name: code, reply: func(w http.ResponseWriter, _ *httptest.ResponseRecorder) {
		body, _ := json.Marshal(map[string]any{"Response": map[string]any{
			"Error":     map[string]string{"Code": code, "Message": msg},
			"RequestId": "00000000-0000-4000-8000-00000000beef",
		}})
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}}
}

// relay writes the emulator's answer.
func relay(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// hangUp closes the client's connection without a word.
func hangUp(w http.ResponseWriter, _ *httptest.ResponseRecorder) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// network is an http.Handler between the runner's client and the emulator.
// For every API call it asks decide for a fate, and counts the fates dealt.
type network struct {
	next   http.Handler
	decide func(c call) fate

	mu    sync.Mutex
	seen  map[string]int
	dealt map[string]int // fate name → calls
	log   []string       // "action instance fate", in order
}

// newNetwork returns the wrap function of a scenario whose network deals
// fates with decide, and the network, for its counts.
func newNetwork(decide func(c call) fate) (*network, func(http.Handler) http.Handler) {
	n := &network{decide: decide, seen: map[string]int{}, dealt: map[string]int{}}
	return n, func(next http.Handler) http.Handler {
		n.next = next
		return n
	}
}

func (n *network) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		hangUp(w, nil)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var p struct {
		InstanceID  string   `json:"InstanceId"`
		InstanceIDs []string `json:"InstanceIds"`
	}
	json.Unmarshal(body, &p)
	c := call{action: r.Header.Get("X-TC-Action"), instances: p.InstanceIDs}
	if p.InstanceID != "" {
		c.instances = []string{p.InstanceID}
	}
	key := c.action
	if c.action != lighthouse.ActionDescribeInstances && len(c.instances) > 0 {
		key += "/" + c.instances[0]
	}
	n.mu.Lock()
	n.seen[key]++
	c.n = n.seen[key]
	f := n.decide(c)
	n.dealt[f.name]++
	n.log = append(n.log, fmt.Sprintf("%s %v #%d: %s", c.action, c.instances, c.n, f.name))
	n.mu.Unlock()

	rec := httptest.NewRecorder()
	if f.forward {
		n.next.ServeHTTP(rec, r)
	}
	f.reply(w, rec)
}

// count returns how many calls were dealt the fate called name.
func (n *network) count(name string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dealt[name]
}

// calls returns how many calls of action named instance.
func (n *network) calls(action, instance string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.seen[action+"/"+instance]
}

// rewrite returns a fate that forwards the call (or not) and answers what
// edit makes of the emulator's JSON body, with a 200.
func rewrite(name string, forward bool, edit func(body []byte) []byte) fate {
	return fate{name: name, forward: forward, reply: func(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(edit(rec.Body.Bytes()))
	}}
}

// Malformed answers: what a broken proxy, a truncated read or a service bug
// may hand the client instead of the API's JSON. Each is forwarded or not
// (the reset applied or not) as the scenario chooses.
var malformed = []struct {
	name  string
	reply func(w http.ResponseWriter, rec *httptest.ResponseRecorder)
}{
	{"invalid-json", literal(`{"Response": {"RequestId": "`)},
	{"html-200", func(w http.ResponseWriter, _ *httptest.ResponseRecorder) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body>Service temporarily unavailable</body></html>")
	}},
	{"empty-body", literal(``)},
	{"null-response", literal(`{"Response": null}`)},
	{"missing-request-id", literal(`{"Response": {}}`)},
	{"wrong-types", literal(`{"Response": {"RequestId": 12345, "InstanceSet": "none", "TotalCount": "x"}}`)},
	{"gzip-junk", func(w http.ResponseWriter, _ *httptest.ResponseRecorder) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write([]byte("\x1f\x8b\x08\x00junk that is not a deflate stream"))
	}},
	{"truncated", func(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
		body := rec.Body.Bytes()
		if len(body) == 0 {
			body = []byte(`{"Response": {"RequestId": "00000000-0000-4000-8000-000000000000"}}`)
		}
		// The declared length is never sent: the client reads an
		// unexpected EOF.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
	}},
	{"event-stream", func(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(rec.Body.Bytes())
	}},
}

func literal(s string) func(w http.ResponseWriter, _ *httptest.ResponseRecorder) {
	return func(w http.ResponseWriter, _ *httptest.ResponseRecorder) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, s)
	}
}

// stripOperation removes the LatestOperation fields (the API documents them
// as possibly null) of the instances in ids from a DescribeInstances
// answer; all instances when ids is nil.
func stripOperation(ids []string, fields ...string) func(body []byte) []byte {
	if len(fields) == 0 {
		fields = []string{"LatestOperation", "LatestOperationState", "LatestOperationRequestId", "LatestOperationStartedTime"}
	}
	return func(body []byte) []byte {
		var env struct {
			Response map[string]json.RawMessage
		}
		if json.Unmarshal(body, &env) != nil || env.Response["InstanceSet"] == nil {
			return body
		}
		var set []map[string]any
		if json.Unmarshal(env.Response["InstanceSet"], &set) != nil {
			return body
		}
		for _, in := range set {
			if id, _ := in["InstanceId"].(string); ids == nil || slices.Contains(ids, id) {
				for _, f := range fields {
					delete(in, f)
				}
			}
		}
		env.Response["InstanceSet"], _ = json.Marshal(set)
		out, _ := json.Marshal(env)
		return out
	}
}

// refusingAPI is the runner's API with some calls sent to a closed port
// instead: the dial is refused, so those requests provably never left.
type refusingAPI struct {
	runner.API
	closed *lighthouse.Client
	refuse func(action, instance string) bool
	count  atomic.Int64
}

// newRefusingAPI wraps api; refuse picks the calls that go to a closed port.
func newRefusingAPI(t *testing.T, api runner.API, refuse func(action, instance string) bool) *refusingAPI {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more: connecting is refused
	closed, err := lighthouse.New(lighthouse.Config{
		Endpoint:   "http://" + addr,
		Credential: lighthouse.Credential{SecretID: testSecretID, SecretKey: testSecretKey},
		Timeout:    time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &refusingAPI{API: api, closed: closed, refuse: refuse}
}

func (a *refusingAPI) ResetInstance(ctx context.Context, region string, req lighthouse.ResetInstanceRequest) (string, error) {
	if a.refuse(lighthouse.ActionResetInstance, req.InstanceID) {
		a.count.Add(1)
		return a.closed.ResetInstance(ctx, region, req)
	}
	return a.API.ResetInstance(ctx, region, req)
}

func (a *refusingAPI) DescribeInstances(ctx context.Context, region string, ids []string) ([]lighthouse.Instance, error) {
	first := ""
	if len(ids) > 0 {
		first = ids[0]
	}
	if a.refuse(lighthouse.ActionDescribeInstances, first) {
		a.count.Add(1)
		return a.closed.DescribeInstances(ctx, region, ids)
	}
	return a.API.DescribeInstances(ctx, region, ids)
}
