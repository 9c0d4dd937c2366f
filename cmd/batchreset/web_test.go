package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// chromiumOnce installs Debian's chromium once per test binary when it is
// missing, as .ci/run does before the tests.
var chromiumOnce = sync.OnceValues(func() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	for _, args := range [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", "chromium"}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 20))
		}
	}
	return exec.LookPath("chromium")
})

// browser starts a headless Chromium for t.
func browser(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the browser test in -short mode")
	}
	path, err := chromiumOnce()
	if err != nil {
		t.Fatalf("no chromium, and installing it failed: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// liveRun is a run started in-process in the background.
type liveRun struct {
	stdout, stderr syncBuffer
	done           chan int
}

func startRun(t *testing.T, args ...string) *liveRun {
	t.Helper()
	lr := &liveRun{done: make(chan int, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	go func() {
		defer cancel()
		lr.done <- run(ctx, args, strings.NewReader(""), &lr.stdout, &lr.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		<-lr.done
	})
	return lr
}

var statusPageLine = regexp.MustCompile(`status page: (http://\S+/)`)

// pageURL waits for the run to say where its status page is.
func (lr *liveRun) pageURL(t *testing.T) string {
	t.Helper()
	var u string
	eventually(t, 20*time.Second, "the status page's address on stderr", func() bool {
		m := statusPageLine.FindStringSubmatch(lr.stderr.String())
		if m != nil {
			u = m[1]
		}
		return m != nil
	})
	return u
}

func (lr *liveRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-lr.done:
		lr.done <- code
		return code
	case <-time.After(commandTimeout):
		t.Fatalf("run still going after %s\nstderr:\n%s", commandTimeout, tail(lr.stderr.String(), 40))
		return 0
	}
}

// evalInt evaluates a script that yields a number on the page.
func evalInt(t *testing.T, ctx context.Context, script string) int {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](script))
	if err != nil {
		t.Fatalf("evaluate %s: %v", script, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("evaluate %s = %q, want a number", script, s)
	}
	return n
}

// TestStatusPageBrowser loads the status page of a running emulated run in
// headless Chromium: the counts change as resets finish, the table filters
// by status, and with --status-controls the page pauses the run and then
// cancels it; POSTs from another origin or without the page's token are
// refused.
func TestStatusPageBrowser(t *testing.T) {
	setCredentials(t)
	ctx := browser(t)
	f := newFleet(t, fleetOptions{n: 60, limit: 200, edit: func(c *emulator.Config) {
		c.ResetDuration = emulator.Duration{Min: 300 * time.Millisecond, Max: 900 * time.Millisecond}
	}})
	rc, hook := newReceiver(t, 0, false)
	lr := startRun(t, "run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", "8", "--waves", "10,50%",
		"--poll-interval", "100ms", "--request-timeout", "1s", "--settle-time", "2s",
		"--status-addr", "127.0.0.1:0", "--status-controls", "--notify", hook)
	page := lr.pageURL(t)

	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#counts"))); err != nil {
		t.Fatalf("load %s: %v", page, err)
	}
	first := evalInt(t, ctx, `document.getElementById("count-succeeded").textContent`)
	eventually(t, 20*time.Second, "the page's succeeded count to grow without a reload", func() bool {
		return evalInt(t, ctx, `document.getElementById("count-succeeded").textContent`) > first
	})

	// Filter the table to the succeeded instances with the form.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#f-status"), "succeeded"),
		chromedp.Click(chromedp.CSS("#f-apply")),
		chromedp.WaitVisible(chromedp.CSS("#instances")),
	); err != nil {
		t.Fatalf("filter: %v", err)
	}
	eventually(t, 10*time.Second, "the filtered page to load", func() bool {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		return err == nil && strings.Contains(loc, "status=succeeded")
	})
	rows := evalInt(t, ctx, `String(document.querySelectorAll("#instances tbody tr").length)`)
	other := evalInt(t, ctx, `String([...document.querySelectorAll("#instances tbody td:nth-child(3)")].filter(td => td.textContent !== "succeeded").length)`)
	if rows == 0 || other != 0 {
		t.Errorf("filtered table: %d rows, %d not succeeded; want some, all succeeded", rows, other)
	}

	// The page's screenshot for the README, with -update.
	if *update {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "status-page.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Cross-site and token-less POSTs are refused, and change nothing.
	token, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("form.control input[name=token]").value`))
	if err != nil || token == "" {
		t.Fatalf("no control token on the page: %q, %v", token, err)
	}
	origin := strings.TrimSuffix(page, "/")
	for _, tt := range []struct {
		name, origin, token string
	}{
		{"OtherOrigin", "http://evil.example", token},
		{"NoOrigin", "", token},
		{"NoToken", origin, ""},
	} {
		if code := postControl(t, page+"control", tt.origin, tt.token, "cancel"); code != http.StatusForbidden {
			t.Errorf("%s: POST control = HTTP %d, want 403", tt.name, code)
		}
	}

	// Pause from the page: the confirmation, then the button.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS("#do-pause")),
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.Click(chromedp.CSS("#confirm-pause")),
		chromedp.Click(chromedp.CSS("#do-pause")),
		chromedp.WaitVisible(chromedp.CSS("#message")),
	); err != nil {
		t.Fatalf("pause: %v", err)
	}
	eventually(t, 10*time.Second, "the page to show the run paused", func() bool {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("state").textContent`))
		return err == nil && strings.Contains(s, "paused")
	})
	var api struct {
		Live struct {
			Paused bool `json:"paused"`
		} `json:"live"`
	}
	getJSON(t, page+"api/run", &api)
	if !api.Live.Paused {
		t.Errorf("/api/run: live.paused = false after pausing from the page")
	}
	if !strings.Contains(lr.stderr.String(), "run paused by operator") {
		t.Errorf("the run never logged that it was paused:\n%s", tail(lr.stderr.String(), 20))
	}

	// Cancel: the run ends, the rest skipped, nothing reset twice.
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("#do-cancel")),
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.Click(chromedp.CSS("#confirm-cancel")),
		chromedp.Click(chromedp.CSS("#do-cancel")),
	); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if code := lr.wait(t); code != exitFailures {
		t.Errorf("cancelled run: exit %d, want %d\nstderr:\n%s", code, exitFailures, tail(lr.stderr.String(), 20))
	}
	jobs := readResults(t, filepath.Join(filepath.Dir(f.jobsPath), "results.csv"))
	totals := checkOutcomes(t, f, jobs, verdict{allowOther: true})
	if totals[store.StatusSkipped] == 0 {
		t.Errorf("cancelled run: totals %v, want some skipped", totals)
	}

	// The pause and the cancel were notified, in order.
	var kinds []string
	for _, r := range rc.requests() {
		var e notifyEvent
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind != string(runner.EventWaveFinished) {
			kinds = append(kinds, e.Kind)
		}
	}
	want := []string{string(runner.EventStarted), string(runner.EventPaused), string(runner.EventCancelled), string(runner.EventStopped), eventFinished}
	if !slices.Equal(kinds, want) {
		t.Errorf("events but wave.finished = %v, want %v", kinds, want)
	}
}

