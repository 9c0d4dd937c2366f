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

// Registry is the host's record of which live run holds which instance,
// shared by every batchreset process on the host that calls the same
// account (CSV runs and the runners of Postgres runs alike) through one file
// of fixed-size slots, an instance's entry in each: found by hashing the
// instance ID (open addressing, linear probing), and read and written under
// a lock on the slot's bytes.
//
// A run holds its instances from its start to its end (Begin, then Hold for
// each of them), not only while a call is in flight: another run that wants
// an instance a live run holds does not reset it, and is told which run
// holds it. A run is live while one of its processes holds a shared lock on
// the run's lock file; the kernel drops that lock when the process ends,
// however it ends, so a hold never outlives its run and no clock or process
// ID decides it. An instance whose holder died with a call for it in doubt
// is not taken over: only a rerun of that run can settle the call.
//
// An entry is 64 bytes, written where it lies: a fleet of a million
// instances takes 64 MB of a sparse file, and an update four system calls.
// Entries are never removed (an entry's holder is taken over when that run
// has ended), so a host that has seen more distinct instances than the file
// has room for checks no more of them, and says so once.
type Registry struct {
	f     *os.File
	dir   string
	slots uint64 // a power of two

	log     *slog.Logger
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
			return nil, store.LocalWriteError(d, fmt.Errorf("open instance registry: %w (set %s to a directory every batchreset process on the host can write)", err, hoststate.EnvDir))
		}
	}
	f, err := hoststate.OpenFile(filepath.Join(dir, "slots"))
	if err != nil {
		return nil, store.LocalWriteError(filepath.Join(dir, "slots"), fmt.Errorf("open instance registry: %w", err))
	}
	if log == nil {
		log = slog.Default()
	}
	return &Registry{f: f, dir: dir, slots: slots, log: log}, nil
}

// Close closes the registry's file.
func (r *Registry) Close() error { return r.f.Close() }

// Holds is one run's part of the registry, for as long as its process
// keeps it: Begin takes it, End (or the end of the process) lets it go.
type Holds struct {
	r       *Registry
	key     [16]byte
	started time.Time // when the run began, on this host's clock
	// parent is the run this one rolls back, whose instances it takes
	// (but not one with a call in doubt); zero for none.
	parent [16]byte
	// first: this is the run's first process on this host. It may take
	// the instances of runs that have ended; a later process of the run
	// takes only those held after the run began (see heldBy).
	first bool
	lock  *os.File // the run's lock file, held shared while the run lives
}

// Begin makes this process one of run's: it takes a shared lock on the
// run's lock file, which tells every other process that the run is live,
// and records, the first time, the run's name for other runs' messages. run
// identifies the run (a CSV journal's path and start, a database and run
// name); name is how messages call it. started is when the run began (a
// resumed run keeps its first start); zero takes the time the run's first
// process on this host began, as Begin recorded it.
func (r *Registry) Begin(run, name string, started time.Time) (*Holds, error) {
	h := &Holds{r: r, key: hash16(run), started: started}
	base := filepath.Join(r.dir, "runs", hex.EncodeToString(h.key[:]))
	lock, err := hoststate.OpenFile(base + ".lock")
	if err != nil {
		return nil, store.LocalWriteError(base+".lock", fmt.Errorf("instance registry: %w", err))
	}
	if err := flock(lock, unix.LOCK_SH); err != nil {
		lock.Close()
		return nil, fmt.Errorf("instance registry: lock %s: %w", lock.Name(), err)
	}
	h.lock = lock
	if f, err := createShared(base + ".start"); err == nil {
		h.first = true
		_, werr := f.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			h.End()
			return nil, store.LocalWriteError(base+".start", fmt.Errorf("instance registry: %w", werr))
		}
	}
	if h.started.IsZero() {
		b, err := os.ReadFile(base + ".start")
		if err == nil {
			h.started, err = time.Parse(time.RFC3339Nano, string(b))
		}
		if err != nil {
			h.End()
			return nil, fmt.Errorf("instance registry: the run's start: %w", err)
		}
	}
	if f, err := createShared(base); err == nil {
		_, werr := f.WriteString(name)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			h.End()
			return nil, store.LocalWriteError(base, fmt.Errorf("instance registry: %w", werr))
		}
	}
	return h, nil
}

// Inherit makes the run take the instances that parent (a run key, as
// Begin takes it) holds, unless one has a call in doubt: a rollback run
// takes over the instances of the run it rolls back, whose other
// processes may still live.
func (h *Holds) Inherit(parent string) { h.parent = hash16(parent) }

