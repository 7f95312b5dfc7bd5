#!/usr/bin/env bash
# The Helm chart: lint (defaults and GPU values), render, check the rendered manifests, and check that
# the values schema refuses bad values.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/integration/env.sh"
HELM="${HELM:-$(command -v helm || echo "$(go env GOPATH)/bin/helm")}"
[ -x "$HELM" ] || { echo "helm not found: integration/setup.sh builds it"; exit 1; }
chart="$ROOT/charts/lexembed"
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
"$HELM" lint "$chart"
"$HELM" lint "$chart" -f "$chart/values-gpu.yaml"
"$HELM" template t "$chart" > "$out/default.yaml"
"$HELM" template t "$chart" -f "$chart/values-gpu.yaml" > "$out/gpu.yaml"
"$HELM" template t "$chart" --set backfill.enabled=true --set maintenance.enabled=true \
  --set model.source=initContainer --set secretEnv.create=true --set secretEnv.data.AWS_SECRET_ACCESS_KEY=x > "$out/all.yaml"
python "$ROOT/integration/python/check_chart.py" "$out/default.yaml" "$out/gpu.yaml"
# A sharded backfill: an Indexed Job whose pod i runs shard i of 4.
"$HELM" template t "$chart" --set backfill.enabled=true --set backfill.shards=4 > "$out/sharded.yaml"
python - "$out/sharded.yaml" <<'PY'
import sys, yaml
cron = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "CronJob" and d["metadata"]["name"].endswith("-backfill"))
job = cron["spec"]["jobTemplate"]["spec"]
want = {"completionMode": "Indexed", "completions": 4, "parallelism": 4}
got = {k: job.get(k) for k in want}
assert got == want, f"sharded backfill job: {got}"
args = job["template"]["spec"]["containers"][0]["args"]
assert args[-2:] == ["--shard", "$(JOB_COMPLETION_INDEX)/4"], f"sharded backfill args: {args}"
print("chart: sharded backfill is an Indexed Job of 4 shards")
PY
# The nightly evaluation at 03:00 Madrid time, summer and winter.
"$HELM" template t "$chart" --set eval.timeZone=Europe/Madrid > "$out/zoned.yaml"
python - "$out/zoned.yaml" "$out/default.yaml" <<'PY'
import sys, yaml
def cron(path):
    return next(d for d in yaml.safe_load_all(open(path)) if d and d["kind"] == "CronJob" and d["metadata"]["name"].endswith("-eval"))["spec"]
zoned, default = cron(sys.argv[1]), cron(sys.argv[2])
assert (zoned["schedule"], zoned.get("timeZone")) == ("0 3 * * *", "Europe/Madrid"), zoned
assert "timeZone" not in default, "no timeZone unless set (UTC)"
print("chart: eval CronJob follows eval.timeZone")
PY
# Batch jobs' metrics for node_exporter's textfile collector: a file per job (per shard) on the node.
"$HELM" template t "$chart" --set metrics.textfileDir=/var/lib/node_exporter/textfile --set backfill.enabled=true --set backfill.shards=2 > "$out/textfile.yaml"
python - "$out/textfile.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "CronJob"]
for d in docs:
    pod = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    i = args.index("--metrics-file")
    assert args[i + 1].startswith("/var/lib/lexembed/metrics/t-lexembed-"), args
    assert any(m["name"] == "metrics-textfile" and m["mountPath"] == "/var/lib/lexembed/metrics" for m in pod["containers"][0]["volumeMounts"]), pod
    assert {"name": "metrics-textfile", "hostPath": {"path": "/var/lib/node_exporter/textfile", "type": "DirectoryOrCreate"}} in pod["volumes"], pod["volumes"]