// TestStatusPageReadOnly: without --status-controls the page has no
// controls and refuses every POST, even one with the right origin.
func TestStatusPageReadOnly(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 20, limit: 200, edit: func(c *emulator.Config) {
		c.ResetDuration = emulator.Duration{Min: 2 * time.Second, Max: 3 * time.Second}
	}})
	lr := startRun(t, "run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", "50",
		"--poll-interval", "100ms", "--request-timeout", "1s", "--settle-time", "2s", "--status-addr", "127.0.0.1:0")
	page := lr.pageURL(t)
	body := getBody(t, page)
	if strings.Contains(body, `id="controls"`) || strings.Contains(body, `name="token"`) {
		t.Errorf("read-only page shows controls")
	}
	if code := postControl(t, page+"control", strings.TrimSuffix(page, "/"), "", "pause"); code != http.StatusForbidden {
		t.Errorf("POST control without --status-controls = HTTP %d, want 403", code)
	}
	var api pageView
	getJSON(t, page+"api/run?status=pending", &api)
	if api.Controls || api.Status.Jobs != 20 {
		t.Errorf("/api/run: controls %v, jobs %d; want false, 20", api.Controls, api.Status.Jobs)
	}
	// status reads the journal the live run holds locked, and disturbs
	// nothing.
	eventually(t, 20*time.Second, "status --jobs to show resets in flight", func() bool {
		res := batchreset(t, "status", "--jobs", f.jobsPath, "--output", "json")
		var st runStatus
		return res.code == exitOK && json.Unmarshal([]byte(res.stdout), &st) == nil && st.State == stateUnfinished && st.InFlight > 0
	})
	if code := lr.wait(t); code != exitOK {
		t.Errorf("run: exit %d, want 0", code)
	}
	res := batchreset(t, "status", "--jobs", f.jobsPath)
	if res.code != exitOK || !strings.HasPrefix(res.stdout, "run "+f.jobsPath+" (finished)") || !strings.Contains(res.stdout, "succeeded   20") {
		t.Errorf("status after the run: exit %d\n%s", res.code, res.stdout)
	}
	if got := f.resets(); got != 20 {
		t.Errorf("%d resets applied, want 20", got)
	}
}

