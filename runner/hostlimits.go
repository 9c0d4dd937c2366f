package runner

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batchreset/batchreset/store"
)

// HostLimits are rate limits shared by every batchreset process on one host
// that calls the same account at the same endpoint: each action's next free
// slot lives in a small file, read and moved under an exclusive lock at
// every reservation. Two CSV runs at once share the limit, and a process
// started right after another one died (a crash, a kill, the next cron
// tick) spaces its first calls after the other's last ones. It satisfies
// SharedLimits; the processes share one host and one path to the API, so
// the jitter allowance stays DefaultGuard.
type HostLimits struct {
	dir string
}

// NewHostLimits returns the limits kept in dir, which is created if needed.
// One dir serves one account at one endpoint: the caller names it after
// them (see AccountDir).
func NewHostLimits(dir string) (*HostLimits, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, store.LocalWriteError(dir, fmt.Errorf("rate limit state: %w", err))
	}
	return &HostLimits{dir: dir}, nil
}

// AccountDir returns the directory of this host's shared state for the
// account that SecretId secretID names at endpoint: a directory of the
// user's in the system's temporary directory, which every process of the
// user on the host sees, named by a hash (the SecretId is not written).
func AccountDir(endpoint, secretID string) string {
	sum := sha256.Sum256([]byte(endpoint + "\x00" + secretID))
	return filepath.Join(os.TempDir(), fmt.Sprintf("batchreset-%d", os.Getuid()), hex.EncodeToString(sum[:8]))
}

// Guard returns DefaultGuard.
func (h *HostLimits) Guard() time.Duration { return DefaultGuard }

// SlotSource returns the host-wide slots of action, interval apart.
func (h *HostLimits) SlotSource(action string, interval time.Duration) SlotSource {
	f := &fileSlots{path: filepath.Join(h.dir, "rate-"+action)}
	f.interval.Store(int64(interval))
	return f
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
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	fd, err := unix.Open(f.path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, store.LocalWriteError(f.path, fmt.Errorf("reserve rate slot: open %s: %w", f.path, err))
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return 0, store.LocalWriteError(f.path, fmt.Errorf("reserve rate slot: lock %s: %w", f.path, err))
	}
	var buf [8]byte
	n, err := unix.Pread(fd, buf[:], 0)
	if err != nil {
		return 0, store.LocalWriteError(f.path, fmt.Errorf("reserve rate slot: read %s: %w", f.path, err))
	}
	now := time.Now()
	slot := now
	if n == len(buf) {
		if tat := time.Unix(0, int64(binary.LittleEndian.Uint64(buf[:]))); tat.After(now) {
			slot = tat
		}
	}
	binary.LittleEndian.PutUint64(buf[:], uint64(slot.Add(time.Duration(f.interval.Load())).UnixNano()))
	if _, err := unix.Pwrite(fd, buf[:], 0); err != nil {
		return 0, store.LocalWriteError(f.path, fmt.Errorf("reserve rate slot: write %s: %w", f.path, err))
	}
	return slot.Sub(now), nil
}
