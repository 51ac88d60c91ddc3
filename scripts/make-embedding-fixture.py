#!/usr/bin/env python3
"""Writes tests/fixtures/embeddings.json: a few fixed texts and their
all-MiniLM-L6-v2 vectors from sentence-transformers (float32, on CPU), the
reference the local embedder is tested against.

    make-embedding-fixture.py [MODEL_DIR] > tests/fixtures/embeddings.json

MODEL_DIR defaults to the directory scripts/fetch-embedding-model.sh fills.
Needs sentence-transformers and torch (scripts/bench-embedding.sh installs
them into ~/.cache/ragchat/st-venv).
"""

import json
import os
import sys
from pathlib import Path

# A long passage: well over the model's 256 tokens, so the fixture pins down
# truncation (sentence-transformers keeps the first 254 word pieces).
LONG = (
    "Programmed cell death is the regulated death of cells within an organism. "
    "The lace plant produces perforations in its leaves through programmed cell death, "
    "and the leaves consist of a latticework of longitudinal and transverse veins "
    "enclosing areoles. Cell death occurs in the cells at the centre of these areoles "
    "and progresses outwards, stopping approximately five cells from the vasculature. "
    "The role of mitochondria during programmed cell death has been recognised in "
    "animals; however, it has been less studied in plants. A single areole within a "
    "window stage leaf was divided into three areas based on the progression of cell "
    "death: cells that will not die, cells in early stages, and cells in late stages. "
    "Window stage leaves were stained with a mitochondrial dye and examined. "
    "Mitochondrial dynamics were delineated into four categories based on "
    "characteristics including distribution, motility, and membrane potential. "
    "A TUNEL assay showed fragmented nuclear DNA in a gradient over these "
    "mitochondrial stages. Chloroplasts and transvacuolar strands were also examined "
    "using live cell imaging. The possible importance of mitochondrial permeability "
    "transition pore formation was indirectly examined via in vivo cyclosporine A "
    "treatment. This treatment resulted in lace plant leaves with a significantly "
    "lower number of perforations compared to controls, and that displayed "
    "mitochondrial dynamics similar to that of non-dying cells. Taken together, the "
    "results suggest that mitochondria play a critical role in developmentally "
    "regulated cell death in the lace plant, and that the permeability transition "
    "pore may be involved in the signalling that precedes the collapse of the cell. "
    "Further work with genetic markers will be needed to separate these stages in "
    "time and to decide which of the observed changes cause death and which follow it."
)

TEXTS = [
    ("short", "Hello world"),
    ("query", "What are the side effects of metformin in elderly patients?"),
    (
        "accents_and_scripts",
        "Café au lait, crème brûlée et naïveté — déjà vu à Zürich! Ünïcödé 東京タワー 🚀",
    ),
    (
        "code",
        'fn main() {\n    let squares: Vec<u32> = (0..10).map(|x| x * x).collect();\n'
        '    println!("{:?}", squares);\n}',
    ),
    ("long_truncated", LONG),
    ("whitespace_only", "   \n\t  "),
]


def main():
    default = Path(
        os.environ.get("RAGCHAT_MODEL_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ragchat" / "models"
    ) / "all-minilm-l6-v2"
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(str(model_dir), device="cpu")
    texts = [t for _, t in TEXTS]
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    tokenizer = model.tokenizer
    items = []
    for (name, text), vector in zip(TEXTS, vectors):
        tokens = len(tokenizer(text, add_special_tokens=True)["input_ids"])
        items.append(
            {
                "name": name,
                "text": text,
                "tokens_untruncated": tokens,
                "vector": [float(f"{x:.9g}") for x in vector],
            }
        )
    if items[4]["tokens_untruncated"] <= model.max_seq_length:
        sys.exit("the long text no longer exceeds the model's window")
    header = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "produced_by": (
            f"scripts/make-embedding-fixture.py: sentence-transformers "
            f"{sentence_transformers.__version__}, torch {torch.__version__}, float32 on CPU"
        ),
        "max_seq_length": model.max_seq_length,
    }
    # One item per line block, each vector on one line: readable diffs.
    out = sys.stdout
    out.write("{\n")
    for key, value in header.items():
        out.write(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n")
    out.write(' "items": [\n')
    for i, item in enumerate(items):
        vector = item.pop("vector")
        fields = ", ".join(
            f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in item.items()
        )
        comma = "," if i + 1 < len(items) else ""
        out.write(f"  {{{fields},\n   \"vector\": {json.dumps(vector)}}}{comma}\n")
    out.write(" ]\n}\n")


if __name__ == "__main__":
    main()
