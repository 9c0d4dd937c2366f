package statuspage

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batchreset/batchreset/store"
)

// pageRows is the most instances one page lists; the filters narrow them.
const pageRows = 500

// statuses are the statuses in the order the page lists them: those that
// need a look first.
var statuses = []store.Status{store.StatusFailed, store.StatusUnknown, store.StatusUnhealthy,
	store.StatusSubmitting, store.StatusSubmitted, store.StatusPending, store.StatusSucceeded, store.StatusSkipped}

// View is what the page shows of one run, and its JSON twin.
type View struct {
	Status  Status  `json:"status"`
	Live    *Live   `json:"live,omitempty"`
	Waves   []Wave  `json:"waves,omitempty"`
	Rate    Rate    `json:"rate"`
	ETA     *ETA    `json:"eta,omitempty"`
	Codes   []Code  `json:"error_codes"`
	Filter  Filter  `json:"filter"`
	Matched int     `json:"matched"`
	Rows    []Row   `json:"instances"`
	Plan    *Budget `json:"budget,omitempty"`
	// Rollback is the progress of a rollback run; nil for another run.
	Rollback *Rollback `json:"rollback,omitempty"`
	// Controls reports whether this request may control the run.
	Controls  bool      `json:"controls"`
	Generated time.Time `json:"generated_at"`
}

// Status is the run's state and counts.
type Status struct {
	Run  string `json:"run"`
	Mode string `json:"mode"`
	// State is one word: not started, starting, running, waiting, paused,
	// stopping, stopped, idle, cancelled or finished; WaitsFor says what
	// for, or why.
	State     string         `json:"state"`
	WaitsFor  string         `json:"waits_for,omitempty"`
	Control   string         `json:"control,omitempty"`
	StartedAt *time.Time     `json:"started_at,omitempty"`
	Jobs      int            `json:"jobs"`
	Totals    map[string]int `json:"totals"`
	Done      int            `json:"done"`
	InFlight  int            `json:"in_flight"`
	Failures  int            `json:"failures"`
	// HookPhases counts the jobs by lifecycle hook phase, those with one;
	// OutOfService those a hook may have taken out of service and not put
	// back; HookFailures those whose hook failed (store.Job.HookFailed).
	HookPhases   map[string]int `json:"hook_phases,omitempty"`
	OutOfService int            `json:"out_of_service,omitempty"`
	HookFailures int            `json:"hook_failures,omitempty"`
	// Accounts breaks the counts down by account when the run's jobs name
	// accounts (AccountStatuses); nil otherwise.
	Accounts []AccountStatus `json:"accounts,omitempty"`
}

// AccountStatus counts the jobs of one account of a run: what the status
// page, `batchreset status` and the end-of-run summary show of each.
type AccountStatus struct {
	// Account is the account's name; "" for the jobs that name none.
	Account string         `json:"account"`
	Jobs    int            `json:"jobs"`
	Totals  map[string]int `json:"totals"` // every status, zeros included
	// Failures counts the jobs whose status is a failure
	// (store.FailureStatuses).
	Failures int `json:"failures"`
}

// AccountStatuses breaks c down by account, in the order the jobs first
// name them; nil when no job names an account.
func AccountStatuses(c store.Count) []AccountStatus {
	var out []AccountStatus
	for _, a := range c.Accounts {
		as := AccountStatus{Account: a.Account, Jobs: a.Jobs, Totals: map[string]int{}, Failures: a.Totals.Failures()}
		for _, st := range store.Statuses {
			as.Totals[string(st)] = a.Totals[st]
		}
		out = append(out, as)
	}
	return out
}

// Budget is the run's own failure budget, as its runner applies or its
// store records it.
type Budget struct {
	Max      int  `json:"max"` // negative: none
	Failures int  `json:"failures"`
	Over     bool `json:"exceeded"`
}

// Rollback is how far a rollback run has put its instances back on their
// previous images (store.Status.Reset): Back of Total, and per wave in the
// run's waves (Wave.Back).
type Rollback struct {
	Of    string `json:"of"`
	Back  int    `json:"back"`
	Total int    `json:"total"`
}

