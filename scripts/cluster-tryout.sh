#!/usr/bin/env bash
# Cluster mode on one machine, for a try-out: a throwaway PostgreSQL and Redis on 127.0.0.1 and
# three nodes: --role all on port 8765, --role edge on 8766, --role engine on 8767 (it serves
# no consoles; it takes the engine over if the first node dies). Ctrl-C stops everything and
# removes the folder. Needs Debian's postgresql and redis-server packages and Ginie installed
# (PYTHON names the interpreter, .venv/bin/python by default).
#
#   scripts/cluster-tryout.sh
#   ginie-tui --server http://127.0.0.1:8766 --token TOKEN     # a console on the edge
#   kill -9 <pid of the node on 8765>                          # the engine moves to 8767
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
PG_PORT=${PG_PORT:-54329}
REDIS_PORT=${REDIS_PORT:-63799}

bindir=$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
root=$(mktemp -d /tmp/ginie-cluster-XXXXXX)
chmod 755 "$root"
as_postgres=()
if [ "$(id -u)" -eq 0 ]; then
  # initdb and pg_ctl refuse to run as root: the cluster belongs to the postgres user.
  mkdir "$root/pg" && chown postgres "$root/pg"
  as_postgres=(runuser -u postgres --)
else
  mkdir "$root/pg"
fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "${as_postgres[@]}" "$bindir/pg_ctl" -D "$root/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

"${as_postgres[@]}" "$bindir/initdb" -D "$root/pg/data" -A trust -U ginie -E UTF8 >/dev/null
"${as_postgres[@]}" "$bindir/pg_ctl" -D "$root/pg/data" -w -l "$root/pg/log" \
  -o "-p $PG_PORT -k $root/pg -c listen_addresses=127.0.0.1" start >/dev/null
"$PYTHON" -c 'import sys, psycopg
psycopg.connect(sys.argv[1], autocommit=True).execute("CREATE DATABASE ginie")' \
  "postgresql://ginie@127.0.0.1:$PG_PORT/postgres"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$root" >"$root/redis.log" &
pids+=($!)

db="postgresql://ginie@127.0.0.1:$PG_PORT/ginie"
broker="redis://127.0.0.1:$REDIS_PORT/0"
port=8765
for role in all edge engine; do
  "$PYTHON" -m ginie_server --port "$port" --db "$db" --broker "$broker" --role "$role" \
    >"$root/$role.out" 2>"$root/$role.log" &
  pids+=($!)
  # One at a time: the first node to start on the empty database makes the demo user.
  for _ in $(seq 300); do
    grep -q '^listening on' "$root/$role.out" && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$root/$role.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "node --role $role: pid ${pids[-1]}, http://127.0.0.1:$port (log $root/$role.log)"
  grep '^demo token' "$root/$role.out" || true
  port=$((port + 1))
done
echo "PostgreSQL $db, Redis $broker; Ctrl-C stops everything"
wait
