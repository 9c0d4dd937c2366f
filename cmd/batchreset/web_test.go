package main

import (
	"context"
	"encoding/base64"
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

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
	"github.com/batchreset/batchreset/cmd/batchreset/notify"
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

// The status page's credentials in the tests: the user and a password
// that must never be seen in anything the page serves.
const (
	pageUser     = "operator"
	pagePassword = "pw-7d1f0c9e2b"
)

// TestStatusPageBrowser loads the status page of a waved run with failures
// in headless Chromium: the state word, the run's progress bar, the waves
// as a table and the failures first in the instances; the counts change as
// resets finish and the table filters by status. Read-only until the
// operator signs in; then the page pauses the run and cancels it, and each
// control is logged with who sent it. POSTs from another origin or without
// the credentials are refused.
func TestStatusPageBrowser(t *testing.T) {
	setCredentials(t)
	ctx := browser(t)
	f := newFleet(t, fleetOptions{n: 60, limit: 200, edit: func(c *emulator.Config) {
		c.ResetDuration = emulator.Duration{Min: 300 * time.Millisecond, Max: 900 * time.Millisecond}
		for _, i := range []int{3, 7, 11} {
			c.FailInstances = append(c.FailInstances, c.Instances[i].ID)
		}
	}})
	auth := filepath.Join(t.TempDir(), "page-auth")
	writeFile(t, auth, pageUser+":"+pagePassword+"\n")
	rc, hook := newReceiver(t, 0, false)
	lr := startRun(t, "run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", "8", "--waves", "20,50%",
		"--pause-between-waves", "3s", "--poll-interval", "100ms", "--request-timeout", "1s", "--settle-time", "2s",
		"--status-addr", "127.0.0.1:0", "--status-controls", "--status-auth-file", auth, "--notify", hook)
	page := lr.pageURL(t)

	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#counts"))); err != nil {
		t.Fatalf("load %s: %v", page, err)
	}
	text := func(script string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](script))
		if err != nil {
			t.Fatalf("evaluate %s: %v", script, err)
		}
		return strings.TrimSpace(s)
	}
	if n := evalInt(t, ctx, `String(document.querySelectorAll("#controls, form.control").length)`); n != 0 {
		t.Errorf("the page shows %d controls before the operator signed in", n)
	}
	if s := text(`document.getElementById("readonly").textContent`); !strings.Contains(s, "Sign in") {
		t.Errorf("read-only page says %q, want how to sign in", s)
	}
	first := evalInt(t, ctx, `document.getElementById("count-succeeded").textContent`)
	eventually(t, 20*time.Second, "the page's succeeded count to grow without a reload", func() bool {
		return evalInt(t, ctx, `document.getElementById("count-succeeded").textContent`) > first
	})

	// What an operator sees: one word for the state, a progress bar, the
	// waves as a table, and the failures first.
	eventually(t, 30*time.Second, "the three failures on the page", func() bool {
		return evalInt(t, ctx, `document.getElementById("failures").textContent`) == 3
	})
	if s := text(`document.getElementById("state").textContent`); !slices.Contains([]string{"running", "waiting", "finished"}, s) {
		t.Errorf("state = %q, want one word: running, waiting or finished", s)
	}
	if n := evalInt(t, ctx, `String(document.querySelectorAll("#progress i").length)`); n == 0 {
		t.Errorf("the run's progress bar has no parts")
	}
	if s := text(`document.getElementById("done").textContent`); !strings.Contains(s, "of 60 finished") {
		t.Errorf("progress says %q, want N of 60 finished", s)
	}
	waves := text(`[...document.querySelectorAll("#waves tbody tr")].map(r => r.cells[0].textContent.trim() + ":" + r.cells[1].textContent).join(" ")`)
	if waves != "1:20 2:30 3:10" {
		t.Errorf("waves table = %q, want 1:20 2:30 3:10 (20, then 50%% of 60, the last repeating)", waves)
	}
	statuses := text(`[...document.querySelectorAll("#instances tbody td:nth-child(2)")].map(td => td.textContent).join(",")`)
	if !strings.HasPrefix(statuses, "failed,failed,failed,") {
		t.Errorf("instances table starts %.60q, want the 3 failures first", statuses)
	}
	if strings.Contains(text(`document.getElementById("live").textContent`), "wave 0") {
		t.Errorf("the page shows a wave 0")
	}

	// The page's screenshot for the README, with -update, once the
	// failures and the waves show.
	if *update {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "status-page.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

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
	other := evalInt(t, ctx, `String([...document.querySelectorAll("#instances tbody td:nth-child(2)")].filter(td => td.textContent !== "succeeded").length)`)
	if rows == 0 || other != 0 {
		t.Errorf("filtered table: %d rows, %d not succeeded; want some, all succeeded", rows, other)
	}

	// Cross-site and credential-less POSTs are refused, and change nothing.
	origin := strings.TrimSuffix(page, "/")
	for _, tt := range []struct {
		name, origin, user, password string
		want                         int
	}{
		{"OtherOrigin", "http://evil.example", pageUser, pagePassword, http.StatusForbidden},
		{"NoOrigin", "", pageUser, pagePassword, http.StatusForbidden},
		{"NoCredentials", origin, "", "", http.StatusUnauthorized},
		{"WrongPassword", origin, pageUser, "guess", http.StatusUnauthorized},
	} {
		if code := postControl(t, page+"control", tt.origin, tt.user, tt.password, "cancel"); code != tt.want {
			t.Errorf("%s: POST control = HTTP %d, want %d", tt.name, code, tt.want)
		}
	}

	// Sign in (the browser sends the credentials from then on), then pause
	// from the page: the confirmation, then the button.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(pageUser+":"+pagePassword))
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": basic}}); err != nil {
		t.Fatalf("sign in: %v", err)
	}
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
		return err == nil && strings.TrimSpace(s) == "paused"
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
	if !regexp.MustCompile(`run control set from the status page.*action=pause.*user=` + pageUser + `.*user_agent=.*HeadlessChrome`).MatchString(lr.stderr.String()) {
		t.Errorf("the pause is not audited with its user and user agent:\n%s", tail(lr.stderr.String(), 20))
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
	if strings.Contains(lr.stderr.String(), pagePassword) {
		t.Errorf("the page's password is in the run's log")
	}
	jobs := readResults(t, filepath.Join(filepath.Dir(f.jobsPath), "results.csv"))
	totals := checkOutcomes(t, f, jobs, verdict{allowOther: true})
	if totals[store.StatusSkipped] == 0 {
		t.Errorf("cancelled run: totals %v, want some skipped", totals)
	}

	// The pause and the cancel were notified, in order.
	var kinds []string
	for _, r := range rc.requests() {
		var e notify.Event
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind != string(runner.EventWaveFinished) {
			kinds = append(kinds, e.Kind)
		}
	}
	want := []string{string(runner.EventStarted), string(runner.EventPaused), string(runner.EventCancelled), string(runner.EventStopped), notify.KindFinished}
	if !slices.Equal(kinds, want) {
		t.Errorf("events but wave.finished = %v, want %v", kinds, want)
	}
}

