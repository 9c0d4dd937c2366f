// Package statuspage serves the live status page of a run (run
// --status-addr) or of every run of a database (serve): what a run is
// doing and waiting for, its waves, rate and failures, and, for an
// operator who signs in, pause, resume and cancel.
//
// The page shows the fleet and may steer it, so it answers only requests
// naming it by an expected Host (the bound address, loopback names and
// names the operator gives: a DNS-rebinding page names its own), and
// accepts a control only from its own origin with the credentials of
// HTTP basic auth, which the page never serves. Every control is logged
// with who sent it.
package statuspage

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batchreset/batchreset/store"
)

// Run is one run as the page reads it. The command's CSV and Postgres
// sources implement it.
type Run interface {
	// PageName names the run among the page's runs, for its cache.
	PageName() string
	// PageInfo reads what the run's store records about the run itself.
	PageInfo(ctx context.Context) (RunInfo, error)
	// EachJob calls fn with each job of the run as stored, in order, a few
	// at a time rather than the whole run at once.
	EachJob(ctx context.Context, fn func(*store.Job) error) error
	// SetControl records an operator's instruction for the run.
	SetControl(ctx context.Context, c store.Control) error
}

// RunInfo is what a run's store records about the run beyond its jobs.
type RunInfo struct {
	Name      string    // the run, as the operator names it
	Mode      string    // csv or postgres
	StartedAt time.Time // zero: nothing was ever sent
	// Control is the operator's control as the store keeps it.
	Control store.Control
	// PauseReason says what a paused run waits for ("approval of wave 2",
	// the failure budget it exceeded, "paused by operator").
	PauseReason string
	// Rollout is the run's canary, waves and budget as its runners
	// recorded them, and Stopped why they stopped new resets for every
	// runner; nil when the store records none.
	Rollout *store.RolloutPlan
	Stopped string
	// Waves gives the wave, from 1, of each job admitted into one, by job
	// ID, when the store records admissions (Postgres); nil otherwise,
	// and then the k-th job sent is taken to be the k-th admitted.
	Waves map[int64]int
	// Runners is how many live runners hold jobs of the run (Postgres);
	// negative when not known.
	Runners int
	// RollbackOf names the run this one rolls back, whose instances it
	// puts back on their previous images; "" for a run that is no
	// rollback.
	RollbackOf string
}

// Live is what the process running a run knows of it beyond its store.
type Live struct {
	RateLimit   float64 `json:"rate_limit"` // resets per second
	MaxInFlight int     `json:"max_in_flight,omitempty"`
	Paused      bool    `json:"paused"`
	// Stopped is why new resets stopped for good; "" while they may start.
	Stopped string `json:"stopped,omitempty"`
	Sent    int64  `json:"sent"`
	// Rollout is the run's canary, waves and budget as this runner applies
	// them (in Postgres mode, the run's recorded ones).
	Rollout store.RolloutPlan `json:"-"`
	// Wave is the current wave, from 1; 0 when the run has no waves.
	Wave   int  `json:"wave,omitempty"`
	Canary bool `json:"canary,omitempty"`
	// NextWave is when the next wave opens, while the run rests between
	// waves; zero otherwise.
	NextWave          time.Time     `json:"next_wave,omitzero"`
	PauseBetweenWaves time.Duration `json:"-"`
	WindowEnd         time.Time     `json:"window_end,omitzero"`
	// Failures counts the failures held against the budget.
	Failures int `json:"failures"`
	// ResetP50 is the median duration of this run's resets so far; zero
	// before one has finished.
	ResetP50 time.Duration `json:"-"`
}

