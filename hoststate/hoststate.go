// Package hoststate places the state that every batchreset process on one
// host shares for an identity (the rate-limit files, the CSV runs' instance
// registry), where no process's environment can move it.
package hoststate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// EnvDir names the environment variable that overrides the location, the
// one knob: every process meant to share limits must see the same value.
const EnvDir = "BATCHRESET_STATE_DIR"

// DefaultDir returns the location of the host's state when EnvDir is not
// set. On Linux it is /dev/shm/batchreset: a tmpfs, which is all the state
// needs (it matters only while processes run), and which neither TMPDIR,
// HOME, systemd's PrivateTmp nor sudo changes, so that root and a login
// user, a cron job, a tmux pane and a unit see one directory. Elsewhere it
// is /tmp/batchreset, for the same reasons.
func DefaultDir() string {
	if runtime.GOOS == "linux" {
		return "/dev/shm/batchreset"
	}
	return "/tmp/batchreset"
}

// Root returns the location of the host's state: EnvDir's value from
// getenv, else DefaultDir.
func Root(getenv func(string) string) string {
	if dir := getenv(EnvDir); dir != "" {
		return dir
	}
	return DefaultDir()
}

// Modes of what is shared. They are set explicitly, whatever the umask:
// root and an ordinary user running batchreset for the same account must
// both be able to write everything. Directories are sticky, like /tmp, so
// that no user removes another's files.
const (
	dirMode  = fs.ModeDir | fs.ModeSticky | 0o777
	fileMode = 0o666
)

// Open returns the directory of the identity named key under root, creating
// root and it as shared directories if need be. An error names the path and
// EnvDir: a location that cannot be used is never replaced silently by
// another, which other processes would not see.
func Open(root, key string) (string, error) {
	if !filepath.IsAbs(root) {
		return "", fmt.Errorf("host state directory %q: not an absolute path (set %s to one)", root, EnvDir)
	}
	dir := filepath.Join(root, key)
	for _, d := range []string{root, dir} {
		if err := MkdirShared(d); err != nil {
			return "", fmt.Errorf("host state directory %s: %w (set %s to a directory every batchreset process on the host can write)", d, err, EnvDir)
		}
	}
	return dir, nil
}

// MkdirShared makes path a directory every user can write, sticky, unless
// it is one already; its parent must exist, except for the top of the
// state, whose parents are created as the umask allows. An existing
// directory must be writable by this process.
func MkdirShared(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	err := os.Mkdir(path, 0o700)
	switch {
	case err == nil:
		if err := os.Chmod(path, dirMode); err != nil {
			return err
		}
	case errors.Is(err, fs.ErrExist):
	default:
		return err
	}
	if err := unix.Access(path, unix.W_OK|unix.X_OK); err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// OpenFile opens path for reading and writing, creating it writable by
// every user if it does not exist.
func OpenFile(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // another process created it first
		}
		if err != nil {
			return nil, err
		}
		if err := f.Chmod(fileMode); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
}
