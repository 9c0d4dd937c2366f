package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
)

// TestStatusRunBudget: after `run --health agent --max-failures 5` with two
// instances ending unhealthy, status counts them among the failures,
// lists unhealthy once, and shows the run's own budget, not its own
// --max-failures default; a rerun with another budget records its own.
func TestStatusRunBudget(t *testing.T) {
	setCredentials(t)
	f := newFleet(t, fleetOptions{n: 12, edit: func(c *emulator.Config) {
		c.AgentOnlineAfter = 100 * time.Millisecond
		c.AgentLostInstances = []string{c.Instances[3].ID, c.Instances[8].ID}
	}})
	out := filepath.Join(t.TempDir(), "results.csv")
	res := batchreset(t, append(healthArgs(f, out), "--health", "agent", "--health-timeout", "3s", "--max-failures", "5")...)
	res.wantCode(t, exitFailures, "run --health agent, 2 agents lost")

	res = batchreset(t, "status", "--jobs", f.jobsPath, "--out", out)
	res.wantCode(t, exitOK, "status")
	if n := strings.Count(res.stdout, "unhealthy"); n != 1 {
		t.Errorf("status prints unhealthy %d times, want once:\n%s", n, res.stdout)
	}
	if !strings.Contains(res.stdout, "  unhealthy   2\n") {
		t.Errorf("status does not list 2 unhealthy:\n%s", res.stdout)
	}
	if want := "failures: 2, budget 5 (the run's --max-failures 5)\n"; !strings.Contains(res.stdout, want) {
		t.Errorf("status lacks %q:\n%s", want, res.stdout)
	}

	res = batchreset(t, "status", "--jobs", f.jobsPath, "--out", out, "--output", "json")
	res.wantCode(t, exitOK, "status --output json")
	var st runStatus
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("status --output json: %v\n%s", err, res.stdout)
	}
	if st.Failures != 2 || st.Budget == nil || *st.Budget != 5 || !st.BudgetRecorded || st.BudgetFlag != "5" || st.Totals[string(store.StatusUnhealthy)] != 2 {
		t.Errorf("status --output json = failures %d, budget %v, recorded %t, flag %q, totals %v; want 2 failures, the run's budget 5",
			st.Failures, st.Budget, st.BudgetRecorded, st.BudgetFlag, st.Totals)
	}

	// A rerun (nothing left to do) with no budget records that.
	res = batchreset(t, append(healthArgs(f, out), "--max-failures", "none", "--report", out+".json")...)
	res.wantCode(t, exitFailures, "rerun")
	res = batchreset(t, "status", "--jobs", f.jobsPath, "--out", out)
	if !strings.Contains(res.stdout, "failures: 2, no budget\n") {
		t.Errorf("status after a rerun with --max-failures none:\n%s", res.stdout)
	}
}

// TestStatusRunBudgetPostgres: TestStatusRunBudget for a Postgres run, on
// status and on the page serve shows: the unhealthy count among the
// failures, and the budget is the one the run recorded.
func TestStatusRunBudgetPostgres(t *testing.T) {
	setCredentials(t)
	f := newPGFleet(t, fleetOptions{n: 12, edit: func(c *emulator.Config) {
		c.AgentOnlineAfter = 100 * time.Millisecond
		c.AgentLostInstances = []string{c.Instances[3].ID, c.Instances[8].ID}
	}})
	res := batchreset(t, pgRun(f.url, "fleet", f.fleet, "--health", "agent", "--health-timeout", "3s", "--reset-timeout", "20s", "--max-failures", "5")...)
	res.wantCode(t, exitFailures, "run --health agent, 2 agents lost")

	res = batchreset(t, "status", "--database-url", f.url, "--run", "fleet")
	res.wantCode(t, exitOK, "status")
	if n := strings.Count(res.stdout, "unhealthy"); n != 1 {
		t.Errorf("status prints unhealthy %d times, want once:\n%s", n, res.stdout)
	}
	if want := "failures: 2, budget 5 (the run's)\n"; !strings.Contains(res.stdout, want) {
		t.Errorf("status lacks %q:\n%s", want, res.stdout)
	}

	lr := startRun(t, "serve", "--database-url", f.url, "--status-addr", "127.0.0.1:0")
	var v statuspage.View
	getJSON(t, lr.pageURL(t)+"api/runs/fleet", &v)
	if v.Status.Failures != 2 || v.Plan == nil || v.Plan.Max != 5 || v.Plan.Failures != 2 || v.Status.Totals[string(store.StatusUnhealthy)] != 2 {
		t.Errorf("/api/runs/fleet: failures %d, budget %+v, totals %v; want 2 failures (unhealthy), the run's budget 5",
			v.Status.Failures, v.Plan, v.Status.Totals)
	}
}
