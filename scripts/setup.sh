#!/usr/bin/env bash
# Installs what building and running the app needs; skips what is already there.
# Sourced by scripts/run.sh and scripts/test.sh.
set -euo pipefail

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ragchat/target}
export PATH="$HOME/.cargo/bin:$PATH"

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
}

# cmake + clang build llama.cpp (llama-cpp-sys-2).
apt_install cmake clang libclang-dev pkg-config
command -v npm >/dev/null || apt_install nodejs npm

# wasm-opt for release bundles. Debian's binaryen (108) corrupts the
# reference-types table that current wasm-bindgen emits; npm's binaryen is current.
TOOLS="$HOME/.cache/ragchat/tools"
if [[ "$("$TOOLS/node_modules/.bin/wasm-opt" --version 2>/dev/null)" != *"version 132"* ]]; then
  say "installing wasm-opt (binaryen 132, from npm)"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" binaryen@132.0.0
fi
export PATH="$TOOLS/node_modules/.bin:$PATH"

if ! rustup target list --toolchain nightly --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  say "adding the wasm32 target to the nightly toolchain"
  rustup target add --toolchain nightly wasm32-unknown-unknown
fi

# A debug build of the tool: it only drives cargo, wasm-bindgen and wasm-opt,
# and makes the same site byte for byte, but builds in 4 minutes instead of 13.
if ! command -v cargo-leptos >/dev/null; then
  say "installing cargo-leptos (first time only, ~4 min)"
  cargo +nightly install cargo-leptos --locked --debug
fi

# cargo-leptos would download wasm-bindgen from GitHub; give it the exact version from Cargo.lock.
WB_VERSION=$(grep -A1 '^name = "wasm-bindgen"$' "$ROOT/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')
if [[ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$WB_VERSION" ]]; then
  say "installing wasm-bindgen-cli $WB_VERSION (~2 min)"
  cargo +nightly install wasm-bindgen-cli --version "$WB_VERSION" --force
fi

"$ROOT/scripts/fetch-models.sh"