// Listing is one run of a database, for serve's index.
type Listing struct {
	Name       string     `json:"name"`
	State      string     `json:"state"`
	Control    string     `json:"control"`
	Jobs       int        `json:"jobs"`
	Unfinished int        `json:"unfinished"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
}

// Credentials are the user and password of HTTP basic auth that a control
// request must carry. They hold only the SHA-256 sums of the two, never the
// secret itself, so that no log line, error or %v can show it. The zero
// value is no credentials.
type Credentials struct {
	user, password [sha256.Size]byte
	set            bool
}

// NewCredentials returns the credentials of user and password; none if
// either is empty.
func NewCredentials(user, password string) Credentials {
	if user == "" || password == "" {
		return Credentials{}
	}
	return Credentials{user: sha256.Sum256([]byte(user)), password: sha256.Sum256([]byte(password)), set: true}
}

// Set reports whether c holds credentials.
func (c Credentials) Set() bool { return c.set }

// Match reports whether user and password are c's, in a time that does not
// depend on how much of them is right.
func (c Credentials) Match(user, password string) bool {
	us, ps := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	okU := subtle.ConstantTimeCompare(us[:], c.user[:])
	okP := subtle.ConstantTimeCompare(ps[:], c.password[:])
	return c.set && okU&okP == 1
}

// ReadCredentials reads credentials from a file holding one line
// USER:PASSWORD, or, with no file, from the environment through getenv
// (userVar and passwordVar). Zero credentials and no error when neither
// is given.
func ReadCredentials(file string, getenv func(string) string, userVar, passwordVar string) (Credentials, error) {
	if file == "" {
		user, pass := getenv(userVar), getenv(passwordVar)
		if (user == "") != (pass == "") {
			return Credentials{}, fmt.Errorf("%s and %s go together: set both, or neither", userVar, passwordVar)
		}
		return NewCredentials(user, pass), nil
	}
	b, err := readSecretFile(file)
	if err != nil {
		return Credentials{}, err
	}
	user, pass, ok := strings.Cut(strings.TrimRight(string(b), "\r\n"), ":")
	if !ok || user == "" || pass == "" || strings.ContainsAny(pass, "\r\n") {
		return Credentials{}, fmt.Errorf("%s: want one line USER:PASSWORD", file)
	}
	return NewCredentials(user, pass), nil
}

// Config configures a Page. Either Run is set (the page of one run), or
// List and Open are (serve: every run of a database).
type Config struct {
	Run Run
	// Live reads the runner of Run when it runs in this process; nil
	// otherwise.
	Live func() *Live
	// OnControl is called with a control the page set on a run, so that a
	// runner of this process applies it at once; nil: none.
	OnControl func(store.Control)

	// List lists the runs of a database, and Open opens one by name.
	List func(ctx context.Context) ([]Listing, error)
	Open func(name string) Run

	// Controls lets operators who sign in with Auth pause, resume and
	// cancel runs. It needs Auth.
	Controls bool
	Auth     Credentials
	// Hosts are names, beyond the bound address and loopback names, that
	// a request may give as its Host (the host's name in the operator's
	// DNS, or a proxy's).
	Hosts []string
	// HowToControl tells a reader of the page how an operator gets control
	// (the flags and variables of the command that serves it).
	HowToControl string
	Logger       *slog.Logger
}

// Page is the status page. Make it with New; it is safe for concurrent use.
type Page struct {
	cfg     Config
	log     *slog.Logger
	hosts   map[string]bool // allowed Host names, lower case
	exposed bool            // bound beyond loopback

	// views holds the latest views, by run and filter: a view reads every
	// job of the run, so however many pages refresh, it is made again only
	// once it is older than viewMaxAge or four times what it took.
	mu    sync.Mutex
	views map[viewKey]madeView
}

// New returns a page configured by cfg. Controls without credentials are
// refused: a control needs a secret the page does not hand out.
func New(cfg Config) (*Page, error) {
	if cfg.Controls && !cfg.Auth.Set() {
		return nil, errors.New("controls need credentials: " + cfg.HowToControl)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Page{cfg: cfg, log: cfg.Logger, hosts: map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}}
	for _, h := range cfg.Hosts {
		p.hosts[normHost(h)] = true
	}
	return p, nil
}

// Serve binds addr (a bare :PORT, or no host, binds to loopback) and serves
// the page there until stop is called. Beyond loopback it warns, and it
// refuses controls without credentials (New does already).
func (p *Page) Serve(addr string) (pageURL string, stop func(), err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "", nil, err
	}
	p.bound(host, ln.Addr().(*net.TCPAddr).IP)
	if p.exposed {
		p.log.Warn("the status page is served beyond loopback: whoever reaches it reads the fleet; keep it behind a firewall or an authenticating proxy",
			"addr", ln.Addr().String(), "controls", p.cfg.Controls, "hosts", strings.Join(p.cfg.Hosts, ","))
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Warn("status page server", "err", err)
		}
	}()
	u := "http://" + ln.Addr().String() + "/"
	if ip := ln.Addr().(*net.TCPAddr).IP; ip.IsUnspecified() {
		u = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)) + "/"
	}
	return u, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
		<-done
	}, nil
}

// bound records the address the page listens on: its name and IP are
// allowed Hosts, and an address beyond loopback exposes the page. Bound to
// every address, every address of this host's interfaces is allowed.
func (p *Page) bound(name string, ip net.IP) {
	p.hosts[normHost(name)] = true
	p.hosts[normHost(ip.String())] = true
	p.exposed = !ip.IsLoopback()
	if !ip.IsUnspecified() {
		return
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			p.hosts[normHost(n.IP.String())] = true
		}
	}
}

// normHost is a Host header's name as the allow-list keeps it: lower case,
// without port, brackets or a final dot.
func normHost(h string) string {
	if name, _, err := net.SplitHostPort(h); err == nil {
		h = name
	}
	h = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ".")
	return strings.ToLower(h)
}

// Handler routes the page's URLs, behind the Host allow-list and the
// security headers.
func (p *Page) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", p.serveLogin)
	if p.cfg.Run != nil {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { p.servePage(w, r, p.cfg.Run, "/") })
		mux.HandleFunc("GET /api/run", func(w http.ResponseWriter, r *http.Request) { p.serveJSON(w, r, p.cfg.Run) })
		mux.HandleFunc("POST /control", func(w http.ResponseWriter, r *http.Request) { p.serveControl(w, r, p.cfg.Run, "/") })
	} else {
		mux.HandleFunc("GET /{$}", p.serveIndex)
		mux.HandleFunc("GET /api/runs", p.serveIndex)
		mux.HandleFunc("GET /runs/{name}", func(w http.ResponseWriter, r *http.Request) {
			p.servePage(w, r, p.cfg.Open(r.PathValue("name")), "/runs/"+url.PathEscape(r.PathValue("name")))
		})
		mux.HandleFunc("GET /api/runs/{name}", func(w http.ResponseWriter, r *http.Request) {
			p.serveJSON(w, r, p.cfg.Open(r.PathValue("name")))
		})
		mux.HandleFunc("POST /runs/{name}/control", func(w http.ResponseWriter, r *http.Request) {
			p.serveControl(w, r, p.cfg.Open(r.PathValue("name")), "/runs/"+url.PathEscape(r.PathValue("name")))
		})
	}
	return p.allowHosts(securityHeaders(mux))
}

// allowHosts refuses, whatever the path, a request whose Host is not one
// the page expects: after DNS rebinding a hostile page reaches this server
// under its own name, and must read nothing.
func (p *Page) allowHosts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.hosts[normHost(r.Host)] {
			p.log.Warn("status page: request for another host refused", "host", r.Host, "remote", r.RemoteAddr,
				"user_agent", r.UserAgent(), "path", r.URL.Path)
			http.Error(w, "misdirected request: this status page answers to its own address only (start it with --status-host NAME to allow a name)", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// securityHeaders keeps the page in its own frame and origin: no framing
// (clickjacking the control buttons), no scripts but its own inline one.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// user returns the basic-auth user of r if its credentials are the
// page's, and whether they are.
func (p *Page) user(r *http.Request) (string, bool) {
	if !p.cfg.Auth.Set() {
		return "", false
	}
	u, pw, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	return u, p.cfg.Auth.Match(u, pw)
}

// canControl reports whether r may control runs: controls are on and it
// carries the credentials.
func (p *Page) canControl(r *http.Request) bool {
	_, ok := p.user(r)
	return p.cfg.Controls && ok
}

func (p *Page) challenge(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="batchreset controls", charset="UTF-8"`)
	http.Error(w, msg, http.StatusUnauthorized)
}

