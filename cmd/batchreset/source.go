package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/batchreset/batchreset/cmd/batchreset/internal/statuspage"
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store"
	csvstore "github.com/batchreset/batchreset/store/csv"
	"github.com/batchreset/batchreset/store/postgres"
)

// jobSource is where a command's jobs live, opened: a CSV file and its
// journal, or a Postgres run. Commands speak only to it, so CSV and Postgres
// differ in one place.
type jobSource interface {
	// Jobs returns every job as recorded now.
	Jobs(ctx context.Context) ([]store.Job, error)
	// Count counts the jobs as recorded now, without loading them.
	Count(ctx context.Context) (store.Count, error)
	// Each calls fn with every job as the results report it (resultView),
	// a few at a time rather than the whole run at once.
	Each(ctx context.Context, fn func(*store.Job) error) error
	// Store is what a runner works on; nil for commands that claim nothing.
	Store() runner.Store
	// AccountStore is Store for the jobs of one account alone: the CSV
	// store's View, the Postgres store's AccountQueue.
	AccountStore(account string) runner.Store
	// DB is the database the source shares rate limits through with other
	// runners (Postgres mode); nil when it has none.
	DB() *postgres.Store
	// Tally counts the jobs as Each gives them, without loading them;
	// durations asks for the percentiles of their reset durations too,
	// which a Postgres run sorts every finished job for.
	Tally(ctx context.Context, durations bool) (runTally, error)
	// Record writes a job's outcome settled later (reconcile).
	Record(ctx context.Context, j *store.Job) error
	// RecordRollout records the rollout a run begins with, resolved from
	// --max-failures maxFailures, and its hooks, for status to show the
	// run's own (CSV mode: OUT.rollout; the Postgres store records the
	// rollout in run_rollouts when the run's first runner joins it, and
	// the hooks in JoinHooks).
	RecordRollout(maxFailures string, ro *runner.Rollout, hooks store.HookSettings) error
	// JoinHooks returns the run's lifecycle hooks: those its record holds,
	// else h, which the Postgres store records for every later runner. A
	// CSV run's record holds them while its journal lasts.
	JoinHooks(ctx context.Context, h store.HookSettings) (store.HookSettings, error)
	// SharedRollout returns the rollout the run's record holds for every
	// runner (Postgres: as its first runner recorded it), which the runner
	// applies whatever its own flags; false when there is none yet, or
	// when the rollout is each process's own (CSV).
	SharedRollout(ctx context.Context) (store.RolloutPlan, bool, error)
	// RunRecord returns the run's own settings as its record keeps them;
	// false when it keeps none.
	RunRecord(ctx context.Context) (runRecord, bool, error)
	// Finish writes what the source keeps after a command changed jobs
	// (CSV mode: the results file).
	Finish(ctx context.Context) error
	// OK reports whether the run's outcome is a success: every instance of
	// the CSV file succeeded, or, in Postgres mode, every job this runner
	// finished (sum).
	OK(sum runner.Summary) bool
	// RunKey identifies the run among the runs of the host (see
	// csvstore.Registry.Begin), and name is how other runs' messages call
	// it. StartedAt is when the run began, if the source knows (zero: the
	// first time a process of it began on this host).
	RunKey(ctx context.Context) (key, name string, err error)
	// ParentKey is the RunKey of the run this one rolls back, "" for none
	// (a CSV rollback runs in the process that ended its parent).
	ParentKey(ctx context.Context) (string, error)
	StartedAt() time.Time
	// NoState reports that no run has left a state here yet (a CSV run's
	// journal, created by this command), naming where it would be.
	NoState() (where string, none bool)
	// Stored returns the jobs whose status is one of statuses, as stored
	// (not as the results report them): only those are held, whatever the
	// run's size.
	Stored(ctx context.Context, statuses ...store.Status) ([]store.Job, error)
	// Requeue makes jobs pending again, for retry; uncancel also sets a
	// cancelled run running again (the retry of its skipped jobs), and
	// uncancelled says it did.
	Requeue(ctx context.Context, jobs []store.Job, uncancel bool) (n int, uncancelled bool, err error)
	// Where names the source for the commands to run next: where the full
	// list of outcomes is, and the arguments that name the run.
	Where() (fullList, args string)
	// RollbackRecorded reports whether the run's shared record (Postgres)
	// says its budget was exceeded under --on-failure rollback, which
	// another runner of the run may have seen rather than this one.
	RollbackRecorded(ctx context.Context) bool
	// PriorSends counts the jobs that earlier processes of the run sent,
	// for a run whose waves the store does not keep (CSV); 0 otherwise.
	PriorSends() int
	// Ended tells the source that the run ended with t, neither
	// interrupted nor failed: a CSV run whose every job has an outcome
	// leaves a done mark (see done.go).
	Ended(t runTally)
	// Describe names the source in messages: the results file, or the run.
	Describe() string
	// Started marks that the command changed something, so that Close keeps
	// what it created.
	Started()
	Close()
	// The status page reads the run through the source.
	statuspage.Run
}

