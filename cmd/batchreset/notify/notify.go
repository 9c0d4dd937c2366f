// Package notify posts a run's events to webhooks, signed, retried, and
// never in the way of a reset; a webhook's URL, its credential, is never
// shown beyond its scheme and host.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// Delivery. Every event is posted to every destination from a queue of
// its own, by a goroutine of its own, so that a receiver that hangs or
// fails delays nothing but its own later events, and never a reset: the
// runner only hands events over, and a full queue drops them (counted and
// logged).
const (
	// queueLen is how many events wait per destination before new ones drop.
	queueLen = 256
	// attempts is how many times one event is posted to one destination.
	attempts = 5
	// backoff is the first wait between attempts; it doubles.
	backoff = 500 * time.Millisecond
)

// FailedMax is how many failed instance IDs the run.finished event lists.
const FailedMax = 1000

// Headers of every notification.
const (
	HeaderSignature   = "X-Batchreset-Signature" // sha256=HEX: HMAC-SHA256 of the body (Config.Signer)
	HeaderIdempotency = "Idempotency-Key"        // the event's ID, the same on every attempt
	HeaderEvent       = "X-Batchreset-Event"     // the event's kind
)

// KindFinished is the kind of the event sent when the run ends; the
// others are the runner's event kinds.
const KindFinished = "run.finished"

// Event is the JSON body of a notification.
type Event struct {
	ID     string         `json:"id"` // the idempotency key
	Kind   string         `json:"kind"`
	Run    string         `json:"run"`
	Runner string         `json:"runner"`
	At     time.Time      `json:"at"`
	Wave   int            `json:"wave,omitempty"`
	Reason string         `json:"reason,omitempty"`
	Totals map[string]int `json:"totals"`
	// Failed lists the instances that ended failed, unknown or unhealthy
	// (run.finished), at most FailedMax; FailedTotal counts them all.
	Failed      []string `json:"failed,omitempty"`
	FailedTotal int      `json:"failed_total,omitempty"`
	// OutOfService counts the instances a lifecycle hook may have left out
	// of service (run.finished); HookFailures lists the instances whose
	// hook failed, at most HookFailuresMax, and HookFailuresTotal counts
	// them all.
	OutOfService      int           `json:"out_of_service,omitempty"`
	HookFailures      []HookFailure `json:"hook_failures,omitempty"`
	HookFailuresTotal int           `json:"hook_failures_total,omitempty"`
	// Rollback is the progress of a rollback run, on each of its events;
	// nil for a run that is no rollback.
	Rollback *Rollback `json:"rollback,omitempty"`
}

// Rollback is how far a rollback run has put its instances back on their
// previous images: in all and per wave, as this runner has seen their
// resets end (store.Status.Reset; run.finished counts the whole run).
type Rollback struct {
	Of    string         `json:"of"` // the run rolled back
	Back  int            `json:"back"`
	Total int            `json:"total"`
	Waves []RollbackWave `json:"waves"`
}

// RollbackWave is how far one wave of a rollback run has come.
type RollbackWave struct {
	Wave  int `json:"wave"` // from 1
	Back  int `json:"back"`
	Total int `json:"total"`
}

// RollbackPlan makes a Notifier's events carry a rollback's progress
// (Event.Rollback): the run it rolls back, and the instances in each of
// its waves, in order.
type RollbackPlan struct {
	Of    string
	Waves []int
}

// HookFailure is an instance whose lifecycle hook failed.
type HookFailure struct {
	InstanceID string `json:"instance_id"`
	// Code is BeforeHookFailed, AfterHookFailed or RestoreHookFailed;
	// Phase the instance's hook phase (store.HookPhase).
	Code  string `json:"code"`
	Phase string `json:"hook_phase,omitempty"`
	// Message ends with the hook's last output lines, bounded and with
	// the run's secrets redacted by the runner.
	Message string `json:"message"`
}

// HookFailuresMax is how many hook failures the run.finished event lists.
const HookFailuresMax = 20

// Hooks is what the run.finished event says of the run's lifecycle hooks:
// the instances that may be out of service, and the failed hooks (Failures
// at most HookFailuresMax of FailuresTotal).
type Hooks struct {
	OutOfService  int
	Failures      []HookFailure
	FailuresTotal int
}

// Origin names who sends: the run, this runner, and the tool's version
// (the User-Agent's); Rollback is set when the run is a rollback.
type Origin struct {
	Run, Runner, Version string
	Rollback             *RollbackPlan
}

// Notifier posts a run's events to the destinations of its Config. Its
// methods are safe for concurrent use and do nothing on a nil Notifier;
// Close waits for the deliveries, at most the timeout.
type Notifier struct {
	origin   Origin
	signer   *Signer
	slack    bool
	timeout  time.Duration
	attempts int
	backoff  time.Duration
	client   *http.Client
	log      *slog.Logger

	seq     atomic.Int64
	dropped atomic.Int64
	sinks   []*sink
	wg      sync.WaitGroup
	// ctx ends when Close gives up on the events still queued.
	ctx    context.Context
	giveUp context.CancelFunc

	mu     sync.Mutex // guards closed and the sending on the queues
	closed bool

	rbMu   sync.Mutex
	rbBack []int // the instances back, per wave finished (Origin.Rollback)
}

