package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batchreset/batchreset/hoststate"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
)

// hostStateEnv is the environment that puts a subprocess's share of the
// host's state (the instance registry, the rate-limit files) under dir.
func hostStateEnv(dir string) []string { return []string{hoststate.EnvDir + "=" + dir} }

// mount runs mount(8) with args and returns a function that unmounts
// target, also called when the test ends. It skips the test unless it runs
// as root and the mount works (CI runs as root).
func mount(t *testing.T, target string, args ...string) (unmount func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a file system needs root")
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", append(args, target)...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount on %s (mount %s): %v: %s", target, strings.Join(args, " "), err, out)
	}
	var once sync.Once
	unmount = func() {
		once.Do(func() {
			if out, err := exec.Command("umount", target).CombinedOutput(); err != nil {
				// A process the test killed may still be going away.
				if out2, err2 := exec.Command("umount", "-l", target).CombinedOutput(); err2 != nil {
					t.Errorf("umount %s: %v: %s; %s", target, err, out, out2)
				}
			}
		})
	}
	t.Cleanup(unmount)
	return unmount
}

// mountTmpfs mounts a tmpfs of size (mount's size= option) on dir.
func mountTmpfs(t *testing.T, dir, size string) (unmount func()) {
	t.Helper()
	return mount(t, dir, "-t", "tmpfs", "-o", "size="+size, "tmpfs")
}

// remount changes the options of the mount on dir (ro, rw).
func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, opts, err, out)
	}
}

// fill writes dir/filler until the file system is full, and returns the
// filler's path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return path
		}
	}
}

// unfill returns a function that removes what fill wrote.
func unfill(t *testing.T, filler string) func() {
	return func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
}

// readOnlyOver mounts, over dir, a read-only file system with the same
// folders and no files: the files a process has open stay writable, and
// every file it opens from then on is on a read-only file system (a busy
// file system cannot be remounted read-only). stage is a scratch folder.
func readOnlyOver(t *testing.T, dir, stage string) (unmount func()) {
	t.Helper()
	mountTmpfs(t, stage, "1m")
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			if err := os.MkdirAll(filepath.Join(stage, rel), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	remount(t, stage, "ro")
	return mount(t, dir, "--bind", stage)
}

// TestUnwritableState: a journal or a host state (the instance registry,
// the rate-limit files) that cannot write, on a full or read-only file
// system, in the middle of a run or from its start, ends the run within
// seconds with exit 3 and one error naming the file and the cause, not one
// per job. No reset was sent without its intent durable in the journal; once
// the disk is healthy again, a rerun of the same command finishes the run,
// every instance reset exactly once.
func TestUnwritableState(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// journal: the journal's folder breaks, else the host state.
		journal bool
		// atStart: the file system is full or (readOnly) read-only when
		// the run starts, after a first run was killed with a reset in
		// doubt; else it breaks once 10 resets are applied: filled, or
		// (readOnly) a read-only one mounted over the host state.
		atStart, readOnly bool
		// fresh: the folder breaks before the first run begins. A run
		// writes its host state's new pages when it begins (it holds
		// every instance then), so a host state that fills later costs
		// it nothing.
		fresh bool
		cause string
	}{
		{name: "JournalFull", journal: true, cause: "no space left on device"},
		{name: "HostStateFullAtStart", fresh: true, cause: "no space left on device"},
		{name: "JournalFullAtStart", journal: true, atStart: true, cause: "no space left on device"},
		{name: "JournalReadOnly", journal: true, atStart: true, readOnly: true, cause: "read-only file system"},
		{name: "HostStateReadOnly", readOnly: true, cause: "read-only file system"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFleet(t, fleetOptions{n: 100, limit: 20})
			root := t.TempDir()
			outDir, hostDir := filepath.Join(root, "out"), filepath.Join(root, "host")
			broken := hostDir
			if tc.journal {
				broken = outDir
			}
			for _, d := range []string{outDir, hostDir} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.readOnly || tc.atStart {
				mountTmpfs(t, broken, "2m")
			}
			out := filepath.Join(outDir, "results.csv")
			env := hostStateEnv(hostDir)
			args := csvRun(f, f.jobsPath, "--out", out)

			var (
				p    *proc
				heal func()
			)
			sent := -1
			switch {
			case tc.fresh:
				heal = unfill(t, fill(t, broken))
				sent = 0
				p = startProcess(t, "broken", env, args...)
			case tc.atStart:
				killed := append([]string{"BATCHRESET_FAILPOINT=" + runner.FailpointAfterCall}, env...)
				startProcess(t, "killed", killed, args...).wantKilled(t, 30*time.Second)
				if tc.readOnly {
					remount(t, broken, "ro")
					heal = func() { remount(t, broken, "rw") }
				} else {
					heal = unfill(t, fill(t, broken))
				}
				sent = f.resets()
				p = startProcess(t, "broken", env, args...)
			default:
				p = startProcess(t, "broken", env, args...)
				eventually(t, 30*time.Second, "10 resets", func() bool { return f.resets() >= 10 })
				if tc.readOnly {
					heal = readOnlyOver(t, hostDir, filepath.Join(root, "stage"))
				} else {
					heal = unfill(t, fill(t, broken))
				}
			}
			p.wantExit(t, 30*time.Second, exitFatal)
			if n := f.resets(); (tc.readOnly || tc.fresh) && sent >= 0 && n != sent {
				t.Errorf("%d resets applied by a run that could not write its state from the start, want none", n-sent)
			}
			stderr := p.stderr.String()
			t.Logf("the run that could not write:\nstderr:\n%s\nstdout:\n%s", indent(stderr), indent(p.stdout.String()))
			if !strings.Contains(stderr, broken) || !strings.Contains(stderr, tc.cause) {
				t.Errorf("stderr does not name a file under %s and %q:\n%s", broken, tc.cause, tail(stderr, 20))
			}
			// One line for the cause, and no warning or error per job: the
			// lines at INFO are the resume's (reconciling a job in doubt).
			warnings := strings.Count(stderr, "level=WARN") + strings.Count(stderr, "level=ERROR")
			if causes := strings.Count(stderr, tc.cause); warnings > 0 || causes != 1 {
				t.Errorf("%d warnings and errors logged, %d lines naming the cause; want none, and one:\n%s", warnings, causes, tail(stderr, 40))
			}
			if stdout := p.stdout.String(); !tc.atStart && !tc.fresh && (!strings.Contains(stdout, "the run ended at once: cannot write") || strings.Contains(stdout, "taken over") || strings.Contains(stdout, "batchreset retry")) {
				t.Errorf("the summary does not say that the state cannot be written, or blames a takeover:\n%s", stdout)
			}
			heal()

			// Every reset applied had its intent in the journal.
			input, err := csvstore.ReadInput(f.jobsPath, csvstore.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st, err := csvstore.OpenInput(out+".state", input)
			if err != nil {
				t.Fatal(err)
			}
			ledger := f.emu.Stats().Resets
			for _, j := range st.Jobs() {
				if n := len(ledger[j.InstanceID]); n > 0 && (j.Status == store.StatusPending || j.Attempts == 0) {
					t.Errorf("%s: reset %d time(s) by the cloud, %s with %d attempts in the journal: a reset without a durable intent", j.InstanceID, n, j.Status, j.Attempts)
				}
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			startProcess(t, "rerun", env, args...).wantExit(t, 90*time.Second, exitOK)
			checkOutcomes(t, f, readResults(t, out), verdict{})
		})
	}
}
