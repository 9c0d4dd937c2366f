package main

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
)

// viewFlags are the flags of run and retry for watching a run from
// elsewhere: the live status page and notifications.
type viewFlags struct {
	statusAddr     string
	statusControls bool
	notify         notifyFlags
}

func (o *viewFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&o.statusAddr, "status-addr", "", "serve a live status page of the run on this address (e.g. 127.0.0.1:8080; a bare :PORT binds to loopback)")
	fs.BoolVar(&o.statusControls, "status-controls", false, "let the status page pause, resume and cancel the run (confirmed POSTs from the page itself only)")
	fs.StringArrayVar(&o.notify.urls, "notify", nil, "post a JSON event to this URL on the run's start, each wave's end, a stop, a pause or cancel, and its end (repeatable)")
	fs.StringVar(&o.notify.secretFile, "notify-secret-file", "", "sign notifications with HMAC-SHA256 of the body, keyed by this file's content (header "+headerSignature+": sha256=HEX)")
	fs.StringVar(&o.notify.format, "notify-format", "json", "notification body: json, or slack (an incoming-webhook message)")
	fs.DurationVar(&o.notify.timeout, "notify-timeout", 10*time.Second, "timeout of one notification attempt, and how long the end of the run waits for undelivered ones")
}

func (o *viewFlags) check() error {
	if o.statusControls && o.statusAddr == "" {
		return usageError("--status-controls needs --status-addr ADDR")
	}
	return o.notify.check()
}

// pageRows is the most instances one page lists; the filters narrow them.
const pageRows = 500

// pageSource is what the status page reads one run through.
type pageSource interface {
	// status is the run's snapshot.
	status(ctx context.Context, now time.Time) (runStatus, error)
	// jobs calls fn with each job of the run, in order, a few at a time
	// rather than the whole run at once.
	jobs(ctx context.Context, fn func(*store.Job) error) error
	// live is what only the process running the run knows; nil otherwise.
	live() *liveInfo
	// control applies an operator's instruction to the run.
	control(ctx context.Context, c store.Control) error
	// waves are the run's wave sizes (the canary first), for the wave of
	// each instance; nil when it has none or they are not known here.
	waves() []int
	// name names the run among the page's.
	name() string
}

// liveInfo is what the process running a run knows of it beyond its jobs.
type liveInfo struct {
	Rate          float64    `json:"rate_limit"` // --rate
	MaxInFlight   int        `json:"max_in_flight,omitempty"`
	Wave          int        `json:"wave,omitempty"`
	Canary        bool       `json:"canary,omitempty"`
	WaveSizes     []int      `json:"wave_sizes,omitempty"`
	Paused        bool       `json:"paused"`
	Sent          int64      `json:"sent"`
	WindowEnd     *time.Time `json:"window_end,omitempty"`
	WindowLeftSec *float64   `json:"window_left_seconds,omitempty"`
	// Failures counts this runner's failed, unknown and unhealthy
	// outcomes; Budget is --max-failures resolved (nil: none).
	Failures int  `json:"failures"`
	Budget   *int `json:"budget,omitempty"`
}

// statusPage serves the live status page of one run (run --status-addr),
// or of every run of a database (serve).
type statusPage struct {
	// one is the run of run --status-addr; nil for serve.
	one pageSource
	// db lists and opens runs for serve.
	db       *postgres.Store
	controls bool
	token    string // per process, in every control form
	log      *slog.Logger

	// views holds the latest views, by run and filter: a view reads every
	// job of the run, so however many pages refresh, it is made again only
	// once it is older than viewMaxAge or four times what it took.
	mu    sync.Mutex
	views map[viewKey]madeView
}

type viewKey struct {
	run    string // pageSource.name
	filter pageFilter
}

type madeView struct {
	v    pageView
	at   time.Time
	took time.Duration
}

// viewMaxAge is how long a view is shown again at most, when it is quick
// to make.
const viewMaxAge = time.Second

