package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchreset/batchreset/cmd/batchreset/notify"
	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
)

// receiver is a test webhook: it records every request it is sent.
type receiver struct {
	mu   sync.Mutex
	got  []received
	hold chan struct{} // closed to let held requests answer; nil: answer at once
	code int           // the HTTP status it answers; 0 means 204
}

type received struct {
	body    []byte
	headers http.Header
}

func newReceiver(t *testing.T, code int, hold bool) (*receiver, string) {
	t.Helper()
	rc := &receiver{code: code}
	if hold {
		rc.hold = make(chan struct{})
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{body: b, headers: r.Header.Clone()})
		rc.mu.Unlock()
		if rc.hold != nil {
			select {
			case <-rc.hold:
			case <-r.Context().Done():
			}
		}
		if rc.code != 0 {
			w.WriteHeader(rc.code)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() {
		if rc.hold != nil {
			rc.release()
		}
		ts.Close()
	})
	return rc, ts.URL + "/hook"
}

func (rc *receiver) release() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	select {
	case <-rc.hold:
	default:
		close(rc.hold)
	}
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// refusingFleet serves n instances of which those at the refused indices
// refuse every reset.
func refusingFleet(t *testing.T, n int, refused ...int) (*fleet, []string) {
	t.Helper()
	instances, _ := emulator.GenerateFleet(n, emulator.FleetOptions{Seed: 42})
	var bad []string
	for _, i := range refused {
		bad = append(bad, instances[i].ID)
	}
	f := newFleet(t, fleetOptions{n: n, limit: 200, edit: func(c *emulator.Config) {
		c.Faults = []emulator.Fault{{Action: lighthouse.ActionResetInstance, Kind: emulator.FaultError,
			Code: "InvalidParameterValue.BlueprintConfigNotMatch", Instances: bad}}
	}})
	return f, bad
}

// TestNotify: a run in waves that stops at its failure budget posts
// run.started, one wave.finished per finished wave, run.stopped with the
// reason and run.finished with the totals and failed IDs, each signed with
// the secret and carrying a distinct idempotency key that the body repeats.
func TestNotify(t *testing.T) {
	setCredentials(t)
	f, bad := refusingFleet(t, 30, 12, 13, 14)
	rc, hook := newReceiver(t, 0, false)
	secret := filepath.Join(t.TempDir(), "hook.secret")
	writeFile(t, secret, "s3cret-hook-key\n")
	res := batchreset(t, "run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--workers", "1", "--waves", "5", "--max-failures", "2", "--on-failure", "stop", "--poll-interval", "50ms", "--request-timeout", "1s",
		"--settle-time", "2s", "--notify", hook, "--notify-secret-file", secret)
	res.wantCode(t, exitFailures, "run (3 refused, budget 2)")

	var kinds []string
	ids := map[string]bool{}
	var final notify.Event
	for _, r := range rc.requests() {
		mac := hmac.New(sha256.New, []byte("s3cret-hook-key"))
		mac.Write(r.body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); r.headers.Get(notify.HeaderSignature) != want {
			t.Errorf("%s = %q, want %q", notify.HeaderSignature, r.headers.Get(notify.HeaderSignature), want)
		}
		var e notify.Event
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("notification body %q: %v", r.body, err)
		}
		key := r.headers.Get(notify.HeaderIdempotency)
		if key == "" || key != e.ID || ids[key] {
			t.Errorf("%s: idempotency key %q, body id %q: want one set, equal and never seen before", e.Kind, key, e.ID)
		}
		ids[key] = true
		if r.headers.Get(notify.HeaderEvent) != e.Kind || e.Run != f.jobsPath || e.Runner == "" {
			t.Errorf("%s: header %q, run %q, runner %q", e.Kind, r.headers.Get(notify.HeaderEvent), e.Run, e.Runner)
		}
		kinds = append(kinds, e.Kind)
		if e.Kind == notify.KindFinished {
			final = e
		}
		if e.Kind == string(runner.EventStopped) && !strings.Contains(e.Reason, "failure budget") {
			t.Errorf("run.stopped reason = %q, want the failure budget", e.Reason)
		}
	}
	want := []string{string(runner.EventStarted), string(runner.EventWaveFinished), string(runner.EventWaveFinished),
		string(runner.EventStopped), notify.KindFinished}
	if !slices.Equal(kinds, want) {
		t.Errorf("events = %v, want %v", kinds, want)
	}
	slices.Sort(final.Failed)
	slices.Sort(bad)
	if !slices.Equal(final.Failed, bad) || final.FailedTotal != len(bad) || final.Totals["failed"] != len(bad) || final.Totals["skipped"] == 0 {
		t.Errorf("run.finished: failed %v (%d), totals %v; want %v and some skipped", final.Failed, final.FailedTotal, final.Totals, bad)
	}
	if strings.Contains(res.stdout+res.stderr, "s3cret-hook-key") {
		t.Errorf("the notification secret was printed")
	}
}

