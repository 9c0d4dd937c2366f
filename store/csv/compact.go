package csv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/batchreset/batchreset/store"
)

// compact rewrites the journal as a version-2 header and one record per job
// that has a state, in input order, each starting from the input ("z":1).
// The new journal is written beside the old one, locked before anyone can
// see it, synced, renamed over the old one and the directory synced: a
// crash at any point leaves the old journal or the new one, each whole, and
// the next Open resumes from either alike. The Store then holds and appends
// to the new file. The writer must not be running.
func (s *Store) compact(runID string) (err error) {
	if runID == "" {
		runID = s.runID
	}
	dir, base := filepath.Split(s.path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".compact-*")
	if err != nil {
		return fmt.Errorf("compact journal %s: %w", s.path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("compact journal %s: lock: %w", s.path, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.Write(encodeHeader(runID, s.started))
	s.mu.Lock()
	t := s.tab
	var buf []byte
	records := 0
	for i := range t.len() {
		if !t.hasState(i) {
			continue
		}
		j, in := t.get(i), t.input(i)
		in.Status = store.StatusPending
		buf = appendDelta(buf[:0], i, &in, &j, s.started, true)
		bw.Write(buf)
		records++
	}
	s.mu.Unlock()
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("compact journal %s: %w", s.path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("compact journal %s: %w", s.path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("compact journal %s: %w", s.path, err)
	}
	if err := os.Rename(f.Name(), s.path); err != nil {
		return fmt.Errorf("compact journal %s: %w", s.path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("compact journal %s: %w", s.path, err)
	}
	// The file is in place: from here on, failing would only leak it.
	old := s.f
	s.f, s.w, s.written = f, f, records
	return errors.Join(old.Close())
}
