#!/usr/bin/env bash
# Runs a command with TEST_DATABASE_URL pointing at a PostgreSQL server that
# answers: the one TEST_DATABASE_URL names, else the local one on
# 127.0.0.1:5432 (started with pg_ctlcluster when installed and down), else a
# throwaway cluster in a temporary directory, removed afterwards.
set -euo pipefail

url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
answers() { pg_isready -q -d "$1" -t 3 2>/dev/null && psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

if ! command -v pg_isready >/dev/null; then
  echo "withdb: PostgreSQL client tools not found; install them (apt-get install postgresql) or set TEST_DATABASE_URL" >&2
  exit 1
fi

if ! answers "$url" && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  for v in /etc/postgresql/*; do
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start >/dev/null 2>&1 || true
  done
  for _ in $(seq 1 20); do answers "$url" && break; sleep 0.5; done
fi

tmp=""
if ! answers "$url"; then
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$initdb" ]; then
    echo "withdb: no PostgreSQL answers at $url and no server binaries are installed." >&2
    echo "  Start one (pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start)," >&2
    echo "  install it (apt-get install postgresql), or set TEST_DATABASE_URL." >&2
    exit 1
  fi
  bin=$(dirname "$initdb")
  tmp=$(mktemp -d)
  port=55432
  as=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$tmp"; as=(runuser -u postgres --); fi
  "${as[@]}" "$bin/initdb" -D "$tmp/data" -A trust -U postgres >/dev/null
  "${as[@]}" "$bin/pg_ctl" -D "$tmp/data" -o "-p $port -k $tmp -c listen_addresses=127.0.0.1" -l "$tmp/log" -w start >/dev/null
  trap '"${as[@]}" "$bin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
  psql "postgres://postgres@127.0.0.1:$port/postgres" -qc 'CREATE DATABASE test' >/dev/null
  url="postgres://postgres@127.0.0.1:$port/test?sslmode=disable"
  echo "withdb: started a throwaway PostgreSQL cluster at 127.0.0.1:$port" >&2
fi

export TEST_DATABASE_URL=$url
"$@"
