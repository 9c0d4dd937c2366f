package emulator

import (
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Paths of the emulator's own endpoints. They cannot collide with the API,
// which is POST / only.
const (
	// StatsPath serves Stats as JSON on GET.
	StatsPath = "/_emulator/stats"
	// FaultsPath serves the faults in force as JSON on GET and replaces them
	// with a JSON array of Fault on PUT.
	FaultsPath = "/_emulator/faults"
)

// maxBodyBytes is the largest request body TC3 POST allows (10 MB).
const maxBodyBytes = 10 << 20

// Server is an in-memory Lighthouse API: an http.Handler that verifies TC3
// signatures, enforces per-action rate limits, runs resets asynchronously on
// its clock, injects faults and records what it saw. Create one with New and
// serve it with net/http or httptest.NewServer. It is safe for concurrent
// use.
type Server struct {
	cfg     resolved
	regions map[string]bool
	start   time.Time

	// accounts are the accounts served, Config's own first. keys and roles
	// lead to them: a call acts in the account of its signature's key, or of
	// the role its temporary key was handed out for. All three are fixed at
	// New.
	accounts []*account
	keys     map[string]permanentKey // by SecretId
	roles    map[string]*account     // by role ARN

	// mu guards the mutable state of every account's instances and tasks,
	// and the TAT invocations.
	mu          sync.RWMutex
	invocations []*invocation   // of every account, in order
	tatIDs      map[string]bool // invocation, command and task IDs used

	// tempMu guards the temporary credentials AssumeRole handed out.
	tempMu  sync.RWMutex
	temp    map[string]*tempCredential
	assumed []AssumedRole

	rngMu sync.Mutex
	rng   *rand.Rand
	// resetDraws counts the resets of each instance drawn so far.
	resetDraws map[string]int

	faults atomic.Pointer[[]Fault]
	stats  recorder

	closeOnce sync.Once
	done      chan struct{}
}

// New validates cfg and returns an emulator serving its accounts. It fails
// on missing credentials, malformed or duplicate IDs (instance, key pair,
// SecretId, role and account UIN, each across accounts too), unknown
// enumeration values, FailInstances naming unknown instances, invalid
// faults and invalid ranges; an error in one of Config.Accounts names it.
func New(cfg Config) (*Server, error) {
	rc, err := resolve(cfg)
	if err != nil {
		return nil, fmt.Errorf("emulator config: %w", err)
	}
	s := &Server{
		cfg:        rc,
		regions:    set(lighthouseRegions...),
		start:      rc.now(),
		keys:       make(map[string]permanentKey),
		roles:      make(map[string]*account),
		tatIDs:     make(map[string]bool),
		temp:       make(map[string]*tempCredential),
		rng:        rand.New(rand.NewPCG(uint64(rc.seed), uint64(rc.seed)>>1^0x5851f42d4c957f2d)),
		resetDraws: make(map[string]int),
		done:       make(chan struct{}),
	}
	if err := s.addAccounts(cfg.accounts()); err != nil {
		return nil, fmt.Errorf("emulator config: %w", err)
	}
	for name, ids := range map[string]map[string]bool{"fail instances": rc.failAlways, "agent lost instances": rc.agentLost,
		"command fail instances": rc.commandFail, "command timeout instances": rc.commandTimeout,
		"command fail before reset instances": rc.commandFailOld} {
		for id := range ids {
			if !s.owns(id) {
				return nil, fmt.Errorf("emulator config: %s: unknown instance %q", name, id)
			}
		}
	}
	if err := s.SetFaults(cfg.Faults); err != nil {
		return nil, fmt.Errorf("emulator config: %w", err)
	}
	return s, nil
}

// Close ends pending FaultLatency waits, which then answer at once. The
// emulator keeps no other background work: operation progress is computed
// from the clock when asked. Close is idempotent; the server still answers
// afterwards.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// chance reports true with probability p.
func (s *Server) chance(p float64) bool {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < p
}

// resetOutcome draws how long an accepted reset of id runs, whether it
// fails and whether the TAT agent never comes back. Whether it fails, and
// whether the agent is lost, depend on the seed, the instance and how many
// resets of it came before, not on the order calls arrive in: one fleet
// and seed fail the same resets in every run.
func (s *Server) resetOutcome(id string) (d time.Duration, fail, agentLost bool) {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	d = s.drawLocked(s.cfg.resetMin, s.cfg.resetMax)
	n := s.resetDraws[id]
	s.resetDraws[id] = n + 1
	fail = s.cfg.failAlways[id] || s.cfg.failureRate > 0 && s.drawFor("fail", id, n) < s.cfg.failureRate
	agentLost = s.cfg.agentLost[id] || s.cfg.agentLossRate > 0 && s.drawFor("agent", id, n) < s.cfg.agentLossRate
	return d, fail, agentLost
}

// drawFor returns a number in [0, 1) fixed by the seed, what is drawn,
// the instance and n.
func (s *Server) drawFor(what, id string, n int) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%d", s.cfg.seed, what, id, n)
	return rand.New(rand.NewPCG(h.Sum64(), 0x9e3779b97f4a7c15)).Float64()
}

