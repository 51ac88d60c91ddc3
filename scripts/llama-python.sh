#!/usr/bin/env bash
# A Python venv with llama-cpp-python[server] (the peer for benchmarks and the
# real OpenAI-compatible server for tests) and the official openai SDK (the
# client tests/openai_sdk.py drives the app's /v1 with). Sourced; sets
# LLAMA_PYTHON.
# Built like the app's llama.cpp: native CPU features except AMX, whose
# kernels crash on this machine's Xeon (see .cargo/config.toml).
set -euo pipefail
VENV="${RAGCHAT_VENV:-$HOME/.cache/ragchat/venv}"
LLAMA_PYTHON="$VENV/bin/python"
LLAMA_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
STAMP="$VENV/.ragchat-llama-build"
if ! "$LLAMA_PYTHON" -c "import llama_cpp.server" 2>/dev/null || [[ "$(cat "$STAMP" 2>/dev/null)" != "$LLAMA_FLAGS" ]]; then
  echo "==> installing llama-cpp-python[server] into $VENV (compiles llama.cpp, ~10 min)" >&2
  python3 -m venv "$VENV"
  CMAKE_ARGS="-DGGML_NATIVE=ON" CFLAGS="$LLAMA_FLAGS" CXXFLAGS="$LLAMA_FLAGS" \
    "$VENV/bin/pip" install --quiet --force-reinstall --no-cache-dir "llama-cpp-python[server]==0.3.36"
  echo "$LLAMA_FLAGS" > "$STAMP"
fi
OPENAI_SDK_VERSION="3.57.0"
if ! "$LLAMA_PYTHON" -c "import sys, openai; sys.exit(openai.__version__ != '$OPENAI_SDK_VERSION')" 2>/dev/null; then
  echo "==> installing openai==$OPENAI_SDK_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet "openai==$OPENAI_SDK_VERSION"
fi
export LLAMA_PYTHON