// openSource reads and validates the jobs named by o and opens their store;
// forRun opens it for a runner (CSV: the journal, created if need be).
func (a *app) openSource(ctx context.Context, o sourceFlags, forRun, force bool, leaseTTL time.Duration) (jobSource, error) {
	if o.jobsPath != "" {
		return openCSV(o, forRun, force)
	}
	db, err := postgres.Open(ctx, o.databaseURL)
	if err != nil {
		return nil, &exitError{code: exitFatal, err: err}
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return nil, &exitError{code: exitFatal, err: err}
	}
	src := &dbSource{db: db, run: o.runName}
	if err := db.RunExists(ctx, o.runName); err != nil {
		db.Close()
		if errors.Is(err, store.ErrNotFound) {
			return nil, usageError("run %q has no jobs: import some with `batchreset import --run %s`", o.runName, o.runName)
		}
		return nil, &exitError{code: exitFatal, err: err}
	}
	if forRun {
		host, _ := os.Hostname()
		src.owner = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), randomHex(4))
		src.queue = db.Queue(o.runName, src.owner, leaseTTL)
		src.leaseTTL = leaseTTL
		src.asStored = true
	}
	return src, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// csvSource is a jobs CSV file, with the journal of its run when opened for
// one.
type csvSource struct {
	jobs  []store.Job     // the journal's jobs, when read without a run
	in    *csvstore.Input // the input, when there is no journal
	st    *csvstore.Store
	out   string // results file
	state string // journal
	// jobsPath is the jobs file; outSet: --out named the results file.
	jobsPath string
	outSet   bool
	parent   string // the run this one rolls back (sourceFlags.parent)
	// digest and size are the jobs file's, as read (see doneMark); done is
	// the tally of a run that ended with every job finished, whose mark
	// Close leaves once the journal is compacted.
	digest string
	size   int64
	region string // the region rows without one take
	done   *runTally
	// fresh: the journal was created by this command. Until started is set,
	// closing removes it again, so that a command that stops before the run
	// starts (unconfirmed, bad flags, no credentials) leaves nothing that
	// would tie the next run to this input.
	fresh, started bool
}

func openCSV(o sourceFlags, forRun, force bool) (*csvSource, error) {
	// The input is read straight into the compact form the journal's store
	// keeps, which takes it over: a large fleet is never held twice.
	in, err := csvstore.ReadInput(o.jobsPath, o.readOptions())
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	if in.Len() == 0 {
		return nil, usageError("%s: no jobs: the file has a header and no rows", o.jobsPath)
	}
	src := &csvSource{in: in, out: o.outPath, jobsPath: o.jobsPath, outSet: o.outPath != "", parent: o.parent}
	src.digest, src.size = in.Digest()
	src.region = o.region
	if src.out == "" {
		src.out = filepath.Join(filepath.Dir(o.jobsPath), "results.csv")
	}
	src.state = src.out + ".state"
	_, err = os.Stat(src.state)
	src.fresh = errors.Is(err, os.ErrNotExist)
	if !forRun {
		if src.fresh {
			return src, nil
		}
		// Read the journal of the run, if one exists, without holding it.
		st, err := csvstore.OpenInput(src.state, in)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: err}
		}
		src.jobs, src.in = st.Jobs(), nil
		st.Close()
		return src, nil
	}
	if src.fresh && !force {
		if _, err := os.Stat(src.out); err == nil {
			return nil, usageError("%s already exists and has no state file beside it: it belongs to another run; move it away, choose --out, or pass --force", src.out)
		}
	}
	if err := removeDone(src.out); err != nil {
		return nil, &exitError{code: exitFatal, err: err}
	}
	st, err := csvstore.OpenInput(src.state, in)
	if err != nil {
		code := exitUsage
		if errors.Is(err, store.ErrUnwritable) {
			code = exitFatal // the disk, not the input
		}
		return nil, &exitError{code: code, err: err}
	}
	src.st, src.in = st, nil
	return src, nil
}

