package runner_test

import (
	"strings"
	"testing"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
)

// loginScenario is a fleet whose login settings draw each of ResetInstance's
// login refusals: a key pair the region lacks, a generated password the
// image refuses, key pairs on a Windows instance, and a password too short
// for Windows; the other instances take the run-wide password.
type loginScenario struct {
	b                                  *bundle
	missingKey, noAuto, winKeys, winPw string // instance IDs
	password                           string
}

func setupLogin(t *testing.T) *loginScenario {
	t.Helper()
	const keyA = "lhkp-aaaaaaa1"
	ls := &loginScenario{password: "Abcdef-12"} // 9 characters: Linux only
	var windows []string
	b := setup(t, scenario{n: 8, fleet: emulator.FleetOptions{OtherPlatform: 2}, emu: func(c *emulator.Config) {
		c.KeyPairs = []emulator.KeyPair{{ID: keyA, Region: c.Instances[0].Region}}
		for i := range c.Blueprints {
			if c.Blueprints[i].PlatformType != "WINDOWS" {
				c.Blueprints[i].NoAutoGeneratePassword = true
			}
		}
		for _, in := range c.Instances {
			if in.PlatformType == "WINDOWS" {
				windows = append(windows, in.ID)
			}
		}
	}})
	ls.b = b
	linux := 0
	for i := range b.jobs {
		j := &b.jobs[i]
		switch j.InstanceID {
		case windows[0]:
			j.BlueprintID, j.KeyIDs, ls.winKeys = "", []string{keyA}, j.InstanceID // keep Windows
		case windows[1]:
			j.BlueprintID, ls.winPw = "", j.InstanceID
		default:
			switch linux++; linux {
			case 1:
				j.KeyIDs, ls.missingKey = []string{"lhkp-nothere9"}, j.InstanceID
			case 2:
				j.AutoGeneratePassword, ls.noAuto = true, j.InstanceID
			}
		}
	}
	return ls
}

// TestLoginRefusals: each login refusal of ResetInstance fails its job
// with the API's code, nothing reset, and the run goes on (none of them
// stops the fleet); the other resets carry the run-wide password.
func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	ls := setupLogin(t)
	b := ls.b
	sum, jobs := b.run(t, func(c *runner.Config) { c.Login = runner.Login{Password: ls.password} })
	if sum.StopReason != "" {
		t.Errorf("StopReason = %q, want none: a login refusal fails one job, not the run", sum.StopReason)
	}
	b.verify(t, jobs, verdict{})
	want := map[string]string{
		ls.missingKey: "ResourceNotFound.KeyPairNotFound",
		ls.noAuto:     "UnsupportedOperation.OperationNotSupportAutoGeneratePassword",
		ls.winKeys:    "InvalidParameterValue.InvalidParameterCombination",
		ls.winPw:      "InvalidParameterValue.InvalidPassword",
	}
	log := b.emu.Stats().ResetLog
	for _, j := range jobs {
		if code, ok := want[j.InstanceID]; ok {
			if j.Status != store.StatusFailed || j.ErrorCode != code || j.Attempts != 1 {
				t.Errorf("%s: %s %s (%d attempts), want failed %s after one call", j.InstanceID, j.Status, j.ErrorCode, j.Attempts, code)
			}
			if strings.Contains(j.ErrorMessage, ls.password) {
				t.Errorf("%s: the error message shows the password", j.InstanceID)
			}
			continue
		}
		if j.Status != store.StatusSucceeded {
			t.Errorf("%s: %s %s, want succeeded", j.InstanceID, j.Status, j.ErrorCode)
			continue
		}
		if recs := log[j.InstanceID]; len(recs) != 1 || !recs[0].PasswordSet {
			t.Errorf("%s: ledger %+v, want one reset with the password", j.InstanceID, recs)
		}
	}
	if strings.Contains(b.logs.String(), ls.password) {
		t.Error("the runner logged the password")
	}
}

// TestPreflightLogin: preflight skips the jobs whose login setting would
// certainly be refused (a key pair the region lacks, key pairs or a short
// password on Windows) without sending anything for them; what it cannot
// know beforehand (an image that refuses generated passwords) is the API's
// to refuse.
func TestPreflightLogin(t *testing.T) {
	t.Parallel()
	ls := setupLogin(t)
	b := ls.b
	_, jobs := b.run(t, func(c *runner.Config) {
		c.Login = runner.Login{Password: ls.password}
		c.Rollout = &runner.Rollout{Preflight: true, MaxFailures: -1}
	})
	b.verify(t, jobs, verdict{})
	want := map[string]string{
		ls.missingKey: "preflight: key pair lhkp-nothere9 not found in region",
		ls.winKeys:    "preflight: key pairs cannot be bound to a WINDOWS instance",
		ls.winPw:      "preflight: password refused for a WINDOWS instance: it must be 12 to 30 characters long",
	}
	for _, j := range jobs {
		switch reason, skip := want[j.InstanceID]; {
		case skip:
			if j.Status != store.StatusSkipped || !strings.Contains(j.ErrorMessage, reason) || j.Attempts != 0 {
				t.Errorf("%s: %s %q (%d attempts), want skipped %q before any call", j.InstanceID, j.Status, j.ErrorMessage, j.Attempts, reason)
			}
		case j.InstanceID == ls.noAuto:
			if j.Status != store.StatusFailed || j.ErrorCode != "UnsupportedOperation.OperationNotSupportAutoGeneratePassword" {
				t.Errorf("%s: %s %s, want failed by the API", j.InstanceID, j.Status, j.ErrorCode)
			}
		case j.Status != store.StatusSucceeded:
			t.Errorf("%s: %s %s %q, want succeeded", j.InstanceID, j.Status, j.ErrorCode, j.ErrorMessage)
		}
	}
	if st := b.emu.Stats().Actions["DescribeKeyPairs"]; st.Calls == 0 {
		t.Error("preflight never called DescribeKeyPairs")
	}
}
