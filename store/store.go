// Package store defines the job records that every batchreset store keeps and
// the sentinel errors they report.
package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Status is the state of one job. The values are written as they are to SQL,
// the CSV journal, logs and reports, so they read the same everywhere.
type Status string

// Job statuses. A job moves pending → submitting → submitted → one of the
// terminal statuses; see the runner package documentation for every edge.
const (
	// StatusPending: nothing has been sent for the job (or a send was proven
	// not to have happened).
	StatusPending Status = "pending"
	// StatusSubmitting: the intent to send ResetInstance is durable; the call
	// may or may not have reached the cloud. A job found in this status after
	// a crash or a lost lease is reconciled before anything is sent again.
	StatusSubmitting Status = "submitting"
	// StatusSubmitted: the cloud accepted the reset and returned RequestID;
	// the job is tracked until the operation ends.
	StatusSubmitted Status = "submitted"

	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	// StatusSkipped: deliberately not attempted; ErrorMessage says why.
	StatusSkipped Status = "skipped"
	// StatusUnknown: the tool could not establish what happened;
	// ErrorMessage explains, and a later reconcile may settle it.
	StatusUnknown Status = "unknown"
	// StatusUnhealthy: the reset happened (it ended SUCCESS) but the health
	// check after it did not pass; ErrorMessage says why. Never sent again
	// as if the reset had not happened.
	StatusUnhealthy Status = "unhealthy"
)

// Terminal reports whether s is a final outcome.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusSkipped, StatusUnknown, StatusUnhealthy:
		return true
	}
	return false
}

// Statuses are every status, in the order they are listed to a person: a
// job's way through the live ones, then the outcomes.
var Statuses = []Status{StatusPending, StatusSubmitting, StatusSubmitted,
	StatusSucceeded, StatusFailed, StatusUnknown, StatusSkipped, StatusUnhealthy}

// FailureStatuses are the outcomes that count against a run's failure
// budget: the reset failed, its outcome is unknown, or the instance is
// unhealthy after it. Every count of "failures" (the runner's budget, the
// Postgres rollout's SQL, status, the summary, the status page) is built
// from this list, through Failure or the list itself.
var FailureStatuses = []Status{StatusFailed, StatusUnknown, StatusUnhealthy}

// Failure reports whether s is one of FailureStatuses.
func (s Status) Failure() bool {
	switch s {
	case StatusFailed, StatusUnknown, StatusUnhealthy:
		return true
	}
	return false
}

// CodeBeforeHookFailed is the error code of a job skipped because its
// before-hook (the runner's --before-reset) failed: the instance was not
// reset, but the job counts as a failure (see Job.Failure).
const CodeBeforeHookFailed = "BeforeHookFailed"

// Error codes of the other hook failures: a job whose reset happened and
// whose after-hook failed (it ends unhealthy), and one drained, not reset,
// whose restore failed (its instance may still be out of service).
const (
	CodeAfterHookFailed   = "AfterHookFailed"
	CodeRestoreHookFailed = "RestoreHookFailed"
)

// HookFailureCodes are the error codes of a job whose lifecycle hook
// failed (see Job.HookFailed).
var HookFailureCodes = []string{CodeBeforeHookFailed, CodeAfterHookFailed, CodeRestoreHookFailed}

// HookFailed reports whether one of j's lifecycle hooks failed: its error
// code is one of HookFailureCodes, and its message ends with the hook's
// last output lines (bounded, secrets redacted by the runner).
func (j *Job) HookFailed() bool {
	return slices.Contains(HookFailureCodes, j.ErrorCode)
}

// Failure reports whether j counts against its run's failure budget: its
// status is one of FailureStatuses, or it was skipped because its
// before-hook failed (a drain that fails says something is wrong with the
// fleet, as a failed reset does).
func (j *Job) Failure() bool {
	return j.Status.Failure() || j.Status == StatusSkipped && j.ErrorCode == CodeBeforeHookFailed
}

// Reset reports whether a job in status s had its instance reset: it
// succeeded, or ended unhealthy (the reset ran; the health check or the
// after-hook that followed did not pass). A rollback's job in such a
// status has its instance back on its previous image.
func (s Status) Reset() bool { return s == StatusSucceeded || s == StatusUnhealthy }

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusSubmitting, StatusSubmitted:
		return true
	}
	return s.Terminal()
}