func (s *csvSource) Jobs(context.Context) ([]store.Job, error) {
	switch {
	case s.st != nil:
		return s.st.Jobs(), nil
	case s.in != nil:
		return s.in.Jobs(), nil
	}
	return s.jobs, nil
}

func (s *csvSource) Count(ctx context.Context) (store.Count, error) {
	switch {
	case s.st != nil:
		return s.st.Count(), nil
	case s.in != nil:
		return s.in.Count(), nil
	}
	var c store.Count
	for i := range s.jobs {
		c.Add(&s.jobs[i])
	}
	return c, nil
}

func (s *csvSource) Each(ctx context.Context, fn func(*store.Job) error) error {
	jobs := slices.Values(s.jobs)
	switch {
	case s.st != nil:
		jobs = s.st.All()
	case s.in != nil:
		jobs = slices.Values(s.in.Jobs())
	}
	for j := range jobs {
		resultView(&j)
		if err := fn(&j); err != nil {
			return err
		}
	}
	return nil
}

func (s *csvSource) AccountStore(account string) runner.Store { return s.st.View(account) }

func (s *csvSource) Store() runner.Store {
	if s.st == nil {
		return nil
	}
	return s.st
}

func (s *csvSource) DB() *postgres.Store { return nil }

func (s *csvSource) Record(ctx context.Context, j *store.Job) error { return s.st.Save(ctx, j) }

func (s *csvSource) RecordRollout(maxFailures string, ro *runner.Rollout, hooks store.HookSettings) error {
	return recordRollout(s.out, maxFailures, ro, hooks)
}

// JoinHooks returns the hooks the run's record holds when an earlier
// process of the run left the journal (a rerun, a resume, a retry), else h,
// which RecordRollout records.
func (s *csvSource) JoinHooks(_ context.Context, h store.HookSettings) (store.HookSettings, error) {
	if _, none := s.NoState(); none {
		return h, nil
	}
	rec, ok, err := csvRunRecord(s.out)
	if err != nil || !ok {
		return h, err
	}
	return rec.Hooks, nil
}

// SharedRollout is false: a CSV run's rollout is each process's.
func (s *csvSource) SharedRollout(context.Context) (store.RolloutPlan, bool, error) {
	return store.RolloutPlan{}, false, nil
}

func (s *csvSource) RunRecord(context.Context) (runRecord, bool, error) { return csvRunRecord(s.out) }

// Finish writes the results file, which speaks for this run alone: jobs it
// left unstarted are skipped, jobs left in flight unknown. The journal keeps
// their real status for the next run.
func (s *csvSource) Finish(ctx context.Context) error {
	results := func(yield func(store.Job) bool) {
		s.Each(ctx, func(j *store.Job) error {
			if !yield(*j) {
				return errStopped
			}
			return nil
		})
	}
	if err := csvstore.WriteResultsFileSeq(s.out, results, s.st != nil && s.st.Accounts() != nil); err != nil {
		return &exitError{code: exitFatal, err: fmt.Errorf("write results: %w", err)}
	}
	return nil
}

// errStopped ends an Each whose caller wants no more jobs.
var errStopped = errors.New("stopped")

// OK reads the store's counts.
func (s *csvSource) OK(runner.Summary) bool { return s.st.Totals().Succeeded() }

func (s *csvSource) RunKey(context.Context) (string, string, error) {
	return "csv:" + s.st.RunKey(), "the CSV run of " + s.out, nil
}
func (s *csvSource) StartedAt() time.Time { return s.st.Started() }