// serveLogin asks the browser for the credentials, then goes back to the
// page it came from: from then on the browser sends them with every
// request to the page, which then shows its controls.
func (p *Page) serveLogin(w http.ResponseWriter, r *http.Request) {
	if !p.cfg.Controls {
		http.Error(w, "controls are off: "+p.cfg.HowToControl, http.StatusForbidden)
		return
	}
	if !p.canControl(r) {
		p.challenge(w, "sign in with the status page's user and password to control runs")
		return
	}
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, `\`) {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func parseFilter(r *http.Request) Filter {
	q := r.URL.Query()
	f := Filter{Status: q.Get("status"), Code: q.Get("code")}
	f.Wave, _ = strconv.Atoi(q.Get("wave"))
	return f
}

func (p *Page) servePage(w http.ResponseWriter, r *http.Request, run Run, base string) {
	v, err := p.cachedView(r.Context(), run, parseFilter(r), time.Now())
	if err != nil {
		p.fail(w, err)
		return
	}
	d := pageData{View: v, Base: base, Message: r.URL.Query().Get("done"), Exposed: p.exposed,
		ControlsOn: p.cfg.Controls, CanControl: p.canControl(r), HowToControl: p.cfg.HowToControl}
	name := "page.html"
	if r.URL.Query().Get("partial") == "1" {
		name = "live"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := templates.ExecuteTemplate(w, name, d); err != nil {
		p.log.Warn("status page", "err", err)
	}
}

func (p *Page) serveJSON(w http.ResponseWriter, r *http.Request, run Run) {
	v, err := p.cachedView(r.Context(), run, parseFilter(r), time.Now())
	if err != nil {
		p.fail(w, err)
		return
	}
	v.Controls = p.canControl(r)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

func (p *Page) serveIndex(w http.ResponseWriter, r *http.Request) {
	list, err := p.cfg.List(r.Context())
	if err != nil {
		p.fail(w, err)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := templates.ExecuteTemplate(w, "index.html", indexData{Runs: list, Exposed: p.exposed}); err != nil {
		p.log.Warn("status page", "err", err)
	}
}

// serveControl applies a confirmed pause, resume or cancel. It refuses
// unless controls are on, the request comes from this page's own origin
// (Origin, or Sec-Fetch-Site, must say so: a form on another site cannot
// post here), it carries the credentials, and the operator ticked the
// confirmation. Each attempt is logged with who made it.
func (p *Page) serveControl(w http.ResponseWriter, r *http.Request, run Run, base string) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	action := ""
	if err := r.ParseForm(); err == nil {
		action = r.PostFormValue("action")
	}
	user, authed := p.user(r)
	audit := func(msg, outcome string) {
		p.log.Warn(msg, "run", run.PageName(), "action", action, "outcome", outcome, "remote", r.RemoteAddr,
			"user", user, "authenticated", authed, "user_agent", r.UserAgent(), "origin", r.Header.Get("Origin"))
	}
	switch {
	case !p.cfg.Controls:
		audit("status page control refused", "controls off")
		http.Error(w, "controls are off: "+p.cfg.HowToControl, http.StatusForbidden)
		return
	case !sameOrigin(r):
		// Before the credentials: another site's form must not make the
		// browser ask the operator for them.
		audit("status page control refused", "not from this page")
		http.Error(w, "refused: not a request from this status page", http.StatusForbidden)
		return
	case !authed:
		audit("status page control refused", "no credentials")
		p.challenge(w, "refused: sign in with the status page's user and password to control runs")
		return
	}
	c, ok := map[string]store.Control{"pause": store.ControlPaused, "resume": store.ControlRunning, "cancel": store.ControlCancelled}[action]
	if !ok {
		audit("status page control refused", "unknown action")
		http.Error(w, "action must be pause, resume or cancel", http.StatusBadRequest)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		audit("status page control refused", "not confirmed")
		http.Error(w, "not confirmed: tick the confirmation box", http.StatusBadRequest)
		return
	}
	defer p.forget(run)
	if err := run.SetControl(r.Context(), c); err != nil {
		audit("status page control failed", err.Error())
		p.fail(w, err)
		return
	}
	if p.cfg.OnControl != nil {
		p.cfg.OnControl(c)
	}
	audit("run control set from the status page", "applied")
	http.Redirect(w, r, base+"?done="+url.QueryEscape(string(c)), http.StatusSeeOther)
}

// sameOrigin reports whether r comes from a page of this server: browsers
// send Origin with every POST (and Sec-Fetch-Site); a request with
// neither is not from a browser form, and is refused too.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// ErrNoRun is returned (wrapped) by a Run's methods when the run does not
// exist: the page answers 404.
var ErrNoRun = errors.New("no such run")

func (p *Page) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrNoRun) {
		http.Error(w, "no such run", http.StatusNotFound)
		return
	}
	p.log.Warn("status page", "err", err)
	http.Error(w, "could not read the run", http.StatusInternalServerError)
}

//go:embed templates/*.html
var templateFS embed.FS
