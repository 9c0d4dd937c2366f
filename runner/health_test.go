package runner

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// TestJudgeAgent is the decision table of one agent observation after a
// reset: only a heartbeat newer than the first one seen since the check
// began passes, whatever the cloud's clock says against ours.
func TestJudgeAgent(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	lim := healthLimits{timeout: 5 * time.Minute}
	running := lighthouse.Instance{InstanceState: lighthouse.StateRunning}
	agent := func(status string, hb time.Time) lighthouse.AutomationAgent {
		return lighthouse.AutomationAgent{InstanceID: "lhins-aaaaaaaa", AgentStatus: status, LastHeartbeatTime: hb.Format(time.RFC3339)}
	}
	type obs struct {
		ag lighthouse.AutomationAgent
		ok bool
	}
	// The cloud's clock is an hour behind ours: no decision may notice.
	cloud := t0.Add(-time.Hour)
	for _, tc := range []struct {
		name   string
		seen   []obs // observations, in order; the last is judged
		in     lighthouse.Instance
		inOK   bool
		at     time.Duration // judged at t0+at
		baked  bool
		want   act
		code   string
		reason string // in the message
	}{
		{name: "FirstOnlineSetsBaseline", seen: []obs{{agent("Online", cloud), true}}, in: running, inOK: true, at: time.Second, want: actKeep},
		{name: "NewerHeartbeatPasses", seen: []obs{{agent("Online", cloud), true}, {agent("Online", cloud.Add(5*time.Second)), true}}, in: running, inOK: true, at: 5 * time.Second, want: actHealthy},
		{name: "SameHeartbeatWaits", seen: []obs{{agent("Online", cloud), true}, {agent("Online", cloud), true}}, in: running, inOK: true, at: 5 * time.Second, want: actKeep},
		{name: "OfflineThenOnline", seen: []obs{{agent("Offline", cloud.Add(-10*time.Minute)), true}, {agent("Online", cloud), true}}, in: running, inOK: true, at: time.Minute, want: actHealthy},
		{name: "NewerHeartbeatButOffline", seen: []obs{{agent("Online", cloud), true}, {agent("Offline", cloud.Add(time.Second)), true}}, in: running, inOK: true, at: time.Minute, want: actKeep},
		{name: "NoAgentYet", seen: []obs{{lighthouse.AutomationAgent{}, false}}, in: running, inOK: true, at: time.Minute, want: actKeep},
		{name: "InstanceNotRunning", seen: []obs{{agent("Online", cloud), true}, {agent("Online", cloud.Add(time.Second)), true}}, in: lighthouse.Instance{InstanceState: "STOPPED"}, inOK: true, at: time.Minute, want: actKeep},
		{name: "InstanceNotDescribedThisPoll", seen: []obs{{agent("Online", cloud), true}, {agent("Online", cloud.Add(time.Second)), true}}, at: time.Minute, want: actHealthy},
		{name: "OfflineUntilTimeout", seen: []obs{{agent("Offline", cloud), true}, {agent("Offline", cloud), true}}, in: running, inOK: true, at: 5*time.Minute + time.Second,
			want: actFinish, code: CodeAgentOffline, reason: "agent Offline"},
		{name: "StaleOnlineUntilTimeout", seen: []obs{{agent("Online", cloud), true}, {agent("Online", cloud), true}}, in: running, inOK: true, at: 6 * time.Minute,
			want: actFinish, code: CodeAgentOffline, reason: "within 5m0s after the reset"},
		{name: "AfterBaking", seen: []obs{{agent("Offline", cloud), true}}, in: running, inOK: true, at: 6 * time.Minute, baked: true,
			want: actFinish, code: CodeAgentOffline, reason: "after baking"},
		{name: "NotRunningAtTimeoutSaysSo", seen: []obs{{agent("Offline", cloud), true}}, in: lighthouse.Instance{InstanceState: "STOPPED"}, inOK: true, at: 6 * time.Minute,
			want: actFinish, code: CodeAgentOffline, reason: "instance STOPPED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := &task{job: store.Job{InstanceID: "lhins-aaaaaaaa"}, health: healthState{baked: tc.baked}}
			tk.checking(t0)
			for _, o := range tc.seen {
				tk.observeAgent(o.ag, o.ok)
			}
			v := judgeAgent(tk, tc.in, tc.inOK, t0.Add(tc.at), lim)
			if v.act != tc.want || v.code != tc.code {
				t.Fatalf("judgeAgent() = %v %q (%s), want %v %q", v.act, v.code, v.msg, tc.want, tc.code)
			}
			if v.act == actFinish && (v.status != store.StatusUnhealthy || !strings.Contains(v.msg, tc.reason)) {
				t.Errorf("judgeAgent() = %s %q, want unhealthy naming %q", v.status, v.msg, tc.reason)
			}
		})
	}
}

