#!/usr/bin/env bash
# Generation benchmark: the embedded model vs llama.cpp (llama-cpp-python) on
# the same GGUF, prompt and thread count. Prints figures and ratios.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/setup.sh
source scripts/llama-python.sh
say "running the generation benchmark (2 threads; close other work for stable figures)"
RAGCHAT_LLAMA_PYTHON="$LLAMA_PYTHON" cargo bench --profile dev --features ssr --bench generation
