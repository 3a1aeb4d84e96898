"""Worst cases of ignore matching: Tether's matcher, pathspec (the former dependency, when
an interpreter that has it is given) and git itself, on patterns built to make a matcher
backtrack, against growing names and paths.

    .venv/bin/python bench/bench_ignore.py
    .venv/bin/python bench/bench_ignore.py --pathspec-python /path/to/python   # with pathspec

Each case runs in its own process, killed at --timeout seconds (a blow-up shows as "> N s").
Tether and pathspec: one pattern compiled, then one path matched (the time is the match).
Git: `git check-ignore --no-index -q PATH` in a repository holding the pattern (a process,
so about 1 ms is its start-up: the baseline row "*.log" shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES: list[tuple[str, str, str]] = [
    # (label, pattern, path)
    ("baseline *.log", "*.log", "a" * 60),
    ("issue 19: *a x8 *b, 60 'a'", "*a*a*a*a*a*a*a*a*b", "a" * 60),
    ("*a x8 *b, 25 'a' + 'c'", "*a*a*a*a*a*a*a*a*b", "a" * 25 + "c"),
    ("*a x8 *b, 30 'a' + 'c'", "*a*a*a*a*a*a*a*a*b", "a" * 30 + "c"),
    ("*a x8 *b, 200 'a' + 'c'", "*a*a*a*a*a*a*a*a*b", "a" * 200 + "c"),
    ("*a x30 *b, 255 'a'", "*a" * 30 + "*b", "a" * 255),
    ("*[!b] x25 *b, 255 'a'", "*[!b]" * 25 + "*b", "a" * 255),
    ("1000-char class, 255 'a'", "*[" + "abcdefghijklmnopqrstuvwxy" * 40 + "]*b", "a" * 255),
    ("**/ x10 b, 20 deep", "**/" * 10 + "b", "/".join(["a"] * 20)),
    ("**/ x14 b, 20 deep", "**/" * 14 + "b", "/".join(["a"] * 20)),
    ("**/ x20 b, 40 deep", "**/" * 20 + "b", "/".join(["a"] * 40)),
    ("(**/*a) x8 /b, 40 deep", "/".join(["**/*a"] * 8) + "/b", "/".join(["a"] * 40)),
    ("a/*a x8 *b, a/ + 60 'a'", "a/" + "*a" * 8 + "*b", "a/" + "a" * 60),
]

CHILD = r"""
import json, sys, time
kind, pattern, path = sys.argv[1:4]
t0 = time.perf_counter()
if kind == "tether":
    sys.path.insert(0, sys.argv[4])
    from tether.scan.ignore import Rules, parse
    patterns, _ = parse(pattern.encode() + b"\n")
    rules = Rules(patterns)
    t1 = time.perf_counter()
    hit = rules.verdict(path, path.rpartition("/")[2], False)
else:
    import pathspec
    try:  # pathspec >= 1.0 picks re2 or hyperscan when installed: Tether ran the plain one
        spec = pathspec.GitIgnoreSpec.from_lines([pattern], backend="simple")
    except TypeError:
        spec = pathspec.GitIgnoreSpec.from_lines([pattern])
    t1 = time.perf_counter()
    hit = spec.match_file(path)
t2 = time.perf_counter()
print(json.dumps({"compile": t1 - t0, "match": t2 - t1, "hit": bool(hit)}))
"""


def in_process(kind: str, python: str, pattern: str, path: str, timeout: float) -> str:
    try:
        out = subprocess.run(
            [python, "-c", CHILD, kind, pattern, path, str(ROOT / "server")],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"> {timeout:g} s"
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return "n/a" if "No module named" in last else f"error: {last[:60]}"
    r = json.loads(out.stdout)
    return f"{r['match'] * 1000:.3f} ms"


def with_git(pattern: str, path: str, timeout: float) -> str:
    d = Path(tempfile.mkdtemp(prefix="tether-bench-ignore-"))
    try:
        subprocess.run(["git", "init", "-q", str(d)], check=True)
        (d / ".gitignore").write_text(pattern + "\n")
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            try:
                subprocess.run(
                    ["git", "check-ignore", "--no-index", "-q", path],
                    cwd=d,
                    timeout=timeout,
                    check=False,
                    env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(d)},
                )
            except subprocess.TimeoutExpired:
                return f"> {timeout:g} s"
            best = min(best, time.perf_counter() - t)
        return f"{best * 1000:.1f} ms"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before a case is killed")
    ap.add_argument("--pathspec-python", default=None, help="an interpreter with pathspec installed")
    args = ap.parse_args()
    git_version = subprocess.run(["git", "--version"], check=True, capture_output=True, text=True).stdout
    print(f"{git_version.strip()}; Python {sys.version.split()[0]}; timeout {args.timeout:g} s per case\n")
    head = "| case | Tether (match) | git check-ignore (process) |"
    rule = "|---|---:|---:|"
    if args.pathspec_python:
        head += " pathspec, re backend (match) |"
        rule += "---:|"
    print(head)
    print(rule)
    for label, pattern, path in CASES:
        row = [
            label,
            in_process("tether", sys.executable, pattern, path, args.timeout),
            with_git(pattern, path, args.timeout),
        ]
        if args.pathspec_python:
            row.append(in_process("pathspec", args.pathspec_python, pattern, path, args.timeout))
        print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