// cachedView returns p.view of src and f, made again when it is too old.
// live is read afresh each time.
func (p *statusPage) cachedView(ctx context.Context, src pageSource, f pageFilter, base string) (pageView, error) {
	k := viewKey{src.name(), f}
	p.mu.Lock()
	m, ok := p.views[k]
	p.mu.Unlock()
	if ok && time.Since(m.at) < max(viewMaxAge, 4*m.took) {
		v := m.v
		v.Live, v.Base = src.live(), base
		return v, nil
	}
	start := time.Now()
	v, err := p.view(ctx, src, f, base)
	if err != nil {
		return v, err
	}
	p.mu.Lock()
	if p.views == nil || len(p.views) > 64 {
		p.views = map[viewKey]madeView{}
	}
	p.views[k] = madeView{v: v, at: start, took: time.Since(start)}
	p.mu.Unlock()
	return v, nil
}

// forget drops the views of src, after an operator's control changed it.
func (p *statusPage) forget(src pageSource) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.views {
		if k.run == src.name() {
			delete(p.views, k)
		}
	}
}

// pageView is what the page template and the JSON twin show.
type pageView struct {
	Status    runStatus     `json:"status"`
	Live      *liveInfo     `json:"live,omitempty"`
	Filter    pageFilter    `json:"filter"`
	Matched   int           `json:"matched"`
	Instances []instanceRow `json:"instances"`
	Codes     []string      `json:"-"`
	Waves     []int         `json:"-"`
	Controls  bool          `json:"controls"`
	Token     string        `json:"-"`
	Base      string        `json:"-"`
	Message   string        `json:"-"`
	Generated time.Time     `json:"generated_at"`
}

type pageFilter struct {
	Status string `json:"status,omitempty"`
	Wave   int    `json:"wave,omitempty"`
	Code   string `json:"code,omitempty"`
}

