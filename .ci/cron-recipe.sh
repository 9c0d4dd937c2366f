#!/usr/bin/env bash
# CI: the scheduled-run recipes work as written.
#
# 1. The README's cron line is contrib/cron/batchreset's, and it runs as cron runs it: under
#    env -i with cron's PATH (/usr/bin:/bin), cron's % rules, and a time zone that is not UTC,
#    chosen so that the tick falls inside the line's hours (02:xx local, another date than
#    UTC's part of the day). It works a Postgres run (a fresh schema of TEST_DATABASE_URL)
#    against the built-in emulator (`batchreset emulator`, named by BATCHRESET_ENDPOINT in the
#    env file) and must exit 0 with every instance succeeded; a second tick must exit 0 too.
#    Only the roots of its absolute paths move, to a temporary directory (make install
#    DESTDIR=…): the binary, /etc/batchreset/env and /var/log/batchreset.
# 2. The systemd units pass `systemd-analyze verify` with no message at all (unknown keys are
#    only warnings), a unit broken on purpose does not, the timer's calendar elapses inside
#    the window's hours, and the service's ExecStart, unescaped as systemd does, runs the
#    same way as the cron line with systemd's PATH.
#
# Run through .ci/withdb.sh (TEST_DATABASE_URL); .ci/run does.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
fail() { echo "cron-recipe: $*" >&2; exit 1; }

: "${TEST_DATABASE_URL:?run through .ci/withdb.sh}"
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (apt-get install systemd)"

tmp=$(mktemp -d)
schema="cron_recipe_$$"
emu_pid=""
cleanup() {
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
  for s in cron systemd; do
    psql "$TEST_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS ${schema}_$s CASCADE" >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# The job lines of a cron.d file (5 time fields, a user, a command): "HOURS<TAB>COMMAND".
cron_jobs() {
  awk '/^[[:space:]]*(#|$)/ { next } /^[A-Za-z_][A-Za-z0-9_]*=/ { next }
       { cmd = $0; for (i = 1; i <= 6; i++) sub(/^[[:space:]]*[^[:space:]]+/, "", cmd)
         sub(/^[[:space:]]+/, "", cmd); print $2 "\t" cmd }' "$1"
}

contrib_line=$(cron_jobs contrib/cron/batchreset)
[ "$(printf '%s\n' "$contrib_line" | wc -l)" = 1 ] || fail "contrib/cron/batchreset: want one job line, got: $contrib_line"
# The README's cron block, the same line: what a reader copies is what is tested.
awk '/^```cron$/ { on = 1; next } /^```/ { on = 0 } on' README.md >"$tmp/readme.cron"
readme_line=$(cron_jobs "$tmp/readme.cron")
[ "$readme_line" = "$contrib_line" ] ||
  fail "the README's cron block is not contrib/cron/batchreset's job line:
  README:  $readme_line
  contrib: $contrib_line"
hours=${contrib_line%%$'\t'*}
line=${contrib_line#*$'\t'}

# cron's rules: \% is %, an unescaped % ends the command (the rest is stdin): the recipe has none.
case "${line//\\%/}" in *%*) fail "the cron line has an unescaped %: cron would cut it there" ;; esac
line=${line//\\%/%}

# The paths the recipe names, under the temporary root.
root="$tmp/root"
make -s install DESTDIR="$root" >/dev/null
bin="$root/usr/local/bin/batchreset"
mkdir -p "$root/etc/batchreset" "$root/var/log/batchreset"
relocate() { sed -e "s#/usr/local/bin/batchreset#$root/usr/local/bin/batchreset#g" \
  -e "s#/etc/batchreset/env#$root/etc/batchreset/env#g" -e "s#/var/log/batchreset/#$root/var/log/batchreset/#g"; }
line=$(printf '%s' "$line" | relocate)
case "$line" in *"$bin"*) ;; *) fail "the cron line does not run /usr/local/bin/batchreset: $line" ;; esac