// TestNotifyNeverSlowsTheRun: with one receiver that hangs and one that
// fails, every reset is made while the hanging receiver still holds the
// first event (it answers nothing until the test ends); both are given up
// on at the end, and the run says so.
func TestNotifyNeverSlowsTheRun(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 40, limit: 200})
	hung, hungURL := newReceiver(t, 0, true)
	failing, failingURL := newReceiver(t, http.StatusInternalServerError, false)
	lr := startRun(t, "run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--poll-interval", "50ms", "--request-timeout", "1s", "--settle-time", "2s",
		"--notify", hungURL, "--notify", failingURL, "--notify-timeout", "1s")
	eventually(t, 60*time.Second, "every instance reset", func() bool { return f.resets() == 40 })
	// It has answered none of them: it answers only once released.
	if n := len(hung.requests()); n == 0 {
		t.Errorf("the hanging receiver got no request while the resets ran, want the first event, held")
	}
	if code := lr.wait(t); code != exitOK {
		t.Errorf("run: exit %d, want 0\nstderr:\n%s", code, tail(lr.stderr.String(), 20))
	}
	if n := len(failing.requests()); n < 2 {
		t.Errorf("the failing receiver got %d requests, want retries", n)
	}
	if !strings.Contains(lr.stderr.String(), "notification not delivered") {
		t.Errorf("the run does not say notifications were not delivered:\n%s", tail(lr.stderr.String(), 20))
	}
	jobs := readResults(t, filepath.Join(filepath.Dir(f.jobsPath), "results.csv"))
	checkOutcomes(t, f, jobs, verdict{})
}

// notifySecrets are the parts of the test's webhook URLs that no output
// may show.
var notifySecrets = []string{"SECRET", "user:", "pass", "frag", "services/T0", "token="}

