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
for bad in "stream.replicas=two" "model.source=s3" "eval.schedule=nightly" "gpu.provider=rocm"; do
  if "$HELM" template t "$chart" --set "$bad" > /dev/null 2>&1; then
    echo "chart: values schema accepted $bad"; exit 1
  fi
done
echo "chart: values schema refuses bad values"
python -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"], "no panels"; print("chart: dashboard ok,", len(d["panels"]), "panels")' "$ROOT/charts/grafana-dashboard.json"
