#!/usr/bin/env bash
# Identity-plane benchmarks against a real `authplane serve` on this machine. Usage (from the repository root):
#   docs/benchmarks/identity.sh verify   # password verifications/s through the API vs the raw argon2id bound
#   docs/benchmarks/identity.sh flood    # 500 concurrent verifications: outcomes and peak RSS vs the hashing budget
#   docs/benchmarks/identity.sh list     # paging through a pool of 100,000 users: per-page latency, first vs last
# Env: DB=sqlite|postgres (default sqlite), DURATION (30s), CONNECTIONS (verify: 16), USERS (list: 100000),
#      PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
# Needs: go, wrk, curl, jq, python3, psql (postgres only).
set -euo pipefail
MODE=${1:-verify}
DB=${DB:-sqlite}; DURATION=${DURATION:-30s}; USERS=${USERS:-100000}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
WORK=$(mktemp -d /tmp/authplane-identity-bench.XXXXXX)
PID=
DBNAME=
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  [ -z "$DBNAME" ] || psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null
}
trap cleanup EXIT

go build -o "$WORK/authplane" ./cmd/authplane
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
HTTP=$(port); BASE="http://127.0.0.1:$HTTP"; PPROF=$(port)
if [ "$DB" = postgres ]; then
  DBNAME="authplane_idbench_$$"
  psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $DBNAME" >/dev/null
  DATABASE_URL="${PG_ADMIN_URL%/*}/$DBNAME?sslmode=disable"
else
  DATABASE_URL="sqlite:$WORK/authplane.db"
fi
AUTHPLANE_DATABASE_URL=$DATABASE_URL AUTHPLANE_HTTP_ADDR=127.0.0.1:$HTTP AUTHPLANE_GRPC_ADDR=127.0.0.1:$(port) \
  AUTHPLANE_ISSUER_URL=$BASE AUTHPLANE_ROOT_CLIENT_ID=root-operator AUTHPLANE_ROOT_CLIENT_SECRET=bench-root-secret \
  AUTHPLANE_MASTER_KEY=$(head -c 32 /dev/urandom | base64) AUTHPLANE_LOG_LEVEL=warn AUTHPLANE_PPROF_ADDR=127.0.0.1:$PPROF \
  "$WORK/authplane" serve >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fs "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# A tenant, a system-workspace client with scope identity, and its token.
ROOT=$(curl -fs -u root-operator:bench-root-secret -d grant_type=client_credentials "$BASE/root/admin/oauth2/token" | jq -r .access_token)
curl -fs -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d '{"id":"acme","name":"Acme"}' "$BASE/api/admin/tenants" >"$WORK/tenant.json"
ADMIN=$(curl -fs -u "$(jq -r .admin_client.client_id "$WORK/tenant.json"):$(jq -r .admin_client.client_secret "$WORK/tenant.json")" \
  -d grant_type=client_credentials "$BASE/acme/admin/oauth2/token" | jq -r .access_token)
curl -fs -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$BASE/api/admin/acme/clients" \
  -d '{"authorization_server_id":"system","client_name":"bench","grant_types":["client_credentials"],"scopes":["identity"]}' >"$WORK/sys.json"
SYS=$(curl -fs -u "$(jq -r .client_id "$WORK/sys.json"):$(jq -r .client_secret "$WORK/sys.json")" \
  -d grant_type=client_credentials "$BASE/acme/system/oauth2/token" | jq -r .access_token)
ID="$BASE/api/identity/acme/system"
api() { curl -fsS -H "Authorization: Bearer $SYS" -H 'Content-Type: application/json' "$@"; }

# A pool with the default settings (argon2id m=19456 KiB, t=2, p=1) and VERIFY_USERS users with passwords.
VERIFY_USERS=${VERIFY_USERS:-64}; [ "$MODE" = list ] && VERIFY_USERS=0
api -d '{"id":"bench","name":"Bench"}' "$ID/pools" | jq -c .password_settings
for i in $(seq 1 "$VERIFY_USERS"); do
  api -d "{\"identifiers\":[{\"type\":\"email\",\"identifier\":\"jane$i@example.com\"}],\"credentials\":[{\"type\":\"password\",\"password\":\"correct horse battery $i\"}]}" \
    "$ID/pools/bench/users" >/dev/null