type sink struct {
	dest  Destination
	queue chan Event
}

// New starts delivering to c's destinations; it returns nil when there
// are none. It warns of every URL with a secret given on the command line.
func New(c Config, o Origin, log *slog.Logger) *Notifier {
	return start(c, o, log, attempts, backoff)
}

func start(c Config, o Origin, log *slog.Logger, attempts int, backoff time.Duration) *Notifier {
	if len(c.Destinations) == 0 {
		return nil
	}
	n := &Notifier{origin: o, signer: c.Signer, slack: c.Slack, timeout: c.Timeout, attempts: attempts, backoff: backoff, log: log,
		client: &http.Client{Timeout: c.Timeout, CheckRedirect: noRedirect}}
	n.ctx, n.giveUp = context.WithCancel(context.Background())
	for _, d := range c.Destinations {
		if d.argv && d.hasSecret() {
			log.Warn("a --notify URL is on the command line, where every local user can read it (ps): give it in --notify-file or "+EnvURLs, "url", d)
		}
		s := &sink{dest: d, queue: make(chan Event, queueLen)}
		n.sinks = append(n.sinks, s)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.deliver(s)
		}()
	}
	return n
}

// noRedirect keeps a notification where the operator sent it: a redirect
// would post the signed body to a URL nobody named, and is answered as a
// failure instead.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// OnEvent is the runner's Config.OnEvent: it hands e over and returns.
func (n *Notifier) OnEvent(e runner.Event) {
	if n == nil {
		return
	}
	totals := totalsMap(e.Totals)
	n.send(Event{Kind: string(e.Kind), At: e.At, Wave: e.Wave, Reason: e.Reason, Totals: totals,
		Rollback: n.rollback(totals, e.Kind == runner.EventWaveFinished)})
}

// Finished sends the end of the run: why it ended, its totals, the
// instances that need attention (at most FailedMax of failedTotal), and
// what its lifecycle hooks left.
func (n *Notifier) Finished(reason string, totals map[string]int, failed []string, failedTotal int, hooks Hooks) {
	if n == nil {
		return
	}
	n.send(Event{Kind: KindFinished, At: time.Now(), Reason: reason, Totals: totals,
		Failed: failed[:min(len(failed), FailedMax)], FailedTotal: failedTotal,
		OutOfService: hooks.OutOfService, HookFailures: hooks.Failures[:min(len(hooks.Failures), HookFailuresMax)], HookFailuresTotal: hooks.FailuresTotal,
		Rollback: n.rollback(totals, false)})
}

// rollback is the progress of a rollback run whose totals are these, nil
// for a run that is no rollback. The waves run one after another, so the
// instances put back since the last wave finished are the current wave's;
// waveEnded records them as that wave's for good.
func (n *Notifier) rollback(totals map[string]int, waveEnded bool) *Rollback {
	plan := n.origin.Rollback
	if plan == nil {
		return nil
	}
	back := 0
	for st, c := range totals {
		if store.Status(st).Reset() {
			back += c
		}
	}
	n.rbMu.Lock()
	defer n.rbMu.Unlock()
	rb := &Rollback{Of: plan.Of, Back: back, Waves: []RollbackWave{}}
	ended, left := len(n.rbBack), back
	for i, size := range plan.Waves {
		rb.Total += size
		w := RollbackWave{Wave: i + 1, Total: size}
		switch {
		case i < ended:
			w.Back = n.rbBack[i]
		case i == ended:
			w.Back = left
			if waveEnded {
				n.rbBack = append(n.rbBack, left)
			}
		}
		left -= w.Back
		rb.Waves = append(rb.Waves, w)
	}
	return rb
}

func totalsMap(t store.Totals) map[string]int {
	m := make(map[string]int, len(t))
	for k, v := range t {
		m[string(k)] = v
	}
	return m
}

// send queues e for every destination, dropping it where the queue is full.
func (n *Notifier) send(e Event) {
	if n == nil {
		return
	}
	e.ID = fmt.Sprintf("%s:%d", n.origin.Runner, n.seq.Add(1))
	e.Run, e.Runner = n.origin.Run, n.origin.Runner
	e.At = e.At.UTC()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	for _, s := range n.sinks {
		select {
		case s.queue <- e:
		default:
			if n.dropped.Add(1) == 1 {
				n.log.Warn("notification dropped: the receiver is behind", "url", s.dest, "kind", e.Kind)
			}
		}
	}
}

// deliver posts s's events in order until its queue is closed and empty.
func (n *Notifier) deliver(s *sink) {
	for e := range s.queue {
		body, err := n.body(e)
		if err != nil {
			n.log.Error("notification not encoded", "kind", e.Kind, "err", err)
			continue
		}
		if !n.post(s.dest, e, body) {
			n.dropped.Add(1)
		}
	}
}