// inherited reports whether e is the parent's, with nothing in doubt.
func (h *Holds) inherited(e *entry) bool {
	return h.parent != [16]byte{} && e.run == h.parent && !e.inFlight
}

// End lets the run's holds go, as the end of the process would.
func (h *Holds) End() {
	if h.lock != nil {
		h.lock.Close()
		h.lock = nil
	}
}

// Hold takes instance id for the run unless another run holds it: a live
// run, one that died with a call for it in doubt, or one that sent a reset
// for it after this run began (a run resumed after another one reset its
// instances does not reset them again). It returns an error
// wrapping store.ErrHeld that names the holder; other errors are the
// registry's own (it cannot be read or written).
func (h *Holds) Hold(id string) error {
	return h.find(id, func(e *entry) (*entry, error) {
		if e.used && e.run != h.key && !h.inherited(e) {
			if err := h.heldBy(e); err != nil {
				return nil, err
			}
		}
		if e.used && e.run == h.key {
			return nil, nil
		}
		return &entry{used: true, key: e.key, run: h.key, pid: os.Getpid(), intentAt: e.intentAt, heldAt: time.Now()}, nil
	})
}

// Check is called before j is saved. An intent (a save to submitting) is
// refused, with an error wrapping store.ErrHeld naming the holder, unless
// this run holds the instance (or can take it: it is free, or its holder
// ended with nothing in doubt); it is then recorded as in flight. A job
// leaving flight (back to pending, or finished) is recorded so. Other
// saves do not touch the registry.
func (h *Holds) Check(j *store.Job) error {
	intent := j.Status == store.StatusSubmitting
	leaving := j.Status == store.StatusPending || j.Status.Terminal()
	if !intent && !leaving {
		return nil
	}
	return h.find(j.InstanceID, func(e *entry) (*entry, error) {
		switch {
		case !intent && (!e.used || e.run != h.key || !e.inFlight):
			return nil, nil
		case !intent:
			e.inFlight = false
			return e, nil
		case e.used && e.run != h.key && !h.inherited(e):
			// Held by another run when this one began: not ours to reset,
			// even if that run has ended since.
			if err := h.heldBy(e); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %s held it when this run began", store.ErrHeld, h.r.runName(e.run))
		}
		now := time.Now()
		held := e.heldAt
		if !e.used || e.run != h.key {
			held = now
		}
		return &entry{used: true, inFlight: true, key: e.key, run: h.key, pid: os.Getpid(), intentAt: now, heldAt: held}, nil
	})
}

// Held reports, without changing anything, whether another run holds the
// instance of j: an error wrapping store.ErrHeld that names the holder, or
// nil when this run holds it or may take it.
func (h *Holds) Held(j *store.Job) error {
	return h.find(j.InstanceID, func(e *entry) (*entry, error) {
		if !e.used || e.run == h.key || h.inherited(e) {
			return nil, nil
		}
		if err := h.heldBy(e); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s held it when this run began", store.ErrHeld, h.r.runName(e.run))
	})
}

// heldBy returns the refusal for an instance e another run holds, or nil
// when this run may take it: that run has ended with nothing of the
// instance in doubt and sent no reset for it since this run began, and, for
// a later process of this run, took it after this run began. (A hold taken
// before is one the run's first process found live and left alone: the
// instance was another run's when this run began, and stays so.)
func (h *Holds) heldBy(e *entry) error {
	switch {
	case !h.first && !e.heldAt.After(h.started) && h.r.live(e.run):
		return fmt.Errorf("%w: %s (pid %d) holds it", store.ErrHeld, h.r.runName(e.run), e.pid)
	case !h.first && !e.heldAt.After(h.started):
		return fmt.Errorf("%w: %s held it when this run began", store.ErrHeld, h.r.runName(e.run))
	case h.r.live(e.run):
		return fmt.Errorf("%w: %s (pid %d) holds it", store.ErrHeld, h.r.runName(e.run), e.pid)
	case e.inFlight:
		return fmt.Errorf("%w: %s ended with a reset of it in doubt, sent at %s; rerun that run to settle it",
			store.ErrHeld, h.r.runName(e.run), e.intentAt.UTC().Format(time.RFC3339))
	case !e.intentAt.IsZero() && !e.intentAt.Before(h.started):
		return fmt.Errorf("%w: %s sent a reset for it at %s, after this run began at %s",
			store.ErrHeld, h.r.runName(e.run), e.intentAt.UTC().Format(time.RFC3339), h.started.UTC().Format(time.RFC3339))
	}
	return nil
}