done

peak_rss() { awk '/VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/$PID/status"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$PID/stat"; }
# Each request verifies the correct password of a user picked at random.
verify_lua() {
  cat >"$WORK/verify.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $SYS"
local bodies = {}
for i = 1, $VERIFY_USERS do
  bodies[i] = '{"identifier":"jane' .. i .. '@example.com","password":"correct horse battery ' .. i .. '"}'
end
request = function() return wrk.format(nil, nil, nil, bodies[math.random(1, $VERIFY_USERS)]) end
-- Status counts per thread, summed in done().
local threads = {}
setup = function(thread) table.insert(threads, thread) end
ok, busy, crowded, other = 0, 0, 0, 0
response = function(status)
  if status == 200 then ok = ok + 1 elseif status == 503 then busy = busy + 1
  elseif status == 429 then crowded = crowded + 1 else other = other + 1 end
end
done = function()
  local o, b, c, x = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); b = b + t:get("busy"); c = c + t:get("crowded"); x = x + t:get("other")
  end
  io.write(string.format("200: %d, 503: %d, 429: %d, other: %d\n", o, b, c, x))
end
LUA
}

case $MODE in
verify)
  echo "== raw bound: argon2id of the pool's parameters on every core (go test -bench, GOMAXPROCS=$(nproc))"
  go test -run '^$' -bench 'BenchmarkArgon2idDefault$' -benchtime 200x ./pkg/password/ | tee "$WORK/raw.txt" | grep Benchmark
  NS=$(awk '/BenchmarkArgon2idDefault/ {print $3}' "$WORK/raw.txt")
  echo "raw bound: $(echo "1000000000 / $NS" | bc -l | xargs printf '%.1f') verifications/s"
  verify_lua
  CONN=${CONNECTIONS:-16}
  wrk -t2 -c"$CONN" -d5s -s "$WORK/verify.lua" "$ID/pools/bench/user/password/verify" >/dev/null  # warm-up
  T0=$(cpu_ticks); S0=$(date +%s.%N)
  PROFILER=
  if [ "${PROFILE:-}" = 1 ]; then
    (sleep 3; curl -fs "http://127.0.0.1:$PPROF/debug/pprof/profile?seconds=10" -o "$WORK/cpu.pprof") &
    PROFILER=$!
  fi
  echo "== through the API: wrk -t2 -c$CONN -d$DURATION, POST …/user/password/verify (correct password), DB=$DB"
  wrk -t2 -c"$CONN" -d"$DURATION" --latency -s "$WORK/verify.lua" "$ID/pools/bench/user/password/verify" | tee "$WORK/wrk.txt"
  S1=$(date +%s.%N); T1=$(cpu_ticks)
  printf 'server CPU %.0f%%, peak RSS %s\n' "$(echo "($T1 - $T0) / $(getconf CLK_TCK) / ($S1 - $S0) * 100" | bc -l)" "$(peak_rss)"
  if [ -n "$PROFILER" ]; then
    wait "$PROFILER"
    echo "CPU profile (top 20):"; go tool pprof -top -nodecount=20 "$WORK/authplane" "$WORK/cpu.pprof" 2>/dev/null | tail -21
  fi
  api -d '{"identifier":"jane1@example.com","password":"correct horse battery 1"}' "$ID/pools/bench/user/password/verify" | jq -c .
  echo "== raw bound again, after the run (the machine may be shared: compare the API with both)"
  go test -run '^$' -bench 'BenchmarkArgon2idDefault$' -benchtime 200x ./pkg/password/ | tee "$WORK/raw2.txt" | grep Benchmark
  NS=$(awk '/BenchmarkArgon2idDefault/ {print $3}' "$WORK/raw2.txt")
  echo "raw bound: $(echo "1000000000 / $NS" | bc -l | xargs printf '%.1f') verifications/s"
  ;;
