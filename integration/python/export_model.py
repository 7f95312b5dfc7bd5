#!/usr/bin/env python3
"""Export a sentence-transformers model to a lexembed model directory.

    python integration/python/export_model.py SRC OUT [--precision fp32|fp16|both] [--dims 768 512 ...]

SRC is a local sentence-transformers directory or a hub id (needs hub access, e.g.
`littlejohn-ai/bge-m3-spanish-boe-qa`). OUT receives the sentence-transformers config files, tokenizer.json,
lexembed.json (model id, Matryoshka dims) and onnx/model.onnx (fp32, for CPU) and/or
onnx/model_fp16.onnx (fp16 for GPU, fp32 inputs and outputs).

Each graph's single output is `sentence_embedding` [batch, dim]: the pooling that modules.json names
(CLS, mean, max or last token) and the Normalize module, when listed, run inside the graph, in fp32 even
in the fp16 graph (appended after the transformer's output cast). So a GPU copies back one row per text,
not the whole hidden state. `--token-output` writes the older form instead (`last_hidden_state`, pooled
by lexembed), which lexembed still reads.

The transformer is exported with eager attention so that ONNX Runtime's transformers optimizer can fuse
attention; the script prints the fused operator counts and fails when no Attention was fused (unless
`--no-optimize`). Ends by checking every graph against sentence-transformers on a few sentences: fp32
must reach min cosine 0.99999, fp16 0.999.
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
# How lexembed opens a CPU session on an exported graph (runtime/session.rs): ONNX Runtime must not fuse
# the fp32 graph's Add + LayerNormalization back into its slower SkipLayerNormalization (see optimize).
CPU_SESSION_CONFIG = {"optimization.disable_specified_optimizers": "SkipLayerNormFusion"}
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


def pooling_mode(src: Path) -> tuple[str, bool]:
    """The Pooling module's mode and whether a Normalize module follows, from modules.json."""
    modules = json.loads((src / "modules.json").read_text())
    pool = next((m for m in modules if m["type"].endswith("Pooling")), None)
    if pool is None:
        raise SystemExit(f"{src}/modules.json lists no Pooling module")
    cfg = json.loads((src / pool["path"] / "config.json").read_text())
    mode = cfg.get("pooling_mode")
    if not mode:
        on = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True]
        if len(on) != 1:
            raise SystemExit(f"{src}/{pool['path']}/config.json: expected one pooling mode, found {on}")
        mode = on[0][len("pooling_mode_"):]
    mode = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max", "last_token": "lasttoken"}.get(mode, mode)
    if mode not in ("cls", "mean", "max", "lasttoken"):
        raise SystemExit(f"pooling mode {mode!r} cannot be put in the graph (cls, mean, max, lasttoken)")
    normalize = any(m["type"].endswith("Normalize") for m in modules)
    return mode, normalize