// find looks up id's entry (or the empty slot where it would go) and calls
// fn with it; fn returns what to write there, if anything. A registry with
// no room for id checks nothing, and says so once.
func (h *Holds) find(id string, fn func(*entry) (*entry, error)) error {
	r := h.r
	key := hash16(id)
	start := binary.LittleEndian.Uint64(key[:8])
	for p := uint64(0); p < min(maxProbe, r.slots); p++ {
		i := (start + p) & (r.slots - 1)
		done, err := r.inSlot(i, func(e *entry) (bool, *entry, error) {
			if e.used && e.key != key {
				return false, nil, nil // another instance's: look further
			}
			e.key = key
			w, err := fn(e)
			return true, w, err
		})
		if done || err != nil {
			return err
		}
	}
	if !r.fullLog.Swap(true) {
		r.log.Warn("instance registry full: instances it has no room for are not checked against other runs on this host", "path", r.f.Name())
	}
	return nil
}

// entry is one instance's slot.
type entry struct {
	used, inFlight bool
	key            [16]byte  // of the instance ID
	run            [16]byte  // of the run that holds it
	pid            int       // the process that wrote it
	intentAt       time.Time // the last intent for the instance, by any run
	heldAt         time.Time // when run took the instance
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
	var at int64
	if !e.intentAt.IsZero() {
		at = e.intentAt.UnixNano()
	}
	binary.LittleEndian.PutUint64(b[37:45], uint64(at))
	var held int64
	if !e.heldAt.IsZero() {
		held = e.heldAt.UnixNano()
	}
	binary.LittleEndian.PutUint64(b[45:53], uint64(held))
	return b
}

func decodeEntry(b []byte) entry {
	var e entry
	e.used, e.inFlight = b[0]&slotUsed != 0, b[0]&slotInFlight != 0
	copy(e.key[:], b[1:17])
	copy(e.run[:], b[17:33])
	e.pid = int(binary.LittleEndian.Uint32(b[33:37]))
	if at := int64(binary.LittleEndian.Uint64(b[37:45])); at != 0 {
		e.intentAt = time.Unix(0, at)
	}
	if at := int64(binary.LittleEndian.Uint64(b[45:53])); at != 0 {
		e.heldAt = time.Unix(0, at)
	}
	return e
}

func hash16(s string) (k [16]byte) {
	sum := sha256.Sum256([]byte(s))
	copy(k[:], sum[:16])
	return k
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
			return true, store.LocalWriteError(r.f.Name(), fmt.Errorf("instance registry: lock %s: %w", r.f.Name(), err))
		}
	}
	defer func() {
		lk.Type = unix.F_UNLCK
		unix.FcntlFlock(fd, unix.F_SETLK, &lk)
	}()
	b := make([]byte, slotSize)
	if _, err := r.f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return true, store.LocalWriteError(r.f.Name(), fmt.Errorf("instance registry: read %s: %w", r.f.Name(), err))
	}
	e := decodeEntry(b) // past the end of the file: an empty slot
	done, write, err := fn(&e)
	if write != nil && err == nil {
		if _, werr := r.f.WriteAt(write.encode(), off); werr != nil {
			return true, store.LocalWriteError(r.f.Name(), fmt.Errorf("instance registry: write %s: %w", r.f.Name(), werr))
		}
	}
	return done, err
}

// live reports whether a process of the run key holds the run's lock.
func (r *Registry) live(key [16]byte) bool {
	f, err := os.Open(filepath.Join(r.dir, "runs", hex.EncodeToString(key[:])+".lock"))
	if err != nil {
		return false // never begun on this host
	}
	defer f.Close()
	switch err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); {
	case err == nil:
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false
	case errors.Is(err, unix.EWOULDBLOCK):
		return true
	default:
		return true // cannot tell: the cautious answer
	}
}

// runName is how messages call the run key: the name Begin recorded.
func (r *Registry) runName(key [16]byte) string {
	b, err := os.ReadFile(filepath.Join(r.dir, "runs", hex.EncodeToString(key[:])))
	if err != nil || len(b) == 0 {
		return "run " + hex.EncodeToString(key[:8])
	}
	return string(b)
}

// createShared creates path, which must not exist, readable by every
// user's processes (other runs read a run's name and start), whatever the
// umask.
func createShared(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// flock takes how on f, through interrupts.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