// TestJudgeCommand is the decision table of the health command's task.
func TestJudgeCommand(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	lim := healthLimits{timeout: 5 * time.Minute}
	itask := func(status string, exit int, out string) lighthouse.InvocationTask {
		return lighthouse.InvocationTask{InstanceID: "lhins-aaaaaaaa", TaskStatus: status, ErrorInfo: "agent gone",
			TaskResult: lighthouse.TaskResult{ExitCode: exit, Output: base64.StdEncoding.EncodeToString([]byte(out))}}
	}
	for _, tc := range []struct {
		name    string
		inv     string // "" when RunCommand has not started it
		sendErr string
		it      lighthouse.InvocationTask
		ok      bool
		at      time.Duration
		want    act
		code    string
		reason  string
	}{
		{name: "Exit0Passes", inv: "inv-1", it: itask(lighthouse.TaskSuccess, 0, "ok\n"), ok: true, at: time.Second, want: actHealthy},
		{name: "Running", inv: "inv-1", it: itask(lighthouse.TaskRunning, 0, ""), ok: true, at: time.Minute, want: actKeep},
		{name: "NotReportedYet", inv: "inv-1", at: time.Minute, want: actKeep},
		{name: "ExitNonZero", inv: "inv-1", it: itask(lighthouse.TaskFailed, 3, "nginx: down\nline 2\n"), ok: true, at: time.Second,
			want: actFinish, code: CodeHealthCommandFailed, reason: "exited 3: nginx: down | line 2"},
		{name: "SuccessStatusNonZeroExit", inv: "inv-1", it: itask(lighthouse.TaskSuccess, 1, "odd"), ok: true, at: time.Second,
			want: actFinish, code: CodeHealthCommandFailed, reason: "exited 1: odd"},
		{name: "CommandTimeout", inv: "inv-1", it: itask(lighthouse.TaskTimeout, -1, "slow"), ok: true, at: time.Second,
			want: actFinish, code: CodeHealthCommandTimeout, reason: "timed out: slow"},
		{name: "AgentDidNotAnswer", inv: "inv-1", it: itask(lighthouse.TaskTaskTimeout, 0, ""), ok: true, at: time.Second,
			want: actFinish, code: CodeHealthCommandNotRun, reason: "TASK_TIMEOUT): agent gone"},
		{name: "NotFinishedInTime", inv: "inv-1", it: itask(lighthouse.TaskRunning, 0, ""), ok: true, at: 6 * time.Minute,
			want: actFinish, code: CodeHealthTimeout, reason: "inv-1) did not finish within 5m0s; task RUNNING"},
		{name: "NeverStarted", sendErr: "ResourceUnavailable.AgentStatusNotOnline", at: 6 * time.Minute,
			want: actFinish, code: CodeHealthTimeout, reason: "could not be started within 5m0s: ResourceUnavailable.AgentStatusNotOnline"},
		{name: "NotStartedYet", sendErr: "busy", at: time.Minute, want: actKeep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := &task{job: store.Job{InstanceID: "lhins-aaaaaaaa"}}
			tk.checking(t0)
			tk.agentBack(t0)
			if tc.inv != "" {
				tk.commandSent(tc.inv)
			}
			if tc.sendErr != "" {
				tk.commandRefused(tc.sendErr)
			}
			v := judgeCommand(tk, tc.it, tc.ok, t0.Add(tc.at), lim)
			if v.act != tc.want || v.code != tc.code {
				t.Fatalf("judgeCommand() = %v %q (%s), want %v %q", v.act, v.code, v.msg, tc.want, tc.code)
			}
			if v.act == actFinish && (v.status != store.StatusUnhealthy || !strings.Contains(v.msg, tc.reason)) {
				t.Errorf("judgeCommand() = %s %q, want unhealthy naming %q", v.status, v.msg, tc.reason)
			}
		})
	}
}

