#!/usr/bin/env python3
"""Golden embeddings from sentence-transformers, the reference lexembed's encoder is tested against.

    python integration/python/golden.py MODEL_DIR SENTENCES.json OUT.json --dims D... [--prompt-name NAME]

MODEL_DIR is a lexembed model directory whose sentence-transformers weights are loadable (the export's
source, or a fixture directory with model.safetensors). For every sentence: the token ids the
sentence-transformers tokenizer produces, and for every Matryoshka dim in lexembed.json the embedding
truncated to that dim and L2-renormalised (float32, as lists). With --prompt-name, as
`encode(prompt_name=NAME)` embeds them: the model's prompt before every sentence, in the token ids too.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def st_token_ids(model, sentences: list[str]) -> list[list[int]]:
    prep = getattr(model, "preprocess", None) or model.tokenize
    feats = prep(sentences)
    ids = feats["input_ids"].tolist()
    mask = feats["attention_mask"].tolist()
    return [[t for t, m in zip(row, ms) if m] for row, ms in zip(ids, mask)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("st_dir", help="sentence-transformers directory with weights")
    ap.add_argument("sentences", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dims", type=int, nargs="+", required=True)
    ap.add_argument("--prompt-name", help="one of the model's prompts (config_sentence_transformers.json)")
    a = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(a.st_dir, device="cpu")
    sentences = json.loads(a.sentences.read_text())
    prompt = model.prompts[a.prompt_name] if a.prompt_name else ""
    full = model.encode(
        sentences, batch_size=8, convert_to_numpy=True, prompt_name=a.prompt_name
    ).astype(np.float32)
    per_dim = {}
    for d in a.dims:
        t = full[:, :d]
        t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        per_dim[str(d)] = t.astype(np.float32).tolist()
    out = {
        "model": str(a.st_dir),
        "max_seq_length": model.max_seq_length,
        "sentences": sentences,
        "prompt_name": a.prompt_name,
        # sentence-transformers puts the prompt before the text and tokenizes them together.
        "token_ids": st_token_ids(model, [prompt + s for s in sentences]),
        "embeddings": per_dim,
    }
    a.out.write_text(json.dumps(out, ensure_ascii=False))
    print(f"[golden] {len(sentences)} sentences, dims {a.dims}, prompt {prompt!r} -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
