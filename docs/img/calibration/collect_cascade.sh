#!/bin/bash
# Full-cascade collections for docs/results.md at the default sampling temperature (0.4):
# the ladder (n=96, stages 0-3) and TruthfulQA (n=24, stages 0-2).
# Run under: flock /tmp/candor-engine.lock
set -u
cd "$(dirname "$0")/../../.."  # the repository root
PORT=8432
CANDOR_PORT=$PORT CANDOR_MAX_TOKENS_LIMIT=128 CANDOR_SAMPLE_MAX_TOKENS=16 \
  CANDOR_MAX_BUDGET_MS=3600000 CANDOR_MAX_INFLIGHT=64 \
  .venv/bin/candor serve > "${TMPDIR:-/tmp}/candor-cascade-server.log" 2>&1 &
SPID=$!
trap 'kill $SPID; wait $SPID' EXIT
until curl -sf localhost:$PORT/readyz >/dev/null; do sleep 2; kill -0 $SPID || exit 1; done
U=http://127.0.0.1:$PORT
echo "ready $(date +%T)"
.venv/bin/candor calibrate --collect-only --server $U --no-progress --dataset ladder --n 96 \
  --max-stage 3 --max-tokens 16 --concurrency 36 2>&1 | grep -v httpx
echo "ladder96 $(date +%T)"
.venv/bin/candor calibrate --collect-only --server $U --no-progress --dataset truthfulqa --n 24 \
  --max-stage 2 --max-tokens 24 --concurrency 12 2>&1 | grep -v httpx
echo "tqa24 $(date +%T)"
