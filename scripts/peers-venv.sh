#!/usr/bin/env bash
# The Python venv with the peers the app is measured against:
# sentence-transformers (torch, float32), LangChain's splitter, embeddings
# and Qdrant store, rank_bm25. Sourced by scripts/eval.sh,
# scripts/bench-embedding.sh and scripts/bench-ingestion.sh; exports
# RAGCHAT_PEERS_PYTHON, which the eval binary runs benches/long_doc_peers.py
# with. In ${RAGCHAT_PEERS_VENV:-~/.cache/ragchat/st-venv}.
# Idempotent: returns after an import and version check (~7 s) when the venv
# already matches the pins; otherwise installs into it (~5 min, 4.8 GB cold).
set -euo pipefail
declare -F say >/dev/null || say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

PEERS_VENV="${RAGCHAT_PEERS_VENV:-$HOME/.cache/ragchat/st-venv}"
PEERS_PINS=(
  sentence-transformers==6.2.0 torch==2.15.0 transformers==5.24.0 huggingface-hub==1.33.0
  langchain-text-splitters==1.1.3 rank-bm25==0.2.2 langchain-core==1.8.3
  langchain-huggingface==1.2.3 langchain-qdrant==1.1.0 qdrant-client==1.20.0
)

# Checks the pins (a venv made from older pins, or for the embedding bench
# alone, which lacks LangChain, is upgraded in place), then imports every
# module the peers' scripts use, and that triton is gone. Prints what is off.
peers_venv_ok() {
  [[ -x "$PEERS_VENV/bin/python" ]] || { echo "no venv yet"; return 1; }
  "$PEERS_VENV/bin/python" - "${PEERS_PINS[@]}" <<'PY' 2>/dev/null
import importlib, importlib.util, sys
from importlib.metadata import PackageNotFoundError, version
problems = []
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        problems.append(f"{name} {have or 'missing'}, want {want}")
if not problems:
    for module in ("numpy", "torch", "transformers", "huggingface_hub", "sentence_transformers",
                   "rank_bm25", "langchain_core", "langchain_text_splitters", "langchain_huggingface",
                   "langchain_qdrant", "qdrant_client"):
        try:
            importlib.import_module(module)
        except Exception as e:
            problems.append(f"import {module}: {type(e).__name__}: {e}"[:200])
if importlib.util.find_spec("triton") is not None:
    problems.append("triton installed")
if len(problems) > 3:
    problems[3:] = [f"{len(problems) - 3} more"]
print("; ".join(problems))
sys.exit(1 if problems else 0)
PY
}

if ! peers_problems=$(peers_venv_ok); then
  say "installing the peers into $PEERS_VENV (${peers_problems:-its Python fails to start}; ~5 min and 4.8 GB when cold)"
  # A venv whose Python no longer starts (its base Python was replaced) is made anew.
  "$PEERS_VENV/bin/python" -c '' 2>/dev/null || python3 -m venv --clear "$PEERS_VENV"
  # --no-cache-dir: the wheels are 4.8 GB; a pip cache would keep a second copy.
  "$PEERS_VENV/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check "${PEERS_PINS[@]}"
  # PyPI's Linux torch wheel needs its CUDA libraries just to import, even on
  # a CPU (most of the 4.8 GB); triton (1 GB) only compiles GPU kernels and
  # nothing here imports it.
  "$PEERS_VENV/bin/python" -m pip uninstall --quiet -y triton 2>/dev/null || true
  if ! peers_problems=$(peers_venv_ok); then
    echo "peers venv $PEERS_VENV still not right after installing: $peers_problems" >&2
    exit 1
  fi
fi
unset peers_problems
export RAGCHAT_PEERS_PYTHON="$PEERS_VENV/bin/python"
