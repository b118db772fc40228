#!/usr/bin/env bash
# A bounded soak of the example mall (not run by CI): builds it in release, serves it on a fresh
# SQLite file with the demo catalogue, drives 60 s of mixed traffic (login, browse, cart, order)
# over 32 loopback connections with tools/soak, then reconciles orders against stock.
#
#   scripts/soak.sh [SECONDS] [CONNECTIONS]
#
# Exits non-zero on any 5xx, transport error or reconciliation failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN="${1:-60}"
CONNECTIONS="${2:-32}"
PORT="${SOAK_PORT:-18765}"
WORK="$(mktemp -d)"
DB="$WORK/soak.db"
trap 'kill "$MALL_PID" 2>/dev/null || true; wait "$MALL_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --example mall
cargo build --release -p wxrest-soak

# The soak sends thousands of requests per minute from one IP and 32 users: lift the throttles
# (their behaviour is covered by tests/auth/throttle.rs) so the run measures the mall, not the limits.
WXREST_BIND="127.0.0.1:$PORT" \
DATABASE_URL="sqlite://$DB?mode=rwc" \
MALL_SEED_DEMO=1 \
MALL_THROTTLE_ANON=1000000/min MALL_THROTTLE_USER=1000000/min MALL_THROTTLE_LOGIN=1000000/min \
RUST_LOG=warn \
  "${CARGO_TARGET_DIR:-target}/release/examples/mall" serve &
MALL_PID=$!

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null

"${CARGO_TARGET_DIR:-target}/release/wxrest-soak" \
  --base "http://127.0.0.1:$PORT" \
  --database "sqlite://$DB" \
  --seconds "$SECONDS_TO_RUN" \
  --connections "$CONNECTIONS"
