package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/batchreset/batchreset/cmd/batchreset/notify"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/runner/runnertest"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// events decodes what rc received.
func events(t *testing.T, rc *receiver) []notify.Event {
	t.Helper()
	var out []notify.Event
	for _, r := range rc.requests() {
		var e notify.Event
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("notification body %q: %v", r.body, err)
		}
		out = append(out, e)
	}
	return out
}

// TestPauseAndRollbackNotified (not parallel: the credentials come from the
// environment) posts to a real receiver: a run paused by --approve canary
// says it waits for the approval of wave 2, naming the wave; one paused by
// its failure budget says so; a rollback's events say how many of its
// instances are back on their previous images, in all and per wave.
func TestPauseAndRollbackNotified(t *testing.T) {
	setCredentials(t)
	paused := func(t *testing.T, rc *receiver) notify.Event {
		t.Helper()
		for _, e := range events(t, rc) {
			if e.Kind == string(runner.EventPaused) {
				return e
			}
		}
		t.Fatalf("no %s notification", runner.EventPaused)
		return notify.Event{}
	}

	t.Run("Approval", func(t *testing.T) {
		f := newFleet(t, fleetOptions{n: 6, limit: 20})
		rc, hook := newReceiver(t, 0, false)
		batchreset(t, csvRun(f, f.jobsPath, "--canary", "2", "--waves", "2", "--approve", "canary", "--notify", hook)...).
			wantCode(t, exitPaused, "run --approve canary")
		if e := paused(t, rc); e.Reason != "approval of wave 2" || e.Wave != 2 {
			t.Errorf("run.paused: reason %q, wave %d; want the approval of wave 2", e.Reason, e.Wave)
		}
	})

	t.Run("Budget", func(t *testing.T) {
		f := newFleet(t, fleetOptions{n: 6, limit: 20, edit: func(c *emulator.Config) {
			c.FailInstances = []string{c.Instances[0].ID}
		}})
		rc, hook := newReceiver(t, 0, false)
		batchreset(t, csvRun(f, f.jobsPath, "--waves", "2", "--max-failures", "0", "--on-failure", "pause", "--notify", hook)...).
			wantCode(t, exitPaused, "run --on-failure pause")
		if e := paused(t, rc); !strings.HasPrefix(e.Reason, "failure budget exceeded") || e.Wave != 0 {
			t.Errorf("run.paused: reason %q, wave %d; want the failure budget, no wave", e.Reason, e.Wave)
		}
	})

	t.Run("Rollback", func(t *testing.T) {
		// Waves of 2: the first two succeed, the third fails past the
		// budget of 1; the four instances reset go back in two waves of 2.
		f := newFleet(t, fleetOptions{n: 9, limit: 20, edit: func(c *emulator.Config) {
			c.FailInstances = []string{c.Instances[4].ID, c.Instances[5].ID}
		}})
		rc, hook := newReceiver(t, 0, false)
		batchreset(t, csvRun(f, f.jobsPath, "--waves", "2", "--max-failures", "1", "--on-failure", "rollback", "--notify", hook)...).
			wantCode(t, exitFailures, "run --on-failure rollback")
		var waveOne, final *notify.Event
		for _, e := range events(t, rc) {
			switch {
			case e.Rollback == nil:
			case e.Kind == string(runner.EventWaveFinished) && e.Wave == 1:
				waveOne = &e
			case e.Kind == notify.KindFinished:
				final = &e
			}
		}
		if waveOne == nil || final == nil {
			t.Fatalf("the rollback's events: wave 1 finished %v, run finished %v; want both with its progress", waveOne != nil, final != nil)
		}
		if rb := waveOne.Rollback; rb.Back != 2 || rb.Total != 4 || len(rb.Waves) != 2 || rb.Waves[0] != (notify.RollbackWave{Wave: 1, Back: 2, Total: 2}) || rb.Waves[1].Back != 0 {
			t.Errorf("wave.finished 1: rollback %+v, want 2 of 4 back, all of wave 1", rb)
		}
		want := []notify.RollbackWave{{Wave: 1, Back: 2, Total: 2}, {Wave: 2, Back: 2, Total: 2}}
		if rb := final.Rollback; rb.Back != 4 || rb.Total != 4 || len(rb.Waves) != 2 || rb.Waves[0] != want[0] || rb.Waves[1] != want[1] {
			t.Errorf("run.finished: rollback %+v, want 4 of 4 back, 2 of 2 in each wave", rb)
		}
		if !strings.HasSuffix(final.Rollback.Of, "results.csv") {
			t.Errorf("rollback of %q, want the run's results file", final.Rollback.Of)
		}
	})
}