func (s *csvSource) ParentKey(context.Context) (string, error) { return "", nil }
func (s *csvSource) Describe() string                          { return "results: " + s.out }

func (s *csvSource) NoState() (string, bool) { return s.state, s.fresh }

// RollbackRecorded is false: a CSV run has one runner, which saw it.
func (s *csvSource) RollbackRecorded(context.Context) bool { return false }

func (s *csvSource) PriorSends() int {
	n := 0
	for j := range s.st.All() {
		if j.Attempts > 0 {
			n++
		}
	}
	return n
}

// Requeue requeues jobs in the journal, and uncancel sets a cancelled run
// running again in its control file.
func (s *csvSource) Requeue(ctx context.Context, jobs []store.Job, uncancel bool) (int, bool, error) {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.InstanceID
	}
	n, err := s.st.Requeue(ctx, ids)
	if err != nil {
		return n, false, err
	}
	s.Started()
	if !uncancel {
		return n, false, nil
	}
	h, err := s.st.Hold(ctx)
	if err != nil || h.Control != store.ControlCancelled {
		return n, false, err
	}
	return n, true, s.st.SetControl(ctx, store.ControlRunning)
}

func (s *csvSource) Where() (string, string) {
	args := "--jobs " + shellQuote(s.jobsPath)
	if s.outSet {
		args += " --out " + shellQuote(s.out)
	}
	return s.out, args
}

func (s *csvSource) Stored(_ context.Context, statuses ...store.Status) ([]store.Job, error) {
	var out []store.Job
	for j := range s.st.All() {
		if slices.Contains(statuses, j.Status) {
			out = append(out, j)
		}
	}
	return out, nil
}

func (s *csvSource) Ended(t runTally) {
	if s.st.Count().Unfinished == 0 {
		s.done = &t
	}
}
func (s *csvSource) Started() { s.started = true }

func (s *csvSource) Close() {
	if s.st == nil {
		return
	}
	if s.fresh && !s.started {
		// Nothing was recorded: only this command had the file (it holds
		// the lock), so removing it is safe.
		os.Remove(s.state)
	}
	if s.st.Close() == nil && s.done != nil {
		s.writeDone(*s.done)
	}
}

// dbSource is a Postgres run.
type dbSource struct {
	db    *postgres.Store
	run   string
	owner string
	queue *postgres.Queue
	// leaseTTL is the queues' (see AccountStore).
	leaseTTL time.Duration
	// asStored: Each and Tally give the rows as they stand rather than as
	// the results report them. A runner's command ends so: its pending
	// jobs are not skipped, they are due later or another runner's.
	asStored bool
}

// view rewrites j as s gives it.
func (s *dbSource) view(j *store.Job) {
	if !s.asStored {
		resultView(j)
	}
}

func (s *dbSource) Jobs(ctx context.Context) ([]store.Job, error) { return s.db.Jobs(ctx, s.run) }

func (s *dbSource) Count(ctx context.Context) (store.Count, error) { return s.db.Count(ctx, s.run) }

func (s *dbSource) Each(ctx context.Context, fn func(*store.Job) error) error {
	return s.db.EachJob(ctx, s.run, func(j *store.Job) error {
		s.view(j)
		return fn(j)
	})
}

func (s *dbSource) Store() runner.Store {
	if s.queue == nil {
		return nil
	}
	return s.queue
}

func (s *dbSource) AccountStore(account string) runner.Store {
	return s.db.AccountQueue(s.run, account, s.owner, s.leaseTTL)
}

func (s *dbSource) DB() *postgres.Store { return s.db }

func (s *dbSource) Record(ctx context.Context, j *store.Job) error { return s.db.Settle(ctx, j) }

func (s *dbSource) RecordRollout(string, *runner.Rollout, store.HookSettings) error { return nil }

func (s *dbSource) JoinHooks(ctx context.Context, h store.HookSettings) (store.HookSettings, error) {
	return s.db.JoinHooks(ctx, s.run, h)
}

