package csv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batchreset/batchreset/store"
)

var errClosed = errors.New("store is closed")

// Store keeps the jobs of a run driven from CSV files, for one process. It
// satisfies runner.Store.
//
// Jobs live in memory; every Save is appended to a journal file (the state
// file) and synced to disk before Save returns, so that a crash loses no
// recorded step and the next Open with the same input resumes where the run
// stopped. Concurrent Saves share one write and one fsync (group commit): a
// single goroutine writes everything queued while the previous fsync ran.
// An exclusive flock on the state file keeps a second process, or a second
// Open in this one, out, so leases and fencing tokens are not needed:
// Renew does nothing and Fence is not checked.
//
// The state file holds JSON lines: a header naming the run,
//
//	{"batchreset_state":1,"run_id":"sha256:…"}
//
// then the whole job record written by each Save (snake_case keys, times in
// RFC 3339 with nanoseconds, "" when zero), the last one per instance
// winning. It grows with every Save; a run of 100,000 jobs writes some
// 100 MB.
//
// A Store is safe for concurrent use. Close it to release the lock.
type Store struct {
	path    string
	f       *os.File
	w       syncWriter     // the journal: f, or a test double
	index   map[string]int // instance ID → position in jobs; read-only
	records int            // journal records replayed by Open
	syncs   atomic.Int64   // fsyncs done, for benchmarks
	kick    chan struct{}  // wakes the writer; buffered, never blocks
	stop    chan struct{}  // closed by Close
	stopped chan struct{}  // closed when the writer has exited
	close   sync.Once      // guards the closing of stop and f

	mu      sync.Mutex  // guards the fields below
	jobs    []store.Job // current state, in input order; updated once durable
	claimed []bool      // claimed[i]: jobs[i] is handed out by Claim
	low     int         // every job before low is terminal or claimed
	queue   *batch      // records waiting for the next write
	spare   *batch      // a written batch's buffers, for reuse
	closed  bool        // Close was called
	failed  error       // the journal write that failed; sticky

	started time.Time // when the run began
	guard   *Registry // the host's instances in flight; nil: none
}

// Guard makes the Store keep reg, the host's registry of instances in
// flight, up to date, and consult it before every intent (see Registry).
// Call it before the Store is used.
func (s *Store) Guard(reg *Registry) { s.guard = reg }

// syncWriter is where the journal goes.
type syncWriter interface {
	io.Writer
	Sync() error
}

// batch is the records of one group commit and the Saves waiting for it.
type batch struct {
	buf   []byte // the records' journal lines
	items []item
	done  chan struct{} // closed when err is set
	err   error
}

type item struct {
	i int
	j store.Job
}

// Open opens or creates the state file at statePath for a run over jobs, the
// input in order, and replays the journal it holds. runID identifies the
// input (see Fingerprint): a state file written for another run ID is
// refused with ErrOtherRun, so two runs never mix. A torn last line, left by
// a crash in the middle of a write, is dropped; any other damage is an error
// naming the file and line. If another Store holds the file, in this process
// or another, Open returns store.ErrLocked.
func Open(statePath string, jobs []store.Job, runID string) (*Store, error) {
	if runID == "" {
		return nil, errors.New("open state: empty run ID")
	}
	index := make(map[string]int, len(jobs))
	for i := range jobs {
		id := jobs[i].InstanceID
		if id == "" {
			return nil, fmt.Errorf("open state: job %d has no instance ID", jobs[i].ID)
		}
		if _, dup := index[id]; dup {
			return nil, fmt.Errorf("open state: instance %s appears twice in the input", id)
		}
		index[id] = i
	}

	f, err := os.OpenFile(statePath, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	// flock locks belong to the open file description, so a second Open in
	// this process conflicts too; the kernel drops the lock if we die.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("open state %s: %w", statePath, store.ErrLocked)
		}
		return nil, fmt.Errorf("lock state %s: %w", statePath, err)
	}

	s := &Store{
		path:    statePath,
		f:       f,
		w:       f,
		index:   index,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		jobs:    make([]store.Job, len(jobs)),
		claimed: make([]bool, len(jobs)),
	}
	copy(s.jobs, jobs) // the caller may drop or reuse its slice
	if err := s.prepare(runID); err != nil {
		f.Close()
		return nil, fmt.Errorf("open state: %w", err)
	}
	go s.writeLoop()
	return s, nil
}