func TestBakeDone(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	tk := &task{}
	tk.baking(t0)
	if bakeDone(tk, t0.Add(59*time.Second), time.Minute) {
		t.Errorf("bakeDone(59s of 1m) = true, want false")
	}
	if !bakeDone(tk, t0.Add(time.Minute), time.Minute) {
		t.Errorf("bakeDone(1m of 1m) = false, want true")
	}
	if tk.kind != kindBaking || !tk.health.baked {
		t.Errorf("baking(): kind %s baked %t, want baking and true", tk.kind, tk.health.baked)
	}
	tk.checking(t0.Add(time.Minute))
	if tk.kind != kindAgent || !tk.health.baked || !tk.health.started.Equal(t0.Add(time.Minute)) {
		t.Errorf("checking() after baking: kind %s baked %t started %v, want agent, true, t0+1m", tk.kind, tk.health.baked, tk.health.started)
	}
}

func TestFirstLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"one\n", "one"},
		{"a\nb\nc\nd\ne\nf\ng\n", "a | b | c | d | e | …"},
		{"bell\a here\r\n", "bell  here"},
		{strings.Repeat("x", 1000), strings.Repeat("x", maxCommandOutput) + "…"},
		{"bad \xff utf8", "bad ? utf8"},
	} {
		if got := firstLines([]byte(tc.in)); got != tc.want {
			t.Errorf("firstLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLoginFor(t *testing.T) {
	t.Parallel()
	const pw = "Secret-Pass-123"
	keys := []string{"lhkp-aaaaaaaa"}
	for _, tc := range []struct {
		name string
		job  store.Job
		run  Login
		want *lighthouse.LoginConfiguration
	}{
		{name: "None", want: nil},
		{name: "JobKeys", job: store.Job{KeyIDs: keys}, run: Login{Password: pw}, want: &lighthouse.LoginConfiguration{KeyIDs: keys}},
		{name: "JobAuto", job: store.Job{AutoGeneratePassword: true}, run: Login{KeyIDs: []string{"lhkp-bbbbbbbb"}}, want: &lighthouse.LoginConfiguration{AutoGeneratePassword: "YES"}},
		{name: "RunKeys", run: Login{KeyIDs: keys}, want: &lighthouse.LoginConfiguration{KeyIDs: keys}},
		{name: "RunAuto", run: Login{AutoGeneratePassword: true}, want: &lighthouse.LoginConfiguration{AutoGeneratePassword: "YES"}},
		{name: "RunPassword", run: Login{Password: pw}, want: &lighthouse.LoginConfiguration{Password: pw}},
	} {
		got := loginFor(tc.job, tc.run)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: loginFor() differs (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestLoginNeverShowsPassword(t *testing.T) {
	t.Parallel()
	const pw = "Secret-Pass-123"
	l := Login{Password: pw}
	for _, s := range []string{l.String(), l.GoString(), l.LogValue().String()} {
		if strings.Contains(s, pw) {
			t.Errorf("Login shows its password: %q", s)
		}
	}
	if err := (Login{Password: pw, AutoGeneratePassword: true}).Validate(); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("Validate(password and generated) = %v, want an error without the password", err)
	}
	if err := (Login{KeyIDs: make([]string, 6)}).Validate(); err == nil {
		t.Errorf("Validate(6 key pairs) = nil, want an error")
	}
	if err := (Login{KeyIDs: []string{"lhkp-aaaaaaaa"}}).Validate(); err != nil {
		t.Errorf("Validate(1 key pair) = %v, want nil", err)
	}
}

// TestCheckLogin: preflight's verdict on a login setting.
func TestCheckLogin(t *testing.T) {
	t.Parallel()
	linux := &lighthouse.Instance{PlatformType: "LINUX_UNIX"}
	windows := &lighthouse.Instance{PlatformType: "WINDOWS"}
	winBP := &lighthouse.Blueprint{BlueprintID: "lhbp-wwwwwwww", PlatformType: "WINDOWS"}
	job := store.Job{InstanceID: "lhins-aaaaaaaa", Region: "ap-guangzhou"}
	const pw = "Linux-only1" // 11 characters: too short for Windows
	for _, tc := range []struct {
		name string
		job  store.Job
		lc   *lighthouse.LoginConfiguration
		in   *lighthouse.Instance
		bp   *lighthouse.Blueprint
		keys map[string]bool
		want string
	}{
		{name: "NoLogin", job: job, in: linux, want: ""},
		{name: "KeysPresent", job: job, lc: &lighthouse.LoginConfiguration{KeyIDs: []string{"lhkp-aaaaaaaa"}}, in: linux, keys: map[string]bool{"lhkp-aaaaaaaa": true}, want: ""},
		{name: "KeyMissing", job: job, lc: &lighthouse.LoginConfiguration{KeyIDs: []string{"lhkp-aaaaaaaa", "lhkp-bbbbbbbb"}}, in: linux,
			keys: map[string]bool{"lhkp-aaaaaaaa": true, "lhkp-bbbbbbbb": false}, want: "key pair lhkp-bbbbbbbb not found in region ap-guangzhou"},
		{name: "KeysNotLookedUp", job: job, lc: &lighthouse.LoginConfiguration{KeyIDs: []string{"lhkp-aaaaaaaa"}}, in: linux, want: ""},
		{name: "KeysOnWindows", job: job, lc: &lighthouse.LoginConfiguration{KeyIDs: []string{"lhkp-aaaaaaaa"}}, in: windows, keys: map[string]bool{"lhkp-aaaaaaaa": true},
			want: "key pairs cannot be bound to a WINDOWS instance"},
		{name: "KeysToWindowsBlueprint", job: store.Job{BlueprintID: "lhbp-wwwwwwww"}, lc: &lighthouse.LoginConfiguration{KeyIDs: []string{"lhkp-aaaaaaaa"}}, in: linux, bp: winBP,
			want: "key pairs cannot be bound to a WINDOWS instance"},
		{name: "PasswordLinux", job: job, lc: &lighthouse.LoginConfiguration{Password: pw}, in: linux, want: ""},
		{name: "PasswordTooShortForWindows", job: job, lc: &lighthouse.LoginConfiguration{Password: pw}, in: windows,
			want: "password refused for a WINDOWS instance: it must be 12 to 30 characters long"},
		{name: "PasswordTwoKinds", job: job, lc: &lighthouse.LoginConfiguration{Password: "alllowercase1"}, in: linux,
			want: "password refused for a LINUX_UNIX instance: it must hold at least three of lower-case letters, upper-case letters, digits and special characters"},
		{name: "PasswordLeadingSlash", job: job, lc: &lighthouse.LoginConfiguration{Password: "/Abcdefg1"}, in: linux,
			want: "password refused for a LINUX_UNIX instance: it must not start with /"},
		{name: "AutoPassword", job: job, lc: &lighthouse.LoginConfiguration{AutoGeneratePassword: "YES"}, in: windows, want: ""},
	} {
		got := CheckLogin(tc.job, tc.lc, tc.in, tc.bp, tc.keys)
		if got != tc.want {
			t.Errorf("%s: CheckLogin() = %q, want %q", tc.name, got, tc.want)
		}
		if tc.lc != nil && tc.lc.Password != "" && strings.Contains(got, tc.lc.Password) {
			t.Errorf("%s: CheckLogin() quotes the password", tc.name)
		}
	}
}
