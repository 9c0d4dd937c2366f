#!/bin/sh
# An exec: lifecycle hook for batchreset run --before-reset and --after-reset.
# batchreset runs it once per instance, on this host, with:
#   BATCHRESET_PHASE            before | after | restore (drained, then not reset)
#   BATCHRESET_INSTANCE_ID, BATCHRESET_REGION, BATCHRESET_RUN
#   BATCHRESET_BLUEPRINT_ID     the target; BATCHRESET_PREVIOUS_BLUEPRINT_ID the image before
#   BATCHRESET_PRIVATE_IPS, BATCHRESET_PUBLIC_IPS (space-separated)
#   BATCHRESET_OUTCOME          after and restore: succeeded, failed, unknown, unhealthy, skipped
# Exit 0 means done. It must be idempotent: after a crash the rerun runs it again.
# This one only says what a real drain would do.
set -eu
case "$BATCHRESET_PHASE" in
before)
	echo "drain $BATCHRESET_INSTANCE_ID ($BATCHRESET_PRIVATE_IPS): would set its load balancer weight to 0, stop its consumers, copy its logs off"
	;;
after)
	echo "back $BATCHRESET_INSTANCE_ID ($BATCHRESET_OUTCOME, now $BATCHRESET_BLUEPRINT_ID, was $BATCHRESET_PREVIOUS_BLUEPRINT_ID): would restore its weight"
	;;
restore)
	echo "restore $BATCHRESET_INSTANCE_ID (not reset: $BATCHRESET_OUTCOME): would restore its weight"
	;;
*)
	echo "unknown phase $BATCHRESET_PHASE" >&2
	exit 2
	;;
esac