// prepare replays the journal and leaves the file ready for appending.
func (s *Store) prepare(runID string) error {
	end, err := s.replay(runID)
	if err != nil {
		return err
	}
	st, err := s.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != end {
		if err := s.f.Truncate(end); err != nil {
			return err
		}
	}
	if end == 0 {
		s.started = time.Now()
		if _, err := s.f.Write(encodeHeader(runID, s.started)); err != nil {
			return err
		}
		if err := s.f.Sync(); err != nil {
			return err
		}
		// The file may be new: make its name durable too.
		return syncDir(filepath.Dir(s.path))
	}
	if s.started.IsZero() {
		s.started = time.Now()
	}
	if st.Size() != end {
		return s.f.Sync()
	}
	return nil
}

// Started returns when the run began: when its journal was created (or,
// for a journal written before that was recorded, when it was opened).
func (s *Store) Started() time.Time { return s.started }

// Resumed reports whether the state file already held records when the
// Store was opened, that is, whether this run continues an earlier one.
func (s *Store) Resumed() bool { return s.records > 0 }

// Totals counts the jobs by status.
func (s *Store) Totals() store.Totals {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := make(store.Totals)
	for i := range s.jobs {
		t[s.jobs[i].Status]++
	}
	return t
}

// Jobs returns the current state of every job, in input order: what the
// journal holds, including the effect of every Save that has returned.
func (s *Store) Jobs() []store.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs := make([]store.Job, len(s.jobs))
	copy(jobs, s.jobs)
	return jobs
}

// Claim returns up to n jobs, in input order, that are not terminal, are due
// (NotBefore has passed) and are not already claimed, and marks them
// claimed until Release. waiting is always false: no other runner shares
// the jobs.
func (s *Store) Claim(ctx context.Context, n int) (jobs []store.Job, waiting bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("claim jobs: %w", err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, false, fmt.Errorf("claim jobs: %w", err)
	}
	for s.low < len(s.jobs) && (s.claimed[s.low] || s.jobs[s.low].Status.Terminal()) {
		s.low++
	}
	for i := s.low; i < len(s.jobs) && len(jobs) < n; i++ {
		j := &s.jobs[i]
		if s.claimed[i] || j.Status.Terminal() || j.NotBefore.After(now) {
			continue
		}
		s.claimed[i] = true
		jobs = append(jobs, *j)
	}
	return jobs, false, nil
}

// Release unmarks claimed jobs so that Claim may return them again.
func (s *Store) Release(ctx context.Context, jobs []store.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range jobs {
		i, ok := s.index[jobs[k].InstanceID]
		if !ok {
			return fmt.Errorf("release %s: %w", jobs[k].InstanceID, store.ErrNotFound)
		}
		s.claimed[i] = false
		s.low = min(s.low, i)
	}
	return nil
}

// Renew does nothing: the file lock, not a lease, keeps the jobs ours.
func (s *Store) Renew(ctx context.Context) error { return nil }

// Control reports store.ControlRunning: a CSV run is paused or cancelled by
// signalling the process, not through the store.
func (s *Store) Control(ctx context.Context) (store.Control, error) {
	return store.ControlRunning, nil
}

