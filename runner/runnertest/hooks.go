package runnertest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batchreset/batchreset/lighthouse/emulator"
	"github.com/batchreset/batchreset/store"
)

// HookScript writes an exec: hook to dir that appends one line to log when
// it starts and one when it ends (phase, instance, start|end, Unix
// nanoseconds, outcome, previous blueprint), sleeps sleep in between, and
// exits 1 in phase before for the instances listed, one a line, in
// dir/fail. It returns the script's path and the log's.
func HookScript(t testing.TB, dir string, sleep time.Duration) (script, log string) {
	t.Helper()
	log = filepath.Join(dir, "hooks.log")
	fail := filepath.Join(dir, "fail")
	script = filepath.Join(dir, "hook.sh")
	body := fmt.Sprintf(`#!/bin/sh
log=%q
echo "$BATCHRESET_PHASE $BATCHRESET_INSTANCE_ID start $(date +%%s%%N) ${BATCHRESET_OUTCOME:--} ${BATCHRESET_PREVIOUS_BLUEPRINT_ID:--} ${BATCHRESET_REGION:--} ${BATCHRESET_PRIVATE_IPS:+ips}" >> "$log"
sleep %s
if [ "$BATCHRESET_PHASE" = before ] && grep -qx "$BATCHRESET_INSTANCE_ID" %q 2>/dev/null; then
	echo "$BATCHRESET_PHASE $BATCHRESET_INSTANCE_ID fail $(date +%%s%%N)" >> "$log"
	echo "cannot drain $BATCHRESET_INSTANCE_ID"
	exit 1
fi
echo "$BATCHRESET_PHASE $BATCHRESET_INSTANCE_ID end $(date +%%s%%N)" >> "$log"
`, log, strconv.FormatFloat(sleep.Seconds(), 'f', 3, 64), fail)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, log
}

// FailHooks makes the before-hook of HookScript in dir fail for ids.
func FailHooks(t testing.TB, dir string, ids ...string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "fail"), []byte(strings.Join(ids, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// HookEvent is one hook run as HookScript logged it.
type HookEvent struct {
	Phase, Outcome, PrevBlueprint, Region string
	HasIPs                                bool
	Start, End                            time.Time // End zero: it did not end (killed, or still running)
	Failed                                bool
}

// ReadHookLog returns the hook runs of log by instance, in start order.
func ReadHookLog(t testing.TB, log string) map[string][]HookEvent {
	t.Helper()
	f, err := os.Open(log)
	if os.IsNotExist(err) {
		return map[string][]HookEvent{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]HookEvent{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 {
			t.Fatalf("hook log line %q", sc.Text())
		}
		ns, err := strconv.ParseInt(fs[3], 10, 64)
		if err != nil {
			t.Fatalf("hook log line %q: %v", sc.Text(), err)
		}
		at := time.Unix(0, ns)
		phase, id := fs[0], fs[1]
		evs := out[id]
		switch fs[2] {
		case "start":
			ev := HookEvent{Phase: phase, Start: at}
			if len(fs) >= 7 {
				ev.Outcome, ev.PrevBlueprint, ev.Region = fs[4], fs[5], fs[6]
				ev.HasIPs = len(fs) >= 8
			}
			out[id] = append(evs, ev)
		case "end", "fail":
			// The latest run of the phase that has not ended.
			for i := len(evs) - 1; i >= 0; i-- {
				if evs[i].Phase == phase && evs[i].End.IsZero() {
					evs[i].End, evs[i].Failed = at, fs[2] == "fail"
					break
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// CheckHooks judges the hooks of every job against the emulator's reset
// log: an instance reset (once: more is an error) had a before-hook that
// ended before the reset was sent and none that started after it, and,
// when after is set, an after-hook that started after the reset ended (and
// after healthEnd, the end of its health command, when known) and ended;
// an instance not reset whose before-hook ended had, after it, a restore
// that ended (when after is set), unless its last before-hook failed. It
// returns how many instances were reset and how many restored.
func CheckHooks(t testing.TB, jobs []store.Job, resets map[string][]emulator.ResetRecord, hooks map[string][]HookEvent,
	after bool, healthEnd map[string]time.Time) (reset, restored int) {
	t.Helper()
	for _, j := range jobs {
		id := j.InstanceID
		evs := hooks[id]
		rs := resets[id]
		var befores []HookEvent
		for _, ev := range evs {
			if ev.Phase == "before" {
				befores = append(befores, ev)
			}
		}
		switch len(rs) {
		case 0:
			drained := slices.IndexFunc(befores, func(ev HookEvent) bool { return !ev.End.IsZero() && !ev.Failed }) >= 0
			if !drained {
				if slices.ContainsFunc(evs, func(ev HookEvent) bool { return ev.Phase == "after" }) {
					t.Errorf("%s: not reset, never drained, yet an after-hook ran: %+v", id, evs)
				}
				continue
			}
			if !after {
				continue
			}
			last := evs[len(evs)-1]
			lastBefore := befores[len(befores)-1]
			switch {
			case lastBefore.Failed && last.Phase == "before":
				// The last drain failed: the instance ends skipped.
				if j.Status != store.StatusSkipped || j.ErrorCode != store.CodeBeforeHookFailed {
					t.Errorf("%s: its last before-hook failed; job %s %s, want skipped %s", id, j.Status, j.ErrorCode, store.CodeBeforeHookFailed)
				}
			case last.Phase == "restore" && !last.End.IsZero() && last.Start.After(lastBefore.End):
				restored++
			default:
				t.Errorf("%s: drained, not reset, and not restored after its last drain (job %s %s): %+v", id, j.Status, j.ErrorMessage, evs)
			}
			if slices.ContainsFunc(evs, func(ev HookEvent) bool { return ev.Phase == "after" }) {
				t.Errorf("%s: not reset, yet an after-hook (not restore) ran: %+v", id, evs)
			}
		case 1:
			reset++
			r := rs[0]
			ok := false
			for _, ev := range befores {
				if !ev.Start.Before(r.At) {
					t.Errorf("%s: a before-hook started at %s, after its reset was sent at %s", id, ev.Start.Format(time.RFC3339Nano), r.At.Format(time.RFC3339Nano))
				}
				if !ev.End.IsZero() && !ev.Failed && ev.End.Before(r.At) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: reset at %s with no before-hook ended before it: %+v", id, r.At.Format(time.RFC3339Nano), befores)
			}
			if !after {
				continue
			}
			var afters []HookEvent
			for _, ev := range evs {
				switch ev.Phase {
				case "after":
					afters = append(afters, ev)
				case "restore":
					if ev.Start.After(r.At) {
						t.Errorf("%s: a restore ran after its reset: %+v", id, ev)
					}
				}
			}
			if len(afters) == 0 || afters[len(afters)-1].End.IsZero() {
				t.Errorf("%s: reset, but no after-hook ended: %+v", id, evs)
				continue
			}
			for _, ev := range afters {
				if !ev.Start.After(r.Ends) {
					t.Errorf("%s: after-hook started at %s, before its reset ended at %s", id, ev.Start.Format(time.RFC3339Nano), r.Ends.Format(time.RFC3339Nano))
				}
				if he, ok := healthEnd[id]; ok && !ev.Start.After(he) {
					t.Errorf("%s: after-hook started at %s, before its health command ended at %s", id, ev.Start.Format(time.RFC3339Nano), he.Format(time.RFC3339Nano))
				}
			}
		default:
			t.Errorf("%s: reset %d times", id, len(rs))
		}
	}
	return reset, restored
}
