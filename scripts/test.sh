#!/usr/bin/env bash
# Installs what is missing and runs every test: formatting, lints (server and
# WASM), the WASM dependency check, unit + integration tests (real embedded
# model, real llama.cpp server), and end2end tests in Debian Chromium.
# Idempotent. Used by CI (.ci/run).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/setup.sh
apt_install chromium chromium-driver
source scripts/llama-python.sh
export RAGCHAT_LLAMA_PYTHON="$LLAMA_PYTHON"

say "cargo fmt --check"
cargo fmt --all -- --check

say "clippy (server and WASM)"
cargo clippy --workspace --features ssr --all-targets -- -D warnings
cargo clippy -p ragchat -p app --target wasm32-unknown-unknown --no-default-features --features hydrate -- -D warnings

say "the WASM bundle holds no server code"
scripts/check-wasm-deps.sh

say "unit and integration tests"
cargo test --workspace --features ssr 2>&1 | tee "$CARGO_TARGET_DIR/cargo-test.log"
grep -h '^SKIP' "$CARGO_TARGET_DIR/cargo-test.log" || true

say "retrieval evaluation (PubMedQA): hybrid must beat dense and BM25"
if [[ -f "$ROOT/../shared/data/pubmedqa/ori_pqal.json" ]]; then
  cargo run --quiet --features ssr --bin eval -- "$ROOT/../shared/data/pubmedqa/ori_pqal.json" 2>/dev/null
else
  echo "SKIP retrieval evaluation: ../shared/data/pubmedqa not found"
fi

say "building the site (release) for end2end tests"
cargo leptos build --release

say "end2end tests in Chromium"
cd end2end
if [[ ! -d node_modules/@playwright/test ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
RAGCHAT_BIN="$CARGO_TARGET_DIR/release/ragchat" CHROMIUM="$(command -v chromium)" npx playwright test
