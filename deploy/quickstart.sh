#!/bin/sh
# Spillway on one machine, for trying it out: installs the Debian packages,
# builds, starts a throwaway Redis and PostgreSQL whose data lives in
# .local/ of this checkout (loopback only), applies the migrations, creates
# an example table, starts spillway-server and spillway-flusher, and prints
# the curl commands to try. `deploy/quickstart.sh stop` stops it all.
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)
STATE="$TOP/.local"
REDIS_PORT=16379
PG_PORT=15432
HTTP_PORT=${SPILLWAY_QUICKSTART_PORT:-8080}
PGBIN=/usr/lib/postgresql/15/bin

# SIGTERM a process from its pid file and wait for it to exit.
stop_pid() {
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$1"
}

stop_all() {
    stop_pid "$STATE/server.pid"
    stop_pid "$STATE/flusher.pid"
    stop_pid "$STATE/redis.pid"
    if [ -f "$STATE/pg/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$STATE/pg" -m fast stop >/dev/null || true
    fi
}

# PostgreSQL refuses to run as root: run it as the postgres user then.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = "stop" ]; then
    stop_all
    echo "stopped (data kept in $STATE; remove it to start afresh)"
    exit 0
fi

./deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
stop_all
mkdir -p "$STATE/redis" "$STATE/pg" "$STATE/run"

# Redis: AOF with fsync every second, and never evict queued jobs.
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STATE/redis" \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
    --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"

# PostgreSQL: a private cluster, trust auth on loopback only.
if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$STATE/pg" "$STATE/run"
    if ! runuser -u postgres -- test -w "$STATE/pg"; then
        echo "quickstart: the postgres user cannot reach $STATE (a parent folder is private);" >&2
        echo "  clone Spillway under a folder others can enter, e.g. /opt or /srv" >&2
        exit 1
    fi
fi
[ -f "$STATE/pg/PG_VERSION" ] || as_pg "$PGBIN/initdb" -D "$STATE/pg" -U postgres --auth=trust >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$STATE/pg" -l "$STATE/run/postgresql.log" -w \
    -o "-p $PG_PORT -k $STATE/run -c listen_addresses=127.0.0.1" start >/dev/null
psql_pg() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
psql_pg -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'spillway'" | grep -q 1 ||
    psql_pg -d postgres -c "CREATE DATABASE spillway"
psql_pg -d spillway -c "CREATE TABLE IF NOT EXISTS public.orders (
    id bigint PRIMARY KEY, customer text NOT NULL, total numeric(12,2), tags jsonb,
    placed_at timestamptz, inserted_at timestamptz NOT NULL DEFAULT now())"

# Made once: a later run keeps your edits (delete it to start again from
# this example).
if [ -f "$STATE/spillway.ini" ]; then
    echo "quickstart: keeping $STATE/spillway.ini as it is (delete it for a fresh one)"
else
cat > "$STATE/spillway.ini" <<INI
[server]
listen = 127.0.0.1:$HTTP_PORT
[redis]
port = $REDIS_PORT
[postgres]
conninfo = host=127.0.0.1 port=$PG_PORT user=postgres dbname=spillway
[flusher]
id = quickstart-1
[sink.orders]
table = public.orders
mode = upsert
key = id
columns = id bigint not null, customer text not null, total numeric, tags jsonb, placed_at timestamptz
INI
fi

B="$TOP/build/bin"
"$B/spillwayctl" --config "$STATE/spillway.ini" migrate
"$B/spillwayctl" --config "$STATE/spillway.ini" check-config
nohup "$B/spillway-server" --config "$STATE/spillway.ini" >>"$STATE/server.log" 2>&1 &
echo $! > "$STATE/server.pid"
nohup "$B/spillway-flusher" --config "$STATE/spillway.ini" >>"$STATE/flusher.log" 2>&1 &
echo $! > "$STATE/flusher.pid"
for i in $(seq 50); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || {
    echo "quickstart: the server did not become ready; see $STATE/server.log" >&2; exit 1; }

U="http://127.0.0.1:$HTTP_PORT"
cat <<MSG

Spillway is running: server $U, flusher quickstart-1, Redis 127.0.0.1:$REDIS_PORT,
PostgreSQL 127.0.0.1:$PG_PORT (database spillway). Logs and data: $STATE/

Post a write (202 and a job id):
  curl -i -X POST $U/v1/sinks/orders/records -H 'Content-Type: application/json' \\
       -d '[{"id": 1, "customer": "ann", "total": "12.50", "tags": {"vip": true}}]'
Poll its job (use the job_id from the answer):
  curl $U/v1/jobs/JOB_ID
The operator's dashboard (queue, rates, flushers, failed jobs):
  $U/ui
Queue depth, metrics, the rows:
  curl $U/v1/queue
  curl $U/metrics
  build/bin/spillwayctl --config $STATE/spillway.ini queue
  psql -h 127.0.0.1 -p $PG_PORT -U postgres spillway -c 'SELECT * FROM orders'
Stop everything:
  deploy/quickstart.sh stop
MSG
