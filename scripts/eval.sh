#!/usr/bin/env bash
# Retrieval evaluations through the app's own ingestion and retrieval (the
# release-built eval binary, src/bin/eval/), each with a bar to pass:
#   pubmedqa   PubMedQA's 1,000 short abstracts: recall@1/5/10 and MRR for
#              dense, BM25 and hybrid; hybrid must beat both. SKIP when the
#              data is missing (default ../shared/data/pubmedqa/ori_pqal.json).
#   long       PolicyQA's long privacy policies with answer spans, beside the
#              LangChain-default peers (BM25, all-MiniLM-L6-v2, their RRF) on
#              the same documents; installs the peers (scripts/peers-venv.sh).
#   followups  two-turn follow-ups on the same policies: as they stand,
#              rewritten by the chat's rewriter (loads the chat model), and as
#              standalone questions.
# Usage:
#   scripts/eval.sh                          # all three, in this order
#   scripts/eval.sh long followups           # a subset (still in this order)
#   scripts/eval.sh [pubmedqa] path/to/ori_pqal.json   # a lone path: PubMedQA only, as before
# Every selected evaluation runs even when one fails; exits non-zero naming
# those that failed. The binary's stderr (JSON logs, the peers' progress)
# goes to $CARGO_TARGET_DIR/eval-NAME.log; its tail is shown on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CALLER_DIR=$PWD  # a relative PubMedQA path is the caller's
cd "$ROOT"
POLICYQA="tests/fixtures/policyqa/dev.json.gz,tests/fixtures/policyqa/test.json.gz"
FOLLOWUPS="tests/fixtures/followups/policyqa.json"
ALL=(pubmedqa long followups)

declare -A selected=()
PUBMEDQA=""
for arg in "$@"; do
  case "$arg" in
    pubmedqa | long | followups) selected[$arg]=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *.json) [[ "$arg" == /* ]] && PUBMEDQA="$arg" || PUBMEDQA="$CALLER_DIR/$arg" ;;
    *) echo "eval.sh: unknown evaluation '$arg' (pubmedqa, long, followups, or a PubMedQA .json path)" >&2; exit 2 ;;
  esac
done
if [[ ${#selected[@]} -eq 0 ]]; then
  if [[ -n "$PUBMEDQA" ]]; then selected[pubmedqa]=1; else for name in "${ALL[@]}"; do selected[$name]=1; done; fi
fi

source scripts/setup.sh
# Incremental caches only grow in the shared target dir (see scripts/test.sh).
export CARGO_INCREMENTAL=0

say "building the eval binary (release)"
cargo build --quiet --release --features ssr --bin eval
EVAL="$CARGO_TARGET_DIR/release/eval"

if [[ -n "${selected[long]:-}" ]]; then
  source scripts/peers-venv.sh  # exports RAGCHAT_PEERS_PYTHON, which the binary runs the peers with
fi

failed=()
passed=()
skipped=()
# run NAME ARGS...: one evaluation; its stdout (the report) to the terminal.
run() {
  local name=$1 log="$CARGO_TARGET_DIR/eval-$1.log" started=$SECONDS status=0
  shift
  say "$name: eval $*"
  "$EVAL" "$@" 2>"$log" || status=$?
  if [[ $status -eq 0 ]]; then
    passed+=("$name")
    say "$name: passed ($((SECONDS - started)) s)"
  else
    failed+=("$name")
    # Exit 1 is also a missed bar, which the report above already says; an
    # error or a panic is only in the log.
    if grep -qE '^Error:|panicked at' "$log"; then
      say "$name: FAILED, exit $status ($((SECONDS - started)) s); from $log:"
      awk '/^Error:|panicked at/ { on = 1 } /^(Stack )?backtrace:/ { on = 0 } on && !/^\{/ && n++ < 20' "$log" >&2
    else
      say "$name: FAILED, exit $status ($((SECONDS - started)) s): a bar was missed (see above; logs in $log)"
    fi
  fi
}

if [[ -n "${selected[pubmedqa]:-}" ]]; then
  if [[ -n "$PUBMEDQA" && ! -f "$PUBMEDQA" ]]; then
    say "pubmedqa: FAILED: $PUBMEDQA not found"
    failed+=(pubmedqa)
  elif [[ -z "$PUBMEDQA" && ! -f "$ROOT/../shared/data/pubmedqa/ori_pqal.json" ]]; then
    echo "SKIP pubmedqa: $ROOT/../shared/data/pubmedqa/ori_pqal.json not found (pass a path to ori_pqal.json)"
    skipped+=(pubmedqa)
  else
    run pubmedqa pubmedqa "${PUBMEDQA:-$ROOT/../shared/data/pubmedqa/ori_pqal.json}"
  fi
fi
[[ -z "${selected[long]:-}" ]] || run long long "$POLICYQA"
[[ -z "${selected[followups]:-}" ]] || run followups followups "$POLICYQA" "$FOLLOWUPS"

echo
echo "eval: passed: ${passed[*]:-none}; failed: ${failed[*]:-none}${skipped[*]:+; skipped: ${skipped[*]}}"
[[ ${#failed[@]} -eq 0 ]]
