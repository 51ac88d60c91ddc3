#!/usr/bin/env bash
# A Python venv with llama-cpp-python[server] (the peer for benchmarks and the
# real OpenAI-compatible server for tests). Sourced; sets LLAMA_PYTHON.
set -euo pipefail
VENV="${RAGCHAT_VENV:-$HOME/.cache/ragchat/venv}"
LLAMA_PYTHON="$VENV/bin/python"
if ! "$LLAMA_PYTHON" -c "import llama_cpp.server" 2>/dev/null; then
  echo "==> installing llama-cpp-python[server] into $VENV (compiles llama.cpp, ~10 min)" >&2
  python3 -m venv "$VENV"
  CMAKE_ARGS="-DGGML_NATIVE=ON" "$VENV/bin/pip" install --quiet "llama-cpp-python[server]==0.3.36"
fi
export LLAMA_PYTHON
