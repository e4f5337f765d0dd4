#!/usr/bin/env bash
# Browser sign-in against a real `authplane serve` on this machine (docs/benchmarks/oauthload's browser modes):
# code exchanges/s at the token endpoint (each worker signed in once, then single sign-on: authorize with the SSO
# cookie, then the exchange; no password hashing) and sign-in page submissions/s (authorize with prompt=login, the
# page, the form: one argon2id hash each), the latter next to the raw argon2id bound measured just before and after.
# Usage (from the repository root):
#   docs/benchmarks/browser.sh                 # SQLite
#   DB=postgres docs/benchmarks/browser.sh     # PostgreSQL
# Env: DURATION (30s), CONNECTIONS (64; for code), SIGNIN_CONNECTIONS (16: more only queue on the two hashing slots), LOAD_NICE (10), USERS (64), MODES (code signin), PROFILE=1,
#      PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
# Needs: go, curl, jq, python3, bc, psql (postgres only).
set -euo pipefail
DB=${DB:-sqlite}; DURATION=${DURATION:-30s}; CONNECTIONS=${CONNECTIONS:-64}; USERS=${USERS:-64}
MODES=${MODES:-code signin}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
WORK=$(mktemp -d /tmp/authplane-browser.XXXXXX)
PID=; DBNAME=
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  [ -z "$DBNAME" ] || psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null
}
trap cleanup EXIT

go build -o "$WORK/authplane" ./cmd/authplane
go build -o "$WORK/oauthload" ./docs/benchmarks/oauthload
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
HTTP=$(port); BASE="http://127.0.0.1:$HTTP"; PPROF=$(port)
if [ "$DB" = postgres ]; then
  DBNAME="authplane_browser_$$"
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

ROOT=$(curl -fs -u root-operator:bench-root-secret -d grant_type=client_credentials "$BASE/root/admin/oauth2/token" | jq -r .access_token)
curl -fs -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d '{"id":"acme","name":"Acme"}' "$BASE/api/admin/tenants" >"$WORK/tenant.json"
ADMIN=$(curl -fs -u "$(jq -r .admin_client.client_id "$WORK/tenant.json"):$(jq -r .admin_client.client_secret "$WORK/tenant.json")" \
  -d grant_type=client_credentials "$BASE/acme/admin/oauth2/token" | jq -r .access_token)
admin() { curl -fsS -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$2" "$BASE/api/admin/acme/$1"; }
admin clients '{"authorization_server_id":"system","client_name":"bench","grant_types":["client_credentials"],"scopes":["identity"]}' >"$WORK/sys.json"
SYS=$(curl -fs -u "$(jq -r .client_id "$WORK/sys.json"):$(jq -r .client_secret "$WORK/sys.json")" \
  -d grant_type=client_credentials "$BASE/acme/system/oauth2/token" | jq -r .access_token)
identity() { curl -fsS -H "Authorization: Bearer $SYS" -H 'Content-Type: application/json' -d "$2" "$BASE/api/identity/acme/system/$1"; }

admin servers '{"id":"shop","grant_types":["client_credentials","authorization_code"]}' >/dev/null
REDIRECT=http://127.0.0.1:9/callback
admin clients "{\"authorization_server_id\":\"shop\",\"client_name\":\"spa\",\"grant_types\":[\"authorization_code\"],\"token_endpoint_auth_method\":\"none\",\"scopes\":[\"openid\"],\"trusted\":true,\"redirect_uris\":[\"$REDIRECT\"]}" >"$WORK/spa.json"
identity pools '{"id":"people","name":"People"}' >/dev/null
admin servers/shop/idps/identity_pool '{"name":"People","identity_pool_id":"people"}' >/dev/null
: >"$WORK/users.txt"
for i in $(seq 1 "$USERS"); do
  identity pools/people/users "{\"identifiers\":[{\"type\":\"email\",\"identifier\":\"user$i@example.com\"}],\"credentials\":[{\"type\":\"password\",\"password\":\"correct horse battery $i\"}]}" >/dev/null
  echo "user$i@example.com correct horse battery $i" >>"$WORK/users.txt"
done
TOKEN_URL="$BASE/acme/shop/oauth2/token"
SPA="$(jq -r .client_id "$WORK/spa.json"):"

cpu_ticks() { awk '{print $14+$15}' "/proc/$PID/stat"; }
bound() { go test -run '^$' -bench BenchmarkArgon2idDefault -benchtime 5s ./pkg/password/ | awk '/ns\/op/ {printf "%.1f/s\n", 1e9/$3}'; }
echo "DB=$DB connections=$CONNECTIONS duration=$DURATION load_nice=${LOAD_NICE:-10} users=$USERS"
for mode in $MODES; do
  [ "$mode" = signin ] && echo "  raw argon2id bound before: $(bound)"
  PROFILER=
  if [ "${PROFILE:-}" = 1 ]; then
    (sleep 10; curl -fs "http://127.0.0.1:$PPROF/debug/pprof/profile?seconds=10" -o "$WORK/$mode.pprof") &
    PROFILER=$!
  fi
  conns=$CONNECTIONS; [ "$mode" = signin ] && conns=${SIGNIN_CONNECTIONS:-16}
  T0=$(cpu_ticks); S0=$(date +%s.%N)
  nice -n "${LOAD_NICE:-10}" "$WORK/oauthload" -mode "$mode" -url "$TOKEN_URL" -client "$SPA" -redirect "$REDIRECT" \
    -users "$WORK/users.txt" -c "$conns" -d "$DURATION"
  S1=$(date +%s.%N); T1=$(cpu_ticks)
  printf '  server CPU %.0f%% (warm-up included), peak RSS %s\n' "$(echo "($T1 - $T0) / $(getconf CLK_TCK) / ($S1 - $S0) * 100" | bc -l)" \
    "$(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/$PID/status")"
  [ "$mode" = signin ] && echo "  raw argon2id bound after: $(bound)"
  if [ -n "$PROFILER" ]; then
    wait "$PROFILER"
    echo "  CPU profile of the server during $mode (top 25):"
    go tool pprof -top -nodecount=25 "$WORK/authplane" "$WORK/$mode.pprof" 2>/dev/null | tail -26
  fi
done
