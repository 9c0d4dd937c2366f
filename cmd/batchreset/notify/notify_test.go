package notify

import (
	"encoding/json"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchreset/batchreset/runner"
)

// TestDeliveryShowsNoSecret posts to receivers that fail in each way
// net/http reports with the URL quoted (a refused connection, a
// certificate it does not trust) or that answer 500, each URL spelled as
// operators type them: the debug log of every attempt and the warnings
// name each receiver by scheme and host, and show no secret part.
func TestDeliveryShowsNoSecret(t *testing.T) {
	t.Parallel()
	var got500 atomic.Int64
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got500.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer failing.Close()
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the untrusted receiver was posted to")
	}))
	untrusted.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the handshakes it refuses
	untrusted.StartTLS()
	defer untrusted.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := l.Addr().String()
	l.Close()
	redirecting := httptest.NewServer(http.RedirectHandler(failing.URL+"/moved/SECRETMOVED", http.StatusTemporaryRedirect))
	defer redirecting.Close()

	port := func(u string) string { return u[strings.LastIndex(u, ":")+1:] }
	urls := []struct{ raw, name string }{
		{"HTTP://127.0.0.1:" + port(failing.URL) + "/services/T0/B0/SECRETTOKEN", "http://127.0.0.1:" + port(failing.URL) + "/…"},
		{"https://user:pass@" + refusing + "/x?token=SECRET", "https://" + refusing + "/…"},
		{"HTTPS://LocalHost:" + port(untrusted.URL) + "/path/SECRET#frag", "https://localhost:" + port(untrusted.URL) + "/…"},
		{"http://USER:PASS@LOCALHOST:" + port(redirecting.URL) + "/r/SECRET?sig=SECRET", "http://localhost:" + port(redirecting.URL) + "/…"},
	}
	var c Config
	for i, u := range urls {
		d, err := parseDestination(u.raw, "test")
		if err != nil {
			t.Fatal(err)
		}
		d.argv = i == 0
		c.Destinations = append(c.Destinations, d)
	}
	c.Timeout, c.Signer = 10*time.Second, &Signer{key: []byte("k3y-SECRET")}
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := start(c, Origin{Run: "nightly", Runner: "r1", Version: "test"}, log, 2, time.Millisecond)
	n.OnEvent(runner.Event{Kind: runner.EventStarted, At: time.Now()})
	n.Close()

	out := logs.String()
	if testing.Verbose() {
		t.Logf("logs:\n%s", out)
	}
	for _, s := range []string{"SECRET", "user:", "pass", "USER", "PASS", "frag", "services", "token", "k3y"} {
		if strings.Contains(out, s) {
			t.Errorf("the logs show %q", s)
		}
	}
	if got500.Load() != 2 {
		t.Errorf("the failing receiver got %d requests, want 2 (two attempts)", got500.Load())
	}
	var warned int
	for line := range strings.Lines(out) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.HasPrefix(rec["msg"].(string), "a --notify URL is on the command line") {
			warned++
			if rec["url"] != urls[0].name {
				t.Errorf("command-line warning names %v, want %s", rec["url"], urls[0].name)
			}
		}
	}
	if warned != 1 {
		t.Errorf("%d warnings of a URL on the command line, want 1", warned)
	}
	for _, u := range urls {
		if !strings.Contains(out, `"msg":"notification not delivered","url":"`+u.name+`"`) {
			t.Errorf("no warning that %s was not delivered", u.name)
		}
	}
	for _, want := range []string{"connection refused", "certificate", "HTTP 500", "HTTP 307"} {
		if !strings.Contains(out, want) {
			t.Errorf("the logs do not say %q", want)
		}
	}
}

func TestSlackText(t *testing.T) {
	t.Parallel()
	e := Event{Kind: KindFinished, Run: "nightly", Reason: "failure budget exceeded (3 failed, budget 2)",
		Totals: map[string]int{"succeeded": 10, "failed": 3, "unhealthy": 1}, Failed: []string{"lhins-a", "lhins-b", "lhins-c", "lhins-d"}, FailedTotal: 4}
	got := slackText(e)
	want := "batchreset nightly: run.finished: failure budget exceeded (3 failed, budget 2) · 10 succeeded, 3 failed, 1 unhealthy\nneed attention: lhins-a, lhins-b, lhins-c, lhins-d"
	if got != want {
		t.Errorf("slackText = %q, want %q", got, want)
	}
	n := &Notifier{slack: true}
	b, err := n.body(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || m["text"] != want || len(m) != 1 {
		t.Errorf("slack body = %s, want {\"text\": …} only", b)
	}
}

// syncBuffer is a strings.Builder safe for the writes of the delivering
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
