package store

import (
	"errors"
	"syscall"
)

// ErrUnwritable reports a store, or the host's shared state (the instance
// registry, the rate-limit files), that cannot write: a full or read-only
// file system, a quota reached, a disk that fails, or a journal that
// declared itself broken after a failed write. Asking again does not help,
// unlike a database connection that drops: a run that meets it ends at once.
// Errors that report it are an *UnwritableError, which names the file.
var ErrUnwritable = errors.New("cannot write")

// UnwritableError is a write that failed for good: Path is the file, Op
// what was being done ("" when the errno says it all), Err the cause. It
// matches ErrUnwritable with errors.Is.
type UnwritableError struct {
	Path string
	Op   string
	Err  error
}

func (e *UnwritableError) Error() string {
	cause := e.Err.Error()
	if errno, ok := errors.AsType[syscall.Errno](e.Err); ok {
		cause = errno.Error() // the path is said once
	}
	if e.Op != "" {
		cause = e.Op + ": " + cause
	}
	return "cannot write " + e.Path + ": " + cause
}

func (e *UnwritableError) Unwrap() []error { return []error{ErrUnwritable, e.Err} }

// LocalWriteError returns err as an *UnwritableError naming path when the
// file system said that it cannot take writes: ENOSPC (full), EDQUOT (quota
// reached), EROFS (read-only) or EIO (the disk failed). Any other error,
// and nil, is returned as it is.
func LocalWriteError(path string, err error) error {
	if err == nil || errors.Is(err, ErrUnwritable) {
		return err
	}
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO} {
		if errors.Is(err, errno) {
			return &UnwritableError{Path: path, Err: err}
		}
	}
	return err
}
