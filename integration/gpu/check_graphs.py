#!/usr/bin/env python3
"""Checks the graphs of a synthetic bge-m3-shaped model as the GPU run needs them, without loading
their weights:

    python integration/gpu/check_graphs.py MODEL_DIR [--full-size]

Both graphs (onnx/model.onnx fp32, onnx/model_fp16.onnx) take input_ids and attention_mask and give
float32 outputs (the fp16 graph keeps fp32 inputs and outputs); the fp16 graph's weights are float16
and it keeps the fused CUDA kernels (Attention, SkipLayerNormalization, BiasGelu) once per layer, the
fp32 graph has no SkipLayerNormalization (the CPU runs LayerNormalization apart). With --full-size: 24
layers, and weights in external data files that exist beside the graph (the fp32 weights are over
2 GB, the protobuf limit). Prints one line per graph; exits 1 naming the first check that fails.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import onnx
from onnx import TensorProto


def fail(msg: str) -> None:
    raise SystemExit(f"check_graphs: {msg}")


def external_bytes(graph_path: Path, model: onnx.ModelProto) -> int:
    total, files = 0, set()
    for t in model.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in t.external_data}
            files.add(entries["location"])
            total += int(entries.get("length", 0))
    for f in files:
        if not (graph_path.parent / f).is_file():
            fail(f"{graph_path.name}: external data file {f} is missing")
    return total


def check(path: Path, fp16: bool, full: bool) -> str:
    if not path.is_file():
        fail(f"{path} missing")
    m = onnx.load(str(path), load_external_data=False)
    inputs = [i.name for i in m.graph.input]
    for name in ("input_ids", "attention_mask"):
        if name not in inputs:
            fail(f"{path.name}: no {name} input (has {inputs})")
    for o in m.graph.output:
        if o.type.tensor_type.elem_type != TensorProto.FLOAT:
            fail(f"{path.name}: output {o.name} is not float32")
    ops = collections.Counter(n.op_type for n in m.graph.node)
    weights = collections.Counter(t.data_type for t in m.graph.initializer)
    layers = 24 if full else None
    if fp16:
        if weights[TensorProto.FLOAT16] <= weights[TensorProto.FLOAT]:
            fail(f"{path.name}: weights not fp16 ({dict(weights)})")
        for op in ("Attention", "SkipLayerNormalization", "BiasGelu"):
            if ops[op] == 0:
                fail(f"{path.name}: no fused {op} node")
        if layers and ops["Attention"] != layers:
            fail(f"{path.name}: {ops['Attention']} Attention nodes, not {layers}")
    else:
        if ops["SkipLayerNormalization"]:
            fail(f"{path.name}: fp32 graph fuses SkipLayerNormalization (slow on the CPU)")
        if layers and ops["Attention"] != layers:
            fail(f"{path.name}: {ops['Attention']} Attention nodes, not {layers}")
    ext = external_bytes(path, m)
    if full and not fp16 and ext < 2 * 10**9:
        fail(f"{path.name}: {ext} bytes of external data, expected the > 2 GB of bge-m3's fp32 weights")
    fused = {k: ops[k] for k in ("Attention", "SkipLayerNormalization", "BiasGelu", "LayerNormalization")}
    return f"{path.name}: inputs {inputs}, fused {fused}, external data {ext / 1e9:.2f} GB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--full-size", action="store_true")
    a = ap.parse_args()
    print(check(a.model / "onnx/model.onnx", fp16=False, full=a.full_size))
    print(check(a.model / "onnx/model_fp16.onnx", fp16=True, full=a.full_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
