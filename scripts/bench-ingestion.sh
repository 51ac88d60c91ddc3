#!/usr/bin/env bash
# Ingestion benchmark, side by side on the same documents and machine: the
# app's whole upload-to-indexed path (`eval ingest`: parse in the sandboxed
# worker, chunk, embed with OpenVINO, index in Qdrant Edge, bookkeeping in
# the store) against the LangChain-default pipeline
# (benches/ingest_langchain.py: RecursiveCharacterTextSplitter 1000/200,
# HuggingFaceEmbeddings on torch float32, QdrantVectorStore in memory).
# Neither figure includes loading the model: the app loads it at startup.
# The two run alternately, BENCH_RUNS times (default 3), twice over: the app
# as configured (OpenVINO computes in bfloat16 where the CPU has AVX512-BF16
# or AMX), then with APP__EMBEDDING__FLOAT32=true (what a CPU without them
# runs). Prints per-run figures, medians, the ratio, the app's stages and a
# markdown table to paste.
#   BENCH_RUNS=3 BENCH_FILES=a.json.gz,b.json scripts/bench-ingestion.sh
# BENCH_FILES: SQuAD-format files (default: PolicyQA's dev and test sets,
# 40 privacy policies of 2–36k characters).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/setup.sh
# Incremental caches only grow in the shared target dir (see scripts/test.sh).
export CARGO_INCREMENTAL=0
source scripts/peers-venv.sh

RUNS=${BENCH_RUNS:-3}
FILES=${BENCH_FILES:-tests/fixtures/policyqa/dev.json.gz,tests/fixtures/policyqa/test.json.gz}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_RUNS must be a positive integer, not '$RUNS'" >&2; exit 2; }

say "building the eval binary (release)"
cargo build --release --features ssr --bin eval
EVAL="$CARGO_TARGET_DIR/release/eval"