// TestStatusPageReadOnly: without --status-controls the page has no
// controls and refuses every POST, even one with the right origin and
// credentials.
func TestStatusPageReadOnly(t *testing.T) {
	setCredentials(t)
	t.Setenv(envStatusUser, pageUser)
	t.Setenv(envStatusPassword, pagePassword)
	f := newFleet(t, fleetOptions{n: 20, limit: 200, edit: func(c *emulator.Config) {
		c.ResetDuration = emulator.Duration{Min: 2 * time.Second, Max: 3 * time.Second}
	}})
	lr := startRun(t, "run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", "50",
		"--poll-interval", "100ms", "--request-timeout", "1s", "--settle-time", "2s", "--status-addr", "127.0.0.1:0")
	page := lr.pageURL(t)
	body := getBody(t, page)
	if strings.Contains(body, `id="controls"`) || !strings.Contains(body, "--status-controls") {
		t.Errorf("read-only page shows controls, or does not say how to get them")
	}
	if code := postControl(t, page+"control", strings.TrimSuffix(page, "/"), pageUser, pagePassword, "pause"); code != http.StatusForbidden {
		t.Errorf("POST control without --status-controls = HTTP %d, want 403", code)
	}
	var api statuspage.View
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

// TestStatusPageWhoMaySteer: the page answers only to its own address,
// loopback names and --status-host names, whatever the path: a request
// naming another host (what a browser sends after DNS rebinding) reads
// nothing and controls nothing, even with the credentials. Controls need
// the credentials, from the environment; the page never serves them, in
// any body or header; the run refuses --status-controls without them.
func TestStatusPageWhoMaySteer(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 20, limit: 200, edit: func(c *emulator.Config) {
		c.ResetDuration = emulator.Duration{Min: 2 * time.Second, Max: 3 * time.Second}
	}})
	args := []string{"run", "--jobs", f.jobsPath, "--endpoint", f.url, "--yes", "--rate", "50", "--poll-interval", "100ms",
		"--request-timeout", "1s", "--settle-time", "2s", "--status-addr", "127.0.0.1:0", "--status-controls"}

	// No credentials: refused before anything is sent.
	res := batchreset(t, args...)
	if res.code != exitUsage || !strings.Contains(res.stderr, envStatusPassword) {
		t.Errorf("--status-controls without credentials: exit %d, want %d naming %s\n%s", res.code, exitUsage, envStatusPassword, res.stderr)
	}
	if got := f.resets(); got != 0 {
		t.Fatalf("%d resets applied by a run refused", got)
	}

	t.Setenv(envStatusUser, pageUser)
	t.Setenv(envStatusPassword, pagePassword)
	lr := startRun(t, append(args, "--status-host", "ops.example.internal")...)
	page := lr.pageURL(t)
	u, err := url.Parse(page)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	var served []string // every body and header the page answered with
	do := func(method, path, host, origin, user, password string) int {
		t.Helper()
		var form url.Values
		if method == http.MethodPost {
			form = url.Values{"action": {"pause"}, "confirm": {"yes"}}
		}
		code, header, body := pageRequest(t, method, page+strings.TrimPrefix(path, "/"), host, origin, user, password, form)
		served = append(served, body, fmt.Sprint(header))
		return code
	}

	evil := "rebind.evil.example:" + port
	for _, tt := range []struct {
		name, method, path, host, origin string
		user                             string
		want                             int
	}{
		{"RebindPage", "GET", "/", evil, "", "", http.StatusMisdirectedRequest},
		{"RebindJSON", "GET", "/api/run", evil, "", "", http.StatusMisdirectedRequest},
		{"RebindLogin", "GET", "/login", evil, "", pageUser, http.StatusMisdirectedRequest},
		{"RebindMissing", "GET", "/nothing", evil, "", "", http.StatusMisdirectedRequest},
		{"RebindControl", "POST", "/control", evil, "http://" + evil, pageUser, http.StatusMisdirectedRequest},
		{"ForgedHostNoPort", "GET", "/api/run", "127.0.0.1.nip.io", "", "", http.StatusMisdirectedRequest},
		{"Loopback", "GET", "/", "127.0.0.1:" + port, "", "", http.StatusOK},
		{"Localhost", "GET", "/api/run", "LOCALHOST:" + port, "", "", http.StatusOK},
		{"IPv6Loopback", "GET", "/", "[::1]:" + port, "", "", http.StatusOK},
		{"NamedHost", "GET", "/", "ops.example.internal:" + port, "", "", http.StatusOK},
		{"ControlNoCredentials", "POST", "/control", "127.0.0.1:" + port, "http://127.0.0.1:" + port, "", http.StatusUnauthorized},
		{"LoginNoCredentials", "GET", "/login", "127.0.0.1:" + port, "", "", http.StatusUnauthorized},
		{"Login", "GET", "/login?next=/", "127.0.0.1:" + port, "", pageUser, http.StatusSeeOther},
		{"PageSignedIn", "GET", "/", "127.0.0.1:" + port, "", pageUser, http.StatusOK},
		{"JSONSignedIn", "GET", "/api/run", "127.0.0.1:" + port, "", pageUser, http.StatusOK},
	} {
		pw := ""
		if tt.user != "" {
			pw = pagePassword
		}
		if got := do(tt.method, tt.path, tt.host, tt.origin, tt.user, pw); got != tt.want {
			t.Errorf("%s: %s %s (Host %s) = HTTP %d, want %d", tt.name, tt.method, tt.path, tt.host, got, tt.want)
		}
	}
	if f.emu.Stats().Resets == nil {
		t.Fatal("no resets seen by the emulator")
	}
	if strings.Contains(lr.stderr.String(), "run paused by operator") {
		t.Errorf("a refused control paused the run")
	}
	if !strings.Contains(lr.stderr.String(), "request for another host refused") {
		t.Errorf("refused hosts are not logged")
	}

	// With the credentials, from the page's origin: paused, and audited.
	if got := do("POST", "/control", "127.0.0.1:"+port, "http://127.0.0.1:"+port, pageUser, pagePassword); got != http.StatusSeeOther {
		t.Errorf("POST control with the credentials = HTTP %d, want 303", got)
	}
	eventually(t, 10*time.Second, "the run to log its pause", func() bool {
		return strings.Contains(lr.stderr.String(), "run paused by operator")
	})
	if !regexp.MustCompile(`run control set from the status page.*action=pause.*user=` + pageUser).MatchString(lr.stderr.String()) {
		t.Errorf("the control is not audited with its user:\n%s", tail(lr.stderr.String(), 10))
	}
	do("POST", "/control", "127.0.0.1:"+port, "http://127.0.0.1:"+port, pageUser, pagePassword) // served too
	for _, s := range served {
		if strings.Contains(s, pagePassword) || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte(pageUser+":"+pagePassword))) {
			t.Errorf("the page served its password:\n%.300s", s)
		}
	}
	if strings.Contains(lr.stderr.String(), pagePassword) {
		t.Errorf("the page's password is in the run's log")
	}
}

// postControl posts action to the control URL u, as from origin ("":
// none), with basic auth when user is set; it returns the HTTP status.
func postControl(t *testing.T, u, origin, user, password, action string) int {
	t.Helper()
	code, _, _ := pageRequest(t, http.MethodPost, u, "", origin, user, password, url.Values{"action": {action}, "confirm": {"yes"}})
	return code
}

// pageRequest sends method to u with the Host header host ("": u's), the
// Origin origin ("": none), basic auth when user is set and form as the
// body (nil: none), following no redirect; it returns the status, the
// headers and the body.
func pageRequest(t *testing.T, method, u, host, origin, user, password string, form url.Values) (int, http.Header, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
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