// post posts one event, retrying with backoff; it reports whether the
// receiver took it (a 2xx answer).
func (n *Notifier) post(d Destination, e Event, body []byte) bool {
	wait := n.backoff
	var last string
	for attempt := 1; attempt <= n.attempts; attempt++ {
		ctx, cancel := context.WithTimeout(n.ctx, n.timeout)
		code, err := n.postOnce(ctx, d, e, body)
		cancel()
		if err == nil && code/100 == 2 {
			return true
		}
		refused := false
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("HTTP %d", code)
			// The receiver refuses it: sending again changes nothing.
			refused = code/100 == 4 && code != http.StatusTooManyRequests && code != http.StatusRequestTimeout
		}
		n.log.Debug("notification attempt failed", "url", d, "kind", e.Kind, "id", e.ID, "attempt", attempt, "err", last)
		if refused || attempt == n.attempts || sleep(n.ctx, jitter(wait)) != nil {
			break
		}
		wait *= 2
	}
	n.log.Warn("notification not delivered", "url", d, "kind", e.Kind, "id", e.ID, "last_error", last)
	return false
}

// postOnce posts body to d once. Its error never holds d's URL.
func (n *Notifier) postOnce(ctx context.Context, d Destination, e Event, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url.String(), bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("make a request to " + d.name)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "batchreset/"+n.origin.Version)
	req.Header.Set(HeaderIdempotency, e.ID)
	req.Header.Set(HeaderEvent, e.Kind)
	if n.signer != nil {
		req.Header.Set(HeaderSignature, "sha256="+n.signer.Sign(body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, d.scrub(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// body encodes e: the event as JSON, or a Slack incoming-webhook message.
func (n *Notifier) body(e Event) ([]byte, error) {
	if !n.slack {
		return json.Marshal(e)
	}
	return json.Marshal(map[string]string{"text": slackText(e)})
}

// slackText is the one-line message of e.
func slackText(e Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "batchreset %s: %s", e.Run, e.Kind)
	if e.Wave > 0 {
		fmt.Fprintf(&b, " (wave %d)", e.Wave)
	}
	switch {
	case e.Kind == string(runner.EventPaused):
		fmt.Fprintf(&b, ": waiting for %s (batchreset resume lets it go on, batchreset cancel ends it)", orOperator(e.Reason))
	case e.Reason != "":
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	if rb := e.Rollback; rb != nil {
		fmt.Fprintf(&b, "\nrollback of %s: %d of %d instance(s) back on their previous images", rb.Of, rb.Back, rb.Total)
		if len(rb.Waves) > 1 {
			var waves []string
			for _, w := range rb.Waves {
				waves = append(waves, fmt.Sprintf("wave %d: %d/%d", w.Wave, w.Back, w.Total))
			}
			fmt.Fprintf(&b, " (%s)", strings.Join(waves, ", "))
		}
	}
	var parts []string
	for _, s := range store.Statuses {
		if c := e.Totals[string(s)]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, s))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(&b, " · %s", strings.Join(parts, ", "))
	}
	if e.FailedTotal > 0 {
		shown := e.Failed[:min(len(e.Failed), 10)]
		fmt.Fprintf(&b, "\nneed attention: %s", strings.Join(shown, ", "))
		if more := e.FailedTotal - len(shown); more > 0 {
			fmt.Fprintf(&b, " and %d more", more)
		}
	}
	if e.OutOfService > 0 {
		fmt.Fprintf(&b, "\n%d instance(s) may still be out of service (a hook did not put them back)", e.OutOfService)
	}
	if e.HookFailuresTotal > 0 {
		fmt.Fprintf(&b, "\n%d hook failure(s):", e.HookFailuresTotal)
		shown := e.HookFailures[:min(len(e.HookFailures), 5)]
		for _, h := range shown {
			fmt.Fprintf(&b, "\n• %s %s: %s", h.InstanceID, h.Code, h.Message)
		}
		if more := e.HookFailuresTotal - len(shown); more > 0 {
			fmt.Fprintf(&b, "\n… and %d more", more)
		}
	}
	return b.String()
}

// orOperator is what a pause waits for: why, or the operator.
func orOperator(why string) string {
	if why == "" || why == "paused by operator" {
		return "the operator"
	}
	return why
}

// Close stops taking events and waits for the queued ones to be delivered,
// at most the timeout; then it gives up on the rest, and logs how many
// events never reached a receiver.
func (n *Notifier) Close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.closed = true
	for _, s := range n.sinks {
		close(s.queue)
	}
	n.mu.Unlock()
	defer n.giveUp()
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(n.timeout):
		n.giveUp()
		<-done
	}
	if d := n.dropped.Load(); d > 0 {
		n.log.Warn("notifications not delivered", "events", d)
	}
}

// jitter returns d ± 20%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()-0.5)*0.4*float64(d))
}

// sleep waits d, or until ctx ends (then it returns ctx's error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