// TestNotifyShowsNoSecret: webhook URLs in the spellings operators type
// (an upper-case scheme, a user:password, a fragment, mixed-case hosts)
// whose receivers answer 500, refuse the connection (net/http's error
// quotes the URL, canonical and with the password as ***) or present a
// certificate not trusted, or take the events: the log at debug level,
// the summary and the JSON report name each receiver by scheme and host,
// and show no secret part of any URL; a URL that does not parse is
// refused without being shown.
func TestNotifyShowsNoSecret(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 6, limit: 200})
	failing, failingURL := newReceiver(t, http.StatusInternalServerError, false)
	good, goodURL := newReceiver(t, 0, false)
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the untrusted receiver was posted to")
	}))
	untrusted.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the handshakes it refuses
	untrusted.StartTLS()
	t.Cleanup(untrusted.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := l.Addr().String()
	l.Close()
	// addr returns the host:port of a test server's URL; port, its :PORT.
	addr := func(u string) string {
		return strings.TrimPrefix(strings.TrimPrefix(strings.TrimSuffix(u, "/hook"), "http://"), "https://")
	}
	port := func(u string) string { _, p, _ := net.SplitHostPort(addr(u)); return ":" + p }
	urls := []struct{ raw, name string }{
		{"HTTP://" + addr(failingURL) + "/services/T0/B0/SECRETTOKEN", "http://" + addr(failingURL) + "/…"},
		{"https://user:pass@" + refusing + "/x?token=SECRET", "https://" + refusing + "/…"},
		{"HTTPS://LocalHost" + port(untrusted.URL) + "/path/SECRET#frag", "https://localhost" + port(untrusted.URL) + "/…"},
		{"http://LOCALHOST" + port(goodURL) + "/hook?token=SECRETGOOD", "http://localhost" + port(goodURL) + "/…"},
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	args := []string{"run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
		"--poll-interval", "50ms", "--request-timeout", "1s", "--settle-time", "2s", "--log-level", "debug",
		"--report", report, "--notify-timeout", "1s"}
	for _, u := range urls {
		args = append(args, "--notify", u.raw)
	}
	res := batchreset(t, args...)
	res.wantCode(t, exitOK, "run")
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	out := res.stdout + res.stderr + string(b)
	for _, s := range notifySecrets {
		if strings.Contains(out, s) {
			t.Errorf("the output or report shows %q", s)
		}
	}
	for _, u := range urls[:3] {
		if !strings.Contains(res.stderr, "notification not delivered") || !strings.Contains(res.stderr, "url="+u.name) {
			t.Errorf("the log does not name %s as not delivered", u.name)
		}
	}
	for _, want := range []string{"connection refused", "HTTP 500", "certificate", "on the command line"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	if len(failing.requests()) == 0 || len(good.requests()) == 0 {
		t.Errorf("requests: %d to the failing receiver, %d to the good one; want both posted to", len(failing.requests()), len(good.requests()))
	}
	jobs := readResults(t, filepath.Join(filepath.Dir(f.jobsPath), "results.csv"))
	checkOutcomes(t, f, jobs, verdict{})

	// A URL that does not parse is a usage error that does not show it.
	res = batchreset(t, "run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--notify", "https://ho st/SECRET?token=SECRET")
	res.wantCode(t, exitUsage, "run with a malformed --notify URL")
	if strings.Contains(res.stdout+res.stderr, "SECRET") || !strings.Contains(res.stderr, "--notify") {
		t.Errorf("a malformed --notify URL: the error shows it, or does not name the flag")
	}
}

// TestNotifyFromFileAndEnvironment: URLs and the signing key given where
// ps does not show them: --notify-file with comments, or
// BATCHRESET_NOTIFY_URLS (white space between URLs) with the key in
// BATCHRESET_NOTIFY_SECRET; every receiver gets the run's events, signed,
// and nothing warns of the command line. With --notify-file given, the
// environment's URLs are not used.
func TestNotifyFromFileAndEnvironment(t *testing.T) {
	setCredentials(t) // and t.Setenv below: not parallel
	const key = "env-SECRET-key"
	t.Setenv(notify.EnvSecret, key)
	check := func(t *testing.T, res result, rcs ...*receiver) {
		t.Helper()
		res.wantCode(t, exitOK, "run")
		for i, rc := range rcs {
			var kinds []string
			for _, r := range rc.requests() {
				mac := hmac.New(sha256.New, []byte(key))
				mac.Write(r.body)
				if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); r.headers.Get(notify.HeaderSignature) != want {
					t.Errorf("receiver %d: %s = %q, want %q", i, notify.HeaderSignature, r.headers.Get(notify.HeaderSignature), want)
				}
				kinds = append(kinds, r.headers.Get(notify.HeaderEvent))
			}
			if want := []string{string(runner.EventStarted), notify.KindFinished}; !slices.Equal(kinds, want) {
				t.Errorf("receiver %d got %v, want %v", i, kinds, want)
			}
		}
		for _, s := range append(notifySecrets, key, "on the command line") {
			if strings.Contains(res.stdout+res.stderr, s) {
				t.Errorf("the output shows %q", s)
			}
		}
	}
	// args runs a fleet of its own.
	args := func() []string {
		f := newFleet(t, fleetOptions{n: 4, limit: 200})
		return []string{"run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate),
			"--poll-interval", "50ms", "--request-timeout", "1s", "--settle-time", "2s", "--log-level", "debug"}
	}

	a, aURL := newReceiver(t, 0, false)
	b, bURL := newReceiver(t, 0, false)
	t.Setenv(notify.EnvURLs, "\n"+aURL+"/services/T0/SECRETA\t"+strings.Replace(bURL, "http://", "http://user:pass@", 1)+"?token=SECRETB\n")
	check(t, batchreset(t, args()...), a, b)

	c, cURL := newReceiver(t, 0, false)
	file := filepath.Join(t.TempDir(), "hooks")
	writeFile(t, file, "# the team's channel\n\n  "+strings.ToUpper(cURL[:4])+cURL[4:]+"/services/T0/SECRETC#frag\n")
	check(t, batchreset(t, append(args(), "--notify-file", file)...), c)
	if len(a.requests()) != 2 || len(b.requests()) != 2 {
		t.Errorf("the environment's receivers were posted to with --notify-file given")
	}
}