// TestPauseAndRollbackPage (not parallel, as above) loads serve's pages in
// headless Chromium: a Postgres run paused by --approve canary says it is
// paused for the approval of wave 2 and shows its instances' hook phases;
// the rollback of a run whose budget was exceeded under --on-failure
// rollback shows how many of its instances are back on their previous
// images, in all and per wave.
func TestPauseAndRollbackPage(t *testing.T) {
	setCredentials(t)
	ctx := browser(t)
	url := postgrestest.NewSchema(t)
	script, _ := runnertest.HookScript(t, t.TempDir(), 0)

	canary := newFleet(t, fleetOptions{n: 6, limit: 20})
	batchreset(t, "import", "--database-url", url, "--jobs", canary.jobsPath, "--run", "canary").wantCode(t, exitOK, "import")
	batchreset(t, pgRun(url, "canary", canary, "--canary", "2", "--waves", "2", "--approve", "canary",
		"--before-reset", "exec:"+script, "--after-reset", "exec:"+script)...).wantCode(t, exitPaused, "run --approve canary")

	bad := newFleet(t, fleetOptions{n: 9, limit: 20, edit: func(c *emulator.Config) {
		c.FailInstances = []string{c.Instances[4].ID, c.Instances[5].ID}
	}})
	batchreset(t, "import", "--database-url", url, "--jobs", bad.jobsPath, "--run", "bad").wantCode(t, exitOK, "import")
	batchreset(t, pgRun(url, "bad", bad, "--waves", "2", "--max-failures", "1", "--on-failure", "rollback")...).
		wantCode(t, exitFailures, "run --on-failure rollback")

	page := startRun(t, "serve", "--database-url", url, "--status-addr", "127.0.0.1:0").pageURL(t)
	text := func(script string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](script))
		if err != nil {
			t.Fatalf("evaluate %s: %v", script, err)
		}
		return strings.Join(strings.Fields(s), " ")
	}
	load := func(path string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(page+path), chromedp.WaitVisible(chromedp.CSS("#counts"))); err != nil {
			t.Fatalf("load %s: %v", path, err)
		}
	}
	// column gives the cells of a table's column, by its header.
	column := func(table, header string) string {
		return text(`(() => { const t = document.getElementById("` + table + `");
			const i = [...t.tHead.rows[0].cells].findIndex(c => c.textContent === "` + header + `");
			return i < 0 ? "no column" : [...t.tBodies[0].rows].map(r => r.cells[i].textContent).join(",") })()`)
	}

	load("runs/canary")
	if s := text(`document.getElementById("state").textContent`); s != "paused" {
		t.Errorf("canary: state %q, want paused", s)
	}
	if s := text(`document.getElementById("waits").textContent`); !strings.Contains(s, "approval of wave 2") {
		t.Errorf("canary: waits %q, want the approval of wave 2", s)
	}
	if s := text(`document.getElementById("hooks").textContent`); !strings.Contains(s, "0 out of service") || !strings.Contains(s, "done 2") {
		t.Errorf("canary: hooks %q, want none out of service, 2 done", s)
	}
	if s := column("instances", "hook"); strings.Count(s, "done") != 2 {
		t.Errorf("canary: hook column %q, want the canary's 2 done", s)
	}

	load("runs/bad-rollback")
	if s := text(`document.getElementById("rollback").textContent`); !strings.Contains(s, "rollback of run bad: 4 of 4 instance(s) back on their previous images") {
		t.Errorf("rollback: %q, want 4 of 4 back", s)
	}
	if s := column("waves", "back"); s != "2 of 2,2 of 2" {
		t.Errorf("rollback: back per wave %q, want 2 of 2 in each", s)
	}
}
