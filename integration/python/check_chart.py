#!/usr/bin/env python3
"""Checks the manifests `helm template` renders from charts/lexembed: the things that matter in a cluster.

    python integration/python/check_chart.py default.yaml gpu.yaml

default.yaml: the chart's defaults; gpu.yaml: with values-gpu.yaml. Exits non-zero naming what is wrong.
"""
import sys

import yaml


def load(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def container(pod_spec, name=None):
    cs = pod_spec["containers"]
    return cs[0] if name is None else next(c for c in cs if c["name"] == name)


def check_common(pod_spec, c, where, errors):
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod_spec.get("volumes", [])}
    if mounts.get("pipeline", {}).get("mountPath") != "/etc/lexembed":
        errors.append(f"{where}: pipeline ConfigMap not mounted at /etc/lexembed")
    if "configMap" not in vols.get("pipeline", {}):
        errors.append(f"{where}: pipeline volume is not a ConfigMap")
    if "model" not in mounts or "persistentVolumeClaim" not in vols.get("model", {}):
        errors.append(f"{where}: model PVC not mounted")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    for k in ("LEXEMBED_MODEL", "ORT_DYLIB_PATH", "LEXEMBED_PROVIDER"):
        if k not in env:
            errors.append(f"{where}: env {k} missing")
    return env


def main():
    default, gpu = load(sys.argv[1]), load(sys.argv[2])
    errors = []

    # The stream Deployment: probes, metrics, secrets, the spec, no GPU by default.
    dep = default["Deployment"][0]
    spec = dep["spec"]["template"]["spec"]
    c = container(spec)
    if c["args"][:2] != ["run", "/etc/lexembed/pipeline.yaml"]:
        errors.append(f"stream args: {c['args']}")
    if c["livenessProbe"]["httpGet"]["path"] != "/healthz" or c["readinessProbe"]["httpGet"]["path"] != "/readyz":
        errors.append("stream probes are not /healthz and /readyz")
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/path") != "/metrics":
        errors.append(f"stream pods lack scrape annotations: {ann}")
    env = check_common(spec, c, "stream", errors)
    if env.get("LEXEMBED_PROVIDER") != "cpu":
        errors.append("default provider is not cpu")
    if any("gpu" in k for k in c["resources"].get("limits", {})):
        errors.append("default stream asks for a GPU")
    if dep["spec"]["replicas"] != 2:
        errors.append("default replicas is not 2")
    if "ServiceMonitor" in default:
        errors.append("ServiceMonitor rendered by default (needs the Prometheus operator's CRD)")
    if not any(p["name"] == "http" for p in default["Service"][0]["spec"]["ports"]):
        errors.append("metrics Service has no http port")

    # The eval CronJob: schedule, --once, fails on alerts (no retries hiding it).
    cron = next(cj for cj in default["CronJob"] if cj["metadata"]["name"].endswith("-eval"))
    if cron["spec"]["schedule"] != "0 3 * * *":
        errors.append(f"eval schedule: {cron['spec']['schedule']}")
    job = cron["spec"]["jobTemplate"]["spec"]
    jc = container(job["template"]["spec"])
    if jc["args"] != ["eval", "--pipeline", "/etc/lexembed/pipeline.yaml", "--once"]:
        errors.append(f"eval args: {jc['args']}")
    # An alert (exit 3) fails the Job at once; an error is retried once; evictions do not count.
    rules = job.get("podFailurePolicy", {}).get("rules", [])
    if {"action": "FailJob", "onExitCodes": {"containerName": "eval", "operator": "In", "values": [3]}} not in rules:
        errors.append(f"eval Job: an alert (exit 3) does not fail it at once: {rules}")
    if {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} not in rules:
        errors.append(f"eval Job: evictions count as failures: {rules}")
    if job.get("activeDeadlineSeconds") is None or cron["spec"].get("startingDeadlineSeconds") is None:
        errors.append("eval CronJob: no activeDeadlineSeconds/startingDeadlineSeconds (a hung run blocks the next)")
    check_common(job["template"]["spec"], jc, "eval", errors)
    cm = default["ConfigMap"][0]
    if "kind: kafka" not in cm["data"]["pipeline.yaml"]:
        errors.append("pipeline ConfigMap does not hold the Kafka spec")

    # GPU values: limits, provider, node selection, tolerations, ServiceMonitor.
    gdep = gpu["Deployment"][0]
    gspec = gdep["spec"]["template"]["spec"]
    gc = container(gspec)
    if str(gc["resources"]["limits"].get("nvidia.com/gpu")) != "1":
        errors.append(f"GPU limit missing: {gc['resources']}")
    genv = {e["name"]: e.get("value") for e in gc["env"]}
    if genv.get("LEXEMBED_PROVIDER") != "cuda":
        errors.append("GPU provider is not cuda")
    if gspec.get("nodeSelector", {}).get("nvidia.com/gpu.present") != "true":
        errors.append("GPU nodeSelector missing")
    if not any(t.get("key") == "nvidia.com/gpu" for t in gspec.get("tolerations", [])):
        errors.append("GPU toleration missing")
    gcron = next(cj for cj in gpu["CronJob"] if cj["metadata"]["name"].endswith("-eval"))
    gjc = container(gcron["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    # It embeds a few thousand questions: no GPU unless eval.gpu (it would wait for a free one).
    if "nvidia.com/gpu" in gjc["resources"].get("limits", {}):
        errors.append("eval CronJob takes a GPU by default")
    if gdep["spec"]["replicas"] != 4 or "ServiceMonitor" not in gpu:
        errors.append("GPU values: replicas 4 and a ServiceMonitor expected")

    for e in errors:
        print("chart:", e)
    print(f"chart: {'FAILED' if errors else 'ok'} ({sum(map(len, default.values()))} default manifests, {sum(map(len, gpu.values()))} GPU)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
