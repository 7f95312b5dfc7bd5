#!/usr/bin/env python3
"""Make the encoder's committed test fixtures (run from the repo root; deterministic).

    python integration/python/make_fixtures.py
    python integration/python/make_fixtures.py --full-token-ids   # only xlmr-full-token-ids.json

Writes operators/encoder/tests/fixtures/:
  tiny-xlmr/                 a random-weight XLM-RoBERTa (the bge-m3 architecture: CLS pooling, Normalize)
                             as a sentence-transformers directory (weights included, ~1 MB) and a lexembed
                             model directory (onnx/model.onnx with CLS pooling and Normalize inside the
                             graph, output sentence_embedding; lexembed.json with dims 64/32/16/8);
                             max_seq_length 32 so long sentences are truncated. Its tokenizer is the real
                             XLM-R tokenizer pruned to the pieces the test sentences use plus the most
                             likely Latin pieces: every test sentence tokenizes to the same pieces as with
                             the full 250,002-piece tokenizer (checked here).
  tiny-xlmr-token-output.onnx  the same model exported the older way (output last_hidden_state, pooled by
                             lexembed), to keep that path tested.
  tiny-xlmr.golden.json      sentence-transformers token ids and embeddings per dim (see golden.py).
  xlmr-full-token-ids.json   token ids of the test sentences under the full XLM-R tokenizer, the way
                             sentence-transformers calls it (truncation longest_first at 512).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "operators/encoder/tests/fixtures"
SENTENCES = ROOT / "integration/fixtures/sentences.json"
MAX_SEQ = 32
EXTRA_PIECES = 2500
LATIN = set("abcdefghijklmnopqrstuvwxyzáéíóúüñçàèìòùâêîôûABCDEFGHIJKLMNOPQRSTUVWXYZÁÉÍÓÚÜÑ0123456789.,;:¡!¿?()«»\"'-—–/%§ºª“”")


def write_full_token_ids(sentences, full) -> None:
    """Token ids under the full XLM-R tokenizer as sentence-transformers gets them: `AutoTokenizer` on a
    model directory (transformers builds XLMRobertaTokenizer's own pipeline, which splits on whitespace
    before Metaspace: no `▁` token for leading or trailing spaces), not the bare tokenizer.json."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(full_tokenizer_path(), Path(tmp) / "tokenizer.json")
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512}))
        hf = AutoTokenizer.from_pretrained(tmp)
        enc = hf(sentences, padding=True, truncation="longest_first", max_length=512)
    ids = [[t for t, m in zip(r, ms) if m] for r, ms in zip(enc["input_ids"], enc["attention_mask"])]
    (FIX / "xlmr-full-token-ids.json").write_text(json.dumps({"max_length": 512, "vocab_size": len(full["model"]["vocab"]), "token_ids": ids}))


def full_tokenizer_path() -> Path:
    import semantra_multilingual

    return Path(semantra_multilingual.__file__).parent / "assets/multilingual-e5-small/tokenizer.json"


def prune(full: dict, sentences: list[str]) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(full))
    used = {i for s in sentences for i in tok.encode(s).ids}
    vocab = full["model"]["vocab"]
    latin = [i for i, (p, _) in enumerate(vocab) if p and all(c in LATIN or c == "▁" for c in p)]
    latin.sort(key=lambda i: -vocab[i][1])
    keep = sorted(set(range(4)) | used | set(latin[:EXTRA_PIECES]) | {i for i, (p, _) in enumerate(vocab) if len(p.strip("▁")) == 1 and p.strip("▁") in LATIN})
    remap = {old: new for new, old in enumerate(keep)}
    out = json.loads(json.dumps(full))
    out["model"]["vocab"] = [vocab[i] for i in keep]
    mask_id = len(keep)
    out["model"]["vocab"].append(["<mask>", 0.0])
    for t in out["added_tokens"]:
        t["id"] = remap.get(t["id"], mask_id)
    assert all(remap[i] == i for i in range(4)), "special ids must stay 0..3"
    pruned = Tokenizer.from_str(json.dumps(out))
    for s in sentences:
        assert pruned.encode(s).tokens == tok.encode(s).tokens, s
    return out


def make_tiny(tok_json: dict, dst: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "tokenizer.json").write_text(json.dumps(tok_json, ensure_ascii=False))
        hf_tok = XLMRobertaTokenizerFast(tokenizer_file=str(tmp / "tokenizer.json"), model_max_length=MAX_SEQ)
        cfg = XLMRobertaConfig(
            vocab_size=len(tok_json["model"]["vocab"]),
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=MAX_SEQ + 2 + 2,
            type_vocab_size=1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            initializer_range=0.5,
        )
        hf_dir = tmp / "hf"
        XLMRobertaModel(cfg).eval().save_pretrained(hf_dir)
        hf_tok.save_pretrained(hf_dir)
        word = models.Transformer(str(hf_dir), max_seq_length=MAX_SEQ)
        pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="cls")
        st = SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu")
        if dst.exists():
            shutil.rmtree(dst)
        st.save(str(dst))
    for junk in ["README.md"]:
        (dst / junk).unlink(missing_ok=True)


def run(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def main() -> int:
    FIX.mkdir(parents=True, exist_ok=True)
    sentences = json.loads(SENTENCES.read_text())
    full = json.loads(full_tokenizer_path().read_text())
    if sys.argv[1:] == ["--full-token-ids"]:
        write_full_token_ids(sentences, full)
        return 0
    pruned = prune(full, sentences)
    tiny = FIX / "tiny-xlmr"
    make_tiny(pruned, tiny)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        run("integration/python/export_model.py", str(tiny), str(out), "--dims", "64", "32", "16", "8", "--model-id", "lexembed/tiny-xlmr", "--no-record-source")
        shutil.copytree(out / "onnx", tiny / "onnx", dirs_exist_ok=True)
        shutil.copy(out / "lexembed.json", tiny / "lexembed.json")
        old = Path(tmp) / "token-output"
        run("integration/python/export_model.py", str(tiny), str(old), "--dims", "64", "--no-record-source", "--token-output")
        shutil.copy(old / "onnx/model.onnx", FIX / "tiny-xlmr-token-output.onnx")
    run("integration/python/golden.py", str(tiny), str(SENTENCES), str(FIX / "tiny-xlmr.golden.json"), "--dims", "64", "32", "16", "8")

    write_full_token_ids(sentences, full)
    total = sum(f.stat().st_size for f in FIX.rglob("*") if f.is_file())
    print(f"[fixtures] {FIX}: {total / 1e6:.2f} MB", file=sys.stderr)
    assert total < 5e6, "fixtures must stay under 5 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
