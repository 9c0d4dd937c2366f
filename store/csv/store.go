package csv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
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
// Jobs live in memory, compactly (see table: about 100 bytes a job); every
// Save is appended to a journal file (the state file) and synced to disk
// before Save returns, so that a crash loses no recorded step and the next
// OpenInput with the same input resumes where the run stopped. Concurrent Saves
// share one write and one fsync (group commit): a single goroutine writes
// everything queued while the previous fsync ran. An exclusive flock on the
// state file keeps a second process, or a second OpenInput in this one, out, so
// leases and fencing tokens are not needed: Renew does nothing and Fence is
// not checked.
//
// The state file holds JSON lines: a header naming the run, then one record
// per Save saying what changed (journal version 2; see journalDelta). Close
// compacts it to one record per job that has a state, in input order,
// written beside it and renamed over it, so that a finished run of a million
// jobs keeps some 180 MB rather than a gigabyte, and resumes the same.
// Journals of version 1 (the whole job per Save) are read, and compacted to
// version 2 when opened.
//
// A Store is safe for concurrent use. Close it to release the lock.
type Store struct {
	path    string
	f       *os.File
	w       syncWriter    // the journal: f, or a test double
	records int           // journal records replayed by OpenInput
	syncs   atomic.Int64  // fsyncs done, for benchmarks
	kick    chan struct{} // wakes the writer; buffered, never blocks
	stop    chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer has exited
	close   sync.Once     // guards the closing of stop and f

	mu      sync.Mutex   // guards the fields below
	tab     *table       // current state, in input order; updated once durable
	claimed []bool       // claimed[i]: job i is handed out by Claim
	low     int          // every job before low is terminal or claimed
	lane    lane         // the lane of the last claim, or anyLane; see Claim
	cursor  map[lane]int // by lane: no job of it before this may be claimed; -1: none may
	queue   *batch       // records waiting for the next write
	spare   *batch       // a written batch's buffers, for reuse
	// ahead holds, for jobs with records queued but not yet durable, the
	// job as the latest of them leaves it: the next record is a delta
	// from there.
	ahead   map[int]aheadJob
	seq     uint64 // numbers queued records, for ahead
	written int    // records in the journal: replayed and appended
	closed  bool   // Close was called
	failed  error  // the journal write that failed; sticky

	runID   string    // the input's fingerprint
	started time.Time // when the run began
}

type aheadJob struct {
	j   store.Job
	seq uint64
}

// RunKey identifies the run in the host's registry (Registry.Begin): its
// journal's path and the run's start, which a resumed run keeps.
func (s *Store) RunKey() string { return s.path + "@" + s.started.UTC().Format(time.RFC3339Nano) }

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
	i   int
	j   store.Job
	seq uint64
}

// openTable opens or creates the state file at statePath for a run over
// the jobs of tab, and replays the journal it holds (see OpenInput).
func openTable(statePath string, tab *table, runID string) (*Store, error) {
	f, err := lockJournal(statePath)
	if err != nil {
		return nil, store.LocalWriteError(statePath, err)
	}
	s := &Store{
		path:    statePath,
		f:       f,
		w:       f,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		tab:     tab,
		claimed: make([]bool, tab.len()),
		lane:    anyLane,
		cursor:  map[lane]int{},
		ahead:   make(map[int]aheadJob),
		runID:   runID,
	}
	if err := s.prepare(runID); err != nil {
		s.f.Close()
		return nil, store.LocalWriteError(statePath, fmt.Errorf("open state: %w", err))
	}
	go s.writeLoop()
	return s, nil
}

// lockJournal opens (or creates) the journal at path for appending and
// takes its lock. It makes sure that the file locked is the one at path: a
// Store that compacts the journal renames a new file over it, and one
// opened just before that holds a file no longer there.
func lockJournal(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open state: %w", err)
		}
		// flock locks belong to the open file description, so a second
		// Open in this process conflicts too; the kernel drops the lock
		// if we die.
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("open state %s: %w", path, store.ErrLocked)
			}
			return nil, fmt.Errorf("lock state %s: %w", path, err)
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			return f, nil
		}
		f.Close()
		if err := cmp.Or(err1, err2); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open state: %w", err)
		}
	}
}

