#!/usr/bin/env python3
"""Retrieval peers for the long-document QA eval: LangChain-default chunks,
then BM25, all-MiniLM-L6-v2 and their RRF over one corpus of all chunks.

Usage: long_doc_peers.py INPUT.json OUTPUT.json [--model-dir DIR]
INPUT:  {"documents": [{"id", "title", "text", "scope"}],
         "questions": [{"id", "document_id", "question", "scope"}]}
A question searches only the chunks of documents in its scope (a scope is
one reader's documents; without scopes, one corpus of all chunks).
OUTPUT: {"chunks": N,
         "pipelines": {"bm25"|"minilm"|"rrf": {question id: [{"document_id", "text"}, ...10 best first]}},
         "timings": {...seconds...}, "versions": {...}}
"""

import argparse
import json
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path

TOP_K = 10
FUSION_DEPTH = 100  # each ranking's depth fed to RRF
RRF_K = 60


def log(msg):
    print(f"long_doc_peers: {msg}", file=sys.stderr)


def rrf(rankings, k=RRF_K):
    scores = {}
    for ranking in rankings:
        for rank, idx in enumerate(ranking, start=1):
            scores[idx] = scores.get(idx, 0.0) + 1.0 / (k + rank)
    # Python's sort is stable, so ties keep first-seen order (BM25's first).
    return sorted(scores, key=scores.get, reverse=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--model-dir", default=os.path.expanduser("~/.cache/ragchat/models/all-minilm-l6-v2"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach for the hub

    import numpy as np
    import torch
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from rank_bm25 import BM25Okapi
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(os.cpu_count())
    data = json.loads(Path(args.input).read_text())
    questions = data["questions"]
    timings = {}

    started = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks = [(doc["id"], text) for doc in data["documents"] for text in splitter.split_text(doc["text"])]
    texts = [text for _, text in chunks]
    timings["split_s"] = time.perf_counter() - started
    log(f"{len(data['documents'])} documents -> {len(chunks)} chunks, {len(questions)} questions")
    scope_of_doc = {doc["id"]: doc.get("scope", "") for doc in data["documents"]}
    scopes = {}  # scope -> indices of its chunks
    for i, (doc_id, _) in enumerate(chunks):
        scopes.setdefault(scope_of_doc[doc_id], []).append(i)
    scopes = {scope: np.array(indices) for scope, indices in scopes.items()}

    # LangChain's BM25Retriever: BM25Okapi over str.split() tokens (its
    # default_preprocessing_func, no lowercasing), ranked by get_top_n, which
    # is np.argsort(scores)[::-1]; the same call keeps its tie order. One
    # index per scope, as each reader would build over their own documents.
    started = time.perf_counter()
    bm25 = {scope: BM25Okapi([texts[i].split() for i in indices]) for scope, indices in scopes.items()}
    timings["bm25_index_s"] = time.perf_counter() - started
    started = time.perf_counter()
    bm25_ranked = []
    for q in questions:
        scope = q.get("scope", "")
        order = np.argsort(bm25[scope].get_scores(q["question"].split()))[::-1][:FUSION_DEPTH]
        bm25_ranked.append(scopes[scope][order])
    timings["bm25_search_s"] = time.perf_counter() - started

    started = time.perf_counter()
    model = SentenceTransformer(args.model_dir, device="cpu")
    timings["model_load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    chunk_vecs = model.encode(texts, batch_size=32, normalize_embeddings=True)
    timings["embed_s"] = time.perf_counter() - started
    started = time.perf_counter()
    query_vecs = model.encode([q["question"] for q in questions], batch_size=32, normalize_embeddings=True)
    timings["query_embed_s"] = time.perf_counter() - started
    log(f"embedded {len(texts)} chunks in {timings['embed_s']:.2f} s")
    # Normalised vectors: the dot product is the cosine.
    started = time.perf_counter()
    dense_ranked = []
    for q, vec in zip(questions, query_vecs):
        indices = scopes[q.get("scope", "")]
        sims = chunk_vecs[indices] @ vec
        dense_ranked.append(indices[np.argsort(-sims, kind="stable")[:FUSION_DEPTH]])
    timings["dense_search_s"] = time.perf_counter() - started

    def hits(ranking):
        return [{"document_id": chunks[i][0], "text": chunks[i][1]} for i in ranking[:TOP_K]]

    pipelines = {"bm25": {}, "minilm": {}, "rrf": {}}
    for q, b, d in zip(questions, bm25_ranked, dense_ranked):
        pipelines["bm25"][q["id"]] = hits(b)
        pipelines["minilm"][q["id"]] = hits(d)
        pipelines["rrf"][q["id"]] = hits(rrf([b.tolist(), d.tolist()]))

    versions = {p: version(p) for p in ("sentence-transformers", "transformers", "torch",
                                         "langchain-text-splitters", "rank-bm25", "numpy")}
    versions["python"] = sys.version.split()[0]
    timings = {k: round(v, 4) for k, v in timings.items()}
    Path(args.output).write_text(json.dumps(
        {"chunks": len(chunks), "pipelines": pipelines, "timings": timings, "versions": versions}))
    log(f"timings {timings}")


if __name__ == "__main__":
    main()
