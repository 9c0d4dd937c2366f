package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// Notification delivery. Every event is posted to every --notify URL from
// a queue of its own, by a goroutine of its own, so that a receiver that
// hangs or fails delays nothing but its own later events, and never a
// reset: the runner only hands events over, and a full queue drops them
// (counted and logged).
const (
	// notifyQueue is how many events wait per URL before new ones drop.
	notifyQueue = 256
	// notifyAttempts is how many times one event is posted to one URL.
	notifyAttempts = 5
	// notifyBackoff is the first wait between attempts; it doubles.
	notifyBackoff = 500 * time.Millisecond
	// notifyFailedMax is how many failed instance IDs the end event lists.
	notifyFailedMax = 1000
)

// Headers of every notification.
const (
	headerSignature   = "X-Batchreset-Signature" // sha256=HEX: HMAC-SHA256 of the body with the --notify-secret-file key
	headerIdempotency = "Idempotency-Key"        // the event's ID, the same on every attempt
	headerEvent       = "X-Batchreset-Event"     // the event's kind
)

// notifyFlags are the notification flags of run and retry.
type notifyFlags struct {
	urls       []string
	secretFile string
	format     string
	timeout    time.Duration
}

// notifyEvent is the JSON body of a notification.
type notifyEvent struct {
	ID     string         `json:"id"` // the idempotency key
	Kind   string         `json:"kind"`
	Run    string         `json:"run"`
	Runner string         `json:"runner"`
	At     time.Time      `json:"at"`
	Wave   int            `json:"wave,omitempty"`
	Reason string         `json:"reason,omitempty"`
	Totals map[string]int `json:"totals"`
	// Failed lists the instances that ended failed, unknown or unhealthy
	// (run.finished), at most notifyFailedMax; FailedTotal counts them all.
	Failed      []string `json:"failed,omitempty"`
	FailedTotal int      `json:"failed_total,omitempty"`
}

// eventFinished is the kind of the event sent when the run ends.
const eventFinished = "run.finished"

// notifier posts a run's events to the --notify URLs. Its methods are safe
// for concurrent use; Close waits for the deliveries, at most the timeout.
type notifier struct {
	run, runner string
	secret      []byte
	slack       bool
	timeout     time.Duration
	client      *http.Client
	log         *slog.Logger

	seq     atomic.Int64
	dropped atomic.Int64
	sinks   []*notifySink
	wg      sync.WaitGroup
	// ctx ends when Close gives up on the events still queued.
	ctx    context.Context
	giveUp context.CancelFunc

	mu     sync.Mutex // guards closed and the sending on the queues
	closed bool
}

type notifySink struct {
	url   string
	queue chan notifyEvent
}

// check validates the flags; secrets are read by newNotifier.
func (o *notifyFlags) check() error {
	for _, u := range o.urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return usageError("--notify %q: want an http or https URL", redactURL(u))
		}
	}
	if o.format != "json" && o.format != "slack" {
		return usageError("--notify-format must be json or slack, not %q", o.format)
	}
	if o.timeout <= 0 {
		return usageError("--notify-timeout must be positive, not %s", o.timeout)
	}
	if o.secretFile != "" && len(o.urls) == 0 {
		return usageError("--notify-secret-file needs --notify URL")
	}
	return nil
}

// redactURL hides a URL's password and query (a webhook's token is often
// in its path or query: only scheme, host and path's first part show).
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(malformed URL)"
	}
	return p.Scheme + "://" + p.Host + "/…"
}

// newNotifier starts delivering to o.urls; nil when there are none.
func newNotifier(o notifyFlags, run, runnerID string, log *slog.Logger) (*notifier, error) {
	if len(o.urls) == 0 {
		return nil, nil
	}
	n := &notifier{run: run, runner: runnerID, slack: o.format == "slack", timeout: o.timeout,
		client: &http.Client{Timeout: o.timeout}, log: log}
	n.ctx, n.giveUp = context.WithCancel(context.Background())
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return nil, usageError("--notify-secret-file: %v", err)
		}
		n.secret = bytes.TrimSpace(b)
		if len(n.secret) == 0 {
			return nil, usageError("--notify-secret-file %s is empty", o.secretFile)
		}
	}
	for _, u := range o.urls {
		s := &notifySink{url: u, queue: make(chan notifyEvent, notifyQueue)}
		n.sinks = append(n.sinks, s)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.deliver(s)
		}()
	}
	return n, nil
}