// prepare replays the journal and leaves the file ready for appending: a
// journal of version 1 is compacted to version 2 first.
func (s *Store) prepare(runID string) error {
	end, version, err := s.replay(runID)
	if err != nil {
		return err
	}
	s.written = s.records
	if version == 1 {
		return s.compact(runID)
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
		// A new run: a control file left by a run whose journal was
		// removed is not this run's.
		if err := os.Remove(ControlPath(s.path)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		s.started = time.Now().Round(0)
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
		s.started = time.Now().Round(0)
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

// Totals counts the jobs by status, without statuses no job has.
func (s *Store) Totals() store.Totals {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tab.totalsMap()
}

// Len returns how many jobs the run has.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tab.len()
}

// Jobs returns the current state of every job, in input order: what the
// journal holds, including the effect of every Save that has returned. A
// large run is better read with All, which holds a few jobs at a time.
func (s *Store) Jobs() []store.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs := make([]store.Job, s.tab.len())
	for i := range jobs {
		jobs[i] = s.tab.get(i)
	}
	return jobs
}

// allChunk is how many jobs All copies out at a time.
const allChunk = 1024

// All returns an iterator over the current state of every job, in input
// order, as Jobs would return them. It holds the Store's lock only while it
// copies out a few jobs at a time, never while the caller's loop runs, so a
// Save may land while it runs: each job is as it was when copied.
func (s *Store) All() iter.Seq[store.Job] {
	return func(yield func(store.Job) bool) {
		buf := make([]store.Job, 0, allChunk)
		for next := 0; ; {
			buf = buf[:0]
			s.mu.Lock()
			n := s.tab.len()
			for ; next < n && len(buf) < allChunk; next++ {
				buf = append(buf, s.tab.get(next))
			}
			s.mu.Unlock()
			if len(buf) == 0 {
				return
			}
			for _, j := range buf {
				if !yield(j) {
					return
				}
			}
		}
	}
}

// Count counts the jobs without copying them.
func (s *Store) Count() store.Count {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tab.count()
}

// Claim returns up to n jobs, in input order, that are not terminal, are due
// (NotBefore has passed) and are not already claimed, and marks them
// claimed until Release. The jobs are all of one region (and one account),
// so that the runner describes a batch in one call: the last claim's while
// it has due jobs, then the first due job's. A run so goes region by
// region, in the order the input first names them, and its polls describe
// one region at a time. waiting is always false: no other runner shares
// the jobs.
func (s *Store) Claim(ctx context.Context, n int) (jobs []store.Job, waiting bool, err error) {
	return s.claim(ctx, n, &s.lane, nil)
}

// claim is Claim for the jobs of lanes (nil: every job), going on from the
// lane *last, which it updates.
func (s *Store) claim(ctx context.Context, n int, last *lane, lanes []lane) (jobs []store.Job, waiting bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("claim jobs: %w", err)
	}
	// A paused or cancelled run hands out no pending job, as the Postgres
	// store's does: the control is part of the claim, so that a process
	// started while the run is paused sends nothing. Jobs that may be in
	// flight are still handed out, to be settled.
	h, err := s.Hold(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("claim jobs: %w", err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, false, fmt.Errorf("claim jobs: %w", err)
	}
	pendingOK := h.Control == store.ControlRunning
	t := s.tab
	for s.low < t.len() && (s.claimed[s.low] || t.status(s.low).Terminal()) {
		s.low++
	}
	if jobs, *last = s.claimLane(n, *last, now, pendingOK); len(jobs) == 0 {
		jobs, *last = s.claimLane(n, s.firstDue(lanes, now, pendingOK), now, pendingOK)
	}
	return jobs, false, nil
}

// anyLane is no lane: claimLane claims nothing.
const anyLane = ^lane(0)

// firstDue returns the lane of the first due job of lanes (nil: of every
// job), or anyLane.
func (s *Store) firstDue(lanes []lane, now time.Time, pendingOK bool) lane {
	t := s.tab
	if lanes == nil {
		for i := s.low; i < t.len(); i++ {
			if s.open(i) && s.due(i, now, pendingOK) {
				return laneOf(&t.in[i])
			}
		}
		return anyLane
	}
	first, at := anyLane, t.len()
	for _, l := range lanes {
		for i := s.cursorOf(l); i >= 0 && i < at; i = int(t.same[i]) {
			if s.open(i) && s.due(i, now, pendingOK) {
				first, at = l, i
				break
			}
		}
	}
	return first
}

// claimLane claims up to n due jobs of lane l, in input order, walking the
// lane's own jobs only, and returns them with their lane (anyLane when
// there are none).
func (s *Store) claimLane(n int, l lane, now time.Time, pendingOK bool) (jobs []store.Job, _ lane) {
	if l == anyLane {
		return nil, anyLane
	}
	t := s.tab
	for i := s.cursorOf(l); i >= 0 && len(jobs) < n; i = int(t.same[i]) {
		if !s.open(i) || !s.due(i, now, pendingOK) {
			continue
		}
		j := t.get(i)
		s.claimed[i] = true
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 {
		return nil, anyLane
	}
	return jobs, l
}

// open reports whether job i may be claimed: neither claimed nor terminal.
func (s *Store) open(i int) bool { return !s.claimed[i] && !s.tab.status(i).Terminal() }

// due reports whether open job i may be claimed now: it is due, and
// pending only when pendingOK (the run is running).
func (s *Store) due(i int, now time.Time, pendingOK bool) bool {
	return (pendingOK || s.tab.status(i) != store.StatusPending) && !s.tab.get(i).NotBefore.After(now)
}

// cursorOf returns the first job of lane l that may be claimed, or -1,
// moving the lane's cursor past those before it that may not.
func (s *Store) cursorOf(l lane) int {
	i, ok := s.cursor[l]
	if !ok {
		first, found := s.tab.first[l]
		if !found {
			return -1
		}
		i = int(first)
	}
	for i >= 0 && !s.open(i) {
		i = int(s.tab.same[i])
	}
	s.cursor[l] = i
	return i
}

// reopen notes that job i may be claimed again.
func (s *Store) reopen(i int) {
	s.low = min(s.low, i)
	r := laneOf(&s.tab.in[i])
	if c, ok := s.cursor[r]; ok && (c < 0 || c > i) {
		s.cursor[r] = i
	}
}

// Release unmarks claimed jobs so that Claim may return them again.
func (s *Store) Release(ctx context.Context, jobs []store.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range jobs {
		i, ok := s.tab.find(jobs[k].InstanceID)
		if !ok {
			return fmt.Errorf("release %s: %w", jobs[k].InstanceID, store.ErrNotFound)
		}
		s.claimed[i] = false
		s.reopen(i)
	}
	return nil
}

// Renew does nothing: the file lock, not a lease, keeps the jobs ours.
func (s *Store) Renew(ctx context.Context) error { return nil }

// Save appends j to the journal and returns once the record is on disk; the
// job's in-memory state (Jobs, Claim) changes at the same moment. A Save
// that finds j terminal makes it unclaimable. j.InstanceID names the job;
// its blueprint and region must be the input's (a Save that says otherwise
// is refused: it is about another reset) and its ID is the input's. j.Fence
// is recorded but not checked.
//
// If ctx is done first Save returns its error, and the record may or may not
// become durable. If writing the journal fails, every waiting Save gets the
// error and the Store refuses all further Saves and Claims, with
// store.ErrUnwritable.
func (s *Store) Save(ctx context.Context, j *store.Job) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", j.InstanceID, err)
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
	if !j.Status.Valid() {
		return nil, fmt.Errorf("save %s: invalid status %q", j.InstanceID, j.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.tab.find(j.InstanceID)
	if !ok {
		return nil, fmt.Errorf("save %s: %w", j.InstanceID, store.ErrNotFound)
	}
	in := s.tab.input(i) // its ID, instance, blueprint, region and login never change
	if err := checkSameJob(&in, j); err != nil {
		return nil, fmt.Errorf("save %s: %w", j.InstanceID, err)
	}
	if err := s.usable(); err != nil {
		return nil, fmt.Errorf("save %s: %w", j.InstanceID, err)
	}
	rec := *j
	// Share the input's strings rather than keep a copy per job.
	rec.ID, rec.InstanceID, rec.BlueprintID, rec.Region, rec.KeyIDs = in.ID, in.InstanceID, in.BlueprintID, in.Region, in.KeyIDs
	prev, queued := s.ahead[i]
	if !queued {
		prev.j = s.tab.get(i)
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
	mark := len(b.buf)
	b.buf = appendDelta(b.buf, i, &prev.j, &rec, s.started, false)
	if len(b.buf)-mark >= maxJournalLine {
		b.buf = b.buf[:mark]
		return nil, fmt.Errorf("save %s: record of %d bytes exceeds the journal's %d", j.InstanceID, len(b.buf)-mark, maxJournalLine)
	}
	s.seq++
	s.ahead[i] = aheadJob{j: rec, seq: s.seq}
	b.items = append(b.items, item{i: i, j: rec, seq: s.seq})

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
		s.written += len(b.items)
		for _, it := range b.items {
			if err := s.tab.set(it.i, &it.j); err != nil {
				panic(err) // enqueue checked the status
			}
			if a := s.ahead[it.i]; a.seq == it.seq {
				delete(s.ahead, it.i)
			}
			if !it.j.Status.Terminal() && !s.claimed[it.i] {
				s.reopen(it.i)
			}
		}
	}
	b.err = err
	close(b.done)
	// Waiters read only done and err; the buffers can be reused.
	s.spare = &batch{buf: b.buf[:0], items: clear0(b.items)}
	s.mu.Unlock()
}

// write appends p to the journal and syncs it. Any failure is the journal's
// end (see commit), whatever its cause: it is reported as store.ErrUnwritable.
func (s *Store) write(p []byte) error {
	if _, err := s.w.Write(p); err != nil {
		// A write cut short may have left part of p in the file: a torn
		// line, which the next Open drops, after whole records whose
		// Saves fail; the runner sends nothing for them.
		return &store.UnwritableError{Path: s.path, Op: "write journal", Err: err}
	}
	err := s.w.Sync()
	s.syncs.Add(1)
	if err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages;
		// nothing written since can be trusted, so the Store stops here.
		return &store.UnwritableError{Path: s.path, Op: "sync journal", Err: err}
	}
	return nil
}

// clear0 empties items, dropping the jobs' strings for the collector.
func clear0(items []item) []item {
	clear(items)
	return items[:0]
}

// Close waits for queued Saves to be written, compacts the journal (see
// Store) unless it is compact already or a write failed, then closes the
// state file and releases its lock. The journal is left in place: the
// caller deletes it once the results file is written. Close may be called
// more than once.
func (s *Store) Close() error {
	var err error
	s.close.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		<-s.stopped
		s.mu.Lock()
		stale := s.failed == nil && s.written > s.tab.stateful()
		s.mu.Unlock()
		if stale {
			err = s.compact("")
		}
		if cerr := s.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close state %s: %w", s.path, cerr)
		}
	})
	return err
}
