package csv

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batchreset/batchreset/hoststate"
	"github.com/batchreset/batchreset/store"
)

// Registry is the host's record of which CSV run has which instance in
// flight, shared by every batchreset process of the user on the host
// through one file of fixed-size slots, an instance's entry in each: found
// by hashing the instance ID (open addressing, linear probing), and read
// and written under a lock on the slot's bytes. It closes the window that
// the cloud's visibility lag leaves open when two runs over the same
// instances run at once (two copies of a jobs file, or one file with two
// --out): the journal's own lock is tied to its path, and cannot see the
// other run.
//
// Before an intent (a save to submitting) the registry refuses it with
// store.ErrInstanceBusy while another live process has the instance in
// flight, and with store.ErrResetElsewhere when another run recorded an
// intent for it after this run started. Runs on hosts that share no
// registry are not seen; the cloud check of the runner (a ResetInstance
// that is not ours) is what remains there.
//
// An entry is 64 bytes, written where it lies: a fleet of a million
// instances takes 64 MB of a sparse file, and an update four system calls.
// Entries are never removed (an entry's last intent is what
// ErrResetElsewhere is judged by), so a host that has seen more distinct
// instances than the file has room for checks no more of them, and says so
// once.
type Registry struct {
	f     *os.File
	dir   string
	slots uint64 // a power of two

	log     *slog.Logger
	named   sync.Map    // run keys whose names are written, for messages
	fullLog atomic.Bool // the registry was found full, and it was logged
}

// Registry layout.
const (
	slotSize = 64
	// registrySlots is how many entries the file has room for.
	registrySlots = 1 << 21
	// maxProbe bounds the slots looked at for one instance.
	maxProbe = 512
)

// slotLocks keep a process's goroutines apart on a slot: the file's locks
// are the process's, and exclude other processes only.
var slotLocks [256]sync.Mutex

// OpenRegistry returns the registry kept in dir, created if need be. One
// registry serves one account at one endpoint: the caller names dir after
// them. (It matters only while processes run; a reboot may clear it.) log
// (nil: slog's default) says when the registry is full.
func OpenRegistry(dir string, log *slog.Logger) (*Registry, error) {
	return openRegistry(dir, registrySlots, log)
}

