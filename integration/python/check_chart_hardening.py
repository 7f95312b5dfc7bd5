#!/usr/bin/env python3
"""Production properties of the rendered chart (issue 20), on three renders:

    python integration/python/check_chart_hardening.py default.yaml gpu.yaml all.yaml

default.yaml: defaults; gpu.yaml: values-gpu.yaml with every workload on; all.yaml: every workload and
option set (digest, podLabels, extraEnv/extraVolumes, service-account annotations, priority class, an
init container). Exits non-zero naming each property that does not hold.
"""
import json
import sys

import yaml

errors = []


def fail(msg):
    errors.append(msg)


def load(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]


def pods(docs):
    """(name, pod spec, pod labels) of every workload."""
    for d in docs:
        if d["kind"] == "Deployment" or d["kind"] == "Job":
            t = d["spec"]["template"]
        elif d["kind"] == "CronJob":
            t = d["spec"]["jobTemplate"]["spec"]["template"]
        else:
            continue
        yield d["metadata"]["name"], t["spec"], t["metadata"].get("labels", {})


def restricted(name, pod):
    """Pod Security "restricted": what the admission controller checks, and a read-only root."""
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail(f"{name}: pod securityContext is not restricted: {psc}")
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c.get("securityContext", {})
        want = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
        if any(sc.get(k) != v for k, v in want.items()) or sc.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(f"{name}/{c['name']}: container securityContext is not restricted: {sc}")
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        if "/tmp" not in mounts:
            fail(f"{name}/{c['name']}: no writable /tmp under a read-only root")
        if c["name"] != "fetch-model" and "/var/lib/lexembed" not in mounts:
            fail(f"{name}/{c['name']}: LEXEMBED_HOME is not a writable volume")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    for v in ("tmp", "home"):
        if "sizeLimit" not in vols.get(v, {}).get("emptyDir", {}):
            fail(f"{name}: emptyDir {v} has no sizeLimit")


def by_name(docs, kind, suffix):
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)), None)