# A host zone other than UTC where it is now 02:xx (03:xx when UTC itself is at 02:xx), inside
# the line's hours (1-4). Etc/GMT-N is UTC+N; the offset stays in the -12..+14 the zone
# database has.
utc_hour=$((10#$(date -u +%H)))
want=2
[ "$utc_hour" = 2 ] && want=3
off=$(((want - utc_hour + 24) % 24))
[ "$off" -gt 14 ] && off=$((off - 24))
[ "$off" = 0 ] && fail "internal: no offset from UTC was chosen"
if [ "$off" -gt 0 ]; then tz="Etc/GMT-$off"; else tz="Etc/GMT+$((-off))"; fi
local_hour=$((10#$(TZ=$tz date +%H)))
[ "$local_hour" -ge "${hours%-*}" ] && [ "$local_hour" -le "${hours#*-}" ] ||
  fail "TZ=$tz: it is ${local_hour}h, outside the line's hours $hours"
echo "cron-recipe: TZ=$tz (UTC$(TZ=$tz date +%:z)): local $(TZ=$tz date '+%F %H:%M'), UTC $(date -u '+%F %H:%M')"

# The emulator the env file names.
env -i PATH=/usr/bin:/bin "$bin" emulator --jobs jobs.example.csv --listen 127.0.0.1:0 --failure-rate 0 \
  --reset-min 100ms --reset-max 500ms >"$tmp/emulator.out" 2>"$tmp/emulator.err" &
emu_pid=$!
for _ in $(seq 1 100); do grep -q '^emulator listening on ' "$tmp/emulator.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^emulator listening on //p' "$tmp/emulator.out")
[ -n "$endpoint" ] || fail "the emulator did not start: $(cat "$tmp/emulator.err")"
read -r _ id key < <(sed -n 's/^export TENCENTCLOUD_SECRET_ID=\([^ ]*\) TENCENTCLOUD_SECRET_KEY=\(.*\)$/x \1 \2/p' "$tmp/emulator.out")
[ -n "$key" ] || fail "the emulator printed no credential"

# fresh_run N: tonight's run in a fresh schema, imported as the README says (in the host's
# zone), and the env file naming it.
fresh_run() {
  local s="${schema}_$1" db
  psql "$TEST_DATABASE_URL" -qc "CREATE SCHEMA $s" >/dev/null
  case "$TEST_DATABASE_URL" in *\?*) db="$TEST_DATABASE_URL&search_path=$s" ;; *) db="$TEST_DATABASE_URL?search_path=$s" ;; esac
  env -i PATH=/usr/bin:/bin TZ="$tz" DATABASE_URL="$db" "$bin" -q migrate >/dev/null
  env -i PATH=/usr/bin:/bin TZ="$tz" DATABASE_URL="$db" "$bin" -q import --jobs jobs.example.csv --run "nightly-$(TZ=$tz date +%F)" >/dev/null
  cat >"$root/etc/batchreset/env" <<EOF
DATABASE_URL='$db'
TENCENTCLOUD_SECRET_ID=$id
TENCENTCLOUD_SECRET_KEY=$key
BATCHRESET_ENDPOINT=$endpoint
EOF
  chmod 0600 "$root/etc/batchreset/env"
}

log="$root/var/log/batchreset/batchreset.log"
tick() { # what cron does: sh -c LINE, the environment cron gives and nothing else
  env -i SHELL=/bin/sh PATH=/usr/bin:/bin HOME="$tmp" LOGNAME=batchreset TZ="$tz" /bin/sh -c "$1"
}
check_tick() { # name command
  local code=0
  : >"$log"
  tick "$2" || code=$?
  [ "$code" = 0 ] || fail "$1: exit $code, want 0; its log:
$(tail -n 20 "$log")"
  grep -q '"instances":24' "$log" && grep -q '"succeeded":24' "$log" ||
    fail "$1: exit 0, but its log shows no run of 24 instances, all succeeded:
$(tail -n 20 "$log")"
  if grep -qF "$key" "$log"; then fail "$1: the log holds the secret key"; fi
  echo "cron-recipe: $1: exit 0, 24 of 24 succeeded"
}
fresh_run cron
check_tick "the cron line (first tick)" "$line"
check_tick "the cron line (a later tick: nothing due)" "$line"

# systemd: verify the units; any message fails (unknown keys are warnings only).
sd="$tmp/systemd"
mkdir -p "$sd"
cp contrib/systemd/batchreset.service contrib/systemd/batchreset.timer "$sd/"
verify() { (cd "$1" && systemd-analyze verify --man=no ./batchreset.service ./batchreset.timer 2>&1); }
out=$(verify "$sd") || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
mkdir -p "$tmp/broken"
cp "$sd"/* "$tmp/broken/"
sed -i 's/^ProtectHome=/ProtectHom=/' "$tmp/broken/batchreset.service"
[ -n "$(verify "$tmp/broken" || true)" ] || fail "systemd-analyze verify says nothing of a misspelt key: the check above cannot fail"
echo "cron-recipe: systemd-analyze verify --man=no batchreset.service batchreset.timer: no message"

calendar=$(sed -n 's/^OnCalendar=//p' contrib/systemd/batchreset.timer)
elapses=$(TZ=$tz systemd-analyze calendar --iterations=48 "$calendar" | sed -n 's/^ *\(Next elapse\|Iter\. #[0-9]*\): [A-Za-z]* [0-9-]* \([0-9][0-9]\):.*/\2/p' | sort -u | tr '\n' ' ')
[ "$elapses" = "01 02 03 04 " ] || fail "OnCalendar=$calendar elapses at the hours $elapses, want 01 02 03 04 (the cron line's $hours)"
echo "cron-recipe: OnCalendar=$calendar elapses at the hours $elapses(TZ=$tz)"

# The service's command, as systemd runs it: $$ and %% unescaped, the env file read, systemd's PATH.
exec_start=$(sed -n 's/^ExecStart=//p' contrib/systemd/batchreset.service)
case "${exec_start//%%/}" in *%*) fail "ExecStart has a systemd specifier (%x), which this check does not expand: $exec_start" ;; esac
exec_start=${exec_start//\$\$/\$}
exec_start=${exec_start//%%/%}
exec_start=$(printf '%s' "$exec_start" | relocate)
env_file=$(sed -n 's/^EnvironmentFile=//p' contrib/systemd/batchreset.service | relocate)
fresh_run systemd
check_tick "batchreset.service's ExecStart" \
  "set -a && . $env_file && set +a && PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin && $exec_start >>$log 2>&1"
