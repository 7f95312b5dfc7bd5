#!/usr/bin/env python3
"""ONNX Runtime's CPU kernels for a transformer layer's residual + LayerNorm, side by side.

    python integration/python/bench_skip_layer_norm.py [ROWS] [HIDDEN] [--threads N]

Times one SkipLayerNormalization node (com.microsoft, what ONNX Runtime's transformers optimizer fuses
by default) against the Add + LayerNormalization it replaces, on the same [1, ROWS, HIDDEN] float32
inputs, alternating, in one process. The fused kernel was 3.3x slower on 2026-12-03 (1,024 x 384, 2
threads), so lexembed's CPU graphs keep the two apart (export_model.py) and its CPU sessions disable
ONNX Runtime's SkipLayerNormFusion. Prints milliseconds per call and the max abs difference.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from export_model import CPU_SESSION_CONFIG
from onnx import TensorProto, helper

EPSILON = 1e-12


def graph(fused: bool, hidden: int) -> bytes:
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, None, hidden]) for n in ("x", "skip")]
    rng = np.random.default_rng(1)
    inits = [
        helper.make_tensor("gamma", TensorProto.FLOAT, [hidden], rng.standard_normal(hidden).astype(np.float32)),
        helper.make_tensor("beta", TensorProto.FLOAT, [hidden], rng.standard_normal(hidden).astype(np.float32)),
    ]
    if fused:
        nodes = [helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta"], ["y"],
                                  domain="com.microsoft", epsilon=EPSILON)]
    else:
        nodes = [helper.make_node("Add", ["x", "skip"], ["sum"]),
                 helper.make_node("LayerNormalization", ["sum", "gamma", "beta"], ["y"], axis=-1, epsilon=EPSILON)]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None, hidden])]
    model = helper.make_model(helper.make_graph(nodes, "residual_layer_norm", io, out, inits),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 9
    return model.SerializeToString()


def session(fused: bool, hidden: int, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    # Keep the unfused pair unfused, as lexembed's CPU session does.
    for key, value in CPU_SESSION_CONFIG.items():
        so.add_session_config_entry(key, value)
    return ort.InferenceSession(graph(fused, hidden), so, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rows", type=int, nargs="?", default=1024, help="tokens in the call (batch x sequence)")
    ap.add_argument("hidden", type=int, nargs="?", default=384)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=200)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((1, a.rows, a.hidden)).astype(np.float32) for n in ("x", "skip")}
    engines = {"SkipLayerNormalization": session(True, a.hidden, a.threads),
               "Add + LayerNormalization": session(False, a.hidden, a.threads)}
    outputs = {name: s.run(None, feed)[0] for name, s in engines.items()}
    seconds = {name: [] for name in engines}
    for _ in range(5):
        for name, s in engines.items():
            t = time.perf_counter()
            for _ in range(a.calls):
                s.run(None, feed)
            seconds[name].append((time.perf_counter() - t) / a.calls)
    print(f"{a.rows} x {a.hidden} float32, {a.threads} threads, median of 5 x {a.calls} calls")
    for name, s in seconds.items():
        print(f"{name:26s} {np.median(s) * 1e3:7.3f} ms")
    fused, unfused = (np.median(s) for s in seconds.values())
    diff = float(np.abs(outputs["SkipLayerNormalization"] - outputs["Add + LayerNormalization"]).max())
    print(f"fused / unfused {fused / unfused:.2f}x   max abs diff {diff:.1e}")


if __name__ == "__main__":
    main()
