package csv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batchreset/batchreset/store"
)

// failingWriter fails its Writes or its Syncs with the errors given.
type failingWriter struct {
	syncWriter
	writeErr, syncErr error
}

func (f failingWriter) Write(p []byte) (int, error) {
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	return f.syncWriter.Write(p)
}

func (f failingWriter) Sync() error {
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.syncWriter.Sync()
}

// TestJournalUnwritable: whatever made the journal's write or fsync fail
// (a full disk, for real through /dev/full; a failed fsync; an error no
// errno explains), the Store declares itself unusable: that Save and every
// later Save and Claim report store.ErrUnwritable, naming the state file
// and the cause. A Save whose context ends first is not that.
func TestJournalUnwritable(t *testing.T) {
	t.Parallel()
	devFull, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	t.Cleanup(func() { devFull.Close() })
	cases := []struct {
		name  string
		w     func(s *Store) syncWriter
		cause error
		text  string
	}{
		{"Full", func(*Store) syncWriter { return devFull }, syscall.ENOSPC, "write journal: no space left on device"},
		{"SyncEIO", func(s *Store) syncWriter { return failingWriter{syncWriter: s.f, syncErr: syscall.EIO} }, syscall.EIO, "sync journal: input/output error"},
		{"SyncOther", func(s *Store) syncWriter { return failingWriter{syncWriter: s.f, syncErr: errDiskOnFire} }, errDiskOnFire, "sync journal: disk on fire"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jobs := testJobs(3)
			s := openTest(t, jobs)
			s.w = tc.w(s) // before any Save, which hands it to the writer goroutine
			for i, j := range jobs {
				j.Status = store.StatusSubmitting
				err := s.Save(t.Context(), &j)
				if !errors.Is(err, store.ErrUnwritable) || !errors.Is(err, tc.cause) {
					t.Errorf("Save() %d = %v, want store.ErrUnwritable for %v", i, err, tc.cause)
				}
				if err != nil && (!strings.Contains(err.Error(), "cannot write "+s.path) || !strings.Contains(err.Error(), tc.text)) {
					t.Errorf("Save() %d = %q, want it to name %s and %q", i, err, s.path, tc.text)
				}
			}
			if _, _, err := s.Claim(t.Context(), 1); !errors.Is(err, store.ErrUnwritable) {
				t.Errorf("Claim() after the failure = %v, want store.ErrUnwritable", err)
			}
		})
	}
	t.Run("ContextDone", func(t *testing.T) {
		t.Parallel()
		jobs := testJobs(1)
		s := openTest(t, jobs)
		ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
		defer cancel()
		<-ctx.Done()
		j := jobs[0]
		j.Status = store.StatusSubmitting
		if err := s.Save(ctx, &j); err == nil || errors.Is(err, store.ErrUnwritable) {
			t.Errorf("Save() with its context done = %v, want the context's error, not store.ErrUnwritable", err)
		}
	})
}

var errDiskOnFire = errors.New("disk on fire")

// TestOpenNotUnwritable: a state file that cannot be opened for a reason
// of the path, not of the disk, is not store.ErrUnwritable (the command
// calls it a usage error).
func TestOpenNotUnwritable(t *testing.T) {
	t.Parallel()
	jobs := testJobs(1)
	file := filepath.Join(t.TempDir(), "jobs.csv")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(file, "results.csv.state"), jobs, Fingerprint(jobs))
	if !errors.Is(err, syscall.ENOTDIR) || errors.Is(err, store.ErrUnwritable) {
		t.Errorf("Open() under a file = %v, want ENOTDIR, not store.ErrUnwritable", err)
	}
}

// TestRegistryUnwritable: a registry whose file cannot be written (a full
// disk, for real through /dev/full) refuses the intent with
// store.ErrUnwritable naming the file.
func TestRegistryUnwritable(t *testing.T) {
	t.Parallel()
	r := openTestRegistry(t, t.TempDir(), 1<<10)
	full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	h := begin(t, r, "run-a", time.Time{})
	r.f.Close()
	r.f = full
	err = h.Check(&store.Job{InstanceID: "lhins-00000001", Status: store.StatusSubmitting})
	if !errors.Is(err, store.ErrUnwritable) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "cannot write /dev/full: no space left on device") {
		t.Errorf("intent on a full disk = %v, want store.ErrUnwritable naming /dev/full and ENOSPC", err)
	}
}

// TestLocalWriteError: the errnos of a file system that takes no writes are
// store.ErrUnwritable, naming the path once; others, and timeouts, are not.
func TestLocalWriteError(t *testing.T) {
	t.Parallel()
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO} {
		err := store.LocalWriteError("/x/f", &os.PathError{Op: "write", Path: "/x/f", Err: errno})
		if !errors.Is(err, store.ErrUnwritable) || !errors.Is(err, errno) || err.Error() != "cannot write /x/f: "+errno.Error() {
			t.Errorf("%v: %v, want store.ErrUnwritable naming /x/f once", errno, err)
		}
	}
	for _, in := range []error{nil, syscall.EACCES, syscall.ENOENT, syscall.EINTR, context.DeadlineExceeded, errDiskOnFire} {
		if err := store.LocalWriteError("/x/f", in); err != in {
			t.Errorf("%v: %v, want it as it was", in, err)
		}
	}
}
