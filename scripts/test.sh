#!/usr/bin/env bash
# Installs what is missing and runs every test: formatting, lints (server and
# WASM), the WASM dependency check, unit + integration tests (real embedded
# model, real llama.cpp server, a throwaway Redis for the shared rate
# limiter), the integration tests again on a throwaway Postgres (the store
# at scale), the retrieval evaluations, and end2end tests in Debian Chromium.
# Idempotent. Used by CI (.ci/run).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/setup.sh
# Incremental caches only grow (15 GB after a few dozen runs in the shared
# target dir), and a test run gains little from them.
export CARGO_INCREMENTAL=0
apt_install chromium chromium-driver redis-server postgresql
source scripts/llama-python.sh
export RAGCHAT_LLAMA_PYTHON="$LLAMA_PYTHON"
# The official openai SDK (same venv) for the /v1 test, tests/openai_sdk.py.
export RAGCHAT_OPENAI_PYTHON="$LLAMA_PYTHON"

say "cargo fmt --check"
cargo fmt --all -- --check

say "structure: no import circles, arrows one way, no file over 800 lines, no function over 100"
python3 scripts/check-structure.py

say "clippy (server and WASM)"
cargo clippy --workspace --features ssr --all-targets -- -D warnings
cargo clippy -p ragchat -p app --target wasm32-unknown-unknown --no-default-features --features hydrate -- -D warnings

say "the WASM bundle holds no server code"
scripts/check-wasm-deps.sh

# The shared rate limiter's tests run against a Redis of their own (unless
# REDIS_URL names one): a free port, nothing written to disk, stopped on exit.
cleanup=()
trap 'for step in "${cleanup[@]}"; do eval "$step"; done' EXIT
if [[ -z "${REDIS_URL:-}" ]]; then
  REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  REDIS_PID_FILE=$(mktemp -u /tmp/ragchat-redis.XXXXXX.pid)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$REDIS_PID_FILE" --logfile /dev/null
  cleanup+=('kill "$(cat "$REDIS_PID_FILE" 2>/dev/null)" 2>/dev/null || true')
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
fi

say "unit and integration tests"
TEST_POSTGRES_URL= cargo test --workspace --features ssr 2>&1 | tee "$CARGO_TARGET_DIR/cargo-test.log"
grep -h '^SKIP' "$CARGO_TARGET_DIR/cargo-test.log" || true

# The same integration tests with every app's store in Postgres (a database
# per app, on a cluster of their own unless TEST_POSTGRES_URL names one),
# plus the replica tests that need it. The crash tests run the binary on
# SQLite either way, so they ran above.
say "integration tests on Postgres"
if [[ -z "${TEST_POSTGRES_URL:-}" ]]; then
  source scripts/throwaway-postgres.sh
  cleanup+=(stop_throwaway_postgres)
fi
cargo test --features ssr --test api -- --skip crash_recovery 2>&1 | tee "$CARGO_TARGET_DIR/cargo-test-postgres.log"

# PubMedQA: hybrid must beat dense and BM25. Long documents (PolicyQA): the
# app must stay ahead of the LangChain-default peers run beside it (installs
# them on first use). The follow-up evaluation runs the chat model for a few
# minutes: scripts/eval.sh runs it.
say "retrieval evaluations (PubMedQA, long documents against the peers)"
scripts/eval.sh pubmedqa long

say "building the site (release) for end2end tests"
cargo leptos build --release

say "end2end tests in Chromium"
cd end2end
if [[ ! -d node_modules/@playwright/test ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
RAGCHAT_BIN="$CARGO_TARGET_DIR/release/ragchat" CHROMIUM="$(command -v chromium)" npx playwright test