// drawLocked draws a duration uniformly from [lo, hi]. The caller holds
// s.rngMu.
func (s *Server) drawLocked(lo, hi time.Duration) time.Duration {
	if span := hi - lo; span > 0 {
		return lo + time.Duration(s.rng.Int64N(int64(span)+1))
	}
	return lo
}

// newRequestID returns a random lowercase UUID v4.
func newRequestID() string {
	var b [16]byte
	crand.Read(b[:])
	return formatUUID(b)
}

// ServeHTTP answers API calls (POST /) and the emulator's own endpoints
// (StatsPath, FaultsPath).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case StatsPath:
		s.serveStats(w, r)
	case FaultsPath:
		s.serveFaults(w, r)
	default:
		s.serveAPI(w, r)
	}
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.Faults())
	case http.MethodPut:
		var fs []Fault
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fs); err != nil {
			http.Error(w, "decode faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.SetFaults(fs); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// call is one API request in flight.
type call struct {
	action    string
	secretID  string   // of the signature, once verified
	acct      *account // the account the call acts in, once its signature is verified
	requestID string
	now       time.Time
	region    string
	fault     *Fault
}

// answer is how a call is answered.
type answer struct {
	body   any       // success: the Response object
	err    *apiError // error envelope
	status int       // nonzero: an injected HTML 5xx
}

// serveAPI runs one API call. Validation order: method, body size,
// signature, content type, action, version, rate limit, region, parameters,
// injected faults, then the action's own checks.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	c := &call{action: r.Header.Get("X-TC-Action"), requestID: newRequestID(), now: s.cfg.now()}
	s.stats.arrive(c.action)
	answered := false
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.cfg.log.Error("emulator panic", "action", c.action, "request_id", c.requestID, "panic", v)
			if !answered {
				s.reply(w, c, answer{err: errorf("InternalError", "An internal error occurred.")})
			}
		}
	}()
	a, run := s.prepare(r, c)
	if run != nil {
		a = run()
	}
	if f := c.fault; f != nil {
		s.cfg.log.Debug("emulator fault", "action", c.action, "request_id", c.requestID, "kind", f.Kind)
		switch f.Kind {
		case FaultDropAfterApply:
			answered = true
			s.stats.finish(c.uin(), c.action, a.outcome(), true)
			drop(w)
			return
		case FaultLatency:
			t := time.NewTimer(f.Latency)
			defer t.Stop()
			select {
			case <-t.C:
			case <-s.done:
			case <-r.Context().Done():
			}
		}
	}
	answered = true
	s.reply(w, c, a)
}

