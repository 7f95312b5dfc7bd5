#!/usr/bin/env python3
"""Export a sentence-transformers model to a lexembed model directory.

    python integration/python/export_model.py SRC OUT [--precision fp32|fp16|both] [--dims 768 512 ...]

SRC is a local sentence-transformers directory or a hub id (needs hub access, e.g.
`littlejohn-ai/bge-m3-spa-law-qa`). OUT receives the sentence-transformers config files, tokenizer.json,
lexembed.json (model id, Matryoshka dims) and onnx/model.onnx (fp32, for CPU) and/or
onnx/model_fp16.onnx (fp16 for GPU, fp32 inputs and outputs). The transformer is exported with eager
attention so that ONNX Runtime's transformers optimizer can fuse attention; both graphs pass through it.
Ends by checking the ONNX output against sentence-transformers on a few sentences.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

CONFIG_FILES = [
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]
PROBE = [
    "Artículo 21. Obligación de resolver.",
    "¿Cuál es el plazo para resolver?",
    "",
    "La señora Núñez presentó «recurso» § 3.",
]


def log(msg: str) -> None:
    print(f"[export] {msg}", file=sys.stderr, flush=True)


def resolve_source(src: str) -> Path:
    if os.path.isdir(src):
        return Path(src)
    from huggingface_hub import snapshot_download

    log(f"downloading {src} from the hub")
    return Path(snapshot_download(src))


def copy_configs(src: Path, out: Path, st_model) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in CONFIG_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    modules = json.loads((src / "modules.json").read_text())
    for m in modules:
        if m.get("path"):
            dst = out / m["path"]
            dst.mkdir(parents=True, exist_ok=True)
            for f in (src / m["path"]).glob("*.json"):
                shutil.copy(f, dst / f.name)
    if (src / "tokenizer.json").is_file():
        shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            st_model.tokenizer.save_pretrained(tmp)
            shutil.copy(Path(tmp) / "tokenizer.json", out / "tokenizer.json")


class TokenEmbeddings:
    """Wraps the HF transformer so the graph returns only last_hidden_state."""

    def __new__(cls, hf_model, with_type_ids: bool):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = hf_model

            def forward(self, input_ids, attention_mask, token_type_ids=None):
                kw = {"input_ids": input_ids, "attention_mask": attention_mask}
                if token_type_ids is not None:
                    kw["token_type_ids"] = token_type_ids
                return self.m(**kw).last_hidden_state

        return Wrapped().eval()


def export_fp32(src: Path, onnx_path: Path) -> dict:
    import torch
    from transformers import AutoConfig, AutoModel

    cfg = AutoConfig.from_pretrained(src)
    hf = AutoModel.from_pretrained(src, attn_implementation="eager").eval()
    with_type_ids = getattr(cfg, "type_vocab_size", 1) > 1
    wrapped = TokenEmbeddings(hf, with_type_ids)
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    args = (ids, mask) + ((torch.zeros_like(ids),) if with_type_ids else ())
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_type_ids else [])
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    big = sum(p.numel() for p in hf.parameters()) * 4 > 1_800_000_000
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            args,
            str(onnx_path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    return {"num_heads": cfg.num_attention_heads, "hidden_size": cfg.hidden_size, "big": big}


def optimize(raw: Path, out: Path, info: dict, fp16: bool) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    m = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=info["num_heads"],
        hidden_size=info["hidden_size"],
        opt_level=0,
        use_gpu=fp16,
    )
    if fp16:
        m.convert_float_to_float16(keep_io_types=True)
    fused = {k: v for k, v in m.get_fused_operator_statistics().items() if v}
    log(f"{out.name}: fused {fused}")
    m.save_model_to_file(str(out), use_external_data_format=info["big"])


def check(out: Path, st_model, onnx_file: str) -> float:
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / onnx_file), providers=["CPUExecutionProvider"])
    feats = (getattr(st_model, "preprocess", None) or st_model.tokenize)(PROBE)
    feed = {i.name: feats[i.name].numpy() if i.name in feats else np.zeros_like(feats["input_ids"].numpy()) for i in sess.get_inputs()}
    hidden = sess.run(["last_hidden_state"], feed)[0]
    ref = st_model.encode(PROBE, convert_to_numpy=True, normalize_embeddings=True)
    # Recompute pooling the sentence-transformers way on the ONNX output.
    import torch

    feats["token_embeddings"] = torch.from_numpy(hidden)
    pooled = st_model[1](feats)["sentence_embedding"].numpy()
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    cos = float((pooled * ref).sum(axis=1).min())
    log(f"{onnx_file}: min cosine vs sentence-transformers {cos:.7f}")
    return cos


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="sentence-transformers model directory or hub id")
    ap.add_argument("out", type=Path, help="lexembed model directory to write")
    ap.add_argument("--precision", choices=["fp32", "fp16", "both"], default="fp32")
    ap.add_argument("--dims", type=int, nargs="*", default=None, help="Matryoshka dims (default: 1024 ladder or full width)")
    ap.add_argument("--model-id", default=None, help="name recorded with the vectors (default: SRC)")
    ap.add_argument("--no-optimize", action="store_true", help="skip ONNX Runtime's transformers optimizer")
    ap.add_argument("--no-record-source", action="store_true", help="do not record SRC's path in lexembed.json (st_source: where the sentence-transformers weights are, for benchmarks and oracles)")
    a = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    src = resolve_source(a.src)
    st = SentenceTransformer(str(src), device="cpu")
    copy_configs(src, a.out, st)
    full = (getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()
    dims = a.dims or ([1024, 768, 512, 256, 128, 64] if full == 1024 else [full])
    if any(d > full or d < 1 for d in dims):
        ap.error(f"--dims must be between 1 and {full}")
    meta = {"model_id": a.model_id or a.src.rstrip("/").split("/")[-1], "matryoshka_dims": sorted(set(dims), reverse=True)}
    if not a.no_record_source:
        meta["st_source"] = a.src if not os.path.isdir(a.src) else str(Path(a.src).resolve())
    (a.out / "lexembed.json").write_text(json.dumps(meta, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        log(f"exporting {src} (eager attention, opset 17)")
        info = export_fp32(src, raw)
        targets = {"fp32": ["model.onnx"], "fp16": ["model_fp16.onnx"], "both": ["model.onnx", "model_fp16.onnx"]}[a.precision]
        for name in targets:
            dst = a.out / "onnx" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if a.no_optimize:
                shutil.copy(raw, dst)
            else:
                optimize(raw, dst, info, fp16=name.endswith("fp16.onnx"))
    ok = True
    if "model.onnx" in targets:
        ok = check(a.out, st, "onnx/model.onnx") >= 0.99999
    log(f"wrote {a.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
