"""Checks a running `lexembed serve` the way its clients see it, against the `lexembed` CLI.

  serve_check.py api  --url URL --key KEY --bin LEXEMBED --model DIR --dataset URI --queries FILE
      The official `openai` client gets vectors equal to `lexembed embed`'s (float and base64, full
      width and dimensions=64); TEI's /embed agrees; /search equals `lexembed search` for each query,
      exact and through the index; every kind of bad request gets a 4xx JSON error naming its field,
      and the server keeps serving; the key is required.
  serve_check.py overload --url URL
      Many concurrent requests against a queue of one: some get 429 with Retry-After and a JSON
      error, every other gets its vectors.
  serve_check.py shutdown --url URL --pid PID
      SIGTERM while requests are queued or running: each still gets its answer.
  serve_check.py limits --url URL --key KEY --bin LEXEMBED --model DIR
      OpenAI's limits through the official client: 2,048 inputs in one request are embedded (equal to
      `lexembed embed`, usage.prompt_tokens the exact token count), 2,049 get a 400 naming the limit,
      and a request over --max-request-tokens gets a 400 naming the limit and its token count.
  serve_check.py token_ids --url URL --bin LEXEMBED --model DIR
      A server started with --token-ids: ids made with the model's own tokenizer.json (the
      `tokenizers` library, special tokens included) embed as their texts do through the official
      `openai` client (one input as a list of ints, many as a list of lists) and TEI's /embed;
      usage counts the ids; an id outside the vocabulary, an input past the max length, a
      prompt_name beside ids and a mix of texts and ids each get a 400 naming the field.

Exits non-zero with the failed check on stderr.
"""

import argparse
import base64
import concurrent.futures
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