flood)
  verify_lua
  echo "== flood: wrk -t2 -c500 -d$DURATION (budget: 256 MiB of hashing memory by default)"
  wrk -t2 -c500 -d"$DURATION" --latency --timeout 10s -s "$WORK/verify.lua" "$ID/pools/bench/user/password/verify" | tee "$WORK/wrk.txt"
  echo "server peak RSS: $(peak_rss)"
  api -d '{"identifier":"jane1@example.com","password":"correct horse battery 1"}' "$ID/pools/bench/user/password/verify" | jq -c .
  ;;
list)
  echo "== inserting $USERS users (with one email identifier each) directly into the pool's tables"
  S0=$(date +%s)
  if [ "$DB" = postgres ]; then
    psql "${PG_ADMIN_URL%/*}/$DBNAME?sslmode=disable" -q <<SQL
INSERT INTO pool_users (tenant_id, pool_id, id, status, payload, metadata, created_at, updated_at, status_updated_at)
  SELECT 'acme', 'bench', substr(md5(i::text), 1, 20), 'active', '{"given_name":"User ' || i || '"}', '{}', 0, 0, 0
  FROM generate_series(1, $USERS) i;
INSERT INTO pool_identifiers (tenant_id, pool_id, normalized, user_id, type, identifier, created_at)
  SELECT 'acme', 'bench', 'user' || i || '@example.com', substr(md5(i::text), 1, 20), 'email', 'user' || i || '@example.com', 0
  FROM generate_series(1, $USERS) i;
ANALYZE pool_users; ANALYZE pool_identifiers;
SQL
  else
    python3 - "$WORK/authplane.db" "$USERS" <<'PY'
import sqlite3, sys, hashlib
db = sqlite3.connect(sys.argv[1], timeout=30); n = int(sys.argv[2])
ids = [hashlib.md5(str(i).encode()).hexdigest()[:20] for i in range(1, n + 1)]
db.executemany("INSERT INTO pool_users (tenant_id, pool_id, id, status, payload, metadata, created_at, updated_at, status_updated_at) VALUES ('acme','bench',?,'active',?,'{}',0,0,0)",
               ((ids[i], '{"given_name":"User %d"}' % (i + 1)) for i in range(n)))
db.executemany("INSERT INTO pool_identifiers (tenant_id, pool_id, normalized, user_id, type, identifier, created_at) VALUES ('acme','bench',?,?,'email',?,0)",
               (('user%d@example.com' % (i + 1), ids[i], 'user%d@example.com' % (i + 1)) for i in range(n)))
db.commit(); db.execute("ANALYZE"); db.commit()
PY
  fi
  echo "inserted in $(( $(date +%s) - S0 ))s"
  echo "== paging through every user with page_size=${PAGE_SIZE:-100} (one keep-alive connection), DB=$DB"
  python3 - "$BASE" "$SYS" "${PAGE_SIZE:-100}" <<'PY'
import http.client, json, sys, time, urllib.parse
base, tok, size = sys.argv[1], sys.argv[2], sys.argv[3]
u = urllib.parse.urlparse(base)
c = http.client.HTTPConnection(u.hostname, u.port)
path = "/api/identity/acme/system/pools/bench/users?page_size=" + size
times, users, token = [], 0, ""
while True:
    t0 = time.perf_counter()
    c.request("GET", path + ("&page_token=" + token if token else ""), headers={"Authorization": "Bearer " + tok})
    r = c.getresponse(); body = r.read()
    times.append((time.perf_counter() - t0) * 1000)
    assert r.status == 200, (r.status, body[:200])
    page = json.loads(body); users += len(page["users"]); token = page.get("next_page_token", "")
    if not token:
        break
s = sorted(times); q = lambda p: s[min(len(s) - 1, int(p * len(s)))]
print(f"pages {len(times)}, users {users}")
print(f"per page: p50 {q(0.50):.1f} ms, p90 {q(0.90):.1f} ms, p99 {q(0.99):.1f} ms, max {s[-1]:.1f} ms")
print(f"first 50 pages mean {sum(times[:50]) / 50:.1f} ms, last 50 pages mean {sum(times[-50:]) / 50:.1f} ms")
PY
  echo "server peak RSS: $(peak_rss)"
  ;;
*) echo "usage: $0 verify|flood|list"; exit 2 ;;
esac
