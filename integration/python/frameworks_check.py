"""Checks a running `lexembed serve` through the frameworks users point at it, each configured as its
own docs say for an OpenAI-compatible server, against `lexembed embed` (within 1e-5).

  frameworks_check.py langchain --url URL --bin LEXEMBED --model DIR [--key KEY]
      langchain-openai's OpenAIEmbeddings with its default chunk_size (1,000 texts a request):
      embed_documents over 1,100 texts (two requests), embed_query, `dimensions`, and the async
      aembed_documents. check_embedding_ctx_length=False, as LangChain documents for servers that
      are not OpenAI: otherwise it sends tiktoken ids, which the server refuses naming that setting.
  frameworks_check.py llamaindex …
      llama-index-embeddings-openai's OpenAIEmbedding with api_base and its default batch size (100):
      250 documents (three requests) and a query.
  frameworks_check.py lancedb … (the server started with --model-name text-embedding-3-small)
      LanceDB's embedding registry, function `openai` with base_url and dim (the registry knows
      OpenAI's model names only; the key comes from OPENAI_API_KEY): a table created from texts, then searched by a query string.
  frameworks_check.py huggingface_hub …
      huggingface_hub's InferenceClient(model=URL).feature_extraction, as for a TEI server: the
      vectors, and `dimensions`/`normalize` honoured (they travel in its `parameters` object).
  frameworks_check.py node …
      The official `openai` Node client (integration/node/openai_check.cjs, with NODE_PATH at the
      node_modules setup.sh installs): its default (base64) request, decoded by the SDK.

Exits non-zero with the failed check on stderr.
"""

import argparse
import asyncio
import json

from serve_check import check, cli_embed, get, max_diff, post

TOLERANCE = 1e-5


def served_model(args):
    status, body = get(f"{args.url}/v1/models", args.key)
    check(status == 200, f"/v1/models {status}")
    return json.loads(body)["data"][0]["id"]


def same_as_cli(args, got, texts, dim, what):
    """`got[i]` equals `lexembed embed`'s vector of `texts[i]` at `dim` for every i."""
    want = cli_embed(args, dim, texts=texts)
    check(len(got) == len(want), f"{what}: {len(got)} vectors for {len(want)} texts")
    worst = max(max_diff(g, w) for g, w in zip(got, want))
    check(worst <= TOLERANCE, f"{what}: differs from lexembed embed by {worst}")
    return worst


def langchain(args):
    from langchain_openai import OpenAIEmbeddings

    model = served_model(args)
    status, body = get(f"{args.url}/info", args.key)
    dims = json.loads(body)["dims"]
    full, small_dim = dims[0], dims[-1]

    def embeddings(**kw):
        return OpenAIEmbeddings(model=model, base_url=f"{args.url}/v1", api_key=args.key or "unused",
                                check_embedding_ctx_length=False, max_retries=0, **kw)

    client = embeddings()
    check(client.chunk_size == 1000, f"LangChain's default chunk_size is {client.chunk_size}")
    texts = [f"Artículo {i}. Del plazo para interponer el recurso de alzada." for i in range(1100)]
    docs = client.embed_documents(texts)
    check(len(docs) == len(texts), f"{len(docs)} vectors for {len(texts)} texts")
    picked = [0, 999, 1000, 1099]  # both sides of the chunk boundary
    worst = same_as_cli(args, [docs[i] for i in picked], [texts[i] for i in picked], full,
                        "embed_documents")
    query = client.embed_query(texts[5])
    worst = max(worst, same_as_cli(args, [query], [texts[5]], full, "embed_query"))
    small = embeddings(dimensions=small_dim).embed_documents(texts[:3])
    check(all(len(v) == small_dim for v in small), f"dimensions={small_dim} gives {small_dim}-dim vectors")
    worst = max(worst, same_as_cli(args, small, texts[:3], small_dim, f"dimensions={small_dim}"))
    got = asyncio.run(client.aembed_documents(texts[:8]))
    worst = max(worst, same_as_cli(args, got, texts[:8], full, "aembed_documents"))
    # What LangChain sends with its default check_embedding_ctx_length=True: tiktoken ids.
    status, _, body = post(f"{args.url}/v1/embeddings", {"model": model, "input": [[9906, 1917]]},
                           args.key)
    check(status == 400 and "check_embedding_ctx_length=False" in body["error"]["message"],
          f"token ids: {status} {body}")
    print(f"langchain-openai: {len(texts)} documents in chunks of 1,000, a query, dimensions={small_dim} and "
          f"async equal lexembed embed (max diff {worst:.1e}); token ids refused naming the setting")


def llamaindex(args):
    from llama_index.embeddings.openai import OpenAIEmbedding

    model = served_model(args)
    full = json.loads(get(f"{args.url}/info", args.key)[1])["dims"][0]
    client = OpenAIEmbedding(model_name=model, api_base=f"{args.url}/v1",
                             api_key=args.key or "unused", max_retries=0)
    check(client.embed_batch_size == 100, f"LlamaIndex's default batch size is {client.embed_batch_size}")
    texts = [f"Disposición adicional {i}. Del régimen transitorio." for i in range(250)]
    docs = client.get_text_embedding_batch(texts)
    picked = [0, 99, 100, 249]
    worst = same_as_cli(args, [docs[i] for i in picked], [texts[i] for i in picked], full,
                        "get_text_embedding_batch")
    query = client.get_query_embedding(texts[7])
    worst = max(worst, same_as_cli(args, [query], [texts[7]], full, "get_query_embedding"))
    print(f"llama-index OpenAIEmbedding: {len(texts)} documents in batches of 100 and a query equal "
          f"lexembed embed (max diff {worst:.1e})")