backfill = next(d for d in docs if d["metadata"]["name"].endswith("-backfill"))
args = backfill["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
assert "$(JOB_COMPLETION_INDEX)" in args[args.index("--metrics-file") + 1], args
print("chart: batch jobs write metrics textfiles when metrics.textfileDir is set")
PY
# lexembed serve: off by default; on, a Deployment + Service with probes that wait for the model.
"$HELM" template t "$chart" --set serve.enabled=true --set serve.apiKey.existingSecret=serve-key > "$out/serve.yaml"
"$HELM" lint "$chart" --set serve.enabled=true
python - "$out/serve.yaml" "$out/default.yaml" "$ROOT/integration/python" <<'PY'
import sys, yaml
sys.path.insert(0, sys.argv[3])
from check_chart import check_common
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
assert not any(d["metadata"]["name"].endswith("-serve") for d in yaml.safe_load_all(open(sys.argv[2])) if d), "serve rendered by default"
dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "t-lexembed-serve")
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
assert c["args"][:3] == ["serve", "--http-addr", "0.0.0.0:8080"], c["args"]
assert c["args"][c["args"].index("--dataset") + 1] == "boe=$(LEXEMBED_DATASET)", c["args"]
for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
    assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}, (probe, c[probe])
startup = c["startupProbe"]
assert startup["periodSeconds"] * startup["failureThreshold"] == 600, startup
assert pod["terminationGracePeriodSeconds"] == 45, pod["terminationGracePeriodSeconds"]
key = next(e for e in c["env"] if e["name"] == "LEXEMBED_API_KEY")
assert key["valueFrom"]["secretKeyRef"] == {"name": "serve-key", "key": "api-key"}, key
errors = []
check_common(pod, c, "serve", errors)
assert not errors, errors
svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "t-lexembed-serve")
assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}], svc["spec"]
assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "serve", svc["spec"]
print("chart: serve Deployment (startup/liveness/readiness on /health, API key from a Secret) and Service")
PY
# Production properties (issue 20) on defaults, the GPU values with every workload, and every option.
"$HELM" template t "$chart" -f "$chart/values-gpu.yaml" --set maintenance.enabled=true --set backfill.enabled=true \
  --set serve.enabled=true > "$out/gpu-all.yaml"
