#!/usr/bin/env bash
# Scale figures of the README's Benchmarks section, measured from outside
# with /usr/bin/time against a separate `batchreset emulator --unlimited`:
#
#   scripts/bench-scale.sh csv N            CSV run of N jobs, then a cron no-op
#   scripts/bench-scale.sh pg-noop N        finished Postgres run of N jobs: cron no-op, report, psql COPY
#   scripts/bench-scale.sh pg-runners N K   Postgres, N jobs: 1 runner, then K runners at once
#
# PostgreSQL at $BENCH_DATABASE_HOST (default postgres://postgres@127.0.0.1:5432),
# where it creates (and drops first) the database bench_scale. Work files go to
# $BENCH_DIR (default a new temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/batchreset ./cmd/batchreset
BR=$PWD/bin/batchreset
HOST=${BENCH_DATABASE_HOST:-postgres://postgres@127.0.0.1:5432}
DB=$HOST/bench_scale
DIR=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$DIR"
PORT=18190
export TENCENTCLOUD_SECRET_ID=AKIDbenchscale TENCENTCLOUD_SECRET_KEY=bench-scale-secret
FAST=(--yes --rate 100000 --describe-rate 100000 --workers 64 --poll-interval 1s -q)
TIME=(/usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KB peak RSS')

emulator() { # emulator N: start one with a fleet of N, writing $DIR/jobs.csv
	"$BR" emulator --instances "$1" --unlimited --reset-min 10ms --reset-max 50ms --failure-rate 0 \
		--write-jobs "$DIR/jobs.csv" --listen 127.0.0.1:$PORT >"$DIR/emulator.log" 2>&1 &
	EMU=$!
	trap 'kill $EMU 2>/dev/null' EXIT
	for _ in $(seq 1 600); do grep -q listening "$DIR/emulator.log" 2>/dev/null && return; sleep 1; done
	echo "emulator did not start" >&2; exit 1
}

database() {
	psql -q "$HOST/postgres" -c 'DROP DATABASE IF EXISTS bench_scale' -c 'CREATE DATABASE bench_scale'
	"$BR" migrate --database-url "$DB" >/dev/null
}

rate() { # rate N SECONDS
	echo "scale=0; $1 / $2" | bc
}

case ${1:-} in
csv)
	N=${2:?N}; emulator "$N"; cd "$DIR"
	s=$(date +%s.%N)
	"${TIME[@]}" "$BR" run --jobs jobs.csv --endpoint http://127.0.0.1:$PORT "${FAST[@]}" >run.out 2>run.err
	e=$(date +%s.%N)
	echo "csv run of $N jobs: $(rate "$N" "$(echo "$e - $s" | bc)") jobs/s; $(tail -1 run.err)"
	echo "journal: $(( $(stat -c %s results.csv.state) / N )) B/job"
	"${TIME[@]}" "$BR" run --jobs jobs.csv --endpoint http://127.0.0.1:$PORT --yes -q >noop.out 2>noop.err
	echo "cron no-op: $(tail -1 noop.err)"
	;;
pg-noop)
	N=${2:?N}; emulator "$N"; database; cd "$DIR"
	"$BR" import --database-url "$DB" --jobs jobs.csv --run big >/dev/null
	psql -q "$DB" -c "UPDATE jobs SET status = 'succeeded', attempts = 1, request_id = gen_random_uuid()::text,
		intent_at = now() - interval '1 hour' - (id % 300) * interval '1 second',
		submitted_at = now() - interval '1 hour' - (id % 300) * interval '1 second',
		finished_at = now() - interval '1 hour' WHERE run = 'big'" -c 'VACUUM ANALYZE jobs'
	for _ in 1 2 3; do
		"${TIME[@]}" "$BR" run --database-url "$DB" --run big --endpoint http://127.0.0.1:$PORT --yes -q >noop.out 2>noop.err
		echo "cron no-op: $(tail -1 noop.err)"
	done
	"${TIME[@]}" "$BR" report --database-url "$DB" --run big --format json --out report.json 2>report.err
	echo "report --format json: $(tail -1 report.err)"
	"${TIME[@]}" "$BR" report --database-url "$DB" --run big --format csv --out report.csv 2>report.err
	echo "report --format csv: $(tail -1 report.err)"
	"${TIME[@]}" psql -q "$DB" -c "\\copy (SELECT * FROM jobs WHERE run = 'big' ORDER BY id) TO 'copy.csv' CSV HEADER" 2>copy.err
	echo "psql \\copy: $(tail -1 copy.err)"
	;;
pg-runners)
	N=${2:?N}; K=${3:?K}; emulator "$N"; database; cd "$DIR"
	"$BR" import --database-url "$DB" --jobs jobs.csv --run one >/dev/null
	"$BR" import --database-url "$DB" --jobs jobs.csv --run many >/dev/null
	psql -q "$DB" -c 'VACUUM ANALYZE jobs'
	s=$(date +%s.%N)
	"${TIME[@]}" "$BR" run --database-url "$DB" --run one --endpoint http://127.0.0.1:$PORT "${FAST[@]}" >one.out 2>one.err
	e=$(date +%s.%N)
	echo "1 runner: $(rate "$N" "$(echo "$e - $s" | bc)") jobs/s; $(tail -1 one.err)"
	s=$(date +%s.%N)
	pids=()
	for k in $(seq 1 "$K"); do
		"${TIME[@]}" "$BR" run --database-url "$DB" --run many --endpoint http://127.0.0.1:$PORT "${FAST[@]}" >"many$k.out" 2>"many$k.err" &
		pids+=($!)
	done
	wait "${pids[@]}"
	e=$(date +%s.%N)
	echo "$K runners: $(rate "$N" "$(echo "$e - $s" | bc)") jobs/s"
	for k in $(seq 1 "$K"); do echo "  runner $k: $(tail -1 "many$k.err")"; done
	psql -qt "$DB" -c "SELECT run, status, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2"
	;;
*)
	sed -n '2,12p' "$0"; exit 2
	;;
esac