// drop closes the client connection without answering.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot hijack; aborting the handler resets the stream.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// prepare runs every check before the action itself. It returns either an
// answer (run == nil) or the action to run; c.fault is set when an injected
// fault affects the call.
func (s *Server) prepare(r *http.Request, c *call) (a answer, run func() answer) {
	fail := func(e *apiError) (answer, func() answer) { return answer{err: e}, nil }
	if r.Method != http.MethodPost {
		return fail(errorf("UnsupportedProtocol", "The emulator accepts only POST requests with a JSON body, not %s.", r.Method))
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return fail(errorf("RequestSizeLimitExceeded", "The request body exceeds %d bytes.", maxBodyBytes))
		}
		return fail(errorf("InvalidRequest", "The request body could not be read."))
	}
	scopeService, e := s.verify(r, body, c.now)
	if e != nil {
		return fail(e)
	}
	if a, err := parseAuthorization(r.Header.Get("Authorization")); err == nil {
		c.secretID = a.secretID
	}
	c.acct = s.accountOf(c.secretID)
	s.stats.attribute(c.acct.uin, c.action)
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fail(errorf("UnsupportedProtocol", "The emulator accepts only Content-Type application/json, not %q.", r.Header.Get("Content-Type")))
	}
	if c.action == "" {
		return fail(missing("Action"))
	}
	spec, known := actions[c.action]
	if named := namedService(r.Host, scopeService); !known || named != "" && named != spec.service {
		return fail(errorf("InvalidAction", "The action `%s` does not exist.", c.action))
	}
	switch v := r.Header.Get("X-TC-Version"); v {
	case serviceVersions[spec.service]:
	case "":
		return fail(missing("Version"))
	default:
		return fail(errorf("NoSuchVersion", "The API version `%s` does not exist; %s is version %s.", v, spec.service, serviceVersions[spec.service]))
	}
	limit := s.cfg.limits[c.action]
	if !s.stats.admit(c.acct.uin, c.action, c.now.Unix(), limit) {
		return fail(errorf("RequestLimitExceeded", "The number of requests exceeds the frequency limit of %d per second for %s.", limit, c.action))
	}
	c.region = r.Header.Get("X-TC-Region")
	if spec.regional {
		if c.region == "" {
			return fail(missing("Region"))
		}
		if !s.regions[c.region] {
			return fail(errorf("UnsupportedRegion", "The region `%s` is not supported.", c.region))
		}
	}
	p, e := decodeParams(body)
	if e != nil {
		return fail(e)
	}
	ids, run, e := spec.prepare(s, c, p)
	if e != nil {
		return fail(e)
	}
	c.fault = s.pickFault(c.action, ids)
	if f := c.fault; f != nil {
		switch f.Kind {
		case FaultUnavailable:
			return answer{status: orDefault(f.StatusCode, http.StatusBadGateway)}, nil
		case FaultError:
			return fail(&apiError{Code: f.Code, Message: orDefault(f.Message, "The request failed; this failure was injected by the emulator.")})
		case FaultThrottle:
			return fail(&apiError{Code: orDefault(f.Code, "RequestLimitExceeded"), Message: orDefault(f.Message, "The number of requests exceeds the frequency limit.")})
		}
	}
	return answer{}, run
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// outcome classifies a for ActionStats.
func (a answer) outcome() outcome {
	switch {
	case a.status != 0:
		return outcomeError
	case a.err == nil:
		return outcomeOK
	case a.err.Code == "RequestLimitExceeded" || strings.HasPrefix(a.err.Code, "RequestLimitExceeded."):
		return outcomeRejected
	}
	return outcomeError
}

// reply writes a and counts its outcome.
func (s *Server) reply(w http.ResponseWriter, c *call, a answer) {
	switch {
	case a.status != 0:
		text := http.StatusText(a.status)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(a.status)
		fmt.Fprintf(w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
			a.status, text, a.status, text)
	case a.err != nil:
		writeJSON(w, http.StatusOK, envelope{Response: errorResponse{
			Error:     errorBody{Code: a.err.Code, Message: a.err.Message},
			RequestID: c.requestID,
		}})
	default:
		writeJSON(w, http.StatusOK, envelope{Response: a.body})
	}
	s.stats.finish(c.uin(), c.action, a.outcome(), c.fault != nil)
}

// uin returns the UIN of the account c acts in, "" while its signature is
// not verified.
func (c *call) uin() string {
	if c.acct == nil {
		return ""
	}
	return c.acct.uin
}

type envelope struct {
	Response any `json:"Response"`
}

type errorResponse struct {
	Error     errorBody `json:"Error"`
	RequestID string    `json:"RequestId"`
}

type errorBody struct {
	Code    string `json:"Code"`
	Message string `json:"Message"`
}
