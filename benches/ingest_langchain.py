#!/usr/bin/env python3
"""The LangChain-default ingestion pipeline, for timing beside the app's:
RecursiveCharacterTextSplitter(1000, 200) -> HuggingFaceEmbeddings
(all-MiniLM-L6-v2 through sentence-transformers) -> QdrantVectorStore in
memory. Prints one JSON line:
{"documents", "chunks", "split_s", "embed_s", "store_s", "total_s", "chars",
 "vector_store", "versions"}.

Usage: ingest_langchain.py DIR_OF_TXT_FILES | INPUT.json [--model-dir DIR]
(INPUT.json as for long_doc_peers.py: {"documents": [{"id", "title", "text"}]}).
"""

import argparse
import json
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path


def read_documents(source):
    source = Path(source)
    if source.is_dir():
        return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(source.glob("*.txt"))]
    return [(d["id"], d["text"]) for d in json.loads(source.read_text())["documents"]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--model-dir", default=os.path.expanduser("~/.cache/ragchat/models/all-minilm-l6-v2"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach for the hub

    import torch
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_qdrant import QdrantVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from qdrant_client import QdrantClient, models

    class Precomputed(Embeddings):
        """Hands the store the vectors embed_s already paid for, so store_s
        is the store alone (add_documents would otherwise embed inside)."""

        def __init__(self, by_text):
            self.by_text = by_text

        def embed_documents(self, texts):
            return [self.by_text[t] for t in texts]

        def embed_query(self, text):
            raise NotImplementedError

    torch.set_num_threads(os.cpu_count())
    documents = read_documents(args.source)
    # Model load is left out of every figure: the app loads its model once at
    # startup, before any upload. batch 32 and normalised vectors are what the
    # app and sentence-transformers' own default use.
    embeddings = HuggingFaceEmbeddings(model_name=args.model_dir, model_kwargs={"device": "cpu"},
                                       encode_kwargs={"batch_size": 32, "normalize_embeddings": True})
    print(f"ingest_langchain: {len(documents)} documents", file=sys.stderr)

    started = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks = splitter.create_documents([text for _, text in documents],
                                       metadatas=[{"document_id": doc_id} for doc_id, _ in documents])
    split_s = time.perf_counter() - started

    started = time.perf_counter()
    texts = [c.page_content for c in chunks]
    vectors = embeddings.embed_documents(texts)
    embed_s = time.perf_counter() - started

    # What QdrantVectorStore.from_documents(location=":memory:") does (create
    # the collection, add_texts in batches of 64), minus its embedding calls,
    # including the "dummy_text" probe that only reads the vector size.
    started = time.perf_counter()
    client = QdrantClient(location=":memory:")
    client.create_collection("chunks", vectors_config=models.VectorParams(
        size=len(vectors[0]), distance=models.Distance.COSINE))
    store = QdrantVectorStore(client=client, collection_name="chunks", embedding=Precomputed(dict(zip(texts, vectors))),
                              validate_collection_config=False)
    store.add_documents([Document(page_content=c.page_content, metadata=c.metadata) for c in chunks])
    store_s = time.perf_counter() - started

    versions = {p: version(p) for p in ("langchain-text-splitters", "langchain-core", "langchain-huggingface",
                                         "langchain-qdrant", "qdrant-client", "sentence-transformers",
                                         "transformers", "torch")}
    versions["python"] = sys.version.split()[0]
    print(json.dumps({
        "documents": len(documents), "chunks": len(chunks),
        "split_s": round(split_s, 4), "embed_s": round(embed_s, 4), "store_s": round(store_s, 4),
        "total_s": round(split_s + embed_s + store_s, 4),
        "chars": sum(len(text) for _, text in documents),
        "vector_store": "langchain_qdrant.QdrantVectorStore (qdrant-client local mode, :memory:)",
        "versions": versions,
    }))


if __name__ == "__main__":
    main()
