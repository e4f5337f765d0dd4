#!/usr/bin/env bash
# Many tenants on one `authplane serve`: creation rate (first and last thousand), restart time, memory per tenant,
# and client_credentials tokens/s spread over every tenant against one tenant, warm and from a cold start, in one
# sitting with one load generator (docs/benchmarks/oauthload). Usage (from the repository root):
#   docs/benchmarks/tenants.sh                   # 10,000 tenants, SQLite
#   TENANTS=2000 DB=postgres docs/benchmarks/tenants.sh
# Env: TENANTS (10000), DURATION (30s), CONNECTIONS (64), LOAD_NICE (10), CREATORS (8 concurrent creations),
#      PROFILE=1 (a CPU profile of the first 10 s of the cold run),
#      PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
# Needs: go, curl, jq, python3, psql (postgres only).
set -euo pipefail
DB=${DB:-sqlite}; TENANTS=${TENANTS:-10000}; DURATION=${DURATION:-30s}; CONNECTIONS=${CONNECTIONS:-64}
CREATORS=${CREATORS:-8}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
WORK=$(mktemp -d /tmp/authplane-tenants.XXXXXX)
PID=; DBNAME=
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  [ -z "$DBNAME" ] || psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null
}
trap cleanup EXIT

go build -o "$WORK/authplane" ./cmd/authplane
go build -o "$WORK/oauthload" ./docs/benchmarks/oauthload
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
HTTP=$(port); GRPC=$(port); PPROF=$(port); BASE="http://127.0.0.1:$HTTP"
if [ "$DB" = postgres ]; then
  DBNAME="authplane_tenants_$$"
  psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $DBNAME" >/dev/null
  DATABASE_URL="${PG_ADMIN_URL%/*}/$DBNAME?sslmode=disable"
else
  DATABASE_URL="sqlite:$WORK/authplane.db"
fi
MASTER=$(head -c 32 /dev/urandom | base64)
start() {
  AUTHPLANE_DATABASE_URL=$DATABASE_URL AUTHPLANE_HTTP_ADDR=127.0.0.1:$HTTP AUTHPLANE_GRPC_ADDR=127.0.0.1:$GRPC \
    AUTHPLANE_ISSUER_URL=$BASE AUTHPLANE_ROOT_CLIENT_ID=root-operator AUTHPLANE_ROOT_CLIENT_SECRET=bench-root-secret \
    AUTHPLANE_MASTER_KEY=$MASTER AUTHPLANE_LOG_LEVEL=warn AUTHPLANE_PPROF_ADDR=127.0.0.1:$PPROF "$WORK/authplane" serve >>"$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server did not start"; tail "$WORK/server.log"; exit 1
}
rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$PID/status"; }
start
ROOT=$(curl -fs -u root-operator:bench-root-secret -d grant_type=client_credentials "$BASE/root/admin/oauth2/token" | jq -r .access_token)
RSS0=$(rss)

# Tenants, CREATORS at a time; each line of clients.txt is a tenant's admin client at its admin workspace.
: >"$WORK/clients.txt"
create_range() { # create_range FROM TO
  for i in $(seq "$1" "$2"); do
    curl -fs -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d "{\"id\":\"t$i\"}" "$BASE/api/admin/tenants" |
      jq -r --arg u "$BASE/t$i/admin/oauth2/token" '"\($u) \(.admin_client.client_id) \(.admin_client.client_secret)"'
  done
}
timed_create() { # timed_create FROM TO -> tenants/s
  local from=$1 to=$2 s0 s1 per=$(( ($2 - $1 + 1 + CREATORS - 1) / CREATORS ))
  s0=$(date +%s.%N)
  for c in $(seq 0 $((CREATORS - 1))); do
    local a=$((from + c * per)) b=$((from + (c + 1) * per - 1))
    [ "$b" -gt "$to" ] && b=$to
    [ "$a" -le "$b" ] && create_range "$a" "$b" >>"$WORK/clients.$c.txt" &
  done
  wait
  s1=$(date +%s.%N)
  echo "$(echo "($to - $from + 1) / ($s1 - $s0)" | bc -l | xargs printf '%.0f')"
}
if [ "$TENANTS" -lt 2000 ]; then echo "TENANTS must be at least 2000 (the first and the last thousand are timed)"; exit 2; fi
FIRST=$(timed_create 1 1000)
[ "$TENANTS" -gt 2000 ] && timed_create 1001 $((TENANTS - 1000)) >/dev/null
LAST=$(timed_create $((TENANTS - 999)) "$TENANTS")
cat "$WORK"/clients.*.txt >"$WORK/clients.txt"
echo "DB=$DB tenants=$(wc -l <"$WORK/clients.txt") creation: first 1000 $FIRST/s, last 1000 $LAST/s"
RSS1=$(rss)
echo "RSS after creating: $RSS1 MB (from $RSS0 MB: $(( (RSS1 - RSS0) * 1024 / TENANTS )) KB per tenant, caches cold)"
head -1 "$WORK/clients.txt" >"$WORK/one.txt"

load() { # load NAME CLIENTS_FILE [WARMUP]
  nice -n "${LOAD_NICE:-10}" "$WORK/oauthload" -mode cc -clients "$2" -c "$CONNECTIONS" -d "$DURATION" -warmup "${3:-5s}" | sed "s/^/  $1: /"
}
echo "== warm (every tenant's first token already issued by the warm-up)"
load "one tenant" "$WORK/one.txt"
if [ "${PROFILE:-}" = 1 ]; then
  (sleep 65; curl -fs "http://127.0.0.1:$PPROF/debug/pprof/profile?seconds=10" -o "$WORK/warm.pprof") &
  PROFILER=$!
fi
load "all tenants" "$WORK/clients.txt" 60s
if [ "${PROFILE:-}" = 1 ]; then
  wait "$PROFILER"
  echo "  CPU profile of the warm run over all tenants (top 30 by own time):"
  go tool pprof -top -nodecount=30 "$WORK/authplane" "$WORK/warm.pprof" 2>/dev/null | tail -31
fi
echo "  RSS warm: $(rss) MB ($(( ($(rss) - RSS0) * 1024 / TENANTS )) KB per tenant)"

echo "== cold: restart, then load at once"
kill "$PID"; wait "$PID" 2>/dev/null || true
S0=$(date +%s.%N); start; S1=$(date +%s.%N)
echo "  restart to ready: $(echo "$S1 - $S0" | bc -l | xargs printf '%.2f') s"
PROFILER=
if [ "${PROFILE:-}" = 1 ]; then
  curl -fs "http://127.0.0.1:$PPROF/debug/pprof/profile?seconds=10" -o "$WORK/cold.pprof" &
  PROFILER=$!
fi
load "all tenants, cold" "$WORK/clients.txt" 0s
if [ -n "$PROFILER" ]; then
  wait "$PROFILER"
  echo "  CPU profile of the first 10 s of the cold run (top 30 by cumulative time):"
  go tool pprof -top -cum -nodecount=30 "$WORK/authplane" "$WORK/cold.pprof" 2>/dev/null | tail -31
fi
load "one tenant" "$WORK/one.txt"