WORK=$(mktemp -d /tmp/ragchat-bench-ingestion.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The peer's input: the same documents as the app's loader makes them
# (src/bin/eval/squad.rs): the title with '_' as ' ', then each paragraph
# after a blank line, trimmed of what Rust's str::trim trims (Unicode
# White_Space, a slightly different set from Python's str.strip()).
python3 - "$FILES" "$WORK/input.json" <<'PY'
import gzip, json, sys
RUST_WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
documents = []
for path in sys.argv[1].split(","):
    raw = open(path, "rb").read()
    for article in json.loads(gzip.decompress(raw) if path.endswith(".gz") else raw)["data"]:
        title = article["title"].replace("_", " ")
        text = title + "".join("\n\n" + p["context"].strip(RUST_WHITE_SPACE) for p in article["paragraphs"])
        key = article["title"].replace("/", "-").replace("\\", "-") + ".txt"
        documents.append({"id": key, "title": title, "text": text})
json.dump({"documents": documents}, open(sys.argv[2], "w"))
PY

MODEL_ARGS=()
if [[ -n "${APP__EMBEDDING__MODEL_DIR:-}" ]]; then MODEL_ARGS=(--model-dir "$APP__EMBEDDING__MODEL_DIR"); fi

CPU_MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
CPU_FLAGS=$(grep -m1 '^flags' /proc/cpuinfo)
has_flag() { [[ " ${CPU_FLAGS#*:} " == *" $1 "* ]] && echo yes || echo no; }
AVX512_BF16=$(has_flag avx512_bf16)
AMX_BF16=$(has_flag amx_bf16)
AMX_TILE=$(has_flag amx_tile)
if [[ $AVX512_BF16 == yes || $AMX_BF16 == yes ]]; then NATIVE=bfloat16; else NATIVE=float32; fi
say "CPU: $CPU_MODEL, $(nproc) threads; avx512_bf16: $AVX512_BF16, amx_bf16: $AMX_BF16, amx_tile: $AMX_TILE (OpenVINO's choice here: $NATIVE)"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# run_app PASS RUN / run_langchain PASS RUN: one ingestion each, its JSON
# line appended to $WORK/PASS-{app,langchain}.jsonl; stderr (JSON logs,
# progress bars) to a log shown only on failure.
run_one() {
  local out=$1 log=$2
  shift 2
  if ! "$@" >"$WORK/line" 2>"$log"; then
    echo "failed: $*" >&2
    grep -v '^{' "$log" | tail -n 20 >&2 || true
    exit 1
  fi
  tail -n 1 "$WORK/line" >>"$out"
}
run_app() {
  if [[ $1 == f32 ]]; then
    APP__EMBEDDING__FLOAT32=true run_one "$WORK/$1-app.jsonl" "$WORK/app.log" "$EVAL" ingest "$FILES"
  else
    run_one "$WORK/$1-app.jsonl" "$WORK/app.log" "$EVAL" ingest "$FILES"
  fi
  say "  run $2: app       $(tail -n 1 "$WORK/$1-app.jsonl")"
}
run_langchain() {
  run_one "$WORK/$1-langchain.jsonl" "$WORK/langchain.log" \
    "$RAGCHAT_PEERS_PYTHON" benches/ingest_langchain.py "$WORK/input.json" "${MODEL_ARGS[@]}"
  say "  run $2: LangChain $(tail -n 1 "$WORK/$1-langchain.jsonl" | python3 -c 'import json, sys; d = json.load(sys.stdin); d.pop("versions"); d.pop("vector_store"); print(json.dumps(d))')"
}

for pass in configured f32; do
  if [[ $pass == configured ]]; then
    say "pass 1 of 2: the app as configured (${APP__EMBEDDING__FLOAT32:+APP__EMBEDDING__FLOAT32=$APP__EMBEDDING__FLOAT32, }OpenVINO's choice: $NATIVE), $RUNS run(s)"
  else
    say "pass 2 of 2: the app with APP__EMBEDDING__FLOAT32=true, $RUNS run(s)"
  fi
  for run in $(seq "$RUNS"); do
    # Alternate which goes first, so neither always runs on a warmer or
    # quieter machine.
    if ((run % 2)); then run_app $pass "$run"; run_langchain $pass "$run"
    else run_langchain $pass "$run"; run_app $pass "$run"; fi
  done
done
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$WORK" "$RUNS" "$NATIVE" "$CPU_MODEL" "$(nproc)" "$AVX512_BF16" "$AMX_BF16" "${APP__EMBEDDING__FLOAT32:-}" <<'PY'
import json, statistics, sys
from pathlib import Path
work, runs, native, cpu, threads, avx512_bf16, amx_bf16, configured_f32 = sys.argv[1:]
load = lambda name: [json.loads(l) for l in Path(work, name).read_text().splitlines()]
med = lambda rows, key: statistics.median(r[key] for r in rows)
STAGES = ("parse_s", "chunk_s", "embed_s", "index_s", "bookkeeping_s")
configured = "float32" if configured_f32.lower() in ("true", "1") else native
passes = [("configured", f"as configured ({configured})"), ("f32", "APP__EMBEDDING__FLOAT32=true (float32)")]
results = {}
for key, label in passes:
    app, lc = load(f"{key}-app.jsonl"), load(f"{key}-langchain.jsonl")
    results[key] = (label, app, lc)
    print(f"\n## App {label} vs LangChain (torch float32), {runs} run(s) each, alternating\n")
    print("run | app total s | LangChain total s | LangChain / app")
    for i, (a, l) in enumerate(zip(app, lc), 1):
        print(f"{i:>3} | {a['total_s']:>11.2f} | {l['total_s']:>17.2f} | {l['total_s'] / a['total_s']:.2f}x")
    a_tot, l_tot = med(app, "total_s"), med(lc, "total_s")
    print(f"median | {a_tot:.2f} s | {l_tot:.2f} s | ratio LangChain / app {l_tot / a_tot:.2f}x")
    print(f"app: {app[0]['documents']} documents, {app[0]['chars']:,} chars -> {app[0]['chunks']} chunks, "
          f"{app[0]['chars'] / a_tot:,.0f} chars/s")
    print(f"LangChain: {lc[0]['documents']} documents, {lc[0]['chars']:,} chars -> {lc[0]['chunks']} chunks, "
          f"{lc[0]['chars'] / l_tot:,.0f} chars/s "
          f"(split {med(lc, 'split_s'):.2f} s, embed {med(lc, 'embed_s'):.2f} s, store {med(lc, 'store_s'):.2f} s)")
    if app[0]["chars"] != lc[0]["chars"] or app[0]["documents"] != lc[0]["documents"]:
        print("WARNING: the two pipelines did not get the same documents (counts differ)")
    print("app stages (median; they may overlap, so the shares need not add up to 100 %):")
    for s in STAGES:
        print(f"  {s[:-2]:<12} {med(app, s):7.3f} s  {100 * med(app, s) / a_tot:5.1f} %")

versions = results["configured"][2][0]["versions"]
print(f"\n## Markdown\n")
print(f"{cpu}, {threads} threads (avx512_bf16: {avx512_bf16}, amx_bf16: {amx_bf16}); "
      f"{results['configured'][1][0]['documents']} PolicyQA documents, "
      f"{results['configured'][1][0]['chars']:,} characters; median of {runs} alternating run(s); "
      f"model load excluded; LangChain: langchain-text-splitters {versions['langchain-text-splitters']}, "
      f"langchain-huggingface {versions['langchain-huggingface']}, langchain-qdrant {versions['langchain-qdrant']}, "
      f"sentence-transformers {versions['sentence-transformers']}, torch {versions['torch']}.\n")
print("| pipeline | embedding | chunks | upload to indexed (median) | chars/s | LangChain / app |")
print("|---|---|---|---|---|---|")
for key, (label, app, lc) in results.items():
    a_tot, l_tot = med(app, "total_s"), med(lc, "total_s")
    precision = "float32, forced" if key == "f32" else f"{configured}, as configured"
    print(f"| ragchat (`eval ingest`) | OpenVINO {precision} | {app[0]['chunks']} | {a_tot:.2f} s "
          f"| {app[0]['chars'] / a_tot:,.0f} | **{l_tot / a_tot:.1f}×** |")
    print(f"| LangChain default (1000/200, in-memory Qdrant) | torch float32 | {lc[0]['chunks']} | {l_tot:.2f} s "
          f"| {lc[0]['chars'] / l_tot:,.0f} | 1× |")
print()
heads = [f"{'float32' if k == 'f32' else configured}" for k in results]
print("| app stage | " + " | ".join(f"{h}: s (median) | {h}: % of total" for h in heads) + " |")
print("|---|" + "---|---|" * len(heads))
for s in STAGES + ("total_s",):
    cells = []
    for key, (label, app, lc) in results.items():
        cells += [f"{med(app, s):.3f}", f"{100 * med(app, s) / med(app, 'total_s'):.1f} %"]
    print(f"| {s[:-2]} | " + " | ".join(cells) + " |")
PY
