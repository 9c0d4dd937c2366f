package runner

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batchreset/batchreset/hoststate"
	"github.com/batchreset/batchreset/store"
)

// HostLimits are rate limits shared by every batchreset process on one host
// for one Identity: each action's next free slot lives in a small file,
// read and moved under an exclusive lock at every reservation. Two CSV runs
// at once share the limit, and a process started right after another one
// died (a crash, a kill, the next cron tick) spaces its first calls after
// the other's last ones. It satisfies SharedLimits; the processes share
// one host and one path to the API, so the jitter allowance stays
// DefaultGuard.
type HostLimits struct {
	dir string
}

// NewHostLimits returns the limits kept in dir, created if need be as a
// directory every user can write (hoststate.MkdirShared): one dir serves
// one Identity, whoever runs the process.
func NewHostLimits(dir string) (*HostLimits, error) {
	if err := hoststate.MkdirShared(dir); err != nil {
		return nil, store.LocalWriteError(dir, fmt.Errorf("rate limit state: %w (set %s to a directory every batchreset process on the host can write)", err, hoststate.EnvDir))
	}
	return &HostLimits{dir: dir}, nil
}

// Guard returns DefaultGuard.
func (h *HostLimits) Guard() time.Duration { return DefaultGuard }

// SlotSource returns the host-wide slots of action, interval apart.
func (h *HostLimits) SlotSource(action string, interval time.Duration) SlotSource {
	f := &fileSlots{path: filepath.Join(h.dir, "rate-"+action)}
	f.interval.Store(int64(interval))
	return f
}

// LaterSlotSource is a SlotSource that can hand out a slot no earlier than
// a given time: the Postgres store's Bucket.
type LaterSlotSource interface {
	SlotSource
	// ReserveAfter takes the next free slot not before notBefore and
	// returns it on this host's clock.
	ReserveAfter(ctx context.Context, notBefore time.Time) (time.Time, error)
}

// Over returns limits shared both through db and on this host: every slot
// of an action comes from db, no earlier than the host's next free slot,
// and moves the host's next free slot past it, all under the host file's
// lock. Processes on the host that share only the host's limits (CSV runs
// of the same Identity) then space their calls after the database's, and
// the database's after theirs, while runners on other hosts still share
// through db. db's slot sources must be LaterSlotSources; the guard is
// db's.
func (h *HostLimits) Over(db SharedLimits) SharedLimits { return hostOver{host: h, db: db} }

type hostOver struct {
	host *HostLimits
	db   SharedLimits
}

func (o hostOver) Guard() time.Duration { return o.db.Guard() }

func (o hostOver) SlotSource(action string, interval time.Duration) SlotSource {
	db, ok := o.db.SlotSource(action, interval).(LaterSlotSource)
	if !ok {
		panic(fmt.Sprintf("runner: HostLimits.Over: the slots of %s cannot start after a given time", action))
	}
	return &hostGated{file: &fileSlots{path: filepath.Join(o.host.dir, "rate-"+action)}, db: db, interval: interval}
}

// hostGated takes slots from the database under the host file's lock.
type hostGated struct {
	file     *fileSlots
	db       LaterSlotSource
	interval time.Duration
}

// Reserve returns the time left until the slot, reckoned from the middle of
// the call, as Spacer reads it.
func (g *hostGated) Reserve(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	var slot time.Time
	err := g.file.locked(ctx, func(next, _ time.Time) (time.Time, error) {
		var err error
		if slot, err = g.db.ReserveAfter(ctx, next); err != nil {
			return next, err
		}
		return slot.Add(g.interval), nil
	})
	if err != nil {
		return 0, err
	}
	end := time.Now()
	return slot.Sub(start.Add(end.Sub(start) / 2)), nil
}

// fileSlots is a GCRA without burst whose state is a file: the next free
// slot as Unix nanoseconds on the wall clock, which every process on the
// host shares.
type fileSlots struct {
	path     string
	interval atomic.Int64 // nanoseconds after a slot before the next one
}

// SetInterval changes the spacing after the slots this process reserves.
func (f *fileSlots) SetInterval(d time.Duration) { f.interval.Store(int64(d)) }

func (f *fileSlots) Reserve(ctx context.Context) (time.Duration, error) {
	var wait time.Duration
	err := f.locked(ctx, func(next time.Time, now time.Time) (time.Time, error) {
		slot := now
		if next.After(now) {
			slot = next
		}
		wait = slot.Sub(now)
		return slot.Add(time.Duration(f.interval.Load())), nil
	})
	return wait, err
}

// locked calls move with the next free slot (the zero time if none was
// recorded) and the time it was read, under the file's lock, and records
// the next free slot move returns.
func (f *fileSlots) locked(ctx context.Context, move func(next, now time.Time) (time.Time, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file, err := hoststate.OpenFile(f.path)
	if err != nil {
		return store.LocalWriteError(f.path, fmt.Errorf("reserve rate slot: %w", err))
	}
	defer file.Close()
	if err := unix.Flock(int(file.Fd()), unix.LOCK_EX); err != nil {
		return store.LocalWriteError(f.path, fmt.Errorf("reserve rate slot: lock %s: %w", f.path, err))
	}
	var buf [8]byte
	n, err := file.ReadAt(buf[:], 0)
	if err != nil && n != len(buf) && !errors.Is(err, io.EOF) {
		return store.LocalWriteError(f.path, fmt.Errorf("reserve rate slot: read %s: %w", f.path, err))
	}
	var next time.Time
	if n == len(buf) {
		next = time.Unix(0, int64(binary.LittleEndian.Uint64(buf[:])))
	}
	after, err := move(next, time.Now())
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(buf[:], uint64(after.UnixNano()))
	if _, err := file.WriteAt(buf[:], 0); err != nil {
		return store.LocalWriteError(f.path, fmt.Errorf("reserve rate slot: write %s: %w", f.path, err))
	}
	return nil
}
