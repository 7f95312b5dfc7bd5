#!/usr/bin/env python3
"""Reference engines for `lexembed bench encode`, driven over stdin/stdout so rounds interleave with
lexembed's own in one run (this machine is noisy: side by side beats back to back).

    python integration/python/bench_encode_ref.py MODEL_DIR TEXTS.json BATCHES.json --threads N [--cuda GRAPH]

MODEL_DIR is a lexembed model directory (sentence-transformers files + onnx/model.onnx). TEXTS.json is a
list of strings; BATCHES.json the list of index lists lexembed cut (token-budget batches), so the bare
session runs the very same batches. Commands, one per line on stdin, each answered by one JSON line:
  st        sentence-transformers encode() (its default batch size 32; its own length sort), seconds.
            With --cuda: on the GPU in fp16; the first call tries batch sizes 32, 64 and 128 and the
            fastest is used from then on (answered as batch_size); --search-texts N searches on the
            first N texts only
  ort       a bare onnxruntime.InferenceSession on the same ONNX file with lexembed's CPU session config,
            HF tokenizers, lexembed's batches, pooling and normalisation in numpy (or in the graph), seconds.
            With --cuda: GRAPH (lexembed's fp16 graph) on the CUDA provider with IO binding, the output left
            on the GPU and copied back
  vectors   writes the sentence-transformers embeddings (float32, row-major) to the path that follows
  quit
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    model_dir, texts_file, batches_file = sys.argv[1], sys.argv[2], sys.argv[3]
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else os.cpu_count()
    cuda_graph = sys.argv[sys.argv.index("--cuda") + 1] if "--cuda" in sys.argv else None
    search_texts = int(sys.argv[sys.argv.index("--search-texts") + 1]) if "--search-texts" in sys.argv else 0
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    torch.set_num_threads(threads)
    texts = json.loads(Path(texts_file).read_text())
    batches = json.loads(Path(batches_file).read_text())
    meta_file = Path(model_dir) / "lexembed.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    device = "cuda" if cuda_graph else "cpu"
    st = SentenceTransformer(meta.get("st_source") or model_dir, device=device)
    if cuda_graph:
        st = st.half()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1 if cuda_graph else threads
    if not cuda_graph:
        # The session lexembed opens on the CPU: same graph, same optimizer settings.
        from export_model import CPU_SESSION_CONFIG

        for key, value in CPU_SESSION_CONFIG.items():
            so.add_session_config_entry(key, value)
    graph = cuda_graph or str(Path(model_dir) / "onnx/model.onnx")
    providers = ["CUDAExecutionProvider"] if cuda_graph else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(graph, so, providers=providers)
    if cuda_graph and sess.get_providers()[0] != "CUDAExecutionProvider":
        raise SystemExit(f"the CUDA provider did not load: {sess.get_providers()}")
    out_name = sess.get_outputs()[0].name
    st_batch = [32]
    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(st.max_seq_length)
    pad_id = tok.token_to_id("<pad>") if tok.token_to_id("<pad>") is not None else (tok.token_to_id("[PAD]") or 0)
    names = [i.name for i in sess.get_inputs()]
    pooling = json.loads((Path(model_dir) / "1_Pooling/config.json").read_text())
    mode = pooling.get("pooling_mode") or ("cls" if pooling.get("pooling_mode_cls_token") else "mean")

    def feed_of(b):
        enc = tok.encode_batch([texts[i] for i in b])
        L = max(len(e.ids) for e in enc)
        ids = np.full((len(b), L), pad_id, dtype=np.int64)
        mask = np.zeros((len(b), L), dtype=np.int64)
        for r, e in enumerate(enc):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        return feed, mask

    def pool(h, mask):
        if out_name == "sentence_embedding":
            return h
        if mode.startswith("cls"):
            return h[:, 0]
        m = mask[:, :, None].astype(np.float32)
        return (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)

    def run_ort():
        out = np.zeros((len(texts), st.get_embedding_dimension()), dtype=np.float32)
        for b in batches:
            feed, mask = feed_of(b)
            if cuda_graph:
                io = sess.io_binding()
                for k, v in feed.items():
                    io.bind_cpu_input(k, v)
                io.bind_output(out_name, "cuda")
                sess.run_with_iobinding(io)
                h = io.copy_outputs_to_cpu()[0]
            else:
                h = sess.run([out_name], feed)[0]
            v = pool(h.astype(np.float32), mask)
            out[b] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return out

    def run_st():
        if cuda_graph and not getattr(run_st, "picked", False):
            timings = {}
            # The search runs on the first --search-texts texts (all by default): three full passes
            # would cost the reference minutes of device time.
            sample = texts[:search_texts] if search_texts else texts
            for bs in (32, 64, 128):
                t = time.perf_counter()
                st.encode(sample, batch_size=bs, convert_to_numpy=True)
                timings[bs] = time.perf_counter() - t
            st_batch[0] = min(timings, key=timings.get)
            run_st.picked = True
            print(f"[bench_encode_ref] sentence-transformers on cuda: {timings} -> batch {st_batch[0]}", file=sys.stderr, flush=True)
            return
        st.encode(texts, batch_size=st_batch[0], convert_to_numpy=True)

    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        t = time.perf_counter()
        if cmd[0] == "st":
            run_st()
        elif cmd[0] == "ort":
            run_ort()
        elif cmd[0] == "vectors":
            st.encode(texts, batch_size=st_batch[0], convert_to_numpy=True).astype(np.float32).tofile(cmd[1])
        print(json.dumps({"cmd": cmd[0], "seconds": time.perf_counter() - t, "batch_size": st_batch[0]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
