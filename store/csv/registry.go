package csv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batchreset/batchreset/store"
)

// Registry is the host's record of which CSV run has which instance in
// flight, shared by every batchreset process of the user on the host
// through a directory: one small file per instance, read and written under
// an exclusive lock. It closes the window that the cloud's visibility lag
// leaves open when two runs over the same instances run at once (two copies
// of a jobs file, or one file with two --out): the journal's own lock is
// tied to its path, and cannot see the other run.
//
// Before an intent (a save to submitting) the registry refuses it with
// store.ErrInstanceBusy while another live process has the instance in
// flight, and with store.ErrResetElsewhere when another run recorded an
// intent for it after this run started. Runs on hosts that share no
// registry are not seen; the cloud check of the runner (a ResetInstance
// that is not ours) is what remains there.
type Registry struct {
	dir string
}

// OpenRegistry returns the registry kept in dir, created if need be. One
// registry serves one account at one endpoint: the caller names dir after
// them. (It matters only while processes run; a reboot may clear it.)
func OpenRegistry(dir string) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open instance registry: %w", err)
	}
	return &Registry{dir: dir}, nil
}

// entry is one instance's file.
type entry struct {
	Run      string    `json:"run"`       // the journal's path
	PID      int       `json:"pid"`       // the process that wrote it
	InFlight bool      `json:"in_flight"` // submitting or submitted
	IntentAt time.Time `json:"intent_at"` // the run's latest intent
}

// update records j, saved by the run whose journal is run (started at
// started), before it is written: an intent is checked and recorded, and a
// job leaving flight (back to pending, or finished) is recorded so. Other
// saves do not touch the registry.
func (r *Registry) update(j *store.Job, run string, started time.Time) error {
	intent := j.Status == store.StatusSubmitting
	leaving := j.Status == store.StatusPending || j.Status.Terminal()
	if !intent && !leaving {
		return nil
	}
	// Files are spread over 256 directories by the ID's last two
	// characters, so that no directory of a large fleet grows huge.
	shard := filepath.Join(r.dir, j.InstanceID[max(0, len(j.InstanceID)-2):])
	path := filepath.Join(shard, j.InstanceID)
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if intent {
		flags |= unix.O_CREAT
		if err := os.MkdirAll(shard, 0o700); err != nil {
			return fmt.Errorf("instance registry: %w", err)
		}
	}
	fd, err := unix.Open(path, flags, 0o600)
	if errors.Is(err, unix.ENOENT) {
		return nil // never in flight on this host
	}
	if err != nil {
		return fmt.Errorf("instance registry: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("instance registry: lock %s: %w", path, err)
	}
	var buf [entryMax]byte
	n, err := unix.Pread(fd, buf[:], 0)
	if err != nil {
		return fmt.Errorf("instance registry: read %s: %w", path, err)
	}
	var e entry
	if n > 0 && json.Unmarshal(buf[:n], &e) != nil {
		e = entry{} // a torn write: nothing to go by
	}
	if !intent {
		if e.Run != run || !e.InFlight {
			return nil
		}
		e.InFlight = false
		return writeEntry(fd, path, e, n)
	}
	if e.Run != "" && e.Run != run {
		switch {
		case e.InFlight && alive(e.PID):
			return fmt.Errorf("%w: the run of %s (pid %d) has it in flight", store.ErrInstanceBusy, e.Run, e.PID)
		case !e.IntentAt.Before(started):
			return fmt.Errorf("%w: the run of %s sent a reset for it at %s, after this run started at %s",
				store.ErrResetElsewhere, e.Run, e.IntentAt.Format(time.RFC3339), started.Format(time.RFC3339))
		}
	}
	return writeEntry(fd, path, entry{Run: run, PID: os.Getpid(), InFlight: true, IntentAt: time.Now()}, n)
}

// Registry entry sizes.
const (
	// entrySize is what an entry is padded to with spaces (which JSON
	// ignores): written over the old one in place, it covers it whole,
	// so the file is never truncated, which on a file system that
	// discards freed blocks costs more than the rest of the update.
	entrySize = 1024
	// entryMax is the most of an entry that is read: more than an entry
	// naming a journal path of PATH_MAX (4096 bytes) takes.
	entryMax = 8192
)

// writeEntry writes e over the file's old entry of old bytes.
func writeEntry(fd int, path string, e entry, old int) error {
	b, _ := json.Marshal(e)
	if pad := max(entrySize, old) - len(b); pad > 0 {
		b = append(b, bytes.Repeat([]byte{' '}, pad)...)
	}
	if _, err := unix.Pwrite(fd, b, 0); err != nil {
		return fmt.Errorf("instance registry: write %s: %w", path, err)
	}
	return nil
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
