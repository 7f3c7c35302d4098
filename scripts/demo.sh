#!/usr/bin/env bash
# make demo: the local Stripe sandbox + seeded data + a first sync into SQLite + the sync worker + the
# dashboard on :8501.
# Ctrl-C stops every process this script started. Safe to run again: the sandbox keeps its state in
# data/sandbox-state.pickle and is seeded only once (data/.seeded records with what).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SANDBOX_PORT="${SANDBOX_PORT:-12111}"
DASHBOARD_PORT=8501 # the seeded webhook endpoint points here
CUSTOMERS="${DEMO_CUSTOMERS:-2000}"
SEED="${DEMO_SEED:-7}"
STATE=data/sandbox-state.pickle
MARKER=data/.seeded
mkdir -p data

export STRIPE_API_KEY="${DEMO_STRIPE_API_KEY:-sk_test_sandbox_demo_key_0000}"
export STRIPE_API_BASE="http://127.0.0.1:${SANDBOX_PORT}"
# The sandbox signs webhook deliveries with SANDBOX_WEBHOOK_SECRET; the dashboard verifies with the same value.
export SANDBOX_WEBHOOK_SECRET="${SANDBOX_WEBHOOK_SECRET:-whsec_local_demo_sandbox_0000}"
export STRIPE_WEBHOOK_SECRET="$SANDBOX_WEBHOOK_SECRET"
# The local sandbox has no test-mode rate limit of 25 requests/s, so the sync need not pace itself like one.
export STRIPE_REQUESTS_PER_SECOND="${STRIPE_REQUESTS_PER_SECOND:-500}"
DEFAULT_DB="sqlite:///$(pwd)/data/demo.db"
export DATABASE_URL="${DEMO_DATABASE_URL:-$DEFAULT_DB}"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$SANDBOX_PORT" "$DASHBOARD_PORT"; do
  if port_busy "$port"; then
    echo "Port $port on 127.0.0.1 is already in use (an earlier demo still running?). Stop that process and" \
      "run 'make demo' again." >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

$BIN/python -m sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" --state "$STATE" &
sandbox_pid=$!
pids+=("$sandbox_pid")
healthy=0
for _ in $(seq 1 300); do
  if curl -fsS "$STRIPE_API_BASE/_sandbox/health" >/dev/null 2>&1; then healthy=1; break; fi
  kill -0 "$sandbox_pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$healthy" != 1 ]; then
  echo "The Stripe sandbox did not start on port $SANDBOX_PORT (see its output above)." >&2
  exit 1
fi

# Seed once per (customers, seed, plan); a missing state file means the sandbox is empty again. `plan` changes
# when sandbox/seed.py plans a different account for the same seed (2: some failed renewals recover). The messy
# cases (sandbox/messy.py: Markdown, formulas, odd currencies, a deleted customer…) are always part of the demo.
want="customers=$CUSTOMERS seed=$SEED plan=2 messy"
seeded=0
if [ -f "$MARKER" ] && [ -f "$STATE" ] && [ "$(cat "$MARKER")" = "$want" ]; then seeded=1; fi
if [ "$seeded" != 1 ]; then
  echo "Seeding the sandbox with demo data ($CUSTOMERS customers, seed $SEED)…"
  rm -f "$MARKER"
  $BIN/python -m sandbox.seed --api-base "$STRIPE_API_BASE" --api-key "$STRIPE_API_KEY" \
    --customers "$CUSTOMERS" --seed "$SEED" --reset --messy --truth-file data/duplicates-truth.json
  # New sandbox ids: the old demo cache describes objects that no longer exist.
  if [ "$DATABASE_URL" = "$DEFAULT_DB" ]; then rm -f data/demo.db; fi
  echo "$want" >"$MARKER"
fi

if [ -f lib/__main__.py ]; then
  if [ "$seeded" != 1 ]; then sync_args=(--full); else sync_args=(); fi
  echo "Syncing Stripe into the cache ($DATABASE_URL)…"
  $BIN/python -m lib sync "${sync_args[@]}" || echo "The sync failed; the Sync page shows why and can retry." >&2
fi

# The worker keeps the cache fresh (incremental sync every WORKER_INTERVAL_SECONDS, default 60; it also
# finishes pass 2 — every customer's card list — if the first sync stopped before it); health and metrics on
# http://127.0.0.1:${WORKER_METRICS_PORT}/.
export WORKER_METRICS_PORT="${WORKER_METRICS_PORT:-9464}"
if port_busy "$WORKER_METRICS_PORT"; then export WORKER_METRICS_PORT=0; fi # metrics off rather than no worker
$BIN/python -m lib worker &
pids+=($!)

echo "Billing Console: http://localhost:$DASHBOARD_PORT   (Ctrl-C stops the dashboard, the worker and the sandbox)"
$BIN/streamlit run server.py --server.address 127.0.0.1 --server.port "$DASHBOARD_PORT" \
  --server.headless true --browser.gatherUsageStats false &
pids+=($!)
wait -n "${pids[@]}" || true
