#!/usr/bin/env bash
# Embedding benchmark: the local embedder (OpenVINO) vs sentence-transformers
# (torch, float32) on the same 1,000 PubMedQA chunks, batch 32, the same
# thread count. Prints both throughputs, the ratio, single-query latency and
# how close the vectors are. Installs the peers (scripts/peers-venv.sh) on
# first use.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/setup.sh
# Incremental caches only grow in the shared target dir (see scripts/test.sh).
export CARGO_INCREMENTAL=0
scripts/fetch-embedding-model.sh

# The peer's Python: the shared peers venv (RAGCHAT_ST_VENV, this script's
# old knob, still names another venv for it).
if [[ -n "${RAGCHAT_ST_VENV:-}" ]]; then
  export RAGCHAT_PEERS_VENV="${RAGCHAT_PEERS_VENV:-$RAGCHAT_ST_VENV}"
fi
source scripts/peers-venv.sh

say "running the embedding benchmark (close other work for stable figures)"
RAGCHAT_ST_PYTHON="$RAGCHAT_PEERS_PYTHON" cargo bench --profile dev --features ssr --bench embedding
