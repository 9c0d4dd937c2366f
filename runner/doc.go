/*
Package runner resets Lighthouse instances: it takes jobs from a Store, calls
ResetInstance under a shared rate limit, follows every asynchronous reset
through batched DescribeInstances calls, and records exactly one outcome per
job. It holds every decision about retries and reconciliation; the stores
only persist what it decides.

# The promise

ResetInstance formats the system disk and has no idempotency token. The runner
therefore sends a reset for an instance again only when DescribeInstances has
proven that no earlier call of this run took effect, and it records the intent
to send durably before every call, so that a crash can always be reconciled.

# Job states

		pending ──intent saved──▶ submitting ──RequestId saved──▶ submitted ──▶ succeeded | failed | unknown
		   ▲                          │                               (tracked by DescribeInstances)
		   └──── proven not sent ─────┘ (rejected, or reconciled as absent)
		pending ──▶ skipped (preflight, failure budget, window closed, cancelled)

	  - pending: nothing of this run reached the cloud for the job.
	  - submitting: the intent is durable and a ResetInstance call may have been
	    sent. A job is left here when the call's outcome is ambiguous (timeout,
	    dropped connection, 5xx) and when the process dies mid-call. Such a job is
	    reconciled: if DescribeInstances shows a ResetInstance operation newer than
	    the one seen before the first send (LatestOperationRequestId differs from
	    PrevRequestID and the operation started after the intent), that operation
	    is adopted as ours; if, after Config.SettleTime, the instance still shows
	    PrevRequestID and nothing in progress, the call is proven absent and the
	    job returns to pending.
	  - submitted: the cloud returned RequestID. The reset is finished only when
	    LatestOperation is ResetInstance, LatestOperationRequestId equals RequestID
	    and LatestOperationState is SUCCESS or FAILED; a state left over from an
	    earlier operation never ends tracking. Config.ResetTimeout after
	    submission the job ends unknown, with the last observed state.
	  - succeeded, failed, skipped, unknown: terminal. An unknown job can be
	    settled later by a reconcile run, which sends nothing.

# Errors

Failed calls are classified by the lighthouse package. Rejected calls
(throttling, system busy, a request that never left) were not executed: they
do not count as attempts, the job returns to pending and is sent again after
the next poll, and it fails only when the API keeps rejecting it for
Config.ResetTimeout. Throttling also pauses every sender, and the pause grows
while throttling persists and ends once calls are accepted. An instance busy
with another operation waits, watched by the tracker, until it is idle, then
is sent again; if an earlier call of ours may have landed, it is reconciled
instead, and if it cannot be settled it ends unknown, never failed.
Permanent errors fail the job. Fatal errors (credentials, permissions,
configuration) stop new submissions; resets already sent are still tracked to
the end, and the run reports the error.

A DescribeInstances call that the API fails as a whole because of one
instance (not found, malformed) is split until that instance is alone; it is
then treated as absent.

# Rate

All senders share one Limiter per action. The default local limiter spaces
calls (1s+Guard)/Rate apart, so that Rate+1 consecutive calls span more than
one second plus the jitter allowance: the server, counting calls per fixed
one-second window by arrival, never sees more than Rate in one window. A
sender records its intent first and takes its rate slot after, so that only
the network's jitter lies between the slot and the call's arrival; a slot
taken when the run has stopped or paused sends nothing, and the intent is
undone.
*/
package runner
