package hoststate

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRootIgnoresTheEnvironment: the default location depends on none of
// TMPDIR, HOME or the user, which sudo, tmux, systemd's PrivateTmp and cron
// change; only EnvDir moves it.
func TestRootIgnoresTheEnvironment(t *testing.T) {
	// Not parallel: it sets the process's environment.
	want := DefaultDir()
	for _, env := range []map[string]string{
		{"TMPDIR": "/var/tmp/other", "HOME": "/root", "USER": "root"},
		{"TMPDIR": "/tmp/systemd-private-abc/tmp", "HOME": "/home/op", "USER": "op"},
	} {
		for k, v := range env {
			t.Setenv(k, v)
		}
		if got := DefaultDir(); got != want {
			t.Errorf("DefaultDir() with %v = %q, want %q", env, got, want)
		}
		if got := Root(os.Getenv); got != want {
			t.Errorf("Root(os.Getenv) with %v = %q, want %q", env, got, want)
		}
	}
	for _, elem := range strings.Split(want, string(filepath.Separator)) {
		if elem == strconv.Itoa(os.Getuid()) || elem == os.Getenv("USER") && elem != "" {
			t.Errorf("DefaultDir() = %q names the user", want)
		}
	}
	t.Setenv(EnvDir, "/srv/batchreset")
	if got := Root(os.Getenv); got != "/srv/batchreset" {
		t.Errorf("Root(os.Getenv) with %s=/srv/batchreset = %q, want it", EnvDir, got)
	}
}

// TestOpenShared: the directories and files are writable by every user,
// with a umask that would allow none of it.
func TestOpenShared(t *testing.T) {
	// Not parallel: the umask is the process's.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "state")
	dir, err := Open(root, "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(root, "0123456789abcdef") {
		t.Errorf("Open = %q, want it under %q", dir, root)
	}
	for _, d := range []string{root, dir} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != fs.ModeDir|fs.ModeSticky|0o777 {
			t.Errorf("%s: mode %v, want drwxrwxrwt", d, got)
		}
	}
	f, err := OpenFile(filepath.Join(dir, "rate-ResetInstance"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, err := os.Stat(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != 0o666 {
		t.Errorf("%s: mode %v, want -rw-rw-rw-", f.Name(), got)
	}
	// Opened again, by this or another process: the same file.
	if again, err := OpenFile(f.Name()); err != nil {
		t.Errorf("OpenFile(existing) = %v", err)
	} else {
		again.Close()
	}
}

// TestOpenUnusable: a location that cannot be used is an error naming it
// and EnvDir, never another place.
func TestOpenUnusable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{filepath.Join(file, "state"), "relative/state"} {
		_, err := Open(root, "0123456789abcdef")
		if err == nil || !strings.Contains(err.Error(), EnvDir) || !strings.Contains(err.Error(), root) {
			t.Errorf("Open(%q) = %v, want an error naming it and %s", root, err, EnvDir)
		}
	}
}