def append_pooling(model, mode: str, normalize: bool) -> None:
    """Appends pooling (+ L2 normalisation) in fp32 after `last_hidden_state`; the graph's only output
    becomes `sentence_embedding` [batch, hidden]. Matches sentence-transformers: mean divides by the
    mask count clamped at 1e-9, max fills padding with -1e9, normalise divides by max(norm, 1e-12)."""
    import onnx
    from onnx import TensorProto, helper

    g = model.graph
    hidden_out = next(o for o in g.output if o.name == "last_hidden_state")
    if hidden_out.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise SystemExit("last_hidden_state must be float32 (fp16 graphs keep fp32 outputs)")
    hidden = hidden_out.type.tensor_type.shape.dim[2]
    nodes, inits = [], []

    def const(name, value, dtype=TensorProto.FLOAT):
        inits.append(helper.make_tensor(name, dtype, [len(value)] if isinstance(value, list) else [], value if isinstance(value, list) else [value]))
        return name

    def node(op, inputs, out, **attrs):
        nodes.append(helper.make_node(op, inputs, [out], name=f"lexembed_pool/{out}", **attrs))
        return out

    h, mask = "last_hidden_state", "attention_mask"
    if mode == "cls":
        pooled = node("Gather", [h, const("lexembed_pool/zero", 0, TensorProto.INT64)], "pool_cls", axis=1)
    elif mode in ("mean", "max"):
        m = node("Cast", [mask], "pool_mask_f", to=TensorProto.FLOAT)
        m3 = node("Unsqueeze", [m, const("lexembed_pool/axis2", [2], TensorProto.INT64)], "pool_mask3")
        axis1 = const("lexembed_pool/axis1", [1], TensorProto.INT64)
        if mode == "mean":
            summed = node("ReduceSum", [node("Mul", [h, m3], "pool_masked"), axis1], "pool_sum", keepdims=0)
            count = node("ReduceSum", [m3, axis1], "pool_count", keepdims=0)
            count = node("Max", [count, const("lexembed_pool/tiny", 1e-9)], "pool_count_clamped")
            pooled = node("Div", [summed, count], "pool_mean")
        else:
            is_pad = node("Equal", [m3, const("lexembed_pool/fzero", 0.0)], "pool_is_pad")
            filled = node("Where", [is_pad, const("lexembed_pool/neg", -1e9), h], "pool_filled")
            pooled = node("ReduceMax", [filled], "pool_max", axes=[1], keepdims=0)
    else:  # lasttoken: the last position whose mask is 1 (right padding)
        axis1 = const("lexembed_pool/axis1", [1], TensorProto.INT64)
        n = node("ReduceSum", [mask, axis1], "pool_len", keepdims=1)
        last = node("Sub", [n, const("lexembed_pool/one", [1], TensorProto.INT64)], "pool_last")
        last = node("Max", [last, const("lexembed_pool/izero", [0], TensorProto.INT64)], "pool_last_clamped")
        idx = node("Unsqueeze", [last, const("lexembed_pool/axis2", [2], TensorProto.INT64)], "pool_last3")
        shape = node("Shape", [h], "pool_hshape")
        b = node("Slice", [shape, const("lexembed_pool/s0", [0], TensorProto.INT64), const("lexembed_pool/s1", [1], TensorProto.INT64)], "pool_b")
        d = node("Slice", [shape, const("lexembed_pool/s2", [2], TensorProto.INT64), const("lexembed_pool/s3", [3], TensorProto.INT64)], "pool_d")
        target = node("Concat", [b, const("lexembed_pool/one1", [1], TensorProto.INT64), d], "pool_target", axis=0)
        idx = node("Expand", [idx, target], "pool_idx")
        picked = node("GatherElements", [h, idx], "pool_picked", axis=1)
        pooled = node("Squeeze", [picked, axis1], "pool_last_token")
    out = pooled
    if normalize:
        norm = node("ReduceL2", [pooled], "pool_norm", axes=[1], keepdims=1)
        norm = node("Max", [norm, const("lexembed_pool/eps", 1e-12)], "pool_norm_clamped")
        out = node("Div", [pooled, norm], "pool_normalized")
    nodes.append(helper.make_node("Identity", [out], ["sentence_embedding"], name="lexembed_pool/output"))
    g.node.extend(nodes)
    g.initializer.extend(inits)
    batch = hidden_out.type.tensor_type.shape.dim[0]
    vi = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, [batch.dim_param or "batch", hidden.dim_value or hidden.dim_param or None])
    while len(g.output):
        g.output.pop()
    g.output.append(vi)