def main():
    default, gpu, full = (load(p) for p in sys.argv[1:4])
    for docs in (default, gpu, full):
        for name, pod, _ in pods(docs):
            restricted(name, pod)

    # Start-up: a startupProbe on /healthz sized by stream.startupSeconds (10 min CPU, 30 min GPU), and
    # liveness without a fixed initial delay that a slow model load would outlast.
    for docs, seconds in ((default, 600), (gpu, 1800)):
        c = by_name(docs, "Deployment", "-stream")["spec"]["template"]["spec"]["containers"][0]
        sp = c.get("startupProbe", {})
        if sp.get("httpGet", {}).get("path") != "/healthz" or sp.get("periodSeconds", 0) * sp.get("failureThreshold", 0) != seconds:
            fail(f"stream startupProbe does not allow {seconds}s: {sp}")
        if c["livenessProbe"].get("initialDelaySeconds"):
            fail(f"stream liveness still has an initial delay: {c['livenessProbe']}")
        if c["readinessProbe"]["httpGet"]["path"] != "/readyz":
            fail("stream readiness is not /readyz (a member of the group, partitions or not)")

    dep = by_name(default, "Deployment", "-stream")
    if dep["spec"]["strategy"] != {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}:
        fail(f"stream strategy: {dep['spec']['strategy']}")
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    if pod["terminationGracePeriodSeconds"] != 360 or env.get("LEXEMBED_MAX_BATCH_SECONDS") != "300":
        fail(f"stream grace period / batch time not derived from stream.maxBatchSeconds: {pod['terminationGracePeriodSeconds']}, {env.get('LEXEMBED_MAX_BATCH_SECONDS')}")
    spec = next(d for d in default if d["kind"] == "ConfigMap")["data"]["pipeline.yaml"]
    if "partition.assignment.strategy: cooperative-sticky" not in spec:
        fail("the stream spec does not use cooperative-sticky assignment (eager rebalances stop every member)")
    if "max_batch_seconds: ${LEXEMBED_MAX_BATCH_SECONDS" not in spec:
        fail("the stream spec does not read the batch time (poll interval and stall limit)")
    spread = dep["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
    if not spread or spread[0]["topologyKey"] != "kubernetes.io/hostname" or spread[0]["whenUnsatisfiable"] != "ScheduleAnyway":
        fail(f"stream replicas are not spread over nodes: {spread}")
    pdb = by_name(default, "PodDisruptionBudget", "-stream")
    if not pdb or pdb["spec"].get("maxUnavailable") != 1:
        fail(f"no PodDisruptionBudget of one for the stream: {pdb}")

    # GPUs only where a workload embeds at scale: the stream (and serve) — not maintenance.
    gpu_limit = lambda pod: any("gpu" in k for c in pod["containers"] for k in c.get("resources", {}).get("limits", {}))
    for name, pod, _ in pods(gpu):
        on_gpu_nodes = "nvidia.com/gpu.present" in (pod.get("nodeSelector") or {})
        if name.endswith("-stream") and not (gpu_limit(pod) and on_gpu_nodes):
            fail(f"{name}: no GPU in the GPU values")
        if name.endswith("-backfill") and not gpu_limit(pod):
            fail(f"{name}: the backfill embeds at scale but gets no GPU")
        env = {e["name"]: e.get("value") for e in pod["containers"][0].get("env", [])}
        if name.endswith("-eval") and (gpu_limit(pod) or on_gpu_nodes or env.get("LEXEMBED_PROVIDER") != "cpu"):
            fail(f"{name}: eval (a few thousand questions) takes a GPU by default")
        if "-maintenance" in name and (gpu_limit(pod) or on_gpu_nodes):
            fail(f"{name}: maintenance (no embedding) lands on GPU nodes")
        if "-maintenance" in name and not pod["containers"][0].get("resources", {}).get("requests"):
            fail(f"{name}: maintenance has no resource requests")

    # CronJobs (maintenance too: scheduled, not a Job per upgrade): deadlines.
    for d in full:
        if d["kind"] == "CronJob":
            if d["spec"].get("startingDeadlineSeconds") is None or d["spec"]["jobTemplate"]["spec"].get("activeDeadlineSeconds") is None:
                fail(f"{d['metadata']['name']}: missing deadlines")

    # Options: digest, labels, env, volumes, service-account annotations, priority, init container.
    for name, pod, labels in pods(full):
        c = pod["containers"][0]
        if not c["image"].endswith("@sha256:" + "a" * 64):
            fail(f"{name}: image.digest not used: {c['image']}")
        if labels.get("team") != "search":
            fail(f"{name}: podLabels missing: {labels}")
        if pod.get("priorityClassName") != "batch-high":
            fail(f"{name}: priorityClassName missing")
        env = {e["name"]: e for e in c.get("env", [])}
        if env.get("EXTRA", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "spec.nodeName":
            fail(f"{name}: extraEnv missing: {list(env)}")
        if not any(m["name"] == "extra" for m in c.get("volumeMounts", [])) or not any(v["name"] == "extra" for v in pod["volumes"]):
            fail(f"{name}: extraVolumes/extraVolumeMounts missing")
        if "-maintenance" in name:
            continue  # it does not load the model
        init = (pod.get("initContainers") or [{}])[0]
        if init.get("name") != "fetch-model" or not init.get("resources") or "LEXEMBED_MODEL" not in {e["name"] for e in init.get("env", [])}:
            fail(f"{name}: init container lacks resources or env: {init}")
        model = next(v for v in pod["volumes"] if v["name"] == "model")
        if "sizeLimit" not in model.get("emptyDir", {}):
            fail(f"{name}: the model emptyDir has no sizeLimit")
    backfill = next(p for n, p, _ in pods(full) if n.endswith("-backfill"))
    if not any(m["mountPath"] == "/data/incoming" for m in backfill["containers"][0]["volumeMounts"]):
        fail("backfill: backfill.incoming is not mounted at /data/incoming")
    cm = next(d for d in full if d["kind"] == "ConfigMap" and "backfill.yaml" in d.get("data", {}))
    if "provider: ${LEXEMBED_PROVIDER:-cpu}" not in cm["data"]["backfill.yaml"]:
        fail("backfill spec has no encoder provider: it would embed on CPU while holding a GPU")
    sa = next(d for d in full if d["kind"] == "ServiceAccount")
    if sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn") != "arn:aws:iam::1:role/lexembed":
        fail(f"serviceAccount.annotations not rendered: {sa['metadata']}")

    for e in errors:
        print("chart:", e)
    if errors:
        sys.exit(1)
    print("chart: restricted securityContext everywhere, startup probes per provider, PDB, spread, strategy, deadlines, GPU only where it embeds, every option rendered")


if __name__ == "__main__":
    main()
