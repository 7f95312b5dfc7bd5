"""Faults injected for real while a streaming pipeline works (issue 33), and what it did about each.

A trial starts clean: a new topic (fed at a fixed rate by `lexembed produce` processes while the run
works, see Feed), a new Lance dataset on SeaweedFS reached through toxiproxy, and a `lexembed run` Kafka replica
(tiny fixture model). One fault is injected at a random moment of the run and healed after its
duration. The run either rides it out (exits 0 once the topic is idle) or exits non-zero; then it is
started again, as Kubernetes would, and must finish. The dataset is read back with pylance straight
from SeaweedFS (not through the proxy): every record exactly once, or the trial failed. More than
WARN_BOUND WARN/ERROR lines for one fault fail it too (a log flood). The replica reaches the broker
through a second proxy (the broker's PROXIED listener); the feed and the checks go straight to it.
The disk trial writes a local dataset on a size-limited tmpfs (reported not_run where mounting is not
allowed).

    python faults.py [--quick] [--trials N] [--only FAULT,...] [--report PATH]

Prints a table and writes {"trials": [{"fault", "component", "outcome", "lost", "duplicates",
"recovery_s", "error", ...}]}. Exits 1 when a trial failed. Needs SeaweedFS (integration/s3.sh), a
Kafka broker (integration/kafka.sh) and toxiproxy (integration/toxiproxy.sh) running; the AWS_*
variables of `integration/s3.sh env` in the environment.
"""

import argparse
import datetime
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import lance

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOXIPROXY = os.environ.get("LEXEMBED_TOXIPROXY_API", "127.0.0.1:8474")
S3_PORT = int(os.environ.get("LEXEMBED_S3_PORT", "18333"))
PROXY_LISTEN = f"127.0.0.1:{S3_PORT + 40}"
PROXY = "faults-s3"
BROKERS = os.environ.get("LEXEMBED_KAFKA_BROKERS", "127.0.0.1:19092")
# The replica reaches the broker through toxiproxy: integration/kafka.sh gives the broker a second
# listener on PORT+2 that advertises PORT+3, where this proxy listens, so that every connection the
# replica makes (not only the bootstrap one) crosses the proxy. The feed and the checks connect
# straight to the broker.
KAFKA_PORT = int(BROKERS.rsplit(":", 1)[1])
KAFKA_PROXY = "faults-kafka"
PROXIED_BROKERS = f"127.0.0.1:{KAFKA_PORT + 3}"
TINY = ROOT / "operators/encoder/tests/fixtures/tiny-xlmr"
HOME = pathlib.Path(os.environ.get("LEXEMBED_HOME", pathlib.Path.home() / ".cache/lexembed"))
# Records per trial and the rate they are offered at: the run lasts about RECORDS / RATE seconds,
# which every fault's start and duration fit in.
RECORDS = 3000
RATE = 150.0
IDLE_EXIT_S = 10
# The feed's chunks (one producer process each) and how long a message may wait for its broker: a
# 30 s freeze is ridden out by the chunk it caught.
CHUNK_S = 2.0
PRODUCE_TIMEOUT_MS = 90_000
# A run's stop decision reads the partitions' ends up to a few seconds before it logs it: a record
# acknowledged this close to the log line may not have been in the topic yet.
ACK_MARGIN_S = 5.0
RUN_TIMEOUT_S = 300
# WARN/ERROR lines a replica may log for one fault: one per fault state change (lost, back, session
# expired, the model's own load warning), not one per retry or reconnection attempt.
WARN_BOUND = 10
# A SIGTERM'd replica must be gone within this (the chart's grace period is maxBatchSeconds + 60 s,
# but a replica with nothing slow in hand should leave at once).
GRACE_S = 30


def lexembed_bin():
    target = os.environ.get("CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache/lexembed-target"))
    return os.environ.get("LEXEMBED_BIN", f"{target}/debug/lexembed")


def log(msg):
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- toxiproxy -----------------------------------------------------------------------------------


def toxi(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{TOXIPROXY}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text else None


def proxy_reset():
    """The object-store and broker proxies, enabled and without toxics (created if missing)."""
    for name, listen, upstream in [(PROXY, PROXY_LISTEN, f"127.0.0.1:{S3_PORT}"),
                                   (KAFKA_PROXY, PROXIED_BROKERS, f"127.0.0.1:{KAFKA_PORT + 2}")]:
        try:
            toxi("DELETE", f"/proxies/{name}")
        except urllib.error.HTTPError:
            pass
        toxi("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream,
                                  "enabled": True})