// Job is one instance to reset and everything recorded about it.
type Job struct {
	// ID identifies the job inside its store (a row id, or the input line).
	ID int64
	// Run names the run the job belongs to ("" in CSV mode).
	Run string

	InstanceID  string
	BlueprintID string // "" reinstalls the instance's current image
	Region      string
	// Account names the account the instance is in, as the run's settings
	// define it (see CheckAccount); "" is the run's own credential.
	Account string
	// KeyIDs are the key pairs the reset binds (at most MaxKeyIDs); nil
	// leaves it to the run-wide login setting.
	KeyIDs []string
	// AutoGeneratePassword asks the reset to generate the default user's
	// password. A password itself is never part of a job: it comes only
	// run-wide, from a file or the environment.
	AutoGeneratePassword bool

	Status Status
	// RequestID is the RequestId of the ResetInstance call the cloud ran.
	RequestID string
	// PrevRequestID is the instance's LatestOperationRequestId seen before the
	// first ResetInstance was sent; reconciliation compares against it.
	PrevRequestID string
	// PrevBlueprintID is the instance's BlueprintId seen before the first
	// ResetInstance was sent (recorded with PrevRequestID): the image a
	// rollback puts back. "" when not recorded (older records).
	PrevBlueprintID string
	ErrorCode       string
	ErrorMessage    string
	// Attempts counts ResetInstance calls sent (or possibly sent) for the job.
	Attempts int
	// HookPhase is how far the job's lifecycle hooks have come (see
	// HookPhase); "" when the run has none or none has started.
	HookPhase HookPhase

	// NotBefore is the earliest time the job may be started (zero: now).
	NotBefore time.Time
	// IntentAt is when the latest ResetInstance call was about to be sent.
	IntentAt time.Time
	// SubmittedAt is when the cloud first accepted a reset for the job.
	SubmittedAt time.Time
	FinishedAt  time.Time

	// Fence is the lease token under which the job was claimed; stores that
	// share jobs between processes refuse writes carrying a stale one.
	Fence int64
}

// HookPhase is how far a job's lifecycle hooks (the runner's
// --before-reset and --after-reset) have come. A phase is recorded before
// the hook it names runs, so that a rerun after a crash runs it again.
type HookPhase string

// Hook phases.
const (
	// HookNone: no hook has started; the instance is in service.
	HookNone HookPhase = ""
	// HookBefore: the before-hook may be running; the instance may be out
	// of service, and is not reset before the hook has ended (again).
	HookBefore HookPhase = "before"
	// HookDrained: the before-hook ended; the instance is out of service
	// until its after-hook (or restore) ends.
	HookDrained HookPhase = "drained"
	// HookAfter: the reset is over; the after-hook may be running.
	HookAfter HookPhase = "after"
	// HookRestore: the instance was drained and not reset; the after-hook
	// may be running with phase restore.
	HookRestore HookPhase = "restore"
	// HookDone: the after-hook or restore ended; the instance is back.
	HookDone HookPhase = "done"
)

// HookPhases are the phases a job with lifecycle hooks goes through after
// HookNone, in order, for the views that count jobs by phase.
var HookPhases = []HookPhase{HookBefore, HookDrained, HookAfter, HookRestore, HookDone}

// OutOfService reports whether a job in phase p may have its instance out
// of service by a before-hook of its run: one that ended, one a crash
// interrupted, or one whose after-hook or restore is owed.
func (p HookPhase) OutOfService() bool {
	switch p {
	case HookBefore, HookDrained, HookAfter, HookRestore:
		return true
	}
	return false
}

// Valid reports whether p is one of the defined phases.
func (p HookPhase) Valid() bool {
	switch p {
	case HookNone, HookBefore, HookDrained, HookAfter, HookRestore, HookDone:
		return true
	}
	return false
}

// MaxAccountLen is the longest account name.
const MaxAccountLen = 32

// CheckAccount reports what is wrong with name as an account name: a short
// identifier of lowercase letters, digits, '-' and '_', starting with a
// letter, at most MaxAccountLen bytes. It names the account in the jobs, the
// run's settings, the database and every report, so it is kept plain.
func CheckAccount(name string) error {
	if name == "" || len(name) > MaxAccountLen {
		return fmt.Errorf("account name %q: want 1 to %d characters", name, MaxAccountLen)
	}
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_'):
		default:
			return fmt.Errorf("account name %q: want lowercase letters, digits, - and _, starting with a letter", name)
		}
	}
	return nil
}

// AccountCount counts the jobs of one account of a run.
type AccountCount struct {
	Account          string // "" for the jobs that name none
	Jobs, Unfinished int
	Regions          []string // of the unfinished jobs, sorted
	Totals           Totals   // the jobs by status, as Count.Totals
}