func (s *dbSource) SharedRollout(ctx context.Context) (store.RolloutPlan, bool, error) {
	ro, err := s.db.Rollout(ctx, s.run)
	if errors.Is(err, store.ErrNotFound) {
		return store.RolloutPlan{}, false, nil
	}
	return ro.Plan, err == nil, err
}

func (s *dbSource) RunRecord(ctx context.Context) (runRecord, bool, error) {
	return dbRunRecord(ctx, s.db, s.run)
}

// Finish has nothing to write: the rows are the results. Pending jobs are
// due later, or left for another runner, and a later run takes them.
func (s *dbSource) Finish(context.Context) error { return nil }

func (s *dbSource) OK(sum runner.Summary) bool { return sum.Totals.Succeeded() }

func (s *dbSource) RunKey(ctx context.Context) (string, string, error) {
	where, err := s.db.Where(ctx)
	if err != nil {
		return "", "", err
	}
	return "postgres:" + where + "\x00" + s.run, fmt.Sprintf("Postgres run %q", s.run), nil
}
func (s *dbSource) StartedAt() time.Time { return time.Time{} }

func (s *dbSource) ParentKey(ctx context.Context) (string, error) {
	parent, err := s.db.Parent(ctx, s.run)
	if err != nil || parent == "" {
		return "", err
	}
	where, err := s.db.Where(ctx)
	if err != nil {
		return "", err
	}
	return "postgres:" + where + "\x00" + parent, nil
}
func (s *dbSource) Describe() string { return fmt.Sprintf("run %q", s.run) }

// NoState is false: the run's rows, checked when it was opened, are its
// state.
func (s *dbSource) NoState() (string, bool) { return "", false }

func (s *dbSource) Stored(ctx context.Context, statuses ...store.Status) ([]store.Job, error) {
	return s.db.Jobs(ctx, s.run, statuses...)
}

func (s *dbSource) Requeue(ctx context.Context, jobs []store.Job, uncancel bool) (int, bool, error) {
	rows := make([]int64, len(jobs))
	for i, j := range jobs {
		rows[i] = j.ID
	}
	n, err := s.db.Requeue(ctx, s.run, rows)
	if err != nil || !uncancel {
		return n, false, err
	}
	st, err := s.db.Status(ctx, s.run)
	if err != nil || st.Control != store.ControlCancelled {
		return n, false, err
	}
	return n, true, s.db.SetControl(ctx, s.run, store.ControlRunning)
}

func (s *dbSource) Where() (string, string) {
	return fmt.Sprintf("batchreset report --run %s", shellQuote(s.run)), `--database-url "$DATABASE_URL" --run ` + shellQuote(s.run)
}

func (s *dbSource) RollbackRecorded(ctx context.Context) bool {
	ro, err := s.db.Rollout(ctx, s.run)
	return err == nil && runner.RollbackDue(ro.Stopped)
}

// PriorSends is 0: the Postgres store keeps the run's waves itself.
func (s *dbSource) PriorSends() int { return 0 }

// Ended does nothing: the rows are the results.
func (s *dbSource) Ended(runTally) {}
func (s *dbSource) Started()       {}

// Close leaves the run's holders, if this source was a runner, and closes
// the database.
func (s *dbSource) Close() {
	if s.queue != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.queue.Leave(ctx)
		cancel()
	}
	s.db.Close()
}

// resultView rewrites j, in place, to the outcome a results file reports:
// a job a run left unstarted is skipped, one left in flight is unknown. The
// store keeps its real status for the next run.
func resultView(j *store.Job) {
	switch j.Status {
	case store.StatusPending:
		j.Status = store.StatusSkipped
		j.ErrorMessage = "not started: the run stopped before this instance; rerun to resume"
	case store.StatusSubmitting, store.StatusSubmitted:
		j.Status = store.StatusUnknown
		j.ErrorMessage = "still in flight when the run stopped; rerun to resume tracking"
	}
}

// sampleText names ids, the first of n instances.
func sampleText(ids []string, n int) string {
	sample := strings.Join(ids, ", ")
	if n > len(ids) {
		sample += fmt.Sprintf(" and %d more", n-len(ids))
	}
	return sample
}

// plural returns "1 region" or "3 regions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
