#!/usr/bin/env python3
"""The reference for `lexembed eval`: sentence-transformers' InformationRetrievalEvaluator.

    python integration/python/ir_oracle.py MODEL_DIR CORPUS.jsonl QA.jsonl OUT.json --dims 64 32 ...

MODEL_DIR is a lexembed model directory; its sentence-transformers weights are loaded from `st_source` in
lexembed.json, else from the directory itself. CORPUS.jsonl holds {"id", "text"} rows; QA.jsonl
{"query_id", "query", "relevant_ids"}. For each dim the evaluator runs with truncate_dim=dim and
name dim_<dim>; OUT.json receives every metric it returns (keys dim_<d>_cosine_<metric>@<k>).
With --query-prompt-name/--corpus-prompt-name the evaluator gets those prompts of the model as its
query_prompt/corpus_prompt (lexembed embeds queries and documents with the model's own).
"""
import argparse
import json
import sys
from pathlib import Path


# Full-width embeddings by input list: the evaluator is run once per dim, and re-encoding the same texts
# for every dim would only repeat identical work (truncation is a slice, as in encode(truncate_dim=…)).
FULL = {}


def cached_evaluator():
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    class CachedEvaluator(InformationRetrievalEvaluator):
        def embed_inputs(self, model, sentences, encode_fn_name=None, prompt_name=None, prompt=None, **kwargs):
            key = (encode_fn_name, prompt_name, prompt, tuple(sentences))
            if key not in FULL:
                dim, self.truncate_dim = self.truncate_dim, None
                try:
                    FULL[key] = super().embed_inputs(model, sentences, encode_fn_name, prompt_name, prompt, **kwargs)
                finally:
                    self.truncate_dim = dim
            full = FULL[key]
            return full[..., : self.truncate_dim] if self.truncate_dim else full

    return CachedEvaluator


def write_rankings(model, queries, relevant, corpus, dims, path, query_prompt=None, corpus_prompt=None):
    """The scores the evaluator ranks by (cos_sim of truncated embeddings, float32), top 120 per query."""
    import torch
    from sentence_transformers.util import cos_sim

    qids = [q for q in queries if relevant.get(q)]
    cids = list(corpus)
    full = {k[3]: v for k, v in FULL.items()}
    qe_full = full.get(tuple(queries[q] for q in qids))
    if qe_full is None:
        qe_full = model.encode([queries[q] for q in qids], convert_to_tensor=True, batch_size=64, prompt=query_prompt)
    ce_full = full.get(tuple(corpus[c] for c in cids))
    if ce_full is None:
        ce_full = model.encode([corpus[c] for c in cids], convert_to_tensor=True, batch_size=64, prompt=corpus_prompt)
    with open(path, "w") as f:
        for d in dims:
            scores = cos_sim(qe_full[..., :d], ce_full[..., :d])
            top = torch.topk(scores, min(120, len(cids)), dim=1)
            for qi, q in enumerate(qids):
                # The evaluator's order: score descending, then corpus id as a string.
                pairs = sorted(zip(top.values[qi].tolist(), (cids[i] for i in top.indices[qi].tolist())), key=lambda p: (-p[0], p[1]))
                f.write(json.dumps({"query_id": q, "dim": d, "ids": [c for _, c in pairs], "scores": [s for s, _ in pairs]}) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("corpus", type=Path)
    ap.add_argument("qa", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dims", type=int, nargs="+", required=True)
    ap.add_argument("--rankings", type=Path, help="also write each query's top 120 (ids, cosine scores) per dim, JSONL")
    ap.add_argument("--query-prompt-name", help="the model's prompt for queries (e.g. query)")
    ap.add_argument("--corpus-prompt-name", help="the model's prompt for documents (e.g. document)")
    a = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    meta_file = Path(a.model) / "lexembed.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    model = SentenceTransformer(meta.get("st_source") or a.model, device="cpu")
    corpus = {}
    for line in a.corpus.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            corpus[row["id"]] = row["text"]
    queries, relevant = {}, {}
    for line in a.qa.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            queries[row["query_id"]] = row["query"]
            relevant[row["query_id"]] = set(row["relevant_ids"])
    query_prompt = model.prompts[a.query_prompt_name] if a.query_prompt_name else None
    corpus_prompt = model.prompts[a.corpus_prompt_name] if a.corpus_prompt_name else None
    metrics = {}
    for d in a.dims:
        ev = cached_evaluator()(
            queries, corpus, relevant, truncate_dim=d, name=f"dim_{d}", write_csv=False, batch_size=64,
            query_prompt=query_prompt, corpus_prompt=corpus_prompt,
        )
        metrics.update({k: float(v) for k, v in ev(model).items()})
    a.out.write_text(json.dumps(metrics, indent=1, sort_keys=True))
    if a.rankings:
        write_rankings(model, queries, relevant, corpus, a.dims, a.rankings, query_prompt, corpus_prompt)
    print(f"[oracle] {len(queries)} queries, {len(corpus)} documents, dims {a.dims}, prompts {query_prompt!r}/{corpus_prompt!r} -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
