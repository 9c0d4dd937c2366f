#!/bin/sh
# A tat: lifecycle hook: batchreset runs it on the instance itself through
# TAT RunCommand, before the reset on the old system and after it on the new
# one. Exit 0 means done; it must be idempotent.
echo "$(hostname): stop accepting work, finish what is in progress"
