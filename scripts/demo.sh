#!/usr/bin/env bash
# make demo: the local Stripe sandbox + seeded data + a first sync into SQLite + the dashboard on :8501.
# Ctrl-C stops every process this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SANDBOX_PORT="${SANDBOX_PORT:-12111}"
mkdir -p data

export STRIPE_API_KEY="${DEMO_STRIPE_API_KEY:-sk_test_sandbox_demo_key_0000}"
export STRIPE_API_BASE="http://127.0.0.1:${SANDBOX_PORT}"
export STRIPE_WEBHOOK_SECRET="${STRIPE_WEBHOOK_SECRET:-whsec_demo_secret}"
export DATABASE_URL="${DEMO_DATABASE_URL:-sqlite:///$(pwd)/data/demo.db}"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if [ -d sandbox ] && [ -f sandbox/__main__.py ]; then
  $BIN/python -m sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" --state data/sandbox-state.json &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -fsS "$STRIPE_API_BASE/_sandbox/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  if [ ! -f data/.seeded ]; then
    echo "Seeding the sandbox with demo data…"
    $BIN/python -m sandbox.seed --api-base "$STRIPE_API_BASE" --customers "${DEMO_CUSTOMERS:-2000}" --seed 7
    touch data/.seeded
  fi
  if [ -f lib/__main__.py ]; then
    $BIN/python -m lib sync || echo "First sync failed; the Sync page shows why." >&2
  fi
fi

echo "Billing Console: http://localhost:8501"
$BIN/streamlit run server.py --server.address 127.0.0.1 --server.port 8501 &
pids+=($!)
wait "${pids[@]}"