def lancedb_registry(args):
    import tempfile

    import lancedb
    from lancedb.embeddings import get_registry
    from lancedb.pydantic import LanceModel, Vector

    model = served_model(args)
    check(model == "text-embedding-3-small", f"start the server with --model-name text-embedding-3-small, not {model}")
    import os

    dim = json.loads(get(f"{args.url}/info", args.key)[1])["dims"][-1]
    # The registry refuses a key in code (it would be saved with the table): it reads the environment.
    os.environ["OPENAI_API_KEY"] = args.key or "unused"
    func = get_registry().get("openai").create(name=model, base_url=f"{args.url}/v1", dim=dim)

    class Doc(LanceModel):
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    texts = [f"Artículo {i}. Del plazo de prescripción de la deuda tributaria." for i in range(40)]
    with tempfile.TemporaryDirectory() as d:
        table = lancedb.connect(d).create_table("boe", schema=Doc)
        table.add([{"text": t} for t in texts])
        rows = table.to_arrow()
        stored = rows.column("vector").to_pylist()
        worst = same_as_cli(args, stored, rows.column("text").to_pylist(), dim, "lancedb table vectors")
        hits = table.search(texts[13]).limit(3).to_list()
        check(hits[0]["text"] == texts[13], f"searching a stored text finds it first: {hits[0]['text']!r}")
    print(f"lancedb registry (openai, base_url, dim={dim}): {len(texts)} rows embedded on add equal "
          f"lexembed embed (max diff {worst:.1e}); a search by text finds its row first")


def huggingface_hub(args):
    import os

    # The tests run offline from the Hub (HF_HUB_OFFLINE=1), which this client takes to mean no
    # request at all, even to a server given by URL; a user of a TEI server does not set it.
    os.environ["HF_HUB_OFFLINE"] = "0"
    from huggingface_hub import InferenceClient

    dims = json.loads(get(f"{args.url}/info", args.key)[1])["dims"]
    full, small_dim = dims[0], dims[-1]
    client = InferenceClient(model=args.url, token=args.key)
    text = "¿Cuál es el plazo para resolver el recurso de reposición?"
    got = client.feature_extraction(text)
    check(got.shape == (1, full), f"shape {got.shape}")
    worst = same_as_cli(args, got.tolist(), [text], full, "feature_extraction")
    small = client.feature_extraction(text, dimensions=small_dim)
    check(small.shape == (1, small_dim), f"dimensions={small_dim} ignored: shape {small.shape}")
    worst = max(worst, same_as_cli(args, small.tolist(), [text], small_dim,
                                   f"feature_extraction dimensions={small_dim}"))
    # Without renormalising, the prefix of a unit vector is shorter than 1.
    raw = client.feature_extraction(text, dimensions=small_dim, normalize=False)
    norm = sum(x * x for x in raw[0].tolist()) ** 0.5
    check(norm < 0.999, f"normalize=False ignored: norm {norm}")
    print(f"huggingface_hub InferenceClient.feature_extraction: equal lexembed embed (max diff "
          f"{worst:.1e}); dimensions and normalize honoured")


def node(args):
    import os
    import subprocess

    texts = ["plazo para resolver", "recurso de alzada", "Ley 39/2015, artículo 21"]
    home = os.environ.get("LEXEMBED_HOME", os.path.expanduser("~/.cache/lexembed"))
    env = dict(os.environ, NODE_PATH=os.path.join(home, "node", "node_modules"))
    script = os.path.join(os.path.dirname(__file__), "..", "node", "openai_check.cjs")
    out = subprocess.run(["node", script, args.url, *([args.key] if args.key else [])],
                         input=json.dumps(texts), capture_output=True, text=True, env=env)
    check(out.returncode == 0, f"node openai client failed: {out.stderr.strip()}")
    got = json.loads(out.stdout)
    full = json.loads(get(f"{args.url}/info", args.key)[1])["dims"][0]
    worst = same_as_cli(args, got["embeddings"], texts, full, "openai (node)")
    check(got["prompt_tokens"] > len(texts), f"usage {got['prompt_tokens']}")
    print(f"openai Node client: {len(texts)} texts (base64, decoded by the SDK) equal lexembed embed "
          f"(max diff {worst:.1e})")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("client", choices=["langchain", "llamaindex", "lancedb", "huggingface_hub", "node"])
    p.add_argument("--url", required=True)
    p.add_argument("--key")
    p.add_argument("--bin", required=True)
    p.add_argument("--model", required=True)
    args = p.parse_args()
    {"langchain": langchain, "llamaindex": llamaindex, "lancedb": lancedb_registry,
     "huggingface_hub": huggingface_hub, "node": node}[args.client](args)


if __name__ == "__main__":
    main()
