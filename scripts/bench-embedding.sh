#!/usr/bin/env bash
# Embedding benchmark: the local embedder (OpenVINO) vs sentence-transformers
# (torch, float32) on the same 1,000 PubMedQA chunks, batch 32, the same
# thread count. Prints both throughputs, the ratio, single-query latency and
# how close the vectors are. Installs sentence-transformers on first use.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/setup.sh
scripts/fetch-embedding-model.sh

ST_VENV="${RAGCHAT_ST_VENV:-$HOME/.cache/ragchat/st-venv}"
if ! "$ST_VENV/bin/python" -c 'import sentence_transformers, torch' 2>/dev/null; then
  # PyPI's Linux torch wheel needs its CUDA libraries just to import, even on
  # a CPU: about 4.8 GB in all. triton (1 GB) only compiles GPU kernels.
  say "installing sentence-transformers 6.2.0 and torch 2.15.0 into $ST_VENV (~4.8 GB, first time only)"
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
    sentence-transformers==6.2.0 torch==2.15.0
  "$ST_VENV/bin/python" -m pip uninstall --quiet -y triton
fi

say "running the embedding benchmark (close other work for stable figures)"
RAGCHAT_ST_PYTHON="$ST_VENV/bin/python" cargo bench --profile dev --features ssr --bench embedding
