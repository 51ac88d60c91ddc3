#!/usr/bin/env bash
# Fuzzes everything that reads untrusted bytes with cargo fuzz (libFuzzer):
# each document parser, the chunker, the SSE and NDJSON decoders and the
# markdown sanitizer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]    (default: 60, all)
#
# Each target starts from its seeds in fuzz/corpus/<target> (read only) and
# keeps what it discovers in ~/.cache/ragchat/fuzz-corpus/<target>, so later
# runs go on from there. A crash stops the run with the input saved in
# fuzz/artifacts/<target>/: turn it into a regression test next to the code,
# then fix it. FUZZ_SANITIZER=address builds with AddressSanitizer (slower;
# the code is safe Rust, so coverage is what the default build is for).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/ragchat/fuzz-target}
SECONDS_PER_TARGET=${1:-60}
shift || true
cd "$ROOT/fuzz"
TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^ragchat-fuzz$')
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz (first time only)" >&2
  cargo +nightly install cargo-fuzz --locked
fi
SANITIZER=${FUZZ_SANITIZER:-none}
# The fuzz crate builds against the app's own dependency versions.
cp "$ROOT/Cargo.lock" Cargo.lock
for target in "${TARGETS[@]}"; do
  found="$HOME/.cache/ragchat/fuzz-corpus/$target"
  mkdir -p "$found" "artifacts/$target"
  echo "==> $target for ${SECONDS_PER_TARGET}s" >&2
  log="$found.log"
  status=0
  cargo +nightly fuzz run --sanitizer "$SANITIZER" "$target" "$found" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=20 -rss_limit_mb=4096 \
    -max_len=262144 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)' "$log" || true
  if [[ $status -ne 0 ]] || compgen -G "artifacts/$target/*" >/dev/null; then
    tail -40 "$log" >&2
    echo "FAILED: $target (exit $status); inputs that crashed it are in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
