package csv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/batchreset/batchreset/store"
)

// A CSV run's control lives in a small file beside its journal,
// STATE.control, a JSON object
//
//	{"control":"paused","reason":"approval of wave 2","awaiting_wave":2,"approved_wave":0}
//
// so that a pause survives the process (a crash, a restart, the next tick
// of cron), and so that another process (`batchreset pause|resume|cancel
// --jobs FILE`) can change it while the run's process holds the journal,
// which reads it at every poll. It is replaced whole (a temporary file
// renamed over it), under a lock on STATE.control.lock, so that a change
// read, made and written by one process is never lost to another's. No
// file reads as running.

// ControlPath returns the path of the control file of the run whose
// journal is statePath.
func ControlPath(statePath string) string { return statePath + ".control" }

type holdFile struct {
	Control  store.Control `json:"control"`
	Reason   string        `json:"reason,omitempty"`
	Awaiting int           `json:"awaiting_wave,omitempty"`
	Approved int           `json:"approved_wave,omitempty"`
}

// ReadHold returns the control of the run whose journal is statePath, as
// its control file says: running when there is none.
func ReadHold(statePath string) (store.RunHold, error) {
	b, err := os.ReadFile(ControlPath(statePath))
	if errors.Is(err, os.ErrNotExist) {
		return store.RunHold{Control: store.ControlRunning}, nil
	}
	if err != nil {
		return store.RunHold{}, fmt.Errorf("read run control: %w", err)
	}
	var f holdFile
	if err := json.Unmarshal(b, &f); err != nil {
		return store.RunHold{}, fmt.Errorf("read run control %s: %w", ControlPath(statePath), err)
	}
	switch f.Control {
	case store.ControlRunning, store.ControlPaused, store.ControlCancelled:
	default:
		return store.RunHold{}, fmt.Errorf("read run control %s: unknown control %q", ControlPath(statePath), f.Control)
	}
	return store.RunHold{Control: f.Control, Reason: f.Reason, Awaiting: f.Awaiting, Approved: f.Approved}, nil
}

// UpdateHold changes the control of the run whose journal is statePath
// with change, under the control file's lock, and returns it as written.
func UpdateHold(statePath string, change func(*store.RunHold)) (store.RunHold, error) {
	path := ControlPath(statePath)
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return store.RunHold{}, store.LocalWriteError(path, fmt.Errorf("set run control: %w", err))
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return store.RunHold{}, fmt.Errorf("lock run control %s: %w", path, err)
	}
	h, err := ReadHold(statePath)
	if err != nil {
		return store.RunHold{}, err
	}
	change(&h)
	b, err := json.Marshal(holdFile{Control: h.Control, Reason: h.Reason, Awaiting: h.Awaiting, Approved: h.Approved})
	if err != nil {
		return store.RunHold{}, err
	}
	tmp := path + ".tmp"
	err = writeSynced(tmp, append(b, '\n'))
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return store.RunHold{}, store.LocalWriteError(path, fmt.Errorf("set run control: %w", err))
	}
	return h, nil
}

// writeSynced writes b to a new file at path and syncs it.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Control reports the operator's control of the run, as its control file
// says (see ControlPath): a pause survives the process.
func (s *Store) Control(ctx context.Context) (store.Control, error) {
	h, err := s.Hold(ctx)
	return h.Control, err
}

// Hold reports the run's control and what a pause waits for.
func (s *Store) Hold(ctx context.Context) (store.RunHold, error) { return ReadHold(s.path) }

// SetControl sets the operator's control of the run (pause, resume or
// cancel) in its control file, which the runner reads at its next poll.
func (s *Store) SetControl(ctx context.Context, c store.Control) error {
	_, err := UpdateHold(s.path, func(h *store.RunHold) { h.Set(c) })
	return err
}

// Pause pauses the run for a rule of the run (see store.RunHold.Pause).
func (s *Store) Pause(ctx context.Context, why string, awaiting int) (store.RunHold, error) {
	return UpdateHold(s.path, func(h *store.RunHold) { h.Pause(why, awaiting) })
}
