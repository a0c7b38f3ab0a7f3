#!/usr/bin/env bash
# ekmd under load on loopback, with real load generators:
#   - GET /api/security/azure-key-vaults/{uuid} over HTTPS with basic auth: Debian's `wrk`;
#   - GET /keys/{id} over the data-path unix socket: `oha` (crates.io) with --unix-socket.
#   - POST .../keys (a durable key creation, audited: one redb commit and one audit fsync each),
#     one connection at a time, 300 requests: `oha`, for the latency a state-changing request
#     pays (ekm_audit_write_duration_seconds in /metrics is the audit part alone).
# Prints requests/s, p99 latency and errors for each. Needs wrk (apt-get install wrk) and oha
# (cargo install oha --locked); builds ekmd in release (into CARGO_TARGET_DIR when set), or runs
# EKMD_BIN when given (e.g. an older build, to compare).
#   bash benches/ekmd_load.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
conns=${2:-32}
if [ -z "${EKMD_BIN:-}" ]; then
    cargo build --release -q -p ekmd
    EKMD_BIN=${CARGO_TARGET_DIR:-target}/release/ekmd
fi
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
EKMD_ADMIN_USER=admin EKMD_ADMIN_PASSWORD=load-pw EKMD_LOG=warn \
    "$EKMD_BIN" serve --data-dir "$dir" --listen 127.0.0.1:$port > "$dir/out" 2> "$dir/err" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
A="admin:load-pw"; U=https://127.0.0.1:$port/api/security/azure-key-vaults
KEY=https://v.vault.azure.net/keys/k/a8e619fd8f234db3b0b95c59540e2a74
uuid=$(curl -sk -u $A -X POST "$U?return_records=true" \
    -d '{"client_id":"c","tenant_id":"t","name":"https://v.vault.azure.net/","key_id":"'$KEY'","client_secret":"s"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["records"][0]["uuid"])')
key=$(curl -sk -u $A -X POST "$U/$uuid/keys" -d '{"key_tag":"vol1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')
auth="Authorization: Basic $(printf %s "$A" | base64)"

echo "== wrk: GET $U/{uuid} over HTTPS, ${conns} connections, 2 threads, ${secs}s"
wrk -t2 -c"$conns" -d"${secs}s" --latency -H "$auth" "$U/$uuid"

echo "== oha: GET /keys/{id} over the unix socket, ${conns} connections, ${secs}s"
oha -z "${secs}s" -c "$conns" --no-tui --unix-socket "$dir/ekmd.sock" "http://ekmd/keys/$key"

echo "== oha: POST $U/{uuid}/keys (durable, audited), 1 connection, 300 requests"
oha -n 300 -c 1 --no-tui --insecure -m POST -H "$auth" -H "Content-Type: application/json" \
    -d '{"key_tag":"bench"}' "$U/$uuid/keys"
echo "== the audit part alone (append + fsync), from ekmd's /metrics (absent on builds without it)"
curl -sk -u $A "https://127.0.0.1:$port/metrics" | grep -E '^ekm_audit_write_duration_seconds_(sum|count)' || true
