package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	var final notifyEvent
	for _, r := range rc.requests() {
		mac := hmac.New(sha256.New, []byte("s3cret-hook-key"))
		mac.Write(r.body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); r.headers.Get(headerSignature) != want {
			t.Errorf("%s = %q, want %q", headerSignature, r.headers.Get(headerSignature), want)
		}
		var e notifyEvent
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("notification body %q: %v", r.body, err)
		}
		key := r.headers.Get(headerIdempotency)
		if key == "" || key != e.ID || ids[key] {
			t.Errorf("%s: idempotency key %q, body id %q: want one set, equal and never seen before", e.Kind, key, e.ID)
		}
		ids[key] = true
		if r.headers.Get(headerEvent) != e.Kind || e.Run != f.jobsPath || e.Runner == "" {
			t.Errorf("%s: header %q, run %q, runner %q", e.Kind, r.headers.Get(headerEvent), e.Run, e.Runner)
		}
		kinds = append(kinds, e.Kind)
		if e.Kind == eventFinished {
			final = e
		}
		if e.Kind == string(runner.EventStopped) && !strings.Contains(e.Reason, "failure budget") {
			t.Errorf("run.stopped reason = %q, want the failure budget", e.Reason)
		}
	}
	want := []string{string(runner.EventStarted), string(runner.EventWaveFinished), string(runner.EventWaveFinished),
		string(runner.EventStopped), eventFinished}
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

func TestSlackText(t *testing.T) {
	t.Parallel()
	e := notifyEvent{Kind: eventFinished, Run: "nightly", Reason: "failure budget exceeded (3 failed, budget 2)",
		Totals: map[string]int{"succeeded": 10, "failed": 3}, Failed: []string{"lhins-a", "lhins-b", "lhins-c"}, FailedTotal: 3}
	got := slackText(e)
	want := "batchreset nightly: run.finished: failure budget exceeded (3 failed, budget 2) · 10 succeeded, 3 failed\nneed attention: lhins-a, lhins-b, lhins-c"
	if got != want {
		t.Errorf("slackText = %q, want %q", got, want)
	}
	n := &notifier{slack: true}
	b, err := n.body(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || m["text"] != want || len(m) != 1 {
		t.Errorf("slack body = %s, want {\"text\": …} only", b)
	}
}