cat > "$out/options.yaml" <<'VALUES'
image: {repository: registry.example.com/lexembed, digest: "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
podLabels: {team: search}
priorityClassName: batch-high
extraEnv: [{name: EXTRA, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
extraVolumes: [{name: extra, emptyDir: {}}]
extraVolumeMounts: [{name: extra, mountPath: /extra}]
serviceAccount: {annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::1:role/lexembed"}}
model: {source: initContainer}
serve: {enabled: true}
backfill: {enabled: true, incoming: {persistentVolumeClaim: {claimName: incoming}}}
maintenance: {enabled: true}
secretEnv: {create: true}
VALUES
"$HELM" lint "$chart" -f "$out/options.yaml"
"$HELM" template t "$chart" -f "$out/options.yaml" > "$out/options-render.yaml"
python "$ROOT/integration/python/check_chart_hardening.py" "$out/default.yaml" "$out/gpu-all.yaml" "$out/options-render.yaml"
"$HELM" template t "$chart" --set eval.schedule=@daily > /dev/null || { echo "chart: @daily refused"; exit 1; }
# Every rendered manifest against the Kubernetes 1.34 API schemas, strictly (unknown fields refused),
# offline; the CRD kinds (ServiceMonitor, ScaledObject, PrometheusRule) have no schema here.
kubeconform="$(go env GOPATH)/bin/kubeconform"
schemas="$LEXEMBED_HOME/k8s-schemas/v1.34.0"
[ -x "$kubeconform" ] && [ -d "$schemas" ] || { echo "kubeconform or the API schemas missing: run integration/setup.sh"; exit 1; }
for f in default gpu all gpu-all options-render serve sharded textfile; do
  "$kubeconform" -strict -summary -skip ServiceMonitor,ScaledObject,PrometheusRule \
    -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$out/$f.yaml"
done
# A manifest with a field the API does not have is refused (the check can fail).
sed 's/terminationGracePeriodSeconds:/terminationGracePeriodSecs:/' "$out/default.yaml" > "$out/broken.yaml"
if "$kubeconform" -strict -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$out/broken.yaml" >/dev/null 2>&1; then
  echo "chart: kubeconform accepted an unknown field"; exit 1
fi
echo "chart: every manifest valid against the Kubernetes 1.34 API schemas (strict)"
# KEDA (capped at the partitions) and the PrometheusRule, when enabled; neither by default (CRDs).
"$HELM" template t "$chart" --set stream.autoscaling.keda.enabled=true --set stream.autoscaling.keda.partitions=4 \
  --set metrics.prometheusRule.enabled=true > "$out/operators.yaml"
python - "$out/operators.yaml" "$out/default.yaml" "$ROOT/charts/grafana-dashboard.json" <<'PY'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
default = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
assert not any(d["kind"] in ("ScaledObject", "PrometheusRule") for d in default), "CRD objects rendered by default"
so = next(d for d in docs if d["kind"] == "ScaledObject")
assert so["spec"]["maxReplicaCount"] == 4 and so["spec"]["scaleTargetRef"]["name"] == "t-lexembed-stream", so["spec"]
trigger = so["spec"]["triggers"][0]
assert trigger["type"] == "kafka" and trigger["metadata"]["consumerGroup"] == "lexembed-boe", trigger
rule = next(d for d in docs if d["kind"] == "PrometheusRule")
alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
assert alerts == {"LexembedEvalFailed", "LexembedEvalNotRun", "LexembedEvalMetricAlert", "LexembedLagGrowing", "LexembedNoCommits"}, alerts
maint = [d for d in yaml.safe_load_all(open(sys.argv[2].replace("default.yaml", "all.yaml"))) if d and "maintenance" in d["metadata"]["name"]]
assert maint and maint[0]["kind"] == "CronJob", "maintenance is not a CronJob"
dash = json.load(open(sys.argv[3]))
names = {v["name"] for v in dash["templating"]["list"]}
assert {"namespace", "pod"} <= names, names
assert all('$namespace' in t["expr"] and '$pod' in t["expr"] for p in dash["panels"] for t in p["targets"]), "a panel ignores the namespace/pod variables"
print("chart: KEDA ScaledObject capped at the partitions, PrometheusRule alerts, maintenance CronJob, dashboard variables")
PY
for bad in "model.pvc.claim=x" "model.initContainer.imag=x" "onnxruntime.libPath=x" "maintenance.index.colum=x" "stream.strategy.typo=1" "serviceAccount.annotatons.a=b" "image.digest=latest" "scratch.tmpSize=1Gi" "stream.podDisruptionBudget.min=1" \
  "serve.maxQueued=0" "serve.service.type=Ingress" "serve.datasetName=a=b" "metrics.textfileDir=relative/dir" "eval.timeZone=Europe/Madrid;rm" "backfill.shards=0" "stream.replicas=two" "model.source=s3" "eval.schedule=nightly" "gpu.provider=rocm"; do
  if "$HELM" template t "$chart" --set "$bad" > /dev/null 2>&1; then
    echo "chart: values schema accepted $bad"; exit 1
  fi
done
# A whole values file with a misspelt key inside a block, as a user would write it.
printf 'stream:\n  replicas: 2\n  startupSecond: 900\n' > "$out/broken-values.yaml"
if "$HELM" template t "$chart" -f "$out/broken-values.yaml" > /dev/null 2>&1; then
  echo "chart: values schema accepted a values file with stream.startupSecond"; exit 1
fi
echo "chart: values schema refuses bad values"
python -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"], "no panels"; print("chart: dashboard ok,", len(d["panels"]), "panels")' "$ROOT/charts/grafana-dashboard.json"