func postControl(t *testing.T, u, origin, token, action string) int {
	t.Helper()
	form := url.Values{"action": {action}, "confirm": {"yes"}, "token": {token}}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// TestSentWaves: a job's wave is its place in the order of first intents,
// not in the input (runs go region by region); jobs not sent are in none.
func TestSentWaves(t *testing.T) {
	t.Parallel()
	at := func(s int) time.Time { return time.Date(2026, 12, 1, 1, 0, s, 0, time.UTC) }
	sent := []sentJob{{at(5), 0}, {at(1), 1}, {at(3), 3}, {at(2), 4}, {at(9), 5}}
	if got, want := sentWaves([]int{1, 2}, sent, 6), []int32{3, 1, 0, 2, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("sentWaves(1, 2) = %v, want %v", got, want)
	}
}

// countingSource is a page source that counts how often its jobs are read.
type countingSource struct {
	reads *int
}

func (s countingSource) status(context.Context, time.Time) (runStatus, error) {
	return runStatus{Run: "r", Totals: zeroTotals()}, nil
}
func (s countingSource) jobs(_ context.Context, fn func(*store.Job) error) error {
	*s.reads++
	return fn(&store.Job{InstanceID: "lhins-00000001", Status: store.StatusSucceeded})
}
func (s countingSource) live() *liveInfo                              { return nil }
func (s countingSource) control(context.Context, store.Control) error { return nil }
func (s countingSource) waves() []int                                 { return nil }
func (s countingSource) name() string                                 { return "test:r" }

// TestViewCache: pages refreshing at once read the run's jobs once; a
// control, or the view's age, makes it read again.
func TestViewCache(t *testing.T) {
	t.Parallel()
	var reads int
	src := countingSource{&reads}
	p := &statusPage{}
	for range 5 {
		if v, err := p.cachedView(t.Context(), src, pageFilter{}, ""); err != nil || v.Matched != 1 {
			t.Fatalf("cachedView() = %+v, %v", v, err)
		}
	}
	if reads != 1 {
		t.Errorf("5 views read the jobs %d times, want 1", reads)
	}
	if _, err := p.cachedView(t.Context(), src, pageFilter{Status: "failed"}, ""); err != nil || reads != 2 {
		t.Errorf("another filter: %d reads, %v; want 2", reads, err)
	}
	p.forget(src)
	if _, err := p.cachedView(t.Context(), src, pageFilter{}, ""); err != nil || reads != 3 {
		t.Errorf("after a control: %d reads, %v; want 3", reads, err)
	}
	p.mu.Lock()
	for k, m := range p.views {
		m.at = m.at.Add(-2 * viewMaxAge)
		p.views[k] = m
	}
	p.mu.Unlock()
	if _, err := p.cachedView(t.Context(), src, pageFilter{}, ""); err != nil || reads != 4 {
		t.Errorf("an old view: %d reads, %v; want 4", reads, err)
	}
}
