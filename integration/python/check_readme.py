#!/usr/bin/env python3
"""README drift check: every command the README shows must exist as written.

For each shell block in README.md, every `lexembed …` command's subcommand path must be one the binary
has, and each of its flags must appear in that subcommand's `--help`; `python integration/….py` flags
must appear in the script's `--help`; every repository path a block names (pipelines/, integration/,
charts/) must exist. The blocks that can run here are run as written by readme_tour.sh and s3.sh; this
catches the rest (renamed flags, moved files) without running them.

    check_readme.py README.md LEXEMBED_BINARY
"""
import glob
import os
import re
import shlex
import subprocess
import sys

REPO_PATH = re.compile(r"^(pipelines|integration|charts|operators|schemas)/[\w./*-]+$")


def shell_blocks(text):
    blocks, current = [], None
    for n, line in enumerate(text.splitlines(), 1):
        if current is None and line.startswith("```sh"):
            current = []
        elif current is not None and line.startswith("```"):
            blocks.append(current)
            current = None
        elif current is not None:
            current.append((n, line))
    return blocks


def commands(block):
    """Logical lines (continuations joined), each split at pipes and `&&` into commands."""
    joined, start = "", None
    for n, line in block:
        start = start or n
        if line.rstrip().endswith("\\"):
            joined += line.rstrip()[:-1] + " "
            continue
        joined += line
        try:
            tokens = shlex.split(joined, comments=True)
        except ValueError as e:
            yield start, None, f"cannot parse: {e}"
            joined, start = "", None
            continue
        cmd = []
        for t in tokens + ["|"]:
            if t in ("|", "&&", ";"):
                if cmd:
                    yield start, cmd, None
                cmd = []
            else:
                cmd.append(t)
        joined, start = "", None


def help_text(argv):
    r = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def subcommands(help_out):
    names, inside = set(), False
    for line in help_out.splitlines():
        if line.startswith("Commands:"):
            inside = True
        elif inside and re.match(r"^\S", line):
            inside = False
        elif inside and line.strip():
            names.add(line.split()[0])
    return names


def flags_of(tokens):
    for t in tokens:
        t = t.strip("[]")
        if t.startswith("--") and len(t) > 2:
            yield t.split("=", 1)[0]
        elif re.fullmatch(r"-[a-zA-Z]", t):
            yield t


def documented(flag, help_out):
    """The flag as a whole word of the help (`--precision` does not document `--precisio`)."""
    return re.search(rf"(^|[\s,\[]){re.escape(flag)}(?![\w-])", help_out, re.M) is not None


def check_lexembed(binary, tokens, helps):
    path, rest = [binary], tokens[1:]
    while rest and not rest[0].startswith("-"):
        key = tuple(path)
        if key not in helps:
            helps[key] = help_text(path)
        if rest[0] not in subcommands(helps[key][1]):
            break
        path.append(rest[0])
        rest = rest[1:]
    key = tuple(path)
    if key not in helps:
        helps[key] = help_text(path)
    rc, out = helps[key]
    if rc != 0:
        return [f"`{' '.join(['lexembed'] + path[1:])} --help` failed"]
    name = " ".join(["lexembed"] + path[1:])
    if len(path) == 1:
        return [f"`lexembed {rest[0] if rest else ''}`: no such subcommand"]
    return [f"`{name}` has no flag {f}" for f in flags_of(rest) if not documented(f, out)]


def check_python(tokens, helps):
    script = tokens[1]
    if not os.path.exists(script):
        return [f"{script} does not exist"]
    key = ("python", script)
    if key not in helps:
        helps[key] = help_text([sys.executable, script])
    rc, out = helps[key]
    if rc != 0:
        return [f"`python {script} --help` failed: {out.strip().splitlines()[-1:]}"]
    return [f"`{script}` has no flag {f}" for f in flags_of(tokens[2:]) if not documented(f, out)]


def main(readme, binary):
    problems, helps, checked = [], {}, 0
    with open(readme) as f:
        blocks = shell_blocks(f.read())
    for block in blocks:
        for line, tokens, error in commands(block):
            if error:
                problems.append(f"{readme}:{line}: {error}")
                continue
            while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):  # VAR=value prefixes
                tokens = tokens[1:]
            if not tokens:
                continue
            found = []
            if tokens[0] == "lexembed":
                found = check_lexembed(binary, tokens, helps)
                checked += 1
            elif tokens[0] == "python" and len(tokens) > 1 and tokens[1].endswith(".py"):
                found = check_python(tokens, helps)
                checked += 1
            for t in tokens:
                if REPO_PATH.match(t) and not glob.glob(t):
                    found.append(f"{t} does not exist")
            problems += [f"{readme}:{line}: {p}" for p in found]
    print(f"readme commands: {checked} commands in {len(blocks)} shell blocks checked")
    for p in problems:
        print(f"readme commands: FAILED: {p}")
    return 1 if problems or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
