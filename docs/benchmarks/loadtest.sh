#!/usr/bin/env bash
# Load benchmark of client_credentials issuance over HTTP keep-alive with wrk, against real `authplane serve`
# processes on this machine. Usage (from the repository root):
#   docs/benchmarks/loadtest.sh monolith        # every service in one process, SQLite
#   docs/benchmarks/loadtest.sh split           # gateway, token service and the rest in three processes, PostgreSQL
# Env: DURATION (default 30s), CONNECTIONS (64), THREADS (2), WRK_NICE (10: wrk runs at a lower CPU priority so that,
#      sharing the server's two cores, it cannot preempt a request half-served; 0 to compete as an equal), PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable),
#      PROFILE=1 to take a 10 s CPU profile of the process that serves the token endpoint's signing (top entries printed).
# Needs: go, wrk, curl, jq, psql (split only).
set -euo pipefail
MODE=${1:-monolith}
DURATION=${DURATION:-30s}; CONNECTIONS=${CONNECTIONS:-64}; THREADS=${THREADS:-2}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
WORK=$(mktemp -d /tmp/authplane-load.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

go build -o "$WORK/authplane" ./cmd/authplane
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
HTTP=$(port); BASE="http://127.0.0.1:$HTTP"
export AUTHPLANE_ISSUER_URL=$BASE AUTHPLANE_ROOT_CLIENT_ID=root-operator AUTHPLANE_ROOT_CLIENT_SECRET=load-test-root-secret
export AUTHPLANE_MASTER_KEY=$(head -c 32 /dev/urandom | base64) AUTHPLANE_LOG_LEVEL=warn

start() { # start NAME SERVICES HTTP_PORT GRPC_PORT [PPROF_PORT]
  local name=$1 services=$2 hp=$3 gp=$4 pp=${5:-}
  AUTHPLANE_SERVICES=$services AUTHPLANE_HTTP_ADDR=127.0.0.1:$hp AUTHPLANE_GRPC_ADDR=127.0.0.1:$gp \
    AUTHPLANE_PPROF_ADDR=${pp:+127.0.0.1:$pp} "$WORK/authplane" serve >"$WORK/$name.log" 2>&1 &
  PIDS+=($!); echo "$!" >"$WORK/$name.pid"
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$hp/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "$name did not start"; cat "$WORK/$name.log"; exit 1
}

PPROF=$(port)
case $MODE in
  monolith)
    export AUTHPLANE_DATABASE_URL="sqlite:$WORK/authplane.db"
    start monolith all "$HTTP" "$(port)" "$PPROF"
    SIGNER=monolith; WATCH=(monolith) ;;
  split)
    DB="authplane_load_$$"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $DB" >/dev/null
    trap 'cleanup; psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT
    export AUTHPLANE_DATABASE_URL="${PG_ADMIN_URL%/*}/$DB?sslmode=disable"
    CORE=$(port); TOKEN=$(port)
    export AUTHPLANE_TENANT_ADDR=127.0.0.1:$CORE AUTHPLANE_WORKSPACE_ADDR=127.0.0.1:$CORE AUTHPLANE_POOL_ADDR=127.0.0.1:$CORE \
      AUTHPLANE_SCHEMA_ADDR=127.0.0.1:$CORE AUTHPLANE_CLIENT_ADDR=127.0.0.1:$CORE AUTHPLANE_TOKEN_ADDR=127.0.0.1:$TOKEN
    start core tenant,workspace,pool,schema,client "$(port)" "$CORE"
    start token token "$(port)" "$TOKEN" "$PPROF"
    start gateway gateway "$HTTP" "$(port)"
    SIGNER=token; WATCH=(gateway token) ;;
  *) echo "usage: $0 monolith|split"; exit 2 ;;
esac

# A tenant, a workspace with a scope, and a service client.
ROOT=$(curl -fs -u root-operator:load-test-root-secret -d grant_type=client_credentials "$BASE/root/admin/oauth2/token" | jq -r .access_token)
curl -fs -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d '{"id":"acme","name":"Acme"}' "$BASE/api/admin/tenants" >"$WORK/tenant.json"
ADMIN=$(curl -fs -u "$(jq -r .admin_client.client_id "$WORK/tenant.json"):$(jq -r .admin_client.client_secret "$WORK/tenant.json")" \
  -d grant_type=client_credentials "$BASE/acme/admin/oauth2/token" | jq -r .access_token)
api() { curl -fs -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$2" "$BASE/api/admin/acme/$1"; }
api servers '{"id":"shop","grant_types":["client_credentials"]}' >/dev/null
api scopes '{"authorization_server_id":"shop","name":"orders.read"}' >/dev/null
api clients '{"authorization_server_id":"shop","client_name":"load","scopes":["orders.read"]}' >"$WORK/client.json"
CID=$(jq -r .client_id "$WORK/client.json"); CSECRET=$(jq -r .client_secret "$WORK/client.json")
cat >"$WORK/cc.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=orders.read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf '%s:%s' "$CID" "$CSECRET" | base64 -w0)"
LUA
URL="$BASE/acme/shop/oauth2/token"
curl -fs -u "$CID:$CSECRET" -d grant_type=client_credentials "$URL" | jq -e '.access_token|length>0' >/dev/null

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s "$WORK/cc.lua" "$URL" >/dev/null   # warm-up
declare -A before
for n in "${WATCH[@]}"; do before[$n]=$(cpu_ticks "$(cat "$WORK/$n.pid")"); done
START=$(date +%s.%N)
PROFILER=
if [ "${PROFILE:-}" = 1 ]; then
  (sleep 5; curl -fs "http://127.0.0.1:$PPROF/debug/pprof/profile?seconds=10" -o "$WORK/cpu.pprof") &
  PROFILER=$!
fi
nice -n "${WRK_NICE:-10}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/cc.lua" "$URL" | tee "$WORK/wrk.txt"
END=$(date +%s.%N)
[ -z "$PROFILER" ] || wait "$PROFILER"
echo
echo "mode=$MODE connections=$CONNECTIONS threads=$THREADS duration=$DURATION wrk_nice=${WRK_NICE:-10}"
HZ=$(getconf CLK_TCK)
for n in "${WATCH[@]}"; do
  pid=$(cat "$WORK/$n.pid")
  cpu=$(echo "($(cpu_ticks "$pid") - ${before[$n]}) / $HZ / ($END - $START) * 100" | bc -l)
  printf '%-8s CPU %5.0f%%  peak RSS %s\n' "$n" "$cpu" "$(grep VmHWM "/proc/$pid/status" | awk '{print $2/1024 " MB"}')"
done
if [ "${PROFILE:-}" = 1 ] && [ -s "$WORK/cpu.pprof" ]; then
  echo; echo "CPU profile of the $SIGNER process (top 25):"
  go tool pprof -top -nodecount=25 "$WORK/authplane" "$WORK/cpu.pprof" 2>/dev/null | tail -26
fi