func openRegistry(dir string, slots uint64, log *slog.Logger) (*Registry, error) {
	// Shared by every user's processes of the identity: root and a login
	// user running batchreset for one account must see each other.
	for _, d := range []string{dir, filepath.Join(dir, "runs")} {
		if err := hoststate.MkdirShared(d); err != nil {
			return nil, fmt.Errorf("open instance registry: %w (set %s to a directory every batchreset process on the host can write)", err, hoststate.EnvDir)
		}
	}
	f, err := hoststate.OpenFile(filepath.Join(dir, "slots"))
	if err != nil {
		return nil, fmt.Errorf("open instance registry: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Registry{f: f, dir: dir, slots: slots, log: log}, nil
}

// Close closes the registry's file.
func (r *Registry) Close() error { return r.f.Close() }

// entry is one instance's slot.
type entry struct {
	used, inFlight bool
	key            [16]byte // of the instance ID
	run            [16]byte // of the run: its journal's path and start
	pid            int      // the process that wrote it
	intentAt       time.Time
}

// Slot flags.
const (
	slotUsed = 1 << iota
	slotInFlight
)

func (e *entry) encode() []byte {
	b := make([]byte, slotSize)
	if e.used {
		b[0] |= slotUsed
	}
	if e.inFlight {
		b[0] |= slotInFlight
	}
	copy(b[1:17], e.key[:])
	copy(b[17:33], e.run[:])
	binary.LittleEndian.PutUint32(b[33:37], uint32(e.pid))
	binary.LittleEndian.PutUint64(b[37:45], uint64(e.intentAt.UnixNano()))
	return b
}

func decodeEntry(b []byte) entry {
	var e entry
	e.used, e.inFlight = b[0]&slotUsed != 0, b[0]&slotInFlight != 0
	copy(e.key[:], b[1:17])
	copy(e.run[:], b[17:33])
	e.pid = int(binary.LittleEndian.Uint32(b[33:37]))
	e.intentAt = time.Unix(0, int64(binary.LittleEndian.Uint64(b[37:45])))
	return e
}

func hash16(s string) (k [16]byte) {
	sum := sha256.Sum256([]byte(s))
	copy(k[:], sum[:16])
	return k
}

// update records j, saved by the run run (its journal's path and start,
// started), before it is written: an intent is checked and recorded, and a
// job leaving flight (back to pending, or finished) is recorded so. Other
// saves do not touch the registry.
func (r *Registry) update(j *store.Job, run string, started time.Time) error {
	intent := j.Status == store.StatusSubmitting
	leaving := j.Status == store.StatusPending || j.Status.Terminal()
	if !intent && !leaving {
		return nil
	}
	key, runKey := hash16(j.InstanceID), hash16(run)
	if intent {
		r.name(runKey, run)
	}
	start := binary.LittleEndian.Uint64(key[:8])
	for p := uint64(0); p < min(maxProbe, r.slots); p++ {
		i := (start + p) & (r.slots - 1)
		done, err := r.inSlot(i, func(e *entry) (bool, *entry, error) {
			switch {
			case e.used && e.key != key:
				return false, nil, nil // another instance's: look further
			case !e.used && !intent:
				return true, nil, nil // never in flight on this host
			case !intent:
				if e.run != runKey || !e.inFlight {
					return true, nil, nil
				}
				e.inFlight = false
				return true, e, nil
			}
			if e.used && e.run != runKey {
				switch {
				case e.inFlight && alive(e.pid):
					return true, nil, fmt.Errorf("%w: the run of %s (pid %d) has it in flight", store.ErrInstanceBusy, r.runName(e.run), e.pid)
				case !e.intentAt.Before(started):
					return true, nil, fmt.Errorf("%w: the run of %s sent a reset for it at %s, after this run started at %s",
						store.ErrResetElsewhere, r.runName(e.run), e.intentAt.UTC().Format(time.RFC3339), started.Format(time.RFC3339))
				}
			}
			return true, &entry{used: true, inFlight: true, key: key, run: runKey, pid: os.Getpid(), intentAt: time.Now()}, nil
		})
		if done || err != nil {
			return err
		}
	}
	if intent && !r.fullLog.Swap(true) {
		r.log.Warn("instance registry full: instances it has no room for are not checked against other runs on this host", "path", r.f.Name())
	}
	return nil
}

// inSlot reads slot i under its locks and calls fn with its entry; fn says
// whether the search ends there, and what to write there, if anything.
func (r *Registry) inSlot(i uint64, fn func(*entry) (bool, *entry, error)) (bool, error) {
	mu := &slotLocks[i%uint64(len(slotLocks))]
	mu.Lock()
	defer mu.Unlock()
	off := int64(i * slotSize)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: slotSize}
	fd := r.f.Fd()
	for {
		err := unix.FcntlFlock(fd, unix.F_SETLKW, &lk)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			return true, fmt.Errorf("instance registry: lock %s: %w", r.f.Name(), err)
		}
	}
	defer func() {
		lk.Type = unix.F_UNLCK
		unix.FcntlFlock(fd, unix.F_SETLK, &lk)
	}()
	b := make([]byte, slotSize)
	if _, err := r.f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return true, fmt.Errorf("instance registry: read %s: %w", r.f.Name(), err)
	}
	e := decodeEntry(b) // past the end of the file: an empty slot
	done, write, err := fn(&e)
	if write != nil && err == nil {
		if _, werr := r.f.WriteAt(write.encode(), off); werr != nil {
			return true, fmt.Errorf("instance registry: write %s: %w", r.f.Name(), werr)
		}
	}
	return done, err
}

// name records the name of run, for other processes' messages.
func (r *Registry) name(key [16]byte, run string) {
	if _, ok := r.named.LoadOrStore(key, true); ok {
		return
	}
	path := filepath.Join(r.dir, "runs", hex.EncodeToString(key[:]))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return // there already, or only the messages lose the name
	}
	f.WriteString(run)
	f.Close()
}

// runName is the name of the run key, as name recorded it.
func (r *Registry) runName(key [16]byte) string {
	b, err := os.ReadFile(filepath.Join(r.dir, "runs", hex.EncodeToString(key[:])))
	if err != nil || len(b) == 0 {
		return "run " + hex.EncodeToString(key[:8])
	}
	return string(b)
}

// alive reports whether a process pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
