#!/usr/bin/env python3
"""Lays out the GPU machine's calls and checks that they fit, before any device time is spent.

    python3 integration/gpu/plan.py [--root .] [--out target/gpu/plan.json]

Reads what integration/gpu/prepare.sh left in the checkout: the ONNX Runtime chunk folders `.gpu1/ …
.gpuN/` (N from the last one's CHUNKS file, as ../shared/gpu/pack-ort-gpu.sh writes it), `.gpu-tok/`
(the tokenizer, needed by the first call, which starts the model build in the background) and
`.gpu-data/` (the benchmark binary and texts, xz-compressed). Every call carries the tree the device
tool copies (tracked files and untracked files git does not ignore) plus its folders; the data folder
rides with the last call when it fits, else with the earliest chunk call that has room (it then waits
in /tmp/lexembed-gpu, which lives as long as the machine stays warm).

Writes {"calls": [{"carry", "command", "timeout_s", "bytes"}], "device_seconds", ...} and prints the
same as a table. Exits 1, saying why, when a call carries more than 60 MiB, a command is over 2,000
characters, a chunk is missing, or the calls' time limits plus the machine's start exceed 14 minutes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

MIB = 1 << 20
CALL_LIMIT = 60 * MIB  # the device tool refuses 64 MiB; keep a margin for what changes in the tree
COMMAND_LIMIT = 2000
DEVICE_LIMIT_S = 14 * 60
START_S = 240  # a machine's start, counted against the session's device time
FIRST_TIMEOUT_S = 60  # first chunk + the background model build's start
CHUNK_TIMEOUT_S = 40
LAST_TIMEOUT_S = 400  # preflight + wait for the model + the benchmark; ≤ 540 by the issue
DATA = "/tmp/lexembed-gpu"


def folder_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def tree_bytes(root: Path) -> int:
    """What every device call carries: tracked files and untracked ones git does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, check=True, capture_output=True,
    ).stdout
    total = 0
    for name in out.decode().split("\0"):
        f = root / name
        if name and f.is_file():
            total += f.stat().st_size
    return total


def chunk_folders(root: Path) -> list[str]:
    counts = sorted(root.glob(".gpu[0-9]*/CHUNKS"))
    if not counts:
        raise SystemExit("plan: no .gpuN/CHUNKS: run ../shared/gpu/pack-ort-gpu.sh (prepare.sh does)")
    n = int(counts[-1].read_text().strip())
    folders = [f".gpu{i}" for i in range(1, n + 1)]
    missing = [f for f in folders if not list((root / f).glob("part??"))]
    if missing:
        raise SystemExit(f"plan: chunk folders without their part: {missing} (pack again)")
    if not (root / folders[-1] / "unpack.sh").is_file():
        raise SystemExit(f"plan: {folders[-1]}/unpack.sh missing (pack again)")
    return folders


def layout(root: Path) -> dict:
    chunks = chunk_folders(root)
    for extra in (".gpu-tok", ".gpu-data"):
        if not (root / extra).is_dir():
            raise SystemExit(f"plan: {extra}/ missing: run integration/gpu/prepare.sh")
    tree = tree_bytes(root)
    calls = []
    for i, chunk in enumerate(chunks):
        carry = [chunk]
        steps = [f"cp {chunk}/part?? /tmp/ortgpu/"]
        if i == 0:
            carry.append(".gpu-tok")
            steps = ["mkdir -p /tmp/ortgpu " + DATA, steps[0], f"cp .gpu-tok/* {DATA}/",
                     "integration/gpu/build_model.sh start"]
        timeout = FIRST_TIMEOUT_S if i == 0 else CHUNK_TIMEOUT_S
        calls.append({"carry": carry, "steps": steps, "timeout_s": timeout})
    last = calls[-1]
    last["steps"] = ["integration/gpu/bench.sh"]
    last["timeout_s"] = LAST_TIMEOUT_S
    size = {f: folder_bytes(root / f) for c in calls for f in c["carry"]}
    size[".gpu-data"] = folder_bytes(root / ".gpu-data")

    def call_bytes(c: dict) -> int:
        return tree + sum(size[f] for f in c["carry"])

    # The data rides with the last call when it fits there, else with the earliest call with room.
    order = [calls[-1]] + calls[:-1]
    home = next((c for c in order if call_bytes(c) + size[".gpu-data"] <= CALL_LIMIT), None)
    if home is None:
        raise SystemExit(
            f"plan: .gpu-data ({size['.gpu-data'] / MIB:.1f} MiB) fits in no call beside a chunk "
            f"and the tree ({tree / MIB:.1f} MiB): pack smaller chunks (CHUNK_MIB)"
        )
    home["carry"].append(".gpu-data")
    if home is not calls[-1]:
        home["steps"].insert(-1 if home is calls[0] else len(home["steps"]), f"cp .gpu-data/* {DATA}/")
    for c in calls:
        c["bytes"] = call_bytes(c)
        c["command"] = " && ".join(c.pop("steps"))
    device = sum(c["timeout_s"] for c in calls) + START_S
    return {
        "calls": [{k: c[k] for k in ("carry", "command", "timeout_s", "bytes")} for c in calls],
        "device_seconds": device,
        "tree_bytes": tree,
        "chunks": len(chunks),
        "limits": {"call_bytes": CALL_LIMIT, "command_chars": COMMAND_LIMIT,
                   "device_seconds": DEVICE_LIMIT_S, "start_seconds": START_S},
    }


def problems(plan: dict) -> list[str]:
    out = []
    for i, c in enumerate(plan["calls"], 1):
        if c["bytes"] > CALL_LIMIT:
            out.append(f"call {i} carries {c['bytes'] / MIB:.1f} MiB (over {CALL_LIMIT / MIB:.0f})")
        if len(c["command"]) > COMMAND_LIMIT:
            out.append(f"call {i}'s command is {len(c['command'])} characters (over {COMMAND_LIMIT})")
        if c["timeout_s"] > 540:
            out.append(f"call {i}'s timeout is {c['timeout_s']} s (over 540)")
    if plan["device_seconds"] > DEVICE_LIMIT_S:
        out.append(f"the plan takes {plan['device_seconds']} s of device time (over {DEVICE_LIMIT_S})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--out", type=Path, default=Path("target/gpu/plan.json"))
    a = ap.parse_args()
    plan = layout(a.root.resolve())
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(plan, indent=2) + "\n")
    print(f"{'call':<5}{'MiB':>7}{'timeout s':>11}  carry / command")
    for i, c in enumerate(plan["calls"], 1):
        print(f"{i:<5}{c['bytes'] / MIB:>7.1f}{c['timeout_s']:>11}  {c['carry']}")
        print(f"{'':<23}{c['command']}")
    print(f"device time: {plan['device_seconds']} s with {START_S} s of start "
          f"(limit {DEVICE_LIMIT_S}); tree {plan['tree_bytes'] / MIB:.1f} MiB; {plan['chunks']} chunks; "
          f"written to {a.out}")
    bad = problems(plan)
    for p in bad:
        print(f"plan: {p}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