// Wave is one wave of the run's plan and how far it has come.
type Wave struct {
	N        int  `json:"wave"`
	Canary   bool `json:"canary,omitempty"`
	Size     int  `json:"size"`
	Sent     int  `json:"sent"`
	InFlight int  `json:"in_flight"`
	Done     int  `json:"done"`
	Failures int  `json:"failures"`
	// Back counts the instances of a rollback's wave back on their
	// previous images.
	Back  int    `json:"back,omitempty"`
	State string `json:"state"` // done, current, next, later
	Note  string `json:"note,omitempty"`
}

// Rate is the reset rate over the last minutes against the limit.
type Rate struct {
	PerSecond float64 `json:"resets_per_s"` // over the last minute
	Limit     float64 `json:"limit,omitempty"`
	// Series is resets/s in rateBuckets buckets of Bucket, oldest first:
	// the last 5 minutes, or the run's life when it is younger.
	Series []float64     `json:"series"`
	Bucket time.Duration `json:"bucket_ns"`
}

// ETA is an estimate of the run's end that counts the waves left and the
// pauses between them; the page shows none where there is no honest one.
type ETA struct {
	At   time.Time `json:"at"`
	Left float64   `json:"seconds_left"`
	Note string    `json:"note,omitempty"`
}

// Code is an error code and how many instances ended with it.
type Code struct {
	Code string `json:"code"`
	N    int    `json:"n"`
}

// Filter narrows the instances listed.
type Filter struct {
	Status string `json:"status,omitempty"`
	Wave   int    `json:"wave,omitempty"`
	Code   string `json:"code,omitempty"`
}

