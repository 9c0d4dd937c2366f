package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batchreset/batchreset/cmd/batchreset/notify"
	"github.com/batchreset/batchreset/store"
)

// TestHookFailuresShown runs a run whose before-hook fails for one
// instance, printing many lines and the API secret key: the results file
// and the report give every instance's hook phase; the summary, status,
// the report and the run.finished notification (through a real receiver)
// show the failed hook with its last output lines, bounded, and the secret
// nowhere.
func TestHookFailuresShown(t *testing.T) {
	setCredentials(t)
	for _, mode := range []string{"CSV", "Postgres"} {
		t.Run(mode, func(t *testing.T) { testHookFailuresShown(t, mode) })
	}
}

func testHookFailuresShown(t *testing.T, mode string) {
	var f *fleet
	var pgURL string
	if mode == "CSV" {
		f = newFleet(t, fleetOptions{n: 6})
	} else {
		pg := newPGFleet(t, fleetOptions{n: 6})
		f, pgURL = pg.fleet, pg.url
	}
	bad := f.instances[2].ID
	dir := t.TempDir()
	hook := filepath.Join(dir, "drain.sh")
	writeFile(t, hook, fmt.Sprintf(`#!/bin/sh
if [ "$BATCHRESET_PHASE" = before ] && [ "$BATCHRESET_INSTANCE_ID" = %s ]; then
	for i in 1 2 3 4 5 6 7 8; do echo "drain step $i"; done
	echo "load balancer refused: key %s"
	exit 3
fi
`, bad, testSecretKey))
	if err := os.Chmod(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	rc, url := newReceiver(t, 0, false)
	out := filepath.Join(dir, "results.csv")
	reportPath := filepath.Join(dir, "report.json")
	where := []string{"--jobs", f.jobsPath, "--out", out}
	args := append([]string{"run", "--endpoint", f.url, "--yes", "--rate", fmt.Sprint(f.rate)}, where...)
	if mode == "Postgres" {
		where = []string{"--database-url", pgURL, "--run", "fleet"}
		args = pgRun(pgURL, "fleet", f)
	}
	res := batchreset(t, append(args, "--poll-interval", "50ms", "--max-failures", "none", "--before-reset", "exec:"+hook, "--after-reset", "exec:"+hook,
		"--notify", url, "--report", reportPath)...)
	res.wantCode(t, exitFailures, "run with a failing before-hook")
	var jobs []store.Job
	if mode == "CSV" {
		jobs = readResults(t, out)
	} else {
		jobs = dbJobs(t, pgURL, "fleet")
	}

	// A failed drain may have taken its instance half out of service: it
	// stays in phase before, counted out of service. The message keeps
	// the hook's last lines, not its first, and no secret.
	checkMessage := func(where, msg string) {
		t.Helper()
		if !strings.Contains(msg, "load balancer refused: key [redacted]") || strings.Contains(msg, "drain step 1") {
			t.Errorf("%s: message %q, want the hook's last lines, the key redacted", where, msg)
		}
	}
	for _, j := range jobs {
		want := store.HookDone
		if j.InstanceID == bad {
			want = store.HookBefore
			if j.Status != store.StatusSkipped || j.ErrorCode != store.CodeBeforeHookFailed {
				t.Errorf("%s: %s %s, want skipped %s", bad, j.Status, j.ErrorCode, store.CodeBeforeHookFailed)
			}
			checkMessage("results", j.ErrorMessage)
		}
		if j.HookPhase != want {
			t.Errorf("%s: hook_phase %q, want %q", j.InstanceID, j.HookPhase, want)
		}
	}
	for _, want := range []string{"hook phases: 1 instance(s) may be out of service (before 1, done 5)", "1 hook failure(s), with the hook's last output lines:", bad + " "} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("summary does not say %q:\n%s", want, res.stdout)
		}
	}

	st := batchreset(t, append([]string{"status", "--output", "json"}, where...)...)
	st.wantCode(t, exitOK, "status")
	var got runStatus
	if err := json.Unmarshal([]byte(st.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.HookFailures) != 1 || got.HookFailures[0].InstanceID != bad || got.HookPhases[string(store.HookDone)] != 5 || got.OutOfService != 1 {
		t.Errorf("status: hook phases %v, out of service %d, hook failures %+v; want 5 done, 1 out, %s failed", got.HookPhases, got.OutOfService, got.HookFailures, bad)
	} else {
		checkMessage("status", got.HookFailures[0].Message)
	}
	text := batchreset(t, append([]string{"status"}, where...)...).stdout
	if !strings.Contains(text, "hook phases: 1 may be out of service (before 1, done 5)") || !strings.Contains(text, "hook failures (the hook's last output lines):") {
		t.Errorf("status text:\n%s", text)
	}

	var rep report
	b, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, o := range rep.Outcomes {
		if o.HookPhase == "" {
			t.Errorf("report: %s has no hook_phase", o.InstanceID)
		}
	}

	var final *notify.Event
	for _, r := range rc.requests() {
		var e notify.Event
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == notify.KindFinished {
			final = &e
		}
	}
	switch {
	case final == nil:
		t.Fatal("no run.finished notification")
	case final.HookFailuresTotal != 1 || len(final.HookFailures) != 1 || final.HookFailures[0].InstanceID != bad || final.HookFailures[0].Code != store.CodeBeforeHookFailed:
		t.Errorf("run.finished hook failures: %d %+v, want %s's", final.HookFailuresTotal, final.HookFailures, bad)
	default:
		checkMessage("notification", final.HookFailures[0].Message)
	}
	for _, s := range []string{res.stdout, res.stderr, st.stdout, text, string(b)} {
		if strings.Contains(s, testSecretKey) {
			t.Errorf("the secret key was shown")
		}
	}
	for _, r := range rc.requests() {
		if strings.Contains(string(r.body), testSecretKey) {
			t.Errorf("the secret key was notified")
		}
	}
}
