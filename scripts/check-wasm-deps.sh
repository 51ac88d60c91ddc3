#!/usr/bin/env bash
# The hydrate (WASM) bundle must contain no server code: fail if its
# dependency tree has a database, model, vector store or native HTTP crate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tree=$(cargo tree -p ragchat --target wasm32-unknown-unknown --no-default-features --features hydrate \
  -e normal --prefix none --format '{p}')
forbidden=$(grep -E '^(sqlx|llama-cpp|candle|qdrant|reqwest|hyper|axum|tokio|tower-sessions|ort|libsqlite3)[a-z0-9_-]* ' <<<"$tree" | sort -u || true)
count=$(sort -u <<<"$tree" | wc -l)
if [[ -n "$forbidden" ]]; then
  echo "FAIL: the WASM bundle depends on server-only crates:" >&2
  echo "$forbidden" >&2
  exit 1
fi
echo "wasm bundle: $count crates, none of sqlx/llama-cpp/candle/qdrant/reqwest/hyper/axum/tokio"
