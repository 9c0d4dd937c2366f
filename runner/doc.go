/*
Package runner resets Lighthouse instances: it takes jobs from a Store, calls
ResetInstance under a shared rate limit, follows every asynchronous reset
through batched DescribeInstances calls, and records exactly one outcome per
job. It holds every decision about retries and reconciliation; the stores
only persist what it decides.

# Where things are

  - job.go: a job's life. The task type, its kinds, and the named
    transitions (intent, unsent, accepted, rejected, inDoubt, adopted,
    sendAgain, finished, …): the only code that assigns a job's status, the
    runner's kind for it, or its times.
  - judge.go: what one DescribeInstances observation means for a task, as a
    pure function of the task, the observation and an explicit now; the
    tracker and Reconcile apply its verdicts. judge_test.go is its table;
    health_test.go that of the health judges.
  - health.go, cloud_health.go, login.go: the health check after a reset
    (TAT), and the login settings of a reset (key pairs, passwords) with
    their preflight check.
  - hooks.go, cloud_hooks.go: the lifecycle hooks around each reset
    (exec: on this host, tat: on the instance through RunCommand), their
    stage ahead of the senders, and their phase (store.HookPhase).
  - select.go, cloud_select.go: a Selector (regions, filters, tags) resolved
    to a fixed list of jobs, every page under its action's limiter.
  - event.go: the moments of a run (start, wave finished, stop, pause,
    cancel) reported to Config.OnEvent, for notifications.
  - cloud.go: Cloud, the one way every command calls the API: a Spacer per
    action at its limit, a throttle gate per action, retries, batching and
    bisection of DescribeInstances, paging by offset (readPages: each page
    one call in a slot of its own), the blueprint cache, the counters.
  - limiter.go, hostlimits.go: the rate rule (Spacer) over a SlotSource:
    local, shared by the processes of one host (HostLimits), shared
    through the database (the Postgres store), or both (HostLimits.Over).
  - identity.go: who a limit belongs to (Identity: the normalised endpoint
    and the principal STS's GetCallerIdentity names), resolved once per
    command.
  - feed.go (claim, snapshot, route), send.go (gate, admit, intent, slot,
    call),
    track.go (poll and apply), control.go (admission state: open, paused,
    stopped, draining, fatal; leases, the operator's control, an API that
    does not answer), rollout.go (canary, waves, budget, window, what an
    exceeded budget does, approvals).
  - rollback.go: PlanRollback, which instances a rollback resets back to
    the blueprint they had before the run (store.Job.PrevBlueprintID),
    judged from the cloud; the rollback itself is a run of its own.
  - plan.go and reconcile.go: the read-only commands, through a Cloud and the
    same judge.
  - group.go: Group, one Runner per account of a run over several, side by
    side, sharing the run's Rollout and control.

# Where each rule of a run lives

Each rule is written once; the commands, the stores and the status page use
it rather than restate it.

  - A failure (failed, unknown, unhealthy, or skipped by a failed
    before-hook): store.Status.Failure and store.Job.Failure, over
    store.FailureStatuses, from which the Postgres store builds its SQL.
  - The wave plan: Rollout.WavePlan and ParseWaves (rollout.go), which plan,
    the summary and the status page label jobs with; store.RolloutPlan is
    the plan a run records, so status shows the run's own budget and waves.
  - Outcome codes: the exported Code… constants of judge.go, hooks.go and
    send.go (and store.CodeBeforeHookFailed).
  - The instance ID check: lighthouse.CheckInstanceID, used by every input
    (store/csv's jobs CSV and instance lists, the Postgres import).
  - The run summary: Summary (runner.go), what a runner reports of its run.
  - Jobs CSV I/O: store/csv alone (Reader and ReadInput; WriteJobs).
  - Host-shared state: package hoststate places it; HostLimits
    (hostlimits.go) and the CSV store's Registry keep it.
  - The status page and the notifier are packages of the command
    (cmd/batchreset/internal/statuspage, cmd/batchreset/notify); metrics
    come from CloudConfig.Observe, the hook on the one API path.

# The promise

ResetInstance formats the system disk and has no idempotency token. The runner
therefore sends a reset for an instance again only when DescribeInstances has
proven that no earlier call of this run took effect, and it records the intent
to send durably before every call, so that a crash can always be reconciled.

No decision compares the cloud's clock with ours. "Ours" and "absent" are
RequestId identity against PrevRequestID, the instance's latest operation as
the run first recorded it, and every duration (SettleTime, ResetTimeout) is
measured on this runner's clock between two of its own events.

# Job states

		pending ──intent saved──▶ submitting ──RequestId saved──▶ submitted ──▶ succeeded | failed | unknown
		   ▲                          │                               (tracked by DescribeInstances)
		   └──── proven not sent ─────┘ (rejected, or reconciled as absent)
		pending ──▶ skipped (preflight, failure budget, window closed, cancelled, reset by another run)

	  - pending: nothing of this run reached the cloud for the job.
	  - submitting: the intent is durable and a ResetInstance call may have been
	    sent. A job is left here when the call's outcome is ambiguous (timeout,
	    dropped connection, 5xx) and when the process dies mid-call. Such a job is
	    reconciled: if DescribeInstances shows a ResetInstance whose RequestId
	    differs from PrevRequestID, that operation is adopted as ours; if, after
	    Config.SettleTime, the instance still shows PrevRequestID and nothing in
	    progress, the call is proven absent and the job returns to pending.
	  - submitted: the cloud returned RequestID. The reset is finished only when
	    LatestOperation is ResetInstance, LatestOperationRequestId equals RequestID
	    and LatestOperationState is SUCCESS or FAILED; a state left over from an
	    earlier operation never ends tracking. Config.ResetTimeout after
	    submission the job ends unknown, with the last observed state. A
	    ResetInstance of another process seen on the instance while ours is
	    tracked ends the job unknown with CodeResetTwice, never succeeded.
	  - succeeded, failed, skipped, unknown, unhealthy: terminal. An unknown job
	    can be settled later by Reconcile, which sends nothing.

# Health after the reset

With Config.Health (health.go), a job whose reset ended SUCCESS is not yet
succeeded: it stays submitted in the store, still in flight and in its wave,
and goes through health states of its own (job.go: checking, agentBack,
baking; judge.go: judgeAgent, judgeCommand):

			submitted ──SUCCESS──▶ agent ──Online, newer heartbeat──▶ command ──exit 0──▶ baking ──Bake──▶ agent … ──▶ succeeded
			                         │                                  │
			                         └────── not within Health.Timeout, exit ≠ 0, TAT could not run it ──────▶ unhealthy

	  - agent: DescribeAutomationAgentStatus (at most 100 IDs a call) until the
	    agent is Online, the instance RUNNING, and its heartbeat newer than the
	    first one seen since the check began: only the cloud's heartbeats are
	    compared with each other.
	  - command (HealthCommand): RunCommand (at most 200 instances a call, split
	    when refused as a whole), then DescribeInvocationTasks until the task ends.
	  - baking (Health.Bake): the healthy job waits, then is checked once more.
	  - unhealthy: the reset did happen, so the job is never sent again; it
	    counts against the failure budget, and the next wave waits for it.

A job taken over or resumed in the middle is checked again from the start.

# Lifecycle hooks

With Config.Hooks (hooks.go), the gate hands a job it admits to the
before-hook stage, which records the phase before, runs the hook, records
drained and only then hands the job to the senders: no intent, rate slot or
call comes before a before-hook has ended. A job's outcome is recorded only
after its after-hook (the reset was accepted) or its restore (it was not:
cancel, window, budget, a refused call, preflight, the first interrupt),
each recorded as a phase first; an instance out of service keeps its wave
place and in-flight slot until then. A rerun runs again a before-hook that
may not have ended, and an after-hook or restore that was due. A before-hook
that fails ends the job skipped (CodeBeforeHookFailed), which counts against
the failure budget (store.Job.Failure); a failed after-hook ends it
unhealthy (CodeAfterHookFailed).

# Other processes on the same instances

A run holds its instances from its start to its end, not only while a call
is in flight (Config.Holds on one host, store/csv.Holds; the Postgres store
in one database, instance_holds and run_holders): another run that wants an
instance a live run holds, or held when it began, does not reset it. Its
intent is refused (store.ErrHeld, naming the holder) and the job ends
skipped with CodeHeldByRun; a busy instance another run holds ends so at
once rather than being waited for. Once the holder has ended, a new run is a
new decision: Config.SkipResetSince skips (CodeRecentlyReset) an instance
whose latest operation, when the run first looks at it, is another
request's recent ResetInstance, and Summary.RecentlyReset counts those it
resets again. The unique index on instances in flight in one database stays
as a last guard (store.ErrInstanceBusy: the job waits, as for a busy
instance).

A pending job whose instance shows a ResetInstance that is neither
PrevRequestID nor ours (when it is claimed on resume, or when a busy instance
becomes idle) ends skipped with CodeResetByOther: another process reset it
during this run. A reset found after a call of ours in doubt is adopted as
that call only while the evidence can be ours (couldBeOurs in judge.go);
otherwise the job ends unknown with CodeNotProven.

# Admission

Claimed jobs go through one gate per runner (send.go) before any sender
takes them: the gate alone waits for the rollout (a wave to drain, the
pause between waves, a paused run to be resumed), one job at a time, so
that a sender never holds a job the rollout has not admitted while jobs it
has admitted wait behind it. A job once admitted (back from a pause, a
throttled call or the tracker) goes to the senders ahead of new ones and
never through the gate again. Every wait of the gate, of the senders and
of the feeder ends as soon as the operator's control (read every poll
interval) or an interrupt changes the runner's state. Every runner that has
worked a run waits while the run is paused, holding jobs or not, and goes
on after resume; a runner started while the run is paused ends once it
holds nothing, having sent nothing.

A run also pauses by its own rules: a failure budget exceeded under
Rollout.OnFailure FailPause, and a wave drained that Rollout.Approve makes
wait for a person ("approval of wave 2"). The pause goes into the run's
record first (Pauser: the CSV control file, the Postgres runs row), so that
every runner, and one started after a crash, waits too; a resume approves
the awaited wave and forgives the failures over the budget. A runner with
Config.WaitPaused waits for it, saying what for; one without (cron) ends
once its resets in flight have, leaving its unsent jobs pending.

# Accounts

A run over several accounts (store.Job.Account) is a Group: one Runner per
account in one process, each with its own Config (API clients signing with
the account's credential, limits of the account's Identity, holds, and a
Store that claims only the account's jobs), so that one account's
throttling, slowness or failure never holds back another's resets. The
accounts share the run's Rollout, one value, and its control, through the
store, as the runners of one Postgres run do; a stop of the run reaches
every account at once, and the run's moments are reported once. A fatal
error, or an exceeded Account.MaxFailures, stops that account alone: its
unsent jobs end skipped with CodeAccountBudget.

# Leases

With a Store that leases jobs (Leaser), a call leaves only while the job's
lease, reckoned on this host's monotonic and wall clocks, outlives it: the
call's deadline is the lease's end, and a runner that finds its lease gone or
about to end sends nothing. A runner taking a job over in submitting treats
the previous holder's call as in doubt, its SettleTime counted from the
takeover, which is after the previous lease ended.

# Errors

Failed calls are classified by the lighthouse package. Rejected calls
(throttling, system busy, a request that never left) were not executed: they
do not count as attempts, the job returns to pending and is sent again after
the next poll, and it fails only when the API keeps rejecting it for
Config.ResetTimeout. Throttling also pauses every caller of that action, and
the pause grows while throttling persists and ends once calls are accepted.
An instance busy with another operation, or in a state that passes
(STOPPING, STARTING, REBOOTING, PENDING, rescue-mode transitions), waits,
watched by the tracker, until it is idle, then is sent again; if an earlier
call of ours may have landed, it is reconciled instead, and if it cannot be
settled it ends unknown, never failed. Permanent errors fail the job, as does
a region the API rejects (its jobs only). Fatal errors (credentials,
permissions) stop new submissions; resets already sent are still tracked to
the end, and the run reports the error. When no call has had an answer for
Config.Unreachable the run stops with ErrUnreachable, every job left as a
rerun resumes it.

A store, or the host's shared state (the instance registry, the rate-limit
files), that cannot write (store.ErrUnwritable: a full or read-only file
system, a quota, a failing disk, a journal broken by a failed write) is not
asked again, unlike a database connection that drops, which is retried: the
run ends at once with that error, every job left as a rerun resumes it. No
intent can be recorded, so nothing more is sent; a call on the wire is
cancelled and its job stays submitting, in doubt; resets already accepted
are not tracked further but stay submitted, with their RequestId, for the
rerun to track (their outcome could not be recorded anyway, and tracking
them could last ResetTimeout). Unsent jobs stay pending.

A DescribeInstances call that the API fails as a whole because of one
instance (not found, malformed) is split until that instance is alone; it is
then treated as absent.

# Rate

A limit belongs to an Identity: the action, the API server the normalised
endpoint reaches, and the principal its calls are charged to, never how the
endpoint was typed, which key of the sub-account signs, or where a
temporary directory is. Each action has one Spacer for the whole process (or
every process of the Identity sharing the SlotSource). It spaces calls (1s+guard)/rate apart, so that rate+1
consecutive calls span more than one second plus the jitter allowance: the
server, counting calls per fixed one-second window by arrival, never sees
more than rate in one window as long as the calls' delays on the way differ
by less than guard (DefaultGuard for one host, the Postgres store's 100ms for
runners on several). A sender records its intent first and takes its rate
slot after, so that only the network lies between the slot and the call's
arrival; it sends on connections of its own, so that no read holds the
connection it needs; and a slot taken when the run has stopped or paused, or
when the lease would not outlive the call, sends nothing, and the intent is
undone.
*/
package runner
