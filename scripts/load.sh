#!/usr/bin/env bash
# Load figures for BENCHMARKS.md: builds the mall in release, starts it on a fresh SQLite file
# with demo data and the bench routes, and runs wrk (2 threads, 32 connections) against the
# open route, the protected route with a valid and a bad token, the authenticated goods list,
# and WeChat login against the built-in fake. Prints one table row per target, then the ratios.
#
#   scripts/load.sh            # 10 s per target
#   DURATION=30s scripts/load.sh
#
# Loopback only; every run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}

if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl; }

cargo build --release --example mall

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
base="http://127.0.0.1:$port"
MALL_BENCH_ROUTES=1 \
MALL_THROTTLE_ANON=1000000000/second MALL_THROTTLE_USER=1000000000/second MALL_THROTTLE_LOGIN=1000000000/second \
DATABASE_URL="sqlite://$work/mall.db" WXREST_BIND="127.0.0.1:$port" RUST_LOG=error \
  target/release/examples/mall serve --seed-demo >"$work/mall.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT

for _ in $(seq 1 100); do
  curl -sf "$base/healthz" >/dev/null && break
  sleep 0.1
done

token=$(curl -sf -X POST "$base/auth/wx-login/" -H 'content-type: application/json' -d '{"code": "load-script"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

cat >"$work/login.lua" <<'LUA'
local thread_id = 0
function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
local n = 0
function request()
  n = n + 1
  local body = string.format('{"code": "load-%s-%d-%d"}', tostring(tid), os.time(), n)
  return wrk.format("POST", "/auth/wx-login/", {["Content-Type"] = "application/json"}, body)
end
LUA

declare -A rps
printf '%-22s %12s %10s %10s %10s %10s\n' target "requests/s" "p50" "p99" "errors" "RSS MiB"
run() {
  local name=$1; shift
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  local r p50 p99 non2xx sock
  r=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  sock=$(awk '/Socket errors:/ {s = 0; for (i = 4; i <= NF; i += 2) s += $i; print s}' <<<"$out")
  rps[$name]=$r
  local rss_now
  rss_now=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
  printf '%-22s %12s %10s %10s %10s %10s\n' "$name" "$r" "$p50" "$p99" "$(( ${non2xx:-0} + ${sock:-0} ))" "$rss_now"
}

run open "$base/bench/open"
run protected "$base/bench/protected" -H "Authorization: JWT $token"
run protected_bad_token "$base/bench/protected" -H "Authorization: JWT not.a.token"
run goods_list "$base/mall/goods/?search=tea&price__gte=5000&ordering=-price" -H "Authorization: JWT $token"
run wx_login "$base/auth/wx-login/" -s "$work/login.lua"

rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo
echo "peak RSS: $((rss / 1024)) MiB"
python3 - "${rps[open]}" "${rps[protected]}" "${rps[goods_list]}" <<'PY'
import sys
open_, protected, goods = map(float, sys.argv[1:])
print(f"protected / open: {protected / open_:.2f} (target >= 0.95)")
print(f"goods list / open: {goods / open_:.2f} (target >= 0.50)")
PY
echo "(errors for protected_bad_token are the expected 401s)"