type instanceRow struct {
	InstanceID string     `json:"instance_id"`
	Region     string     `json:"region"`
	Status     string     `json:"status"`
	Wave       int        `json:"wave,omitempty"`
	Code       string     `json:"error_code,omitempty"`
	Message    string     `json:"error_message,omitempty"`
	RequestID  string     `json:"request_id,omitempty"`
	Attempts   int        `json:"attempts"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

//go:embed templates/*.html
var templateFS embed.FS

var pageTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"seconds": func(s *float64) string { return (time.Duration(*s) * time.Second).String() },
	"rate":    func(r *float64) string { return strconv.FormatFloat(*r, 'f', 2, 64) },
	"over":    func(n int, budget *int) bool { return budget != nil && n > *budget },
	"actions": func() []string { return []string{"pause", "resume", "cancel"} },
	"pct": func(n, of int) int {
		if of <= 0 {
			return 0
		}
		return n * 100 / of
	},
	"statuses": func() []string {
		out := make([]string, 0, len(statusOrder)+1)
		for _, s := range statusOrder {
			out = append(out, string(s))
		}
		return append(out, string(store.StatusUnhealthy))
	},
	"query": func(f pageFilter, key, value string) string {
		q := url.Values{}
		if f.Status != "" {
			q.Set("status", f.Status)
		}
		if f.Wave != 0 {
			q.Set("wave", strconv.Itoa(f.Wave))
		}
		if f.Code != "" {
			q.Set("code", f.Code)
		}
		if value == "" {
			q.Del(key)
		} else {
			q.Set(key, value)
		}
		if len(q) == 0 {
			return ""
		}
		return "?" + q.Encode()
	},
}).ParseFS(templateFS, "templates/*.html"))

// newToken returns a random token for the control forms.
func newToken() string { return randomHex(16) }

// handler routes the page's URLs.
func (p *statusPage) handler() http.Handler {
	mux := http.NewServeMux()
	if p.one != nil {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { p.servePage(w, r, p.one, "/") })
		mux.HandleFunc("GET /api/run", func(w http.ResponseWriter, r *http.Request) { p.serveJSON(w, r, p.one) })
		mux.HandleFunc("POST /control", func(w http.ResponseWriter, r *http.Request) { p.serveControl(w, r, p.one, "/") })
	} else {
		mux.HandleFunc("GET /{$}", p.serveIndex)
		mux.HandleFunc("GET /api/runs", p.serveIndex)
		mux.HandleFunc("GET /runs/{name}", func(w http.ResponseWriter, r *http.Request) {
			p.servePage(w, r, p.dbRun(r.PathValue("name")), "/runs/"+url.PathEscape(r.PathValue("name")))
		})
		mux.HandleFunc("GET /api/runs/{name}", func(w http.ResponseWriter, r *http.Request) {
			p.serveJSON(w, r, p.dbRun(r.PathValue("name")))
		})
		mux.HandleFunc("POST /runs/{name}/control", func(w http.ResponseWriter, r *http.Request) {
			p.serveControl(w, r, p.dbRun(r.PathValue("name")), "/runs/"+url.PathEscape(r.PathValue("name")))
		})
	}
	return securityHeaders(mux)
}

// securityHeaders keeps the page in its own frame and origin: no framing
// (clickjacking the control buttons), no scripts but its own inline one.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

func parseFilter(r *http.Request) pageFilter {
	q := r.URL.Query()
	f := pageFilter{Status: q.Get("status"), Code: q.Get("code")}
	f.Wave, _ = strconv.Atoi(q.Get("wave"))
	return f
}

// view builds what the page shows of src, filtered by f, in one pass over
// its jobs (two when the run has waves).
func (p *statusPage) view(ctx context.Context, src pageSource, f pageFilter, base string) (pageView, error) {
	now := time.Now()
	st, err := src.status(ctx, now)
	if err != nil {
		return pageView{}, err
	}
	v := pageView{Status: st, Live: src.live(), Filter: f, Controls: p.controls, Token: p.token, Base: base,
		Instances: []instanceRow{}, Generated: now.UTC()}
	var waves []int32
	if sizes := src.waves(); len(sizes) > 0 {
		var sent []sentJob
		i := 0
		err := src.jobs(ctx, func(j *store.Job) error {
			if !j.IntentAt.IsZero() {
				sent = append(sent, sentJob{j.IntentAt, i})
			}
			i++
			return nil
		})
		if err != nil {
			return pageView{}, err
		}
		waves = sentWaves(sizes, sent, i)
	}
	codes := map[string]bool{}
	maxWave, i := 0, 0
	err = src.jobs(ctx, func(j *store.Job) error {
		w := 0
		if i < len(waves) {
			w = int(waves[i])
		}
		i++
		maxWave = max(maxWave, w)
		if j.ErrorCode != "" {
			codes[j.ErrorCode] = true
		}
		if (f.Status != "" && string(j.Status) != f.Status) || (f.Wave != 0 && w != f.Wave) || (f.Code != "" && j.ErrorCode != f.Code) {
			return nil
		}
		v.Matched++
		if len(v.Instances) < pageRows {
			v.Instances = append(v.Instances, instanceRow{InstanceID: j.InstanceID, Region: j.Region, Status: string(j.Status), Wave: w,
				Code: j.ErrorCode, Message: j.ErrorMessage, RequestID: j.RequestID, Attempts: j.Attempts, FinishedAt: timePtr(j.FinishedAt)})
		}
		return nil
	})
	if err != nil {
		return pageView{}, err
	}
	for c := range codes {
		v.Codes = append(v.Codes, c)
	}
	slices.Sort(v.Codes)
	for w := 1; w <= maxWave; w++ {
		v.Waves = append(v.Waves, w)
	}
	return v, nil
}

// sentJob is a job sent, by its first intent and its place in the run.
type sentJob struct {
	at time.Time
	i  int
}

// sentWaves returns the wave of each of n jobs of a run whose waves have
// sizes, of which sent were sent: the k-th job sent (by first intent) is
// the k-th admitted, since a wave's resets all start before the next
// wave's. Jobs not sent are in no wave yet (0).
func sentWaves(sizes []int, sent []sentJob, n int) []int32 {
	out := make([]int32, n)
	slices.SortStableFunc(sent, func(a, b sentJob) int { return a.at.Compare(b.at) })
	for k, s := range sent {
		out[s.i] = int32(waveOf(sizes, k))
	}
	return out
}

// waveOf is the wave of the i-th job admitted (or, for plan, to be sent)
// in a run whose waves have sizes, the last repeating. 0 when the run has
// no waves.
func waveOf(sizes []int, i int) int {
	if len(sizes) == 0 {
		return 0
	}
	w := 0
	for {
		n := sizes[min(w, len(sizes)-1)]
		if i < n {
			return w + 1
		}
		i -= n
		w++
	}
}

func (p *statusPage) servePage(w http.ResponseWriter, r *http.Request, src pageSource, base string) {
	v, err := p.cachedView(r.Context(), src, parseFilter(r), base)
	if err != nil {
		p.fail(w, err)
		return
	}
	v.Message = r.URL.Query().Get("done")
	name := "page.html"
	if r.URL.Query().Get("partial") == "1" {
		name = "live"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTemplates.ExecuteTemplate(w, name, v); err != nil {
		p.log.Warn("status page", "err", err)
	}
}

func (p *statusPage) serveJSON(w http.ResponseWriter, r *http.Request, src pageSource) {
	v, err := p.cachedView(r.Context(), src, parseFilter(r), "")
	if err != nil {
		p.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

func (p *statusPage) serveIndex(w http.ResponseWriter, r *http.Request) {
	runs, err := p.db.Runs(r.Context())
	if err != nil {
		p.fail(w, err)
		return
	}
	list := make([]runListing, 0, len(runs))
	for _, run := range runs {
		started, err := p.db.RunStarted(r.Context(), run.Name)
		if err != nil {
			p.fail(w, err)
			return
		}
		list = append(list, runListing{Name: run.Name, Control: string(run.Control), Jobs: run.Jobs, Unfinished: run.Unfinished,
			CreatedAt: run.CreatedAt.UTC(), StartedAt: timePtr(started), State: runState(started, run.Unfinished, string(run.Control))})
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTemplates.ExecuteTemplate(w, "index.html", list); err != nil {
		p.log.Warn("status page", "err", err)
	}
}

// serveControl applies a confirmed pause, resume or cancel. It refuses
// unless controls are on, the request comes from this page's own origin
// (Origin, or Sec-Fetch-Site, must say so: a form on another site cannot
// post here) and carries this process's token, and the operator ticked the
// confirmation.
func (p *statusPage) serveControl(w http.ResponseWriter, r *http.Request, src pageSource, base string) {
	if !p.controls {
		http.Error(w, "controls are off: start with --status-controls to pause, resume or cancel from this page", http.StatusForbidden)
		return
	}
	if !sameOrigin(r) {
		http.Error(w, "refused: not a request from this status page", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("token")), []byte(p.token)) != 1 {
		http.Error(w, "refused: the form's token is not this process's (reload the page)", http.StatusForbidden)
		return
	}
	c, ok := map[string]store.Control{"pause": store.ControlPaused, "resume": store.ControlRunning, "cancel": store.ControlCancelled}[r.PostFormValue("action")]
	if !ok {
		http.Error(w, "action must be pause, resume or cancel", http.StatusBadRequest)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		http.Error(w, "not confirmed: tick the confirmation box", http.StatusBadRequest)
		return
	}
	defer p.forget(src)
	if err := src.control(r.Context(), c); err != nil {
		p.fail(w, err)
		return
	}
	p.log.Warn("run control set from the status page", "control", c, "remote", r.RemoteAddr)
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

func (p *statusPage) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such run", http.StatusNotFound)
		return
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.code == exitUsage {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	p.log.Warn("status page", "err", err)
	http.Error(w, "could not read the run", http.StatusInternalServerError)
}

// listen binds addr; a bare :PORT, or no host, binds to loopback: the page
// shows the fleet and, with controls, steers it.
func listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.Listen("tcp", net.JoinHostPort(host, port))
}

// serveStatus serves h on addr until the returned func stops it.
func serveStatus(addr string, h http.Handler, log *slog.Logger) (url string, stop func(), err error) {
	ln, err := listen(addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("status page server", "err", err)
		}
	}()
	return "http://" + ln.Addr().String() + "/", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
		<-done
	}, nil
}

// dbRun is a run of serve's database.
func (p *statusPage) dbRun(name string) pageSource { return dbPageSource{db: p.db, run: name} }

// dbPageSource reads a Postgres run, for serve or for run in Postgres
// mode (then with the runner's live view).
type dbPageSource struct {
	db   *postgres.Store
	run  string
	info func() *liveInfo
	w    []int
}

func (s dbPageSource) status(ctx context.Context, now time.Time) (runStatus, error) {
	st, err := runStatusOf(ctx, s.db, s.run, func(int) (int, error) { return -1, nil })
	if err != nil {
		return runStatus{}, err
	}
	if st.StartedAt == nil || st.State == stateFinished {
		return st, nil
	}
	// The rate and ETA, as CSV status has them from the journal.
	c := newStatusCounter(now)
	if err := s.jobs(ctx, func(j *store.Job) error { c.add(j); return nil }); err != nil {
		return runStatus{}, err
	}
	r := c.status(st.Run, *st.StartedAt, -1)
	st.ResetsPerSecond, st.ETASeconds = r.ResetsPerSecond, r.ETASeconds
	return st, nil
}

func (s dbPageSource) jobs(ctx context.Context, fn func(*store.Job) error) error {
	return s.db.EachJob(ctx, s.run, fn)
}

func (s dbPageSource) live() *liveInfo {
	if s.info == nil {
		return nil
	}
	return s.info()
}

func (s dbPageSource) control(ctx context.Context, c store.Control) error {
	return s.db.SetControl(ctx, s.run, c)
}

func (s dbPageSource) waves() []int { return s.w }
func (s dbPageSource) name() string { return "postgres:" + s.run }

// csvPageSource reads the CSV run this process runs.
type csvPageSource struct {
	run  string
	st   *csvstore.Store
	ctl  *localControl
	info func() *liveInfo
	w    []int
}

func (s csvPageSource) status(_ context.Context, now time.Time) (runStatus, error) {
	c := newStatusCounter(now)
	for j := range s.st.All() {
		c.add(&j)
	}
	st := c.status(s.run, s.st.Started(), -1)
	if st.State == stateUnfinished {
		st.State = "running" // this process runs it
	}
	return st, nil
}

func (s csvPageSource) jobs(_ context.Context, fn func(*store.Job) error) error {
	for j := range s.st.All() {
		if err := fn(&j); err != nil {
			return err
		}
	}
	return nil
}

func (s csvPageSource) live() *liveInfo { return s.info() }

func (s csvPageSource) control(_ context.Context, c store.Control) error {
	s.ctl.set(c)
	return nil
}

func (s csvPageSource) waves() []int { return s.w }
func (s csvPageSource) name() string { return "csv:" + s.run }

// localControl is the operator's control of a run whose store keeps none
// (CSV): set from the status page, read by the runner at every poll as a
// store's Control would be.
type localControl struct {
	runner.Store
	mu sync.Mutex
	c  store.Control
	r  *runner.Runner // told at once; set before the page serves
}

func (l *localControl) Control(ctx context.Context) (store.Control, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == "" {
		return l.Store.Control(ctx)
	}
	return l.c, nil
}

func (l *localControl) set(c store.Control) {
	l.mu.Lock()
	l.c = c
	r := l.r
	l.mu.Unlock()
	if r != nil {
		r.SetControl(c)
	}
}

// runView is what run adds for watching it: the status page and the
// notifications, both optional.
type runView struct {
	a      *app
	page   *statusPage
	ctl    *localControl
	notify *notifier
	stop   func()
	stats  *runner.Stats
	ro     *runner.Rollout
	s      runSettings
}

// startView starts the notifier of s, and prepares the status page, which
// serves once attach has the runner.
func (a *app) startView(s runSettings, src jobSource, ro *runner.Rollout) (*runView, error) {
	v := &runView{a: a, s: s, ro: ro}
	n, err := newNotifier(s.view.notify, a.runName, a.runnerID, a.log)
	if err != nil {
		return nil, err
	}
	v.notify = n
	if s.view.statusAddr == "" {
		return v, nil
	}
	v.page = &statusPage{controls: s.view.statusControls, token: newToken(), log: a.log}
	var waves []int
	if ro.Canary > 0 {
		waves = append(waves, ro.Canary)
	}
	if len(ro.Waves) > 0 {
		waves = append(waves, ro.Waves...)
	} else if len(waves) > 0 {
		waves = append(waves, math.MaxInt/2)
	}
	switch src := src.(type) {
	case *csvSource:
		v.ctl = &localControl{Store: src.st}
		v.page.one = csvPageSource{run: a.runName, st: src.st, ctl: v.ctl, info: v.live, w: waves}
	case *dbSource:
		v.page.one = dbPageSource{db: src.db, run: src.run, info: v.live, w: waves}
	}
	return v, nil
}

// store is the store the runner works on: CSV runs read the status page's
// control through it.
func (v *runView) store(st runner.Store) runner.Store {
	if v.ctl == nil {
		return st
	}
	return v.ctl
}

// onEvent is the runner's Config.OnEvent, nil when nothing listens.
func (v *runView) onEvent() func(runner.Event) {
	if v.notify == nil {
		return nil
	}
	return v.notify.onEvent
}

// attach gives the view the runner and starts serving the page.
func (v *runView) attach(r *runner.Runner) error {
	v.stats = r.Stats()
	if v.ctl != nil {
		v.ctl.mu.Lock()
		v.ctl.r = r
		v.ctl.mu.Unlock()
	}
	if v.page == nil {
		return nil
	}
	u, stop, err := serveStatus(v.s.view.statusAddr, v.page.handler(), v.a.log)
	if err != nil {
		return usageError("--status-addr: %v", err)
	}
	v.stop = stop
	v.a.notef("status page: %s", u)
	return nil
}

// live is the page's view of the runner.
func (v *runView) live() *liveInfo {
	l := &liveInfo{Rate: v.s.runner.Rate, MaxInFlight: v.s.runner.MaxInFlight}
	if v.stats != nil {
		l.Paused, l.Sent = v.stats.Paused(), v.stats.Submitted.Load()
	}
	if v.ro.Canary > 0 || len(v.ro.Waves) > 0 {
		l.Wave, l.Canary = v.ro.Wave()
		if v.ro.Canary > 0 {
			l.WaveSizes = append(l.WaveSizes, v.ro.Canary)
		}
		l.WaveSizes = append(l.WaveSizes, v.ro.Waves...)
	}
	l.Failures = v.ro.Failures()
	if v.ro.MaxFailures >= 0 {
		b := v.ro.MaxFailures
		l.Budget = &b
	}
	if !v.ro.WindowEnd.IsZero() {
		l.WindowEnd = timePtr(v.ro.WindowEnd)
		left := max(roundTo(time.Until(v.ro.WindowEnd).Seconds(), 0), 0)
		l.WindowLeftSec = &left
	}
	return l
}

// finished sends the end of the run and closes what the view started.
func (v *runView) finished(t runTally, reason string) {
	if v.notify != nil {
		v.notify.finished(t, reason)
	}
}

// Close stops the page and waits for the notifications (bounded).
func (v *runView) Close() {
	if v.stop != nil {
		v.stop()
	}
	v.notify.Close()
}
