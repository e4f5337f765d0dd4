#!/usr/bin/env bash
# Runs the Postman collection with newman (pinned in package-lock.json) against a fresh server, twice in a row on
# the same environment: the second run must pass as the first did.
#
#   bash docs/postman/run.sh                                    # SQLite, in a temporary directory
#   POSTMAN_DATABASE_URL=postgres://…/an_empty_db bash docs/postman/run.sh
#
# It builds ./cmd/authplane, starts `authplane serve` on free loopback ports, creates the tenant and its system API
# client through the operator and admin APIs (as a tenant's operator would in the portal), fills the environment's
# url, tenant_id and client credentials, and runs the collection. Needs go, node and npm, and curl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tenant=${POSTMAN_TENANT_ID:-pool-demo}
runs=${POSTMAN_RUNS:-2}

work=$(mktemp -d /tmp/authplane-postman.XXXXXX)
server_pid=
finish() {
  local rc=$?
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; fi
  if [ "$rc" -ne 0 ] && [ -f "$work/server.log" ]; then echo "server log (last lines):"; tail -20 "$work/server.log"; fi
  rm -rf "$work"
}
trap finish EXIT

if [ ! -x "$here/node_modules/.bin/newman" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
newman=$here/node_modules/.bin/newman

(cd "$root" && go build -o "$work/authplane" ./cmd/authplane)
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
http_port=$(free_port); grpc_port=$(free_port)
while [ "$grpc_port" = "$http_port" ]; do grpc_port=$(free_port); done
base=http://127.0.0.1:$http_port
root_secret=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
(cd "$work" && exec env AUTHPLANE_HTTP_ADDR="127.0.0.1:$http_port" AUTHPLANE_GRPC_ADDR="127.0.0.1:$grpc_port" \
  AUTHPLANE_DATABASE_URL="${POSTMAN_DATABASE_URL:-sqlite:$work/authplane.db}" AUTHPLANE_ISSUER_URL="$base" \
  AUTHPLANE_MASTER_KEY="$(head -c 32 /dev/urandom | base64)" \
  AUTHPLANE_ROOT_CLIENT_ID=root-operator AUTHPLANE_ROOT_CLIENT_SECRET="$root_secret" \
  "$work/authplane" serve >"$work/server.log" 2>&1) &
server_pid=$!
ready=
for _ in $(seq 1 120); do
  if "$work/authplane" healthcheck --url "$base/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.5
done
[ -n "$ready" ] || { echo "the server did not become ready at $base"; exit 1; }

# field JSON NAME: one string field of a JSON document (node, which newman needs anyway, rather than jq).
field() { node -e 'let v=JSON.parse(process.argv[1]);for(const k of process.argv[2].split("."))v=v==null?v:v[k];if(typeof v!=="string"||!v){console.error("no "+process.argv[2]+" in "+process.argv[1]);process.exit(1)}console.log(v)' "$1" "$2"; }
token() { curl -fsS -u "$2:$3" -d grant_type=client_credentials "$base/$1/oauth2/token"; }
post() { curl -fsS -H "Authorization: Bearer $1" -H 'Content-Type: application/json' -d "$3" "$base$2"; }

root_token=$(field "$(token root/admin root-operator "$root_secret")" access_token)
created=$(post "$root_token" /api/admin/tenants "{\"id\":\"$tenant\",\"name\":\"Pool demo\"}")
admin_id=$(field "$created" admin_client.client_id); admin_secret=$(field "$created" admin_client.client_secret)
admin_token=$(field "$(token "$tenant/admin" "$admin_id" "$admin_secret")" access_token)
system=$(post "$admin_token" "/api/admin/$tenant/clients" \
  '{"authorization_server_id":"system","client_name":"Identity API client","grant_types":["client_credentials"],"scopes":["identity"]}')
system_id=$(field "$system" client_id); system_secret=$(field "$system" client_secret)

node -e '
const fs = require("fs");
const [src, dst, url, tenant, adminID, adminSecret, systemID, systemSecret] = process.argv.slice(1);
const env = JSON.parse(fs.readFileSync(src, "utf8"));
const set = { url, tenant_id: tenant, admin_client_id: adminID, admin_client_secret: adminSecret,
  system_client_id: systemID, system_client_secret: systemSecret };
for (const v of env.values) if (v.key in set) v.value = set[v.key];
fs.writeFileSync(dst, JSON.stringify(env, null, 2));
' "$here/authplane.postman_environment.json" "$work/environment.json" "$base" "$tenant" \
  "$admin_id" "$admin_secret" "$system_id" "$system_secret"

passed=0; failed=0
for run in $(seq 1 "$runs"); do
  echo "=== newman run $run of $runs against $base (tenant $tenant)"
  "$newman" run "$here/authplane.postman_collection.json" --environment "$work/environment.json" \
    --reporters cli,json --reporter-json-export "$work/run-$run.json" --color off --no-insecure-file-read || true
  counts=$(node -e '
const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).run.stats;
const bad = s.assertions.failed + s.requests.failed + s.testScripts.failed + s.prerequestScripts.failed;
console.log((s.assertions.total - s.assertions.failed) + " " + bad);
' "$work/run-$run.json" 2>/dev/null || echo "0 1")
  passed=$((passed + ${counts% *})); failed=$((failed + ${counts#* }))
done
echo "newman: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