// Row is one instance listed.
type Row struct {
	InstanceID string     `json:"instance_id"`
	Region     string     `json:"region"`
	Status     string     `json:"status"`
	Wave       int        `json:"wave,omitempty"` // 0: not sent, in no wave yet
	Code       string     `json:"error_code,omitempty"`
	Message    string     `json:"error_message,omitempty"`
	RequestID  string     `json:"request_id,omitempty"`
	Attempts   int        `json:"attempts"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// HookPhase is how far the instance's hooks came (store.HookPhase); a
	// failed hook's last output lines end Message.
	HookPhase string `json:"hook_phase,omitempty"`
}

// Rate series: rateBuckets buckets of at most rateBucket.
const (
	rateBucket  = 10 * time.Second
	rateBuckets = 30
)

// bucketOf is the rate series' bucket for a run started then: whole
// seconds, so that the series spans the run's life up to rateBuckets of
// rateBucket.
func bucketOf(started, now time.Time) time.Duration {
	if started.IsZero() {
		return rateBucket
	}
	b := (now.Sub(started)/rateBuckets + time.Second - 1).Truncate(time.Second)
	return min(max(b, time.Second), rateBucket)
}

type viewKey struct {
	run    string
	filter Filter
}

type madeView struct {
	v    View
	at   time.Time
	took time.Duration
}

// viewMaxAge is how long a view is shown again at most, when it is quick
// to make.
const viewMaxAge = time.Second

// cachedView returns the view of run and f, made again when it is too old.
func (p *Page) cachedView(ctx context.Context, run Run, f Filter, now time.Time) (View, error) {
	k := viewKey{run.PageName(), f}
	p.mu.Lock()
	m, ok := p.views[k]
	p.mu.Unlock()
	if ok && now.Sub(m.at) < max(viewMaxAge, 4*m.took) {
		return m.v, nil
	}
	start := time.Now()
	v, err := p.view(ctx, run, f, now)
	if err != nil {
		return v, err
	}
	p.mu.Lock()
	if p.views == nil || len(p.views) > 64 {
		p.views = map[viewKey]madeView{}
	}
	p.views[k] = madeView{v: v, at: now, took: time.Since(start)}
	p.mu.Unlock()
	return v, nil
}

// forget drops the views of run, after an operator's control changed it.
func (p *Page) forget(run Run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.views {
		if k.run == run.PageName() {
			delete(p.views, k)
		}
	}
}

// view builds what the page shows of run, filtered by f, in one pass over
// its jobs (two when waves are taken from the order jobs were sent).
func (p *Page) view(ctx context.Context, run Run, f Filter, now time.Time) (View, error) {
	info, err := run.PageInfo(ctx)
	if err != nil {
		return View{}, err
	}
	var live *Live
	if p.cfg.Live != nil {
		live = p.cfg.Live()
	}
	v := View{Live: live, Filter: f, Rows: []Row{}, Codes: []Code{}, Generated: now.UTC()}
	st := &v.Status
	st.Run, st.Mode, st.Control = info.Name, info.Mode, string(info.Control)
	st.Totals = map[string]int{}
	for _, s := range statuses {
		st.Totals[string(s)] = 0
	}
	if !info.StartedAt.IsZero() {
		t := info.StartedAt.UTC()
		st.StartedAt = &t
	}
	plan := info.Rollout
	if live != nil {
		plan = &live.Rollout
	}

	// The wave of each job: as the store recorded it, or by the order of
	// first intents, since a wave's resets all start before the next's.
	waveOf := func(*store.Job, int) int { return 0 }
	switch {
	case info.Waves != nil:
		waveOf = func(j *store.Job, _ int) int { return info.Waves[j.ID] }
	case plan != nil && (plan.Canary > 0 || len(plan.Waves) > 0):
		var sent []sentJob
		i := 0
		err := run.EachJob(ctx, func(j *store.Job) error {
			if !j.IntentAt.IsZero() {
				sent = append(sent, sentJob{j.IntentAt, i})
			}
			i++
			return nil
		})
		if err != nil {
			return View{}, err
		}
		waves := sentWaves(*plan, sent, i)
		waveOf = func(_ *store.Job, i int) int { return int(waves[i]) }
	}

	if info.RollbackOf != "" {
		v.Rollback = &Rollback{Of: info.RollbackOf}
	}
	codes := map[string]int{}
	var failed, rest []Row
	byWave := map[int]*Wave{}
	counts := make([]int, rateBuckets)
	bucket := bucketOf(info.StartedAt, now)
	recent := 0
	i := 0
	var cnt store.Count
	err = run.EachJob(ctx, func(j *store.Job) error {
		w := waveOf(j, i)
		i++
		cnt.Add(j)
		st.Jobs++
		st.Totals[string(j.Status)]++
		inFlight := j.Status == store.StatusSubmitting || j.Status == store.StatusSubmitted
		if inFlight {
			st.InFlight++
		}
		if j.Status.Terminal() {
			st.Done++
		}
		if j.Failure() {
			st.Failures++
		}
		if j.HookPhase != store.HookNone {
			if st.HookPhases == nil {
				st.HookPhases = map[string]int{}
			}
			st.HookPhases[string(j.HookPhase)]++
			if j.HookPhase.OutOfService() {
				st.OutOfService++
			}
		}
		if j.HookFailed() {
			st.HookFailures++
		}
		back := v.Rollback != nil && j.Status.Reset()
		if back {
			v.Rollback.Back++
		}
		if w > 0 {
			wv := byWave[w]
			if wv == nil {
				wv = &Wave{N: w}
				byWave[w] = wv
			}
			wv.Sent++
			if inFlight {
				wv.InFlight++
			}
			if j.Status.Terminal() {
				wv.Done++
			}
			if j.Failure() {
				wv.Failures++
			}
			if back {
				wv.Back++
			}
		}
		if !j.SubmittedAt.IsZero() {
			if age := now.Sub(j.SubmittedAt); age >= 0 && age < bucket*rateBuckets {
				counts[rateBuckets-1-int(age/bucket)]++
			}
			if age := now.Sub(j.SubmittedAt); age >= 0 && age < time.Minute {
				recent++
			}
		}
		if j.ErrorCode != "" {
			codes[j.ErrorCode]++
		}
		if (f.Status != "" && string(j.Status) != f.Status) || (f.Wave != 0 && w != f.Wave) || (f.Code != "" && j.ErrorCode != f.Code) {
			return nil
		}
		v.Matched++
		row := func() Row {
			return Row{InstanceID: j.InstanceID, Region: j.Region, Status: string(j.Status), Wave: w, Code: j.ErrorCode,
				Message: j.ErrorMessage, RequestID: j.RequestID, Attempts: j.Attempts, FinishedAt: timePtr(j.FinishedAt),
				HookPhase: string(j.HookPhase)}
		}
		// Failures (and failed hooks: a failed restore may have left its
		// instance out of service) first, then the rest in the run's order.
		look := j.Failure() || j.HookFailed()
		switch {
		case look && len(failed) < pageRows:
			failed = append(failed, row())
		case !look && len(rest) < pageRows:
			rest = append(rest, row())
		}
		return nil
	})
	if err != nil {
		return View{}, err
	}
	st.Accounts = AccountStatuses(cnt)
	v.Rows = append(v.Rows, failed...)
	v.Rows = append(v.Rows, rest[:min(len(rest), pageRows-len(v.Rows))]...)
	for c, n := range codes {
		v.Codes = append(v.Codes, Code{c, n})
	}
	slices.SortFunc(v.Codes, func(a, b Code) int {
		if a.N != b.N {
			return b.N - a.N
		}
		return strings.Compare(a.Code, b.Code)
	})

	v.Rate = rateOf(counts, bucket, recent, info.StartedAt, now)
	if live != nil {
		v.Rate.Limit = live.RateLimit
	}
	if plan != nil && (plan.Canary > 0 || len(plan.Waves) > 0) {
		v.Waves = waveTable(*plan, st.Jobs, byWave, live, now)
	}
	if v.Rollback != nil {
		v.Rollback.Total = st.Jobs
	}
	if plan != nil && plan.MaxFailures >= 0 {
		b := &Budget{Max: plan.MaxFailures, Failures: st.Failures}
		if live != nil {
			b.Failures = live.Failures
		}
		b.Over = b.Failures > b.Max
		v.Plan = b
	}
	st.State, st.WaitsFor = stateOf(info, live, st, v.Waves, v.Plan, now)
	v.ETA = estimate(st, v.Waves, live, now)
	return v, nil
}

// rateOf is the rate of resets over the last minute (or since the run
// started, if later) and the series of the last rateBuckets.
func rateOf(counts []int, bucket time.Duration, recent int, started, now time.Time) Rate {
	r := Rate{Series: make([]float64, len(counts)), Bucket: bucket}
	for i, n := range counts {
		r.Series[i] = float64(n) / bucket.Seconds()
	}
	window := time.Minute
	if !started.IsZero() {
		window = min(window, now.Sub(started))
	}
	if window > 0 {
		r.PerSecond = math.Round(float64(recent)/window.Seconds()*100) / 100
	}
	return r
}

// waveTable lays a run of jobs out in the waves of plan, with how far each
// has come.
func waveTable(plan store.RolloutPlan, jobs int, byWave map[int]*Wave, live *Live, now time.Time) []Wave {
	var out []Wave
	current := 0
	if live != nil {
		current = live.Wave
	}
	for n, left := 1, jobs; left > 0; n++ {
		size := min(left, plan.WaveSize(n-1))
		w := Wave{N: n, Canary: plan.Canary > 0 && n == 1, Size: size}
		if got := byWave[n]; got != nil {
			w.Sent, w.InFlight, w.Done, w.Failures, w.Back = got.Sent, got.InFlight, got.Done, got.Failures, got.Back
		}
		out = append(out, w)
		left -= size
	}
	if live == nil {
		// Without a runner here: the last wave with a reset sent.
		for n := len(out); n > 0; n-- {
			if out[n-1].Sent > 0 {
				current = n
				break
			}
		}
	}
	for i := range out {
		w := &out[i]
		switch {
		case w.N < current || (w.Done == w.Size && w.Size > 0):
			w.State = "done"
		case w.N == current:
			w.State = "current"
			if w.Sent == w.Size && w.InFlight > 0 {
				w.Note = fmt.Sprintf("all sent; %d in flight", w.InFlight)
			}
		case w.N == current+1:
			w.State = "next"
			if live != nil && !live.NextWave.IsZero() {
				w.Note = "opens at " + clock(live.NextWave)
			} else if current > 0 {
				w.Note = "once wave " + strconv.Itoa(current) + " has finished"
			}
		default:
			w.State = "later"
		}
	}
	return out
}

// stateOf names the run's state in one word, and what it waits for.
func stateOf(info RunInfo, live *Live, st *Status, waves []Wave, budget *Budget, now time.Time) (state, waits string) {
	pending := st.Totals[string(store.StatusPending)]
	inFlight := fmt.Sprintf("%d reset(s) in flight are tracked to their end", st.InFlight)
	stopped := info.Stopped
	if live != nil && live.Stopped != "" {
		stopped = live.Stopped
	}
	switch {
	case st.Jobs > 0 && pending+st.InFlight == 0:
		if stopped != "" {
			return "finished", "new resets stopped: " + stopped
		}
		return "finished", ""
	case stopped != "" && st.InFlight > 0:
		return "stopping", "no new resets (" + stopped + "); " + inFlight
	case stopped != "":
		return "stopped", stopped
	case live == nil && info.StartedAt.IsZero():
		if info.Control == store.ControlPaused || info.Control == store.ControlCancelled {
			return "not started", "and " + string(info.Control) + " by the operator"
		}
		return "not started", ""
	case live != nil && live.Paused, info.Control == store.ControlPaused:
		w := "the operator to resume or cancel: no new resets"
		if r := info.PauseReason; r != "" && r != "paused by operator" {
			w = r + " (resume or cancel): no new resets"
		}
		if st.InFlight > 0 {
			w += "; " + inFlight
		}
		return "paused", w
	case info.Control == store.ControlCancelled:
		return "stopping", "cancelled by the operator; " + inFlight
	case live == nil && info.Runners == 0:
		return "idle", "a runner: none holds its jobs now (batchreset run resumes it)"
	case live != nil && !live.NextWave.IsZero():
		next := 0
		for _, w := range waves {
			if w.State == "next" {
				next = w.N
			}
		}
		return "waiting", fmt.Sprintf("wave %d, which opens at %s (the pause between waves)", next, clock(live.NextWave))
	}
	for _, w := range waves {
		if w.State == "current" && w.Sent == w.Size && w.InFlight > 0 && pending > 0 {
			return "waiting", fmt.Sprintf("wave %d's %d reset(s) in flight to finish before wave %d", w.N, w.InFlight, w.N+1)
		}
	}
	if live != nil && live.Sent == 0 && st.InFlight == 0 {
		return "starting", ""
	}
	if live != nil && !live.WindowEnd.IsZero() {
		return "running", "window closes at " + clock(live.WindowEnd)
	}
	return "running", ""
}

// estimate is when the run should end: the resets left sent at the rate
// limit (or what the in-flight cap allows), each wave left drained (a
// median reset) and rested after; nil where there is no honest estimate:
// no runner here, paused, stopped, or no reset finished to time one by.
func estimate(st *Status, waves []Wave, live *Live, now time.Time) *ETA {
	pending := st.Totals[string(store.StatusPending)]
	if live == nil || live.Paused || live.Stopped != "" || live.ResetP50 <= 0 || live.RateLimit <= 0 || pending+st.InFlight == 0 {
		return nil
	}
	d := live.ResetP50.Seconds()
	speed := live.RateLimit
	if live.MaxInFlight > 0 {
		speed = min(speed, float64(live.MaxInFlight)/d)
	}
	left := float64(pending)/speed + d
	opened := 0
	for _, w := range waves {
		if w.State != "next" && w.State != "later" {
			continue
		}
		opened++
		left += d + live.PauseBetweenWaves.Seconds()
	}
	if !live.NextWave.IsZero() && opened > 0 {
		// The first pause is under way: what is left of it, not all of it.
		left += max(live.NextWave.Sub(now).Seconds(), 0) - live.PauseBetweenWaves.Seconds()
	}
	e := &ETA{At: now.Add(time.Duration(left * float64(time.Second))).UTC(), Left: math.Round(left)}
	if opened > 0 {
		e.Note = fmt.Sprintf("%d wave(s) to go, each drained and rested", opened)
	}
	if !live.WindowEnd.IsZero() && e.At.After(live.WindowEnd) {
		e.Note = "after the window closes at " + clock(live.WindowEnd) + ": resets that would end after it are skipped"
	}
	return e
}

// sentJob is a job sent, by its first intent and its place in the run.
type sentJob struct {
	at time.Time
	i  int
}

// sentWaves returns the wave of each of n jobs of a run whose waves plan
// lays out, of which sent were sent: the k-th job sent (by first intent) is
// the k-th admitted, since a wave's resets all start before the next
// wave's. Jobs not sent are in no wave yet (0).
func sentWaves(plan store.RolloutPlan, sent []sentJob, n int) []int32 {
	out := make([]int32, n)
	slices.SortStableFunc(sent, func(a, b sentJob) int { return a.at.Compare(b.at) })
	w, left := 0, plan.WaveSize(0)
	for _, s := range sent {
		for left == 0 {
			w++
			left = plan.WaveSize(w)
		}
		out[s.i] = int32(w + 1)
		left--
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// clock is a time as the page shows it: the time of day, in UTC.
func clock(t time.Time) string { return t.UTC().Format("15:04:05Z") }

// readSecretFile reads a small file holding a secret.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > 4<<10 {
		return nil, fmt.Errorf("%s: too large for a user and password", path)
	}
	return os.ReadFile(path)
}

// pageData is what the run's page template shows: the view, and what
// depends on the request.
type pageData struct {
	View
	Base         string
	Message      string
	Exposed      bool // served beyond loopback
	ControlsOn   bool
	CanControl   bool
	HowToControl string
}

type indexData struct {
	Runs    []Listing
	Exposed bool
}

// segment is one part of a progress bar.
type segment struct {
	Class string
	Pct   float64
	Title string
}

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"clock":    clock,
	"duration": func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"rate":     func(r float64) string { return strconv.FormatFloat(r, 'f', 2, 64) },
	"actions":  func() []string { return []string{"pause", "resume", "cancel"} },
	"statuses": func() []store.Status { return statuses },
	"hookPhases": func() []string {
		out := make([]string, len(store.HookPhases))
		for i, p := range store.HookPhases {
			out[i] = string(p)
		}
		return out
	},
	"failure": func(s string) bool { return store.Status(s).Failure() },
	// bar splits a run's (or a wave's) size into succeeded, failed,
	// skipped, in flight and not yet sent.
	"runBar": func(st Status) []segment {
		t := st.Totals
		fail := st.Failures
		return bar(st.Jobs, []segment{
			{"ok", float64(t[string(store.StatusSucceeded)]), "succeeded"},
			{"bad", float64(fail), "failed, unknown or unhealthy"},
			{"skip", float64(t[string(store.StatusSkipped)]), "skipped"},
			{"fly", float64(st.InFlight), "in flight"},
		})
	},
	"waveBar": func(w Wave) []segment {
		return bar(w.Size, []segment{
			{"ok", float64(w.Done - w.Failures), "done"},
			{"bad", float64(w.Failures), "failed, unknown or unhealthy"},
			{"fly", float64(w.InFlight), "in flight"},
		})
	},
	"pct": func(n, of int) int {
		if of <= 0 {
			return 0
		}
		return n * 100 / of
	},
	"sub":       func(a, b int) int { return a - b },
	"span":      func(r Rate) string { return (r.Bucket * rateBuckets).String() },
	"sparkline": sparkline,
	"query": func(f Filter, key, value string) string {
		q := map[string]string{"status": f.Status, "code": f.Code}
		if f.Wave != 0 {
			q["wave"] = strconv.Itoa(f.Wave)
		}
		q[key] = value
		var parts []string
		for _, k := range []string{"status", "wave", "code"} {
			if q[k] != "" {
				parts = append(parts, k+"="+template.URLQueryEscaper(q[k]))
			}
		}
		if len(parts) == 0 {
			return ""
		}
		return "?" + strings.Join(parts, "&")
	},
}).ParseFS(templateFS, "templates/*.html"))

// bar turns counts of a total into the widths of a progress bar's parts.
func bar(total int, segs []segment) []segment {
	if total <= 0 {
		return nil
	}
	out := segs[:0]
	for _, s := range segs {
		if s.Pct > 0 {
			n := int(s.Pct)
			s.Title = fmt.Sprintf("%d %s", n, s.Title)
			s.Pct = math.Round(s.Pct*1000/float64(total)) / 10
			out = append(out, s)
		}
	}
	return out
}

// sparkline draws the rate series against the limit as an inline SVG.
func sparkline(r Rate) template.HTML {
	const w, h = 300.0, 48.0
	top := r.Limit
	for _, v := range r.Series {
		top = max(top, v)
	}
	if top == 0 {
		top = 1
	}
	step := w / float64(max(len(r.Series)-1, 1))
	var pts []string
	for i, v := range r.Series {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", float64(i)*step, h-2-(v/top)*(h-4)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="resets per second, last %s">`,
		w, h, w, h, r.Bucket*rateBuckets)
	if r.Limit > 0 {
		y := h - 2 - (r.Limit/top)*(h-4)
		fmt.Fprintf(&b, `<line x1="0" y1="%.1f" x2="%.0f" y2="%.1f" class="limit"><title>limit %s/s</title></line>`, y, w, y,
			strconv.FormatFloat(r.Limit, 'f', -1, 64))
	}
	fmt.Fprintf(&b, `<polyline points="%s" class="rate"/></svg>`, strings.Join(pts, " "))
	return template.HTML(b.String())
}