TEXTS = [
    "¿Cuál es el plazo para resolver el recurso de reposición?",
    "Artículo 66. Plazos de prescripción.",
    "Ley 58/2003, de 17 de diciembre, General Tributaria",
    "disposición adicional segunda",
]


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def post(url, body, key=None, raw=None, headers=None):
    """(status, headers, parsed JSON or text) of a POST; never raises on HTTP errors."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, lower(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, lower(e.headers), json.loads(text)
        except ValueError:
            return e.code, lower(e.headers), text.decode(errors="replace")


def lower(headers):
    return {k.lower(): v for k, v in headers.items()}


def get(url, key=None):
    req = urllib.request.Request(url)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cli_embed(args, dim, prompt=None, texts=TEXTS):
    extra = ["--prompt", prompt] if prompt else []
    out = subprocess.run(
        [args.bin, "embed", "--model", args.model, "--dim", str(dim), *extra, *texts],
        check=True, capture_output=True, text=True,
    ).stdout
    return [json.loads(line)["embeddings"][str(dim)] for line in out.splitlines()]


def max_diff(a, b):
    check(len(a) == len(b), f"lengths {len(a)} != {len(b)}")
    return max(abs(x - y) for x, y in zip(a, b))


def check_openai(args):
    import openai

    client = openai.OpenAI(base_url=f"{args.url}/v1", api_key=args.key, max_retries=0)
    model = client.models.list().data[0].id
    full = None
    for dim in (None, 64):
        want = cli_embed(args, dim or args.full_dim)
        for fmt in ("float", "base64"):
            kw = {"dimensions": dim} if dim else {}
            if fmt == "float":
                kw["encoding_format"] = "float"
            # Without encoding_format the SDK asks for base64 and decodes it itself.
            resp = client.embeddings.create(model=model, input=TEXTS, **kw)
            check(len(resp.data) == len(TEXTS), "one embedding per input")
            for i, d in enumerate(resp.data):
                check(d.index == i, f"index {d.index} != {i}")
                diff = max_diff(d.embedding, want[i])
                check(diff <= 1e-6, f"openai {fmt} dim {dim}: differs from lexembed embed by {diff}")
            check(resp.usage.prompt_tokens > len(TEXTS), f"usage {resp.usage}")
        full = want
    # base64 by hand: little-endian f32.
    status, _, body = post(f"{args.url}/v1/embeddings",
                           {"model": model, "input": TEXTS[0], "encoding_format": "base64"}, args.key)
    check(status == 200, f"base64: {status} {body}")
    raw = base64.b64decode(body["data"][0]["embedding"])
    floats = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    check(max_diff(floats, full[0]) <= 1e-6, "base64 decodes to the float vector")
    # Another model: OpenAI's 404 model_not_found, raised by the SDK as NotFoundError.
    try:
        client.embeddings.create(model="text-embedding-3-small", input="x")
        fail("another model was served")
    except openai.NotFoundError as e:
        check(e.body["code"] == "model_not_found", f"{e.body}")
    # The key: none or another gets 401 (AuthenticationError in the SDK).
    try:
        openai.OpenAI(base_url=f"{args.url}/v1", api_key="wrong", max_retries=0).models.list()
        fail("a wrong key was accepted")
    except openai.AuthenticationError:
        pass
    print(f"openai client: {len(TEXTS)} texts, float and base64, full and 64 dims: equal to lexembed embed")
    return model


def check_tei(args):
    want = cli_embed(args, 64)
    status, headers, body = post(f"{args.url}/embed", {"inputs": TEXTS, "dimensions": 64}, args.key)
    check(status == 200, f"/embed: {status} {body}")
    for got, w in zip(body, want):
        check(max_diff(got, w) <= 1e-6, "/embed differs from lexembed embed")
    check(headers.get("x-truncated-inputs") == "0", f"headers {headers}")
    long_text = "plazo " * 2000
    status, _, body = post(f"{args.url}/embed", {"inputs": [TEXTS[0], long_text]}, args.key)
    check(status == 413 and body["error"]["param"] == "inputs[1]", f"too long: {status} {body}")
    status, headers, body = post(f"{args.url}/embed", {"inputs": [long_text], "truncate": True}, args.key)
    check(status == 200 and headers.get("x-truncated-inputs") == "1", f"truncate: {status} {headers}")
    status, _, body = post(f"{args.url}/v1/embeddings",
                           {"model": args.model_name, "input": [long_text, "x"]}, args.key)
    check(status == 200 and body["truncated_inputs"] == 1, f"openai truncation count: {body.get('truncated_inputs')}")
    print("TEI /embed: equal to lexembed embed; too-long inputs refused unless truncate, and counted")


def cli_search(args, query, exact, extra=("-k", "10"), mode="index"):
    mode = "exact" if exact else mode
    cmd = [args.bin, "search", args.dataset, "--column", "emb_64", "--query", query, "--mode", mode,
           *extra, "--json", "--model", args.model]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def check_search(args):
    with open(args.queries) as f:
        queries = json.load(f)
    check(len(queries) >= 12, "at least 12 queries")
    for mode in ("exact", "index"):
        for q in queries:
            want = cli_search(args, q, mode == "exact")
            status, _, body = post(f"{args.url}/search",
                                   {"dataset": "boe", "query": q, "dim": 64, "k": 10, "mode": mode}, args.key)
            check(status == 200, f"/search {mode}: {status} {body}")
            got_ids = [h["id"] for h in body["hits"]]
            want_ids = [h["id"] for h in want]
            check(got_ids == want_ids, f"/search {mode} {q!r}: {got_ids} != lexembed search {want_ids}")
            for h, w in zip(body["hits"], want):
                check(abs(h["score"] - w["score"]) <= 1e-6, f"score {h['score']} != {w['score']}")
            check(all("law" in h and h["text"] for h in body["hits"]), "hits carry text and metadata")
    law = body["hits"][0]["law"]
    status, _, body = post(f"{args.url}/search",
                           {"dataset": "boe", "query": queries[0], "column": "emb_64", "k": 3,
                            "columns": [], "filter": f"law = '{law}'"}, args.key)
    check(status == 200 and body["hits"], f"columns/filter: {status} {body}")
    check(all("law" not in h for h in body["hits"]), f"columns: [] still returned metadata: {body}")
    want = cli_search(args, queries[0], False, ["-k", "3", "--filter", f"law = '{law}'"])
    check([h["id"] for h in body["hits"]] == [h["id"] for h in want], f"filtered: {body} != {want}")
    print(f"/search: top-10 equal to lexembed search for {len(queries)} queries, exact and through the index")


def check_bad_requests(args):
    emb = f"{args.url}/v1/embeddings"
    m = args.model_name
    cases = [
        (emb, {"model": m}, 400, "body", "input"),
        (emb, {"model": m, "input": ""}, 400, "input[0]", None),
        (emb, {"model": m, "input": []}, 400, "input", None),
        (emb, {"model": m, "input": ["a", 3]}, 400, "input[1]", None),
        (emb, {"model": m, "input": [[101, 102]]}, 400, "input[0]", "token ids"),
        (emb, {"model": m, "input": ["a"] * 65}, 400, "input", "limit"),
        (emb, {"model": m, "input": "a", "dimensions": 7}, 400, "dimensions", "64"),
        (emb, {"model": m, "input": "a", "dimensions": "x"}, 400, "dimensions", None),
        (emb, {"model": m, "input": "a", "encoding_format": "int8"}, 400, "encoding_format", None),
        (emb, {"model": "other", "input": "a"}, 404, "model", None),
        (f"{args.url}/embed", {"inputs": {"a": 1}}, 400, "inputs", None),
        (f"{args.url}/search", {"dataset": "nope", "query": "a"}, 404, "dataset", "boe"),
        (f"{args.url}/search", {"dataset": "boe", "query": "a", "dim": 48}, 400, "dim", None),
        (f"{args.url}/search", {"dataset": "boe", "query": "a", "k": 0}, 400, "k", None),
        (f"{args.url}/search", {"dataset": "boe", "query": "a", "filter": "no_such_col = 1"}, 400, "filter", None),
        (f"{args.url}/search", {"dataset": "boe", "query": "a", "kk": 1}, 400, "kk", "unknown field"),
    ]
    for url, body, want_status, want_param, want_text in cases:
        status, _, got = post(url, body, args.key)
        check(status == want_status, f"{body}: status {status}, want {want_status}: {got}")
        err = got["error"]
        check(err["param"] == want_param, f"{body}: param {err['param']!r}, want {want_param!r}: {err}")
        if want_text:
            check(want_text in err["message"], f"{body}: {err['message']!r} lacks {want_text!r}")
    raw_cases = [
        (b'{"model": "x", "input": "\xff"}', "body", "UTF-8"),
        (b'{"model": ', "body", None),
        (b"x" * (9 << 20), "body", None),
    ]
    for raw, want_param, want_text in raw_cases:
        status, _, got = post(emb, None, args.key, raw=raw)
        check(400 <= status < 500 and isinstance(got, dict), f"{raw[:30]!r}: {status} {got}")
        check(got["error"]["param"] == want_param, f"{raw[:30]!r}: {got}")
        if want_text:
            check(want_text in got["error"]["message"], f"{raw[:30]!r}: {got}")
    status, body = get(f"{args.url}/no/such/route", args.key)
    check(status == 404 and json.loads(body)["error"]["param"] == "path", f"unknown route: {status}")
    status, _, _ = post(emb, {"model": m, "input": "a"})
    check(status == 401, f"no key: {status}")
    check(get(f"{args.url}/health")[0] == 200, "/health needs no key")
    # Still serving.
    status, _, body = post(emb, {"model": m, "input": TEXTS, "encoding_format": "float"}, args.key)
    check(status == 200 and len(body["data"]) == len(TEXTS), f"after bad requests: {status}")
    print(f"bad requests: {len(cases) + len(raw_cases) + 2} kinds answered 4xx naming the field; still serving")


def check_metrics(args):
    from prometheus_client.parser import text_string_to_metric_families

    status, body = get(f"{args.url}/metrics")
    check(status == 200, f"/metrics {status}")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}
    ok = samples.get(("lexembed_serve_requests_total", (("route", "/v1/embeddings"), ("status", "200"))), 0)
    check(ok >= 4, f"requests counted: {ok}")
    check(samples.get(("lexembed_serve_truncated_total", ()), 0) >= 2, "truncations counted")
    print("/metrics: parsed by prometheus_client; requests and truncations counted")


def api(args):
    status, body = get(f"{args.url}/info", args.key)
    check(status == 200, f"/info {status}")
    info = json.loads(body)
    args.full_dim = info["dims"][0]
    args.model_name = info["model"]
    check(info["datasets"][0]["name"] == "boe", f"/info datasets {info['datasets']}")
    check(info["prompts"]["prompts"] == {"document": "", "query": ""}, f"/info prompts {info['prompts']}")
    check_openai(args)
    check_tei(args)
    check_search(args)
    check_bad_requests(args)
    check_metrics(args)


def prompts(args):
    """A model with prompts: `prompt_name` on /embed and (as an extension) /v1/embeddings gives the
    vectors `lexembed embed --prompt` gives, none given is the model's default (none here), tokens count
    the prompt, an unknown name is a 400 naming the field, and /search embeds with the query prompt as
    `lexembed search` does."""
    import openai

    status, body = get(f"{args.url}/info")
    info = json.loads(body)
    check(info["prompts"]["prompts"] == {"query": "query: ", "document": "passage: "}, f"/info {info['prompts']}")
    client = openai.OpenAI(base_url=f"{args.url}/v1", api_key="unused", max_retries=0)
    wants, tokens = {}, {}
    for name in (None, "query", "document"):
        want = wants[name] = cli_embed(args, 64, name)
        named = {"prompt_name": name} if name else {}
        status, _, body = post(f"{args.url}/embed", {"inputs": TEXTS, "dimensions": 64, **named})
        check(status == 200, f"/embed prompt {name}: {status} {body}")
        for got, w in zip(body, want):
            check(max_diff(got, w) <= 1e-6, f"/embed prompt {name} differs from lexembed embed --prompt")
        resp = client.embeddings.create(model=info["model"], input=TEXTS, dimensions=64,
                                        encoding_format="float", extra_body=named)
        for d, w in zip(resp.data, want):
            check(max_diff(d.embedding, w) <= 1e-6, f"openai prompt {name} differs from lexembed embed --prompt")
        tokens[name] = resp.usage.prompt_tokens
    check(max_diff(wants["query"][0], wants[None][0]) > 1e-3, "the query prompt changed nothing")
    check(tokens["query"] > tokens[None], f"usage does not count the prompt: {tokens}")
    status, _, body = post(f"{args.url}/embed", {"inputs": TEXTS[:1], "prompt_name": "search_query"})
    check(status == 400 and body["error"]["param"] == "prompt_name" and "search_query" in body["error"]["message"],
          f"unknown prompt: {status} {body}")
    with open(args.queries) as f:
        queries = json.load(f)[:4]
    for q in queries:
        want = [h["id"] for h in cli_search(args, q, True)]
        status, _, body = post(f"{args.url}/search", {"dataset": "boe", "query": q, "dim": 64, "k": 10, "mode": "exact"})
        check(status == 200 and [h["id"] for h in body["hits"]] == want, f"/search {q!r}: {status} {body} != {want}")
    print("prompts: prompt_name on /embed and /v1/embeddings equal to lexembed embed --prompt; /search with the query prompt")
    # Full-text and hybrid modes: refused until the index exists (saying how to build it), then equal
    # to lexembed search --mode.
    status, _, body = post(f"{args.url}/search", {"dataset": "boe", "query": queries[0], "mode": "fts"})
    check(status == 400 and body["error"]["param"] == "mode" and "--type fts" in body["error"]["message"],
          f"fts without the index: {status} {body}")
    subprocess.run([args.bin, "index", args.dataset, "--column", "text", "--type", "fts"], check=True,
                   capture_output=True)
    for mode in ("fts", "hybrid"):
        for q in queries:
            want = cli_search(args, q, False, mode=mode)
            status, _, body = post(f"{args.url}/search", {"dataset": "boe", "query": q, "dim": 64, "k": 10, "mode": mode})
            check(status == 200 and body["mode"] == mode, f"/search {mode}: {status} {body}")
            check([h["id"] for h in body["hits"]] == [h["id"] for h in want], f"/search {mode} {q!r} != lexembed search")
            for h, w in zip(body["hits"], want):
                check(abs(h["score"] - w["score"]) <= 1e-6 and h["distance"] is None, f"{mode} hit {h} vs {w}")
    print("/search fts and hybrid: equal to lexembed search --mode")


def overload(args):
    status, body = get(f"{args.url}/info")
    model = json.loads(body)["model"]
    texts = [f"artículo {i} " + "plazo de resolución " * 6 for i in range(64)]

    def one(_):
        return post(f"{args.url}/v1/embeddings", {"model": model, "input": texts, "encoding_format": "float"})

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(96)))
    statuses = [s for s, _, _ in results]
    refused = [(h, b) for s, h, b in results if s == 429]
    check(set(statuses) <= {200, 429}, f"statuses {sorted(set(statuses))}")
    check(refused, "no request was refused with 429: the queue is not bounded")
    check(statuses.count(200) > 0, "no request was served")
    for h, b in refused:
        check(h.get("retry-after") == "1" and b["error"]["type"] == "rate_limit_error", f"429: {h} {b}")
    for s, _, b in results:
        if s == 200:
            check(len(b["data"]) == len(texts), "a served request got every vector")
    print(f"overload: {statuses.count(200)} served, {len(refused)} refused with 429 + Retry-After")


def shutdown(args):
    """16 requests of 256 texts queue up (about half a second of work for the tiny model); SIGTERM
    arrives while most wait: every one still gets all its vectors."""
    status, body = get(f"{args.url}/info")
    model = json.loads(body)["model"]
    texts = [f"artículo {i} " + "plazo de resolución " * 6 for i in range(256)]
    answers = []

    def request():
        answer = post(f"{args.url}/v1/embeddings", {"model": model, "input": texts, "encoding_format": "float"})
        answers.append((answer, time.monotonic()))

    threads = [threading.Thread(target=request) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.15)
    signalled = time.monotonic()
    os.kill(args.pid, signal.SIGTERM)
    for t in threads:
        t.join()
    check(len(answers) == len(threads), f"{len(threads) - len(answers)} requests got no answer (connection cut)")
    after = [done for _, done in answers if done > signalled]
    check(after, "every request ended before the signal: not a graceful-shutdown test")
    for (status, _, body), _ in answers:
        check(status == 200 and len(body["data"]) == len(texts), f"a request in flight at SIGTERM: {status}")
    print(f"shutdown: {len(answers)} requests, {len(after)} still running at SIGTERM, all answered in full")


def limits(args):
    import openai

    client = openai.OpenAI(base_url=f"{args.url}/v1", api_key=args.key or "unused", max_retries=0)
    model = client.models.list().data[0].id
    status, body = get(f"{args.url}/info", args.key)
    check(status == 200, f"/info {status}")
    info = json.loads(body)
    max_inputs, max_tokens, max_len = info["max_inputs"], info["max_request_tokens"], info["max_length"]
    check(max_inputs == 2048, f"max_inputs {max_inputs}: OpenAI takes 2,048 inputs a request")
    texts = [f"Artículo {i}. Del plazo para resolver el recurso." for i in range(max_inputs)]
    resp = client.embeddings.create(model=model, input=texts, encoding_format="float")
    check(len(resp.data) == max_inputs, f"{len(resp.data)} embeddings for {max_inputs} inputs")
    picked = [0, 1, 777, max_inputs - 1]
    want = cli_embed(args, len(resp.data[0].embedding), texts=[texts[i] for i in picked])
    for i, w in zip(picked, want):
        diff = max_diff(resp.data[i].embedding, w)
        check(diff <= 1e-5, f"input {i} of {max_inputs}: differs from lexembed embed by {diff}")
    tokens = tokenized_lengths(args, texts)
    check(resp.usage.prompt_tokens == sum(tokens),
          f"usage.prompt_tokens {resp.usage.prompt_tokens}, the tokenizer counts {sum(tokens)}")
    try:
        client.embeddings.create(model=model, input=texts + ["uno más"])
        fail(f"{max_inputs + 1} inputs were accepted")
    except openai.BadRequestError as e:
        err = e.body
        check(err["param"] == "input" and err["code"] == "too_many_inputs", f"{err}")
        check(str(max_inputs) in err["message"] and str(max_inputs + 1) in err["message"], f"{err}")
    # Texts past the max length count max_length tokens each (the model truncates them).
    n = max_tokens // max_len + 1
    long = ["plazo " * (2 * max_len)] * n
    try:
        client.embeddings.create(model=model, input=long)
        fail(f"{n * max_len} tokens were accepted over --max-request-tokens {max_tokens}")
    except openai.BadRequestError as e:
        err = e.body
        check(err["param"] == "input" and err["code"] == "max_tokens_per_request", f"{err}")
        check(f"Requested {n * max_len} tokens, max {max_tokens}" in err["message"], f"{err}")
    ok = client.embeddings.create(model=model, input=long[: n - 1], encoding_format="float")
    check(len(ok.data) == n - 1, "a request just under the token limit is embedded")
    print(f"limits: {max_inputs} inputs embedded (usage exact: {sum(tokens)} tokens), "
          f"{max_inputs + 1} refused naming the limit, {n * max_len} tokens refused over {max_tokens}")


def token_ids(args):
    import openai
    from tokenizers import Tokenizer

    client = openai.OpenAI(base_url=f"{args.url}/v1", api_key="unused", max_retries=0)
    model = client.models.list().data[0].id
    info = json.loads(get(f"{args.url}/info")[1])
    check(info["token_ids"] is True, f"/info token_ids {info.get('token_ids')}")
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    ids = [e.ids for e in tok.encode_batch(TEXTS)]
    want = cli_embed(args, 64)
    many = client.embeddings.create(model=model, input=ids, dimensions=64, encoding_format="float")
    for i, (got, w) in enumerate(zip(many.data, want)):
        diff = max_diff(got.embedding, w)
        check(diff <= 1e-5, f"ids of text {i} differ from lexembed embed of the text by {diff}")
    check(many.usage.prompt_tokens == sum(map(len, ids)),
          f"usage {many.usage.prompt_tokens}, ids sent {sum(map(len, ids))}")
    one = client.embeddings.create(model=model, input=ids[1], dimensions=64, encoding_format="float")
    check(len(one.data) == 1 and max_diff(one.data[0].embedding, want[1]) <= 1e-5,
          "a flat list of ints is one input")
    status, _, tei = post(f"{args.url}/embed", {"inputs": ids, "dimensions": 64})
    check(status == 200 and max(max_diff(g, w) for g, w in zip(tei, want)) <= 1e-5, f"/embed {status}")
    vocab = tok.get_vocab_size(with_added_tokens=True)
    bad = [
        ({"input": [ids[0], ids[1][:2] + [vocab]]}, "input[1][2]"),
        ({"input": [[0] * (info["max_length"] + 1)]}, "input[0]"),
        ({"input": ids, "prompt_name": "query"}, "prompt_name"),
        ({"input": [ids[0], "texto"]}, "input[1]"),
    ]
    for body, field in bad:
        status, _, err = post(f"{args.url}/v1/embeddings", {"model": model, **body})
        check(status == 400 and err["error"]["param"] == field, f"{body}: {status} {err}")
    print(f"token_ids: {len(ids)} inputs of ids embed as their texts, {len(bad)} bad requests named")


def tokenized_lengths(args, texts):
    """Tokens per text (special tokens included) by the model's own tokenizer.json, through the
    `tokenizers` library: the count OpenAI's usage reports."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    status, body = get(f"{args.url}/info", args.key)
    tok.enable_truncation(json.loads(body)["max_length"])
    return [len(e.ids) for e in tok.encode_batch(texts)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["api", "overload", "shutdown", "prompts", "limits", "token_ids"])
    p.add_argument("--url", required=True)
    p.add_argument("--key")
    p.add_argument("--bin")
    p.add_argument("--model")
    p.add_argument("--dataset")
    p.add_argument("--queries")
    p.add_argument("--pid", type=int)
    args = p.parse_args()
    {"api": api, "overload": overload, "shutdown": shutdown, "prompts": prompts,
     "limits": limits, "token_ids": token_ids}[args.mode](args)


if __name__ == "__main__":
    main()
