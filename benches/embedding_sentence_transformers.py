#!/usr/bin/env python3
"""The sentence-transformers side of benches/embedding.rs: embeds the texts
the Rust bench wrote, times each run and each single query, saves the vectors
of the last run and prints one JSON line:
{"chunks_per_s": [...], "query_ms": [...], "vectors_file": "..."}.
"""

import argparse
import json
import sys
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.texts).read_text())
    queries = json.loads(Path(args.queries).read_text())
    started = time.perf_counter()
    model = SentenceTransformer(args.model_dir, device="cpu")
    print(f"sentence-transformers: loaded in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    # Warm-up, as the Rust side warms up when it loads.
    model.encode(texts[: args.batch], batch_size=args.batch, normalize_embeddings=True)

    rates = []
    vectors = None
    for _ in range(args.runs):
        started = time.perf_counter()
        vectors = model.encode(texts, batch_size=args.batch, normalize_embeddings=True)
        rates.append(len(texts) / (time.perf_counter() - started))
    query_ms = []
    for query in queries:
        started = time.perf_counter()
        model.encode([query], batch_size=1, normalize_embeddings=True)
        query_ms.append((time.perf_counter() - started) * 1000.0)

    vectors_file = Path(args.out) / "st-vectors.json"
    vectors_file.write_text(json.dumps(vectors.tolist()))
    print(json.dumps({"chunks_per_s": rates, "query_ms": query_ms, "vectors_file": str(vectors_file)}))


if __name__ == "__main__":
    main()