def optimize(raw: Path, out: Path, info: dict, fp16: bool) -> None:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusion = FusionOptions("bert")
    # The fp32 graph runs on the CPU, where ONNX Runtime's SkipLayerNormalization kernel is 3-4x slower
    # than Add + LayerNormalization (1.02 against 0.31 ms at 1,024 x 384, 2 threads; bench_skip_layer_norm.py):
    # ~10% of an e5-small call (BENCHMARKS.md). So the CPU graph keeps them apart (and lexembed's CPU session
    # does not fuse them back); the fp16 graph, for GPUs, keeps the fused kernel.
    fusion.enable_skip_layer_norm = fp16
    m = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=info["num_heads"],
        hidden_size=info["hidden_size"],
        opt_level=0,
        use_gpu=fp16,
        optimization_options=fusion,
    )
    if fp16:
        m.convert_float_to_float16(keep_io_types=True)
    fused = {k: v for k, v in m.get_fused_operator_statistics().items() if v}
    log(f"{out.name}: fused {fused}")
    if not any(fused.get(k) for k in ("Attention", "MultiHeadAttention", "PackedAttention")):
        raise SystemExit(f"{out.name}: ONNX Runtime's optimizer fused no Attention (fused: {fused}); "
                         "the graph would run unfused. Export with eager attention, or pass --no-optimize to accept it")
    if info.get("pool"):
        append_pooling(m.model, *info["pool"])
    m.save_model_to_file(str(out), use_external_data_format=info["big"])


def check(out: Path, st_model, onnx_file: str) -> float:
    """Min cosine between the graph's embeddings (pooled in the graph, or pooled here the
    sentence-transformers way from token embeddings) and sentence-transformers' own."""
    import numpy as np
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if onnx_file.endswith("fp16.onnx"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            log(f"{onnx_file}: not checked here (fp16 runs on CUDA; this ONNX Runtime has no CUDA provider)")
            return 1.0
        providers = ["CUDAExecutionProvider"]
    so = ort.SessionOptions()
    if providers == ["CPUExecutionProvider"]:
        for key, value in CPU_SESSION_CONFIG.items():
            so.add_session_config_entry(key, value)
    sess = ort.InferenceSession(str(out / onnx_file), so, providers=providers)
    feats = (getattr(st_model, "preprocess", None) or st_model.tokenize)(PROBE)
    feed = {i.name: feats[i.name].numpy() if i.name in feats else np.zeros_like(feats["input_ids"].numpy()) for i in sess.get_inputs()}
    ref = st_model.encode(PROBE, convert_to_numpy=True, normalize_embeddings=True)
    name = sess.get_outputs()[0].name
    got = sess.run([name], feed)[0].astype(np.float32)
    if name != "sentence_embedding":
        import torch

        feats["token_embeddings"] = torch.from_numpy(got)
        got = st_model[1](feats)["sentence_embedding"].numpy()
    got /= np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
    cos = float((got * ref).sum(axis=1).min())
    log(f"{onnx_file}: output {name} {list(got.shape)}, min cosine vs sentence-transformers {cos:.7f}")
    return cos


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="sentence-transformers model directory or hub id")
    ap.add_argument("out", type=Path, help="lexembed model directory to write")
    ap.add_argument("--precision", choices=["fp32", "fp16", "both"], default="fp32")
    ap.add_argument("--dims", type=int, nargs="*", default=None, help="Matryoshka dims (default: 1024 ladder or full width)")
    ap.add_argument("--model-id", default=None, help="name recorded with the vectors (default: SRC)")
    ap.add_argument("--no-optimize", action="store_true", help="skip ONNX Runtime's transformers optimizer")
    ap.add_argument("--token-output", action="store_true", help="old form: output last_hidden_state and let lexembed pool (default: pooling and Normalize inside the graph, output sentence_embedding)")
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
        info["pool"] = None if a.token_output else pooling_mode(src)
        targets = {"fp32": ["model.onnx"], "fp16": ["model_fp16.onnx"], "both": ["model.onnx", "model_fp16.onnx"]}[a.precision]
        for name in targets:
            dst = a.out / "onnx" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if a.no_optimize:
                import onnx

                m = onnx.load(str(raw))
                if info["pool"]:
                    append_pooling(m, *info["pool"])
                onnx.save(m, str(dst), save_as_external_data=info["big"])
            else:
                optimize(raw, dst, info, fp16=name.endswith("fp16.onnx"))
    ok = True
    for name in targets:
        floor = 0.999 if name.endswith("fp16.onnx") else 0.99999
        ok = check(a.out, st, f"onnx/{name}") >= floor and ok
    log(f"wrote {a.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