// Save appends j to the journal and returns once the record is on disk; the
// job's in-memory state (Jobs, Claim) changes at the same moment. A Save
// that finds j terminal makes it unclaimable. j.InstanceID names the job;
// its blueprint and region must be the input's (a Save that says otherwise
// is refused: it is about another reset) and its ID is the input's. j.Fence
// is recorded but not checked.
//
// If ctx is done first Save returns its error, and the record may or may not
// become durable. If writing the journal fails, every waiting Save gets the
// error and the Store refuses all further Saves and Claims.
func (s *Store) Save(ctx context.Context, j *store.Job) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", j.InstanceID, err)
	}
	if s.guard != nil {
		run := s.path + "@" + s.started.UTC().Format(time.RFC3339Nano)
		if err := s.guard.update(j, run, s.started); err != nil {
			return fmt.Errorf("save %s: %w", j.InstanceID, err)
		}
	}
	b, err := s.enqueue(j)
	if err != nil {
		return err
	}
	select {
	case <-b.done:
		if b.err != nil {
			return fmt.Errorf("save %s: %w", j.InstanceID, b.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("save %s: %w", j.InstanceID, ctx.Err())
	}
}

// enqueue queues j for the next write and returns the batch to wait on.
func (s *Store) enqueue(j *store.Job) (*batch, error) {
	i, ok := s.index[j.InstanceID]
	if !ok {
		return nil, fmt.Errorf("save %s: %w", j.InstanceID, store.ErrNotFound)
	}
	if !j.Status.Valid() {
		return nil, fmt.Errorf("save %s: invalid status %q", j.InstanceID, j.Status)
	}
	rec := *j
	s.mu.Lock()
	in := s.jobs[i] // its ID, instance, blueprint and region never change
	s.mu.Unlock()
	if err := checkSameJob(&in, &rec); err != nil {
		return nil, fmt.Errorf("save %s: %w", j.InstanceID, err)
	}
	// Share the input's strings rather than keep a copy per job.
	rec.ID, rec.InstanceID, rec.BlueprintID, rec.Region = in.ID, in.InstanceID, in.BlueprintID, in.Region
	line, err := encodeRecord(&rec) // outside the lock: callers encode in parallel
	if err != nil {
		return nil, fmt.Errorf("save %s: %w", j.InstanceID, err)
	}

	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("save %s: %w", j.InstanceID, err)
	}
	b := s.queue
	if b == nil {
		b = s.spare
		s.spare = nil
		if b == nil {
			b = new(batch)
		}
		b.done = make(chan struct{})
		s.queue = b
	}
	b.buf = append(b.buf, line...)
	b.items = append(b.items, item{i: i, j: rec})
	s.mu.Unlock()

	select {
	case s.kick <- struct{}{}:
	default: // the writer is already due to run
	}
	return b, nil
}

// usable reports why the Store takes no more work. s.mu must be held.
func (s *Store) usable() error {
	switch {
	case s.failed != nil:
		return fmt.Errorf("journal unusable after an earlier failure: %w", s.failed)
	case s.closed:
		return errClosed
	}
	return nil
}

// writeLoop is the group-commit writer: it takes everything queued, writes
// it with one write and one fsync, applies it and wakes the waiters, until
// Close.
func (s *Store) writeLoop() {
	defer close(s.stopped)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
		}
		s.mu.Lock()
		b := s.queue
		s.queue = nil
		closed := s.closed
		s.mu.Unlock()
		if b != nil {
			s.commit(b)
		}
		if closed {
			return // Close stops new Saves first, so b held the last ones
		}
	}
}

// commit writes one batch.
func (s *Store) commit(b *batch) {
	s.mu.Lock()
	err := s.failed
	s.mu.Unlock()
	if err == nil {
		err = s.write(b.buf)
	}

	s.mu.Lock()
	if err != nil {
		if s.failed == nil {
			s.failed = err
		}
		err = s.failed
	} else {
		for _, it := range b.items {
			s.jobs[it.i] = it.j
			if !it.j.Status.Terminal() && !s.claimed[it.i] {
				s.low = min(s.low, it.i)
			}
		}
	}
	b.err = err
	close(b.done)
	// Waiters read only done and err; the buffers can be reused.
	s.spare = &batch{buf: b.buf[:0], items: clear0(b.items)}
	s.mu.Unlock()
}

func (s *Store) write(p []byte) error {
	if _, err := s.w.Write(p); err != nil {
		return fmt.Errorf("write journal %s: %w", s.path, err)
	}
	err := s.w.Sync()
	s.syncs.Add(1)
	if err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages;
		// nothing written since can be trusted, so the Store stops here.
		return fmt.Errorf("sync journal %s: %w", s.path, err)
	}
	return nil
}

// clear0 empties items, dropping the jobs' strings for the collector.
func clear0(items []item) []item {
	clear(items)
	return items[:0]
}

// Close waits for queued Saves to be written, then closes the state file
// and releases its lock. The journal is left in place: the caller deletes it
// once the results file is written. Close may be called more than once.
func (s *Store) Close() error {
	var err error
	s.close.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		<-s.stopped
		if cerr := s.f.Close(); cerr != nil {
			err = fmt.Errorf("close state %s: %w", s.path, cerr)
		}
	})
	return err
}