def proxy_enabled(on, name=PROXY):
    toxi("POST", f"/proxies/{name}", {"enabled": on})


def toxic(name, kind, attributes, stream="downstream"):
    toxi("POST", f"/proxies/{PROXY}/toxics",
         {"name": name, "type": kind, "stream": stream, "attributes": attributes})


def untoxic(name):
    toxi("DELETE", f"/proxies/{PROXY}/toxics/{name}")


# --- services ------------------------------------------------------------------------------------


def script(name, *args):
    subprocess.run(["bash", str(ROOT / "integration" / name), *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def sigkill_pidfile(path):
    pid = int(pathlib.Path(path).read_text().strip())
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


# --- the faults ----------------------------------------------------------------------------------
# Each: (name, component, duration_s, inject(ctx) -> None, heal(ctx) -> None). `ctx` is the trial.


def latency_on(_):
    toxic("slow", "latency", {"latency": 2000, "jitter": 500})


def latency_off(_):
    untoxic("slow")


def reset_on(_):
    # Every connection is reset (TCP RST) as soon as data flows: requests fail mid-flight.
    toxic("reset", "reset_peer", {"timeout": 0}, stream="upstream")


def reset_off(_):
    untoxic("reset")


def limit_on(_):
    # Each connection is closed after 64 KiB: uploads of data files break half-way.
    toxic("cut", "limit_data", {"bytes": 65536}, stream="upstream")


def limit_off(_):
    untoxic("cut")


def store_down(_):
    proxy_enabled(False)


def store_up(_):
    proxy_enabled(True)


def seaweedfs_kill(_):
    sigkill_pidfile(HOME / "s3/weed.pid")


def seaweedfs_start(_):
    script("s3.sh", "start")


def broker_kill(_):
    sigkill_pidfile(HOME / "kafka/data/kafka.pid")


def broker_start(_):
    script("kafka.sh", "start")


def broker_pause(_):
    os.kill(int((HOME / "kafka/data/kafka.pid").read_text().strip()), signal.SIGSTOP)


def broker_resume(_):
    os.kill(int((HOME / "kafka/data/kafka.pid").read_text().strip()), signal.SIGCONT)


def broker_cut(_):
    proxy_enabled(False, KAFKA_PROXY)


def broker_reconnected(_):
    proxy_enabled(True, KAFKA_PROXY)


def broker_cut_and_a_replica_joins(trial):
    """The replica loses the broker; meanwhile a second replica (whose network works) joins the
    group: the group's session of the first expires and the second takes its partitions; once the
    link heals, the first finds itself out of the group and rejoins (rebalance during the outage)."""
    broker_cut(trial)
    trial.start_other()


def disk_fill(trial):
    """Fills the dataset's size-limited filesystem to the last byte."""
    fd = os.open(trial.disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)


def disk_free(trial):
    (trial.disk / "filler").unlink(missing_ok=True)


def replica_sigterm(trial):
    trial.sigterm_at = time.monotonic()
    trial.proc.send_signal(signal.SIGTERM)


def nothing(_):
    pass


FAULTS = {
    # name: (component, seconds the fault lasts, inject, heal)
    "store_latency_2s": ("object_store", 20, latency_on, latency_off),
    "store_reset_peer": ("object_store", 5, reset_on, reset_off),
    "store_limit_data": ("object_store", 5, limit_on, limit_off),
    "store_unreachable_30s": ("object_store", 30, store_down, store_up),
    "seaweedfs_sigkill": ("object_store", 3, seaweedfs_kill, seaweedfs_start),
    "broker_sigkill": ("broker", 5, broker_kill, broker_start),
    "broker_frozen_30s": ("broker", 30, broker_pause, broker_resume),
    "broker_unreachable_30s": ("broker", 30, broker_cut, broker_reconnected),
    "broker_rebalance_in_outage": ("broker", 30, broker_cut_and_a_replica_joins, broker_reconnected),
    "disk_full": ("disk", 10, disk_fill, disk_free),
    "replica_sigterm": ("process", 0, replica_sigterm, nothing),
}


# --- the query side: `lexembed serve` ------------------------------------------------------------


class Serve:
    """`lexembed serve` of the tiny model over one dataset on SeaweedFS, reached through the proxy."""

    def __init__(self, work, dataset, extra=()):
        self.log_path = pathlib.Path(work) / f"serve-{time.monotonic_ns()}.log"
        env = {**os.environ, "AWS_ENDPOINT": f"http://{PROXY_LISTEN}", "AWS_ALLOW_HTTP": "true"}
        self.proc = subprocess.Popen(
            [lexembed_bin(), "serve", "--model", str(TINY), "--dataset", f"d={dataset}",
             "--http-addr", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, stderr=open(self.log_path, "w"), text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"http://([0-9.:]+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"serve did not start: {line!r} {self.log_path.read_text()[-500:]}")
        self.addr = m.group(1)

    def request(self, method, path, body=None, timeout=10.0):
        """(status, seconds, Retry-After header) of one request."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{self.addr}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        start = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                r.read()
                return r.status, time.monotonic() - start, r.headers.get("Retry-After")
        except urllib.error.HTTPError as e:
            e.read()
            return e.code, time.monotonic() - start, e.headers.get("Retry-After")
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            return f"{type(e).__name__}", time.monotonic() - start, None

    def search(self):
        return self.request("POST", "/search", {"dataset": "d", "query": "plazo para resolver",
                                                "k": 3})

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def serve_dataset(work, stamp):
    """A small dataset on SeaweedFS (through the proxy) for the serve trials, built once."""
    uri = f"s3://lexembed/faults-{stamp}/serve.lance"
    d = pathlib.Path(work) / "serve-data"
    if d.exists():
        return uri
    d.mkdir()
    (d / "docs.jsonl").write_text("".join(record(i) + "\n" for i in range(200)))
    text = spec_yaml("faults-serve", "unused", uri)
    text = re.sub(r"source:\n(  .*\n)+?encoder:", "source: {kind: file, path: docs.jsonl}\nencoder:", text)
    (d / "p.yaml").write_text(text)
    subprocess.run([lexembed_bin(), "run", str(d / "p.yaml")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return uri


def serve_result(fault, outcome, error, recovery_s=0.0, **extra):
    return {"fault": fault, "component": "serve", "outcome": outcome, "lost": 0, "duplicates": 0,
            "recovery_s": round(recovery_s, 1), "error": error, "warnings": 0, **extra}


def serve_store_unreachable(work, stamp, _rng):
    """The dataset's store unreachable for 10 s: /search answers 503 with Retry-After at once, not a
    500 or a hang, and serves again by itself once the store is back."""
    srv = Serve(work, serve_dataset(work, stamp))
    try:
        before = srv.search()
        if before[0] != 200:
            return serve_result("serve_store_unreachable", "failed", f"/search before: {before}")
        proxy_enabled(False)
        during, ready_during = [], []
        end = time.monotonic() + 10
        while time.monotonic() < end:
            during.append(srv.search())
            ready_during.append(srv.request("GET", "/health/ready")[0])
            time.sleep(0.5)
        proxy_enabled(True)
        healed = time.monotonic()
        after = srv.search()
        while after[0] != 200 and time.monotonic() - healed < 30:
            time.sleep(0.5)
            after = srv.search()
        recovery = time.monotonic() - healed
        ready_after = srv.request("GET", "/health/ready")[0]
        statuses = sorted({str(s) for s, _, _ in during})
        ready_statuses = sorted({str(s) for s in ready_during})
        slowest = max(t for _, t, _ in during)
        health = srv.request("GET", "/health")[0]
        ok = (all(s == 503 and ra for s, _, ra in during) and after[0] == 200 and slowest < 10
              and ready_statuses == ["503"] and ready_after == 200 and health == 200)
        return serve_result(
            "serve_store_unreachable", "rode_out" if ok else "failed",
            "" if ok else f"during the outage /search answered {statuses} (slowest {slowest:.1f} s, "
            f"Retry-After {[ra for _, _, ra in during][:1]}), /health/ready {ready_statuses}; "
            f"after: /search {after[0]}, /health/ready {ready_after}, /health {health}",
            recovery, statuses_during=statuses, ready_during=ready_statuses,
            slowest_s=round(slowest, 2), health_after=health)
    finally:
        proxy_enabled(True)
        srv.stop()


def serve_huge_body(work, stamp, _rng):
    """A 100 MB body gets 413 at once (the limit is checked before the body is read whole)."""
    srv = Serve(work, serve_dataset(work, stamp))
    body = pathlib.Path(work) / "huge.json"
    if not body.exists():
        with open(body, "w") as f:
            f.write('{"model": "any", "input": ["')
            f.write("a" * (100 * 1024 * 1024))
            f.write('"]}')
    try:
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-H",
             "Content-Type: application/json", "--data-binary", f"@{body}",
             f"http://{srv.addr}/v1/embeddings"], capture_output=True, text=True, timeout=60)
        code, took = out.stdout.split()
        health = srv.request("GET", "/health")[0]
        ok = code == "413" and float(took) < 5 and health == 200
        return serve_result("serve_huge_body", "exited_clear" if ok else "failed",
                            f"100 MB body: {code} in {float(took):.2f} s; /health then {health}",
                            status=int(code), seconds=float(took))
    finally:
        srv.stop()


def serve_idle_connections(work, stamp, _rng):
    """1,000 idle connections held open: /health still answers at once."""
    import resource
    import socket
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    srv = Serve(work, serve_dataset(work, stamp))
    host, port = srv.addr.rsplit(":", 1)
    socks = []
    try:
        for _ in range(1000):
            socks.append(socket.create_connection((host, int(port)), timeout=5))
        status, took, _ = srv.request("GET", "/health", timeout=5)
        search, search_s, _ = srv.search()
        ok = status == 200 and took < 2 and search == 200
        return serve_result("serve_idle_connections", "rode_out" if ok else "failed",
                            f"/health {status} in {took:.2f} s, /search {search} in {search_s:.2f} s "
                            f"beside {len(socks)} idle connections", health_s=round(took, 3))
    finally:
        for s in socks:
            s.close()
        srv.stop()


def serve_overload(work, stamp, _rng):
    """Far more load than the model takes: 64 clients sending 64 texts a request for 15 s against a
    queue of 8. Admitted requests keep a bounded p99, the rest get 429 with Retry-After at once, no
    5xx, and the resident memory stays bounded."""
    import concurrent.futures
    srv = Serve(work, serve_dataset(work, stamp), extra=["--max-queued", "8"])
    texts = [f"Artículo {i}. El plazo para resolver el procedimiento será de {i} días." for i in range(64)]
    with urllib.request.urlopen(f"http://{srv.addr}/v1/models", timeout=10) as r:
        model = json.load(r)["data"][0]["id"]
    body = {"model": model, "input": texts}
    peak = [0]
    stop = time.monotonic() + 15

    def client():
        out = []
        while time.monotonic() < stop:
            out.append(srv.request("POST", "/v1/embeddings", body, timeout=30))
        return out

    def rss():
        while time.monotonic() < stop:
            status = pathlib.Path(f"/proc/{srv.proc.pid}/status").read_text()
            kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
            peak[0] = max(peak[0], kb)
            time.sleep(0.2)

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=65) as pool:
            watcher = pool.submit(rss)
            results = [r for f in [pool.submit(client) for _ in range(64)] for r in f.result()]
            watcher.result()
        admitted = sorted(t for code, t, _ in results if code == 200)
        refused = [ra for code, _, ra in results if code == 429]
        other = sorted({str(code) for code, _, _ in results if code not in (200, 429)})
        p99 = admitted[int(0.99 * (len(admitted) - 1))] if admitted else float("nan")
        share = len(refused) / len(results)
        rss_mb = peak[0] / 1024
        ok = (admitted and not other and all(refused) and p99 < 10 and rss_mb < 2048)
        return serve_result(
            "serve_overload", "rode_out" if ok else "failed",
            f"{len(results)} requests: {len(admitted)} admitted (p99 {p99:.2f} s), "
            f"{share:.0%} 429 (Retry-After on {sum(1 for r in refused if r)}), others {other}, "
            f"peak RSS {rss_mb:.0f} MB",
            admitted_p99_s=round(p99, 3), refused_share=round(share, 3), peak_rss_mb=round(rss_mb),
            requests=len(results))
    finally:
        srv.stop()


def serve_sigterm(work, stamp, _rng):
    """SIGTERM while requests are in flight (a rolling update): every request that started before it
    is answered 200, none after it hangs or gets a 5xx (the listener is closed: refused), and the
    server exits 0 within the grace period."""
    import concurrent.futures
    srv = Serve(work, serve_dataset(work, stamp))
    with urllib.request.urlopen(f"http://{srv.addr}/v1/models", timeout=10) as r:
        model = json.load(r)["data"][0]["id"]
    body = {"model": model, "input": [f"Artículo {i}. El plazo para resolver será de {i} días."
                                      for i in range(64)]}
    term = [None]

    def client():
        out = []
        while term[0] is None or time.monotonic() < term[0] + 2:
            started = time.monotonic()
            code, took, _ = srv.request("POST", "/v1/embeddings", body, timeout=30)
            out.append((started, started + took, code))
            if code != 200:
                time.sleep(0.05)
        return out

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            clients = [pool.submit(client) for _ in range(8)]
            time.sleep(3)
            term[0] = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            try:
                code = srv.proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                code = None
            exit_s = time.monotonic() - term[0]
            results = [r for f in clients for r in f.result()]
        before = [c for s, _, c in results if s < term[0]]
        in_flight = sum(1 for s, e, _ in results if s < term[0] < e)
        after = [(c, e - s) for s, e, c in results if s >= term[0]]
        bad_before = sorted({str(c) for c in before if c != 200})
        bad_after = sorted({str(c) for c, took in after if (isinstance(c, int) and c >= 500) or took > 5})
        ok = code == 0 and exit_s < GRACE_S and in_flight > 0 and not bad_before and not bad_after
        return serve_result(
            "serve_sigterm", "exited_clear" if ok else "failed",
            f"SIGTERM with {in_flight} requests in flight: exit {code} after {exit_s:.1f} s; "
            f"{len(before)} requests before it ({bad_before or 'all 200'}), {len(after)} after it "
            f"({sorted({str(c) for c, _ in after}) or 'none'})",
            exit_s, in_flight=in_flight)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()


SERVE_TRIALS = {
    "serve_overload": serve_overload,
    "serve_store_unreachable": serve_store_unreachable,
    "serve_huge_body": serve_huge_body,
    "serve_idle_connections": serve_idle_connections,
    "serve_sigterm": serve_sigterm,
}


# --- one trial -----------------------------------------------------------------------------------


def spec_yaml(name, topic, dataset, brokers=PROXIED_BROKERS):
    """A Kafka replica's spec; `dataset` on SeaweedFS through the proxy, or a local path."""
    env = os.environ
    store = "" if not dataset.startswith("s3://") else f"""
  storage_options:
    aws_endpoint: http://{PROXY_LISTEN}
    aws_region: {env["AWS_REGION"]}
    aws_access_key_id: {env["AWS_ACCESS_KEY_ID"]}
    aws_secret_access_key: {env["AWS_SECRET_ACCESS_KEY"]}
    allow_http: "true"
"""
    return f"""name: {name}
source:
  kind: kafka
  batch_rows: 64
  kafka:
    brokers: {brokers}
    topics: [{topic}]
    group_id: {topic}-g
    linger_ms: 200
    commit_interval_ms: 500
    properties:
      session.timeout.ms: "10000"
      heartbeat.interval.ms: "1000"
encoder:
  model: {TINY}
sink:
  uri: {dataset}
  mode: append{store}"""


def record(i):
    return json.dumps({"id": f"r{i}", "text": f"Artículo {i}. El plazo para resolver el "
                       f"procedimiento {i % 977} será de {i % 90} días hábiles."})


class Feed:
    """Offers `n` records to `topic` at `rate` a second, in chunks of CHUNK_S seconds, each through
    its own `lexembed produce` process (stdin). A librdkafka client can stay wedged for minutes after
    a broker freeze or restart (a fresh one connects at once); one producer per chunk keeps a wedged
    client to its own chunk. A chunk's process exits non-zero when any of its messages was not
    acknowledged within PRODUCE_TIMEOUT_MS: those records may or may not be in the topic
    (`unconfirmed`); the others are, once each (`confirmed`, idempotent producer)."""

    def __init__(self, topic, n, rate, work):
        self.topic, self.n, self.rate, self.work = topic, n, rate, pathlib.Path(work)
        self.unconfirmed, self.failures = set(), []
        self.confirmed_at = {}  # id -> wall-clock time its chunk was acknowledged

    @property
    def confirmed(self):
        return set(self.confirmed_at)

    def run(self, stop):
        start = time.monotonic()
        per_chunk = max(1, int(self.rate * CHUNK_S))
        waiters = []
        for first in range(0, self.n, per_chunk):
            ids = list(range(first, min(first + per_chunk, self.n)))
            log_path = self.work / f"produce-{first}.log"
            p = subprocess.Popen(
                [lexembed_bin(), "produce", "-", "--topic", self.topic, "--key-field", "id",
                 "--brokers", BROKERS, "-X", f"message.timeout.ms={PRODUCE_TIMEOUT_MS}"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"),
                text=True)
            for i in ids:
                if stop.is_set():
                    break
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                p.stdin.write(record(i) + "\n")
                p.stdin.flush()
            p.stdin.close()  # the producer flushes and exits
            w = threading.Thread(target=self._settle, args=(p, ids, log_path))
            w.start()
            waiters.append(w)
        for w in waiters:
            w.join()

    def _settle(self, p, ids, log_path):
        code = p.wait()
        now = time.time()
        names = {f"r{i}" for i in ids}
        if code == 0:
            self.confirmed_at.update((name, now) for name in names)
        else:
            self.unconfirmed |= names
            tail = ANSI.sub("", log_path.read_text(errors="replace")).strip().splitlines()[-1:]
            self.failures.append(f"r{ids[0]}..r{ids[-1]}: {' '.join(tail)[-300:]}")


def create_topic(topic):
    subprocess.run([lexembed_bin(), "produce", "/dev/null", "--topic", topic, "--partitions", "4",
                    "--brokers", BROKERS], check=True, stdout=subprocess.DEVNULL)


class NotRunnable(Exception):
    """This machine cannot stage the fault (reported as not_run, with the reason)."""


def mount_small_disk(path, size="64m"):
    """A size-limited filesystem (tmpfs) for the disk-full trial; needs CAP_SYS_ADMIN."""
    path.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise NotRunnable(f"cannot mount a size-limited tmpfs here: {out.stderr.strip()}")


class Trial:
    def __init__(self, fault, n, stamp, work):
        self.fault, self.n = fault, n
        self.component, self.duration, self.inject, self.heal = FAULTS[fault]
        self.topic = f"faults-{fault.replace('_', '-')}-{stamp}-{n}"
        self.dataset = f"s3://lexembed/faults-{stamp}/{fault}-{n}.lance"
        self.dir = pathlib.Path(work) / f"{fault}-{n}"
        self.dir.mkdir(parents=True)
        self.disk = None
        if self.component == "disk":
            self.disk = self.dir / "disk"
            mount_small_disk(self.disk)
            self.dataset = str(self.disk / "ds.lance")
        self.spec = self.dir / "p.yaml"
        self.spec.write_text(spec_yaml(f"faults-{fault}", self.topic, self.dataset))
        self.proc = None
        self.others = []  # replicas that joined during the fault (straight to the broker)
        self.sigterm_at = None
        self.runs = 0

    def start_other(self):
        spec = self.dir / f"other{len(self.others) + 1}.yaml"
        spec.write_text(spec_yaml(f"faults-{self.fault}", self.topic, self.dataset, BROKERS))
        out = open(self.dir / f"other{len(self.others) + 1}.log", "w")
        self.others.append(subprocess.Popen(
            [lexembed_bin(), "run", str(spec), "--exit-when-idle", str(IDLE_EXIT_S), "--http-addr", ""],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "LEXEMBED_LOG": "info"}))

    def wait_others(self, notes):
        """The replicas that joined must finish too (exit 0: nothing failed for them)."""
        ok = True
        for k, p in enumerate(self.others, 1):
            try:
                code = p.wait(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                code = p.wait()
            text = (self.dir / f"other{k}.log").read_text(errors="replace")
            if code != 0:
                ok = False
                notes.append(f"the replica that joined exited {code}: {named_reason(text)}")
        return ok

    def close(self):
        for p in [self.proc, *self.others]:
            if p and p.poll() is None:
                p.kill()
        if self.disk is not None:
            subprocess.run(["umount", str(self.disk)], check=False, stderr=subprocess.DEVNULL)

    def start(self):
        self.runs += 1
        out = open(self.dir / f"run{self.runs}.log", "w")
        self.proc = subprocess.Popen(
            [lexembed_bin(), "run", str(self.spec), "--exit-when-idle", str(IDLE_EXIT_S),
             "--http-addr", ""],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "LEXEMBED_LOG": "info"})

    def log_text(self, run):
        return (self.dir / f"run{run}.log").read_text(errors="replace")

    def wait(self):
        try:
            return self.proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def run(self, rng):
        stop = threading.Event()
        feed = Feed(self.topic, RECORDS, RATE, self.dir)

        def feeder():
            try:
                feed.run(stop)
            except Exception as e:  # noqa: BLE001 - reported as the trial's error
                feed.failures.append(f"harness: {e}")

        create_topic(self.topic)
        self.start()
        t = threading.Thread(target=feeder)
        t.start()
        # A random moment while records are still being offered and committed.
        at = rng.uniform(2.0, RECORDS / RATE * 0.6)
        time.sleep(at)
        log(f"{self.fault} #{self.n}: injected {at:.1f} s into the run, for {self.duration} s")
        injected_while_running = self.proc.poll() is None
        injected = time.time()
        self.inject(self)
        time.sleep(self.duration)
        self.heal(self)
        healed = time.monotonic()
        code = self.wait()
        notes = []
        outcome = "rode_out"
        first = self.log_text(1)
        if self.sigterm_at is not None:
            # A SIGTERM'd replica commits what it has and exits 0 within the grace period; the
            # next one finishes the topic.
            took = time.monotonic() - self.sigterm_at
            outcome = "exited_clear"
            notes.append(f"SIGTERM: exit {code} after {took:.1f} s")
            if code != 0 or took > GRACE_S:
                outcome = "failed"
            self.start()
            code = self.wait()
        elif code != 0:
            reason = named_reason(first)
            outcome = "exited_clear" if reason else "failed"
            notes.append(reason or f"exit {code} without an error line: {first.strip()[-300:]}")
            self.start()
            code = self.wait()
        t.join(timeout=RUN_TIMEOUT_S)
        code = self.read_the_rest(code, feed, notes)
        if not self.wait_others(notes):
            outcome = "failed"
        recovery = time.monotonic() - healed
        if code != 0:
            outcome = "failed"
            notes.append(f"the run after the fault exited {code}: "
                         f"{named_reason(self.log_text(self.runs)) or self.log_text(self.runs)[-300:]}")
        lost, dups, unconfirmed_landed = check_exactly_once(self.dataset, feed)
        if lost or dups:
            outcome = "failed"
        if feed.failures:
            notes.append(f"{len(feed.unconfirmed)} records not acknowledged to the feed "
                         f"({unconfirmed_landed} of them landed, once): {feed.failures[0]}")
        acked_after = sum(1 for when in feed.confirmed_at.values() if when > injected)
        if acked_after == 0:
            outcome = "failed"
            notes.append("no record offered after the fault was acknowledged: nothing was tested")
        if not injected_while_running:
            outcome = "failed"
            notes.append("the run ended before the fault: make the run longer")
        warnings = fault_lines(first)
        if warnings > WARN_BOUND:
            outcome = "failed"
            notes.append(f"a log flood: {warnings} WARN/ERROR lines for one fault (bound {WARN_BOUND})")
        return {
            "fault": self.fault, "component": self.component, "outcome": outcome,
            "lost": lost, "duplicates": dups, "unconfirmed": len(feed.unconfirmed),
            "recovery_s": round(recovery, 1), "error": "; ".join(notes),
            "injected_at_s": round(at, 1), "fault_s": self.duration, "runs": self.runs,
            "warnings": warnings,
            "replicas": 1 + len(self.others),
        }

    def read_the_rest(self, code, feed, notes):
        """Runs again while the latest run exited 0 before the feed's last acknowledged record: a
        backfill stops once the broker confirms the topic read to its end, and a producer held up by
        a broker fault can deliver the rest after that moment (the rest is read by a re-run, as a
        re-run of a backfill over a topic still being written would). A run that stopped after the
        last acknowledgement must have read everything: no re-run, and what it missed is lost."""
        last_ack = max(feed.confirmed_at.values(), default=0.0)
        for _ in range(2):
            decided = stop_decided_at(self.log_text(self.runs))
            if code != 0 or (decided is not None and last_ack < decided - ACK_MARGIN_S):
                break
            notes.append("ended before the feed's last acknowledgement: run again")
            self.start()
            code = self.wait()
        return code


STOP_LINE = re.compile(r"^(\S+Z) .*no messages: stopping \(exit_when_idle\)", re.MULTILINE)


def stop_decided_at(text):
    """Wall-clock time the run decided the topic was read to its end (its log line), or None."""
    hits = STOP_LINE.findall(ANSI.sub("", text))
    if not hits:
        return None
    stamp = hits[-1][:26].rstrip("Z")  # microseconds at most
    return datetime.datetime.fromisoformat(stamp).replace(
        tzinfo=datetime.timezone.utc).timestamp()


ERROR_LINE = re.compile(r"(^Error:.*$|\bERROR\b.*$)", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def named_reason(text):
    """The error the run exited with (anyhow's `Error:` line and its causes), or ''."""
    text = ANSI.sub("", text)
    final = list(re.finditer(r"^(Error|error): ", text, re.MULTILINE))
    if final:
        return " ".join(text[final[-1].start():].split())[:600]
    hits = ERROR_LINE.findall(text)
    return " ".join(hits[-1].split())[:600] if hits else ""


def fault_lines(text):
    """How many WARN/ERROR lines the run logged: one per fault state change, not a flood."""
    text = ANSI.sub("", text)
    return sum(1 for line in text.splitlines() if " WARN " in line or " ERROR " in line)


def check_exactly_once(uri, feed):
    """(lost, duplicates, unconfirmed that landed) of the feed's records in the dataset, read straight
    from SeaweedFS: every acknowledged record exactly once, an unacknowledged one at most once, and
    nothing else."""
    opts = {
        "aws_endpoint": os.environ["AWS_ENDPOINT"], "aws_region": os.environ["AWS_REGION"],
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"], "allow_http": "true",
    }
    if not uri.startswith("s3://"):
        opts = None
    try:
        ids = lance.dataset(uri, storage_options=opts).to_table(columns=["id"])["id"].to_pylist()
    except (ValueError, OSError) as e:
        if "not found" in str(e).lower() or "was not found" in str(e).lower():
            return len(feed.confirmed), 0, 0
        raise
    got = set(ids)
    known = feed.confirmed | feed.unconfirmed
    return (len(feed.confirmed - got), len(ids) - len(got) + len(got - known),
            len(got & feed.unconfirmed))


# --- the matrix ----------------------------------------------------------------------------------


def table(trials):
    head = (f"{'fault':24} {'component':13} {'outcome':13} {'lost':>5} {'dups':>5} {'unacked':>7} "
            f"{'recovery_s':>10} {'warn':>5}  error")
    rows = [head] + [
        f"{t['fault']:24} {t['component']:13} {t['outcome']:13} {t['lost']:5} {t['duplicates']:5} "
        f"{t.get('unconfirmed', 0):7} {t['recovery_s']:10} {t['warnings']:5}  {t['error'][:140]}"
        for t in trials
    ]
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one trial of each fault (CI)")
    ap.add_argument("--trials", type=int, default=3, help="trials of each fault (default 3)")
    ap.add_argument("--only", help="comma-separated faults to run (default: all)")
    ap.add_argument("--seed", type=int, default=None, help="random moments' seed (default: clock)")
    ap.add_argument("--report", default=str(ROOT / "target/faults/report.json"))
    args = ap.parse_args()
    known = list(FAULTS) + list(SERVE_TRIALS)
    faults = args.only.split(",") if args.only else known
    unknown = [f for f in faults if f not in known]
    if unknown:
        ap.error(f"unknown fault(s) {unknown}; known: {', '.join(known)}")
    trials_each = 1 if args.quick else args.trials
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    stamp = time.strftime("%Y%m%d%H%M%S")
    log(f"{len(faults)} faults x {trials_each} trials, seed {seed}, {RECORDS} records at {RATE}/s each")
    results = []
    keep = bool(os.environ.get("FAULTS_KEEP"))
    work = tempfile.mkdtemp(prefix="lexembed-faults-")
    if keep:
        log(f"FAULTS_KEEP: logs stay in {work}")
    try:
        for fault in faults:
            for n in range(trials_each):
                proxy_reset()
                if fault in SERVE_TRIALS:
                    try:
                        results.append(SERVE_TRIALS[fault](work, stamp, rng))
                    except Exception as e:  # noqa: BLE001 - a harness failure is a failed trial
                        results.append(serve_result(fault, "failed", f"harness: {e}"))
                    log(f"{fault} #{n}: {results[-1]['outcome']} {results[-1]['error'][:200]}")
                    continue
                trial = None
                try:
                    trial = Trial(fault, n, stamp, work)
                    results.append(trial.run(rng))
                except NotRunnable as e:
                    results.append({"fault": fault, "component": FAULTS[fault][0],
                                    "outcome": "not_run", "lost": 0, "duplicates": 0,
                                    "recovery_s": 0, "error": str(e), "warnings": 0})
                except Exception as e:  # noqa: BLE001 - a harness failure is a failed trial
                    results.append({"fault": fault, "component": FAULTS[fault][0],
                                    "outcome": "failed", "lost": -1, "duplicates": -1,
                                    "recovery_s": -1, "error": f"harness: {e}", "warnings": 0})
                finally:
                    if trial:
                        trial.close()
                log(f"{fault} #{n}: {results[-1]['outcome']} (lost {results[-1]['lost']}, "
                    f"duplicates {results[-1]['duplicates']}) {results[-1]['error'][:200]}")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    report = pathlib.Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"seed": seed, "records": RECORDS, "rate": RATE,
                                  "trials": results}, indent=1))
    print(table(results))
    print(f"report: {report}")
    sys.exit(1 if any(t["outcome"] == "failed" for t in results) else 0)


if __name__ == "__main__":
    main()