// onEvent is the runner's Config.OnEvent: it hands e over and returns.
func (n *notifier) onEvent(e runner.Event) {
	n.send(notifyEvent{Kind: string(e.Kind), At: e.At, Wave: e.Wave, Reason: e.Reason, Totals: totalsMap(e.Totals)})
}

// finished sends the end of the run: its totals and the instances that
// need attention.
func (n *notifier) finished(t runTally, reason string) {
	e := notifyEvent{Kind: eventFinished, At: time.Now(), Reason: reason, Totals: t.Totals, FailedTotal: t.AttentionTotal}
	for _, o := range t.Attention[:min(len(t.Attention), notifyFailedMax)] {
		e.Failed = append(e.Failed, o.InstanceID)
	}
	n.send(e)
}

func totalsMap(t store.Totals) map[string]int {
	m := make(map[string]int, len(t))
	for k, v := range t {
		m[string(k)] = v
	}
	return m
}

// send queues e for every URL, dropping it where the queue is full.
func (n *notifier) send(e notifyEvent) {
	e.ID = fmt.Sprintf("%s:%d", n.runner, n.seq.Add(1))
	e.Run, e.Runner = n.run, n.runner
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
				n.log.Warn("notification dropped: the receiver is behind", "url", redactURL(s.url), "kind", e.Kind)
			}
		}
	}
}

// deliver posts s's events in order until its queue is closed and empty.
func (n *notifier) deliver(s *notifySink) {
	for e := range s.queue {
		body, err := n.body(e)
		if err != nil {
			n.log.Error("notification not encoded", "kind", e.Kind, "err", err)
			continue
		}
		if !n.post(s.url, e, body) {
			n.dropped.Add(1)
		}
	}
}

// post posts one event, retrying with backoff; it reports whether the
// receiver took it (a 2xx answer).
func (n *notifier) post(u string, e notifyEvent, body []byte) bool {
	wait := notifyBackoff
	var last string
	for attempt := 1; attempt <= notifyAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(n.ctx, n.timeout)
		code, err := n.postOnce(ctx, u, e, body)
		cancel()
		if err == nil && code/100 == 2 {
			return true
		}
		last = fmt.Sprint(err)
		if err == nil {
			last = fmt.Sprintf("HTTP %d", code)
			if code/100 == 4 && code != http.StatusTooManyRequests && code != http.StatusRequestTimeout {
				break // the receiver refuses it: sending again changes nothing
			}
		}
		if attempt == notifyAttempts || sleep(n.ctx, jitter(wait)) != nil {
			break
		}
		wait *= 2
	}
	n.log.Warn("notification not delivered", "url", redactURL(u), "kind", e.Kind, "id", e.ID, "last_error", last)
	return false
}

func (n *notifier) postOnce(ctx context.Context, u string, e notifyEvent, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "batchreset/"+buildVersion())
	req.Header.Set(headerIdempotency, e.ID)
	req.Header.Set(headerEvent, e.Kind)
	if n.secret != nil {
		req.Header.Set(headerSignature, "sha256="+sign(n.secret, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, redactErr(err, u)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// redactErr keeps the URL, which may hold a webhook's token, out of err.
func redactErr(err error, u string) error {
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), u, redactURL(u)))
}

// sign returns the hex HMAC-SHA256 of body with key.
func sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// body encodes e: the event as JSON, or a Slack incoming-webhook message.
func (n *notifier) body(e notifyEvent) ([]byte, error) {
	if !n.slack {
		return json.Marshal(e)
	}
	return json.Marshal(map[string]string{"text": slackText(e)})
}

// slackText is the one-line message of e.
func slackText(e notifyEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "batchreset %s: %s", e.Run, e.Kind)
	if e.Wave > 0 {
		fmt.Fprintf(&b, " (wave %d)", e.Wave)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	var parts []string
	for _, s := range statusOrder {
		if c := e.Totals[string(s)]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, s))
		}
	}
	if c := e.Totals[string(store.StatusUnhealthy)]; c > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", c, store.StatusUnhealthy))
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
	return b.String()
}

// Close stops taking events and waits for the queued ones to be delivered,
// at most the notify timeout; then it gives up on the rest, and logs how
// many events never reached a receiver.
func (n *notifier) Close() {
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
