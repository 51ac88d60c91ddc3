#!/usr/bin/env bash
# Retrieval quality on PubMedQA: ingests the 1,000 abstracts through the app's
# own document pipeline and prints recall@1/5/10 and MRR for dense, BM25 and
# hybrid retrieval (exits non-zero if hybrid does not beat both).
#   scripts/eval.sh [path/to/ori_pqal.json]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/setup.sh
DATA="${1:-$ROOT/../shared/data/pubmedqa/ori_pqal.json}"
say "retrieval evaluation on $DATA"
cargo run --quiet --features ssr --bin eval -- "$DATA"