// MaxKeyIDs is the most key pairs one reset binds (ResetInstance's
// LoginConfiguration.KeyIds).
const MaxKeyIDs = 5

// KeyIDSeparator separates key IDs in the jobs CSV and the database.
const KeyIDSeparator = ";"

// Totals counts jobs by status.
type Totals map[Status]int

// Sentinel errors reported by stores.
var (
	// ErrNotFound reports that a run or job does not exist.
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost reports a write refused because another runner has taken
	// the job over (its fencing token moved on).
	ErrLeaseLost = errors.New("lease lost: job taken over by another runner")
	// ErrSchemaOutdated reports a database whose migrations are behind this
	// binary; run `batchreset migrate`.
	ErrSchemaOutdated = errors.New("database schema is out of date: run `batchreset migrate`")
	// ErrLocked reports a store already in use by another process.
	ErrLocked = errors.New("store is in use by another batchreset process")
	// ErrInstanceBusy reports an intent refused because another run has the
	// same instance in flight (submitting or submitted): two runs never
	// both have a call for one instance on its way.
	ErrInstanceBusy = errors.New("instance is in flight in another run")
	// ErrHeld reports an intent refused because another run holds the
	// instance: a live run (runs hold their instances from start to end),
	// one that held it when this run began, or one that ended with a reset
	// of it in doubt. The job ends skipped, naming the holder; it is not
	// reset by this run.
	ErrHeld = errors.New("instance is held by another run")
	// ErrStopped reports an intent refused because the run is paused or
	// cancelled.
	ErrStopped = errors.New("run is paused or cancelled")
)

// Control is an operator's instruction for a run, set with
// `batchreset pause|resume|cancel` and read by every runner once per poll.
type Control string

// Run controls.
const (
	ControlRunning   Control = "running"
	ControlPaused    Control = "paused"    // start nothing new; keep tracking
	ControlCancelled Control = "cancelled" // start nothing new; remaining jobs become skipped
)

// RunHold is a run's control as its record keeps it, with what a paused
// run waits for. Stores that keep it (the CSV control file beside the
// journal, the Postgres runs row) change it only through Set and Pause, so
// that every store agrees on what a resume approves.
type RunHold struct {
	Control Control
	// Reason says what a paused run waits for: "approval of wave 2", the
	// failure budget it exceeded, or "paused by operator". "" when running.
	Reason string
	// Awaiting is the wave (from 1) whose approval the pause waits for; 0
	// when the pause is not for an approval.
	Awaiting int
	// Approved is the highest wave (from 1) a person approved by resuming
	// the run while it awaited it.
	Approved int
}

// Set applies an operator's control: a resume approves the wave the run
// awaited and clears the reason; a pause says it is the operator's.
func (h *RunHold) Set(c Control) {
	switch c {
	case ControlRunning:
		h.Approved = max(h.Approved, h.Awaiting)
		h.Awaiting, h.Reason = 0, ""
	case ControlPaused:
		if h.Control != ControlPaused {
			h.Reason = "paused by operator"
		}
	}
	h.Control = c
}

// Pause pauses a run that is not cancelled for why, a rule of the run (the
// failure budget, an approval between waves); awaiting > 0 names the wave
// it waits to have approved. It reports whether it paused the run: not a
// cancelled one, nor for a wave already approved.
func (h *RunHold) Pause(why string, awaiting int) bool {
	if h.Control == ControlCancelled || awaiting > 0 && h.Approved >= awaiting {
		return false
	}
	if h.Control == ControlPaused && h.Awaiting == awaiting && h.Reason == why {
		return false
	}
	h.Control, h.Reason, h.Awaiting = ControlPaused, why, awaiting
	return true
}

// SlotSource hands out the slots of one API action's calls, for a rate
// limiter (runner.Spacer). Reserve takes the next free slot for good and
// returns how long from now until it comes; a slot its caller does not use
// is wasted, never given to another.
type SlotSource interface {
	Reserve(ctx context.Context) (wait time.Duration, err error)
}

// RolloutPlan is a run's canary, waves and failure budget, as the runner
// that starts the run first records them for every runner of the run.
type RolloutPlan struct {
	Canary      int   // the first wave's size, 0 for none
	Waves       []int // the sizes of the waves after it; the last repeats
	MaxFailures int   // negative: no budget
	// OnFailure is what an exceeded budget does: "stop", "pause" or
	// "rollback" ("" reads as "stop"). Approve is which waves wait for a
	// person: "", "canary" or "each-wave".
	OnFailure string
	Approve   string
	// FirstWave is the size of wave 0 (the canary, or the first of Waves).
	FirstWave int
}

