#!/usr/bin/env python3
"""Kubernetes API JSON schemas for kubeconform, offline: from the OpenAPI (v2) document that the
k8s.io/kubernetes module ships (api/openapi-spec/swagger.json, from the Go module proxy).

    python integration/python/k8s_schemas.py SWAGGER.json OUTDIR

Writes one standalone, strict schema per kind (every $ref inlined; objects with properties refuse
unknown fields, as the API server's strict field validation does; int-or-string as either), named as
kubeconform's default location expects: <kind>-<group>-<version>.json (core: <kind>-<version>.json).
"""
import json
import sys
from pathlib import Path


def main():
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    defs = spec["definitions"]

    def expand(node, seen):
        if isinstance(node, list):
            return [expand(n, seen) for n in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str):
            name = node["$ref"].split("/")[-1]
            if name in seen:  # recursive types (JSONSchemaProps): leave open
                return {}
            return expand(defs[name], seen | {name})
        node = {k: expand(v, seen) for k, v in node.items() if not k.startswith("x-kubernetes") or k == "x-kubernetes-group-version-kind"}
        if node.get("format") == "int-or-string":
            node = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node

    written = 0
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            group = gvk["group"].split(".")[0]
            suffix = f"-{group}-{gvk['version']}" if group else f"-{gvk['version']}"
            schema = expand(d, {name})
            schema.pop("x-kubernetes-group-version-kind", None)
            schema["$schema"] = "http://json-schema.org/schema#"
            (out / f"{gvk['kind'].lower()}{suffix}.json").write_text(json.dumps(schema))
            written += 1
    print(f"[k8s-schemas] {written} kinds -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
