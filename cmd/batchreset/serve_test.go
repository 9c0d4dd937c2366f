package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// TestServe: serve lists every run of the database, each run has a page
// and a JSON twin with the run's own budget and waves, a run never started
// says so, and with controls a confirmed same-origin POST with the
// credentials pauses the run in the database while one from another
// origin, or without the credentials, is refused.
func TestServe(t *testing.T) {
	setCredentials(t)
	url := postgrestest.NewSchema(t)
	f := newFleet(t, fleetOptions{n: 12, limit: 200})
	batchreset(t, "import", "--database-url", url, "--jobs", f.jobsPath, "--run", "night").wantCode(t, exitOK, "import")
	batchreset(t, "import", "--database-url", url, "--jobs", writeJobs(t, 5, nil), "--run", "later").wantCode(t, exitOK, "import")
	batchreset(t, "run", "--database-url", url, "--run", "night", "--endpoint", f.url, "--yes", "--rate", "50",
		"--poll-interval", "50ms", "--request-timeout", "1s", "--settle-time", "2s", "--lease-ttl", "2s",
		"--waves", "5", "--max-failures", "3").wantCode(t, exitOK, "run")

	t.Setenv(envStatusUser, pageUser)
	t.Setenv(envStatusPassword, pagePassword)
	lr := startRun(t, "serve", "--database-url", url, "--status-addr", "127.0.0.1:0", "--status-controls")
	page := lr.pageURL(t)
	var runs []statuspage.Listing
	getJSON(t, page+"api/runs", &runs)
	if len(runs) != 2 || runs[0].Name != "later" || runs[0].State != stateNotStarted || runs[1].Name != "night" || runs[1].State != stateFinished {
		t.Errorf("/api/runs = %+v, want later (not started) and night (finished)", runs)
	}
	if body := getBody(t, page); !strings.Contains(body, `href="/runs/night"`) || !strings.Contains(body, "not started") {
		t.Errorf("index page does not link the runs:\n%s", body)
	}
	var v statuspage.View
	getJSON(t, page+"api/runs/night?status=succeeded", &v)
	if v.Status.Jobs != 12 || v.Matched != 12 || len(v.Rows) != 12 || v.Status.State != stateFinished {
		t.Errorf("/api/runs/night: jobs %d, matched %d, rows %d, state %q", v.Status.Jobs, v.Matched, len(v.Rows), v.Status.State)
	}
	// The run's own budget and waves, as its runner recorded them.
	if v.Plan == nil || v.Plan.Max != 3 {
		t.Errorf("/api/runs/night: budget %+v, want the run's 3", v.Plan)
	}
	var sizes, sent []int
	for _, w := range v.Waves {
		sizes, sent = append(sizes, w.Size), append(sent, w.Sent)
	}
	if !slices.Equal(sizes, []int{5, 5, 2}) || !slices.Equal(sent, []int{5, 5, 2}) {
		t.Errorf("/api/runs/night: waves of sizes %v with %v sent, want 5 5 2 all sent", sizes, sent)
	}
	if code := getCode(t, page+"runs/nope"); code != http.StatusNotFound {
		t.Errorf("GET /runs/nope = HTTP %d, want 404", code)
	}

	if body := getBody(t, page+"runs/later"); strings.Contains(body, `id="controls"`) || !strings.Contains(body, `id="signin"`) {
		t.Errorf("the run's page shows controls before signing in, or no way to sign in")
	}
	origin := strings.TrimSuffix(page, "/")
	if code := postControl(t, page+"runs/later/control", "http://evil.example", pageUser, pagePassword, "pause"); code != http.StatusForbidden {
		t.Errorf("cross-site POST = HTTP %d, want 403", code)
	}
	if code := postControl(t, page+"runs/later/control", origin, "", "", "pause"); code != http.StatusUnauthorized {
		t.Errorf("POST without credentials = HTTP %d, want 401", code)
	}
	if code := postControl(t, page+"runs/later/control", origin, pageUser, pagePassword, "pause"); code != http.StatusSeeOther {
		t.Errorf("same-origin POST = HTTP %d, want 303", code)
	}
	res := batchreset(t, "status", "--database-url", url, "--run", "later", "--output", "json")
	var st runStatus
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || st.Control != string(store.ControlPaused) || st.State != stateNotStarted {
		t.Errorf("status of later after the page paused it: %+v (%v)", st, err)
	}
}

func getCode(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