// WaveSize is the size of wave i (from 0): the canary, then Waves, the last
// of which repeats; with a canary and no Waves, everything after it is one
// wave. It is the one wave rule: the runner admits by it, and plan and the
// status page lay runs out by it.
func (p RolloutPlan) WaveSize(i int) int {
	if p.Canary > 0 {
		if i == 0 {
			return p.Canary
		}
		i--
	}
	if len(p.Waves) == 0 {
		return math.MaxInt / 2
	}
	return p.Waves[min(i, len(p.Waves)-1)]
}

// Admission is a store's answer to a request to start one job under a
// shared rollout.
type Admission struct {
	// Admitted is true when the job may start, in Wave (from 0); a job
	// admitted before keeps its wave, unless it was never sent and its
	// place was given to another job when the runner that held it let it
	// go (see the Postgres store's RolloutAdmit).
	Admitted bool
	Wave     int
	// Full is true when the current wave, Wave, has all the jobs it takes.
	Full bool
	// Stopped says why no new reset may start for any runner: a canary
	// that failed, a budget exceeded. Failures is the run's count.
	Stopped  string
	Failures int
	// Paused says why the run is now paused for every runner (a budget
	// exceeded under OnFailure "pause"): nothing is admitted until resume.
	Paused string
}

// WaveState is how far one wave of a shared rollout has come.
type WaveState struct {
	Current  int // the run's current wave
	Pending  int // jobs of the wave not yet terminal
	Failures int // jobs of the wave that ended failed, unknown or unhealthy
}

// Succeeded reports the one rule of a run's success: every job counted
// succeeded (a run of no jobs succeeded trivially).
func (t Totals) Succeeded() bool {
	for st, n := range t {
		if st != StatusSucceeded && n > 0 {
			return false
		}
	}
	return true
}

// Failures counts the jobs whose status is a failure (FailureStatuses).
func (t Totals) Failures() int {
	n := 0
	for _, st := range FailureStatuses {
		n += t[st]
	}
	return n
}

// Count is what a run's jobs come to, counted without holding them: the
// one summary of a run that every store gives (store/csv from its table,
// store/postgres with SQL aggregates) and every command reads.
type Count struct {
	// Totals counts the jobs by status; Jobs is their sum.
	Totals Totals
	Jobs   int
	// Unfinished counts the jobs not terminal, Regions lists their regions
	// sorted, and Sample names the first CountSample of their instances,
	// in the jobs' order.
	Unfinished int
	Regions    []string
	Sample     []string
	// Accounts breaks the jobs down by account, in the order the jobs
	// first name them ("" for the jobs that name none), when a job names
	// one; nil otherwise.
	Accounts []AccountCount
}

// CountSample is how many unfinished instances a Count names.
const CountSample = 3

// Add counts one job, given in the jobs' order.
func (c *Count) Add(j *Job) {
	if j.Account != "" && c.Accounts == nil && c.Jobs > 0 {
		// Every job counted so far names no account.
		c.Accounts = []AccountCount{{Jobs: c.Jobs, Unfinished: c.Unfinished, Regions: slices.Clone(c.Regions), Totals: maps.Clone(c.Totals)}}
	}
	if c.Totals == nil {
		c.Totals = Totals{}
	}
	c.Totals[j.Status]++
	c.Jobs++
	var a *AccountCount
	if j.Account != "" || c.Accounts != nil {
		k := slices.IndexFunc(c.Accounts, func(a AccountCount) bool { return a.Account == j.Account })
		if k < 0 {
			k = len(c.Accounts)
			c.Accounts = append(c.Accounts, AccountCount{Account: j.Account, Totals: Totals{}})
		}
		a = &c.Accounts[k]
		a.Jobs++
		a.Totals[j.Status]++
	}
	if j.Status.Terminal() {
		return
	}
	c.Unfinished++
	if i, found := slices.BinarySearch(c.Regions, j.Region); !found {
		c.Regions = slices.Insert(c.Regions, i, j.Region)
	}
	if a != nil {
		a.Unfinished++
		if i, found := slices.BinarySearch(a.Regions, j.Region); !found {
			a.Regions = slices.Insert(a.Regions, i, j.Region)
		}
	}
	if len(c.Sample) < CountSample {
		c.Sample = append(c.Sample, j.InstanceID)
	}
}
