#!/usr/bin/env python3
"""Reference engines for `lexembed bench encode`, driven over stdin/stdout so rounds interleave with
lexembed's own in one run (this machine is noisy: side by side beats back to back).

    python integration/python/bench_encode_ref.py MODEL_DIR TEXTS.json BATCHES.json --threads N

MODEL_DIR is a lexembed model directory (sentence-transformers files + onnx/model.onnx). TEXTS.json is a
list of strings; BATCHES.json the list of index lists lexembed cut (token-budget batches), so the bare
session runs the very same batches. Commands, one per line on stdin, each answered by one JSON line:
  st        sentence-transformers encode() (its default batch size 32; its own length sort), seconds
  ort       a bare onnxruntime.InferenceSession on the same ONNX file, HF tokenizers, lexembed's batches,
            pooling and normalisation in numpy, seconds
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
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    torch.set_num_threads(threads)
    texts = json.loads(Path(texts_file).read_text())
    batches = json.loads(Path(batches_file).read_text())
    meta_file = Path(model_dir) / "lexembed.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    st = SentenceTransformer(meta.get("st_source") or model_dir, device="cpu")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(Path(model_dir) / "onnx/model.onnx"), so, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(st.max_seq_length)
    pad_id = tok.token_to_id("<pad>") if tok.token_to_id("<pad>") is not None else (tok.token_to_id("[PAD]") or 0)
    names = [i.name for i in sess.get_inputs()]
    pooling = json.loads((Path(model_dir) / "1_Pooling/config.json").read_text())
    mode = pooling.get("pooling_mode") or ("cls" if pooling.get("pooling_mode_cls_token") else "mean")

    def run_ort():
        out = np.zeros((len(texts), st.get_embedding_dimension()), dtype=np.float32)
        for b in batches:
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
            h = sess.run(["last_hidden_state"], feed)[0]
            if mode.startswith("cls"):
                v = h[:, 0]
            else:
                m = mask[:, :, None].astype(np.float32)
                v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            out[b] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return out

    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        t = time.perf_counter()
        if cmd[0] == "st":
            st.encode(texts, batch_size=32, convert_to_numpy=True)
        elif cmd[0] == "ort":
            run_ort()
        elif cmd[0] == "vectors":
            st.encode(texts, batch_size=32, convert_to_numpy=True).astype(np.float32).tofile(cmd[1])
        print(json.dumps({"cmd": cmd[0], "seconds": time.perf_counter() - t}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
