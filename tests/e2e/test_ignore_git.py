"""Tether's ignore matching agrees with git's own (``git check-ignore --no-index``).

Random pattern files (a root .gitignore and one in a subdirectory) over a real tree of files
and directories: for every path, file or directory, Tether says "ignored" exactly when git
does. Git gets the same tree (so directory-only patterns see real directories, and a path
below an ignored directory is ignored for both), with its user and system config out of the
way; every path is asked in one ``--stdin -z`` call.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tether.scan.scanner import Scanner


@pytest.fixture(autouse=True)
def _no_user_git_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git_ignored(root: Path, paths: list[str]) -> set[str]:
    out = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-z"],
        cwd=root,
        input=b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr.decode(errors="replace")
    return {p.decode("utf-8", "surrogateescape") for p in out.stdout.split(b"\0") if p}


def tether_ignored(root: Path, paths: dict[str, bool]) -> set[str]:
    rules = Scanner(root, ignored_dirs=(), ignored_files=()).ignore_rules()
    return {p for p, is_dir in paths.items() if rules.path_ignored(p, is_dir)}


def walk_found(root: Path) -> set[str]:
    """The files a whole-tree walk finds (it matches each directory's entries at once)."""
    scan = Scanner(root, ignored_dirs=(".git",), ignored_files=()).full_scan({})
    return {c.path for c in scan.changes}


def make_repo(root: Path, files: list[str], ignores: dict[str, str]) -> dict[str, bool]:
    """The tree (files and the directories above them) and its pattern files; path → is_dir."""
    subprocess.run(["git", "init", "-q", str(root)], check=True, timeout=60)
    kinds: dict[str, bool] = {}
    for f in files:
        parts = f.split("/")
        for i in range(1, len(parts)):
            kinds["/".join(parts[:i])] = True
    for f in files:
        if f not in kinds:
            kinds[f] = False
    for p, is_dir in sorted(kinds.items()):
        if is_dir:
            (root / p).mkdir(parents=True, exist_ok=True)
    for p, is_dir in kinds.items():
        if not is_dir:
            (root / p).write_bytes(b"")
    for where, text in ignores.items():
        if where and not kinds.get(where):
            continue
        (root / where / ".gitignore").write_bytes(text.encode("utf-8", "surrogateescape"))
        kinds[f"{where}/.gitignore" if where else ".gitignore"] = False
    return kinds


def compare(files: list[str], ignores: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="tether-ignore-") as tmp:
        root = Path(tmp).resolve()
        kinds = make_repo(root, files, ignores)
        paths = sorted(kinds)
        want = git_ignored(root, paths)
        got = tether_ignored(root, kinds)
        assert got == want, {
            "patterns": ignores,
            "only git ignores": sorted(want - got),
            "only tether ignores": sorted(got - want),
        }
        files_kept = {p for p, is_dir in kinds.items() if not is_dir and p not in want}
        found = walk_found(root)
        assert found == files_kept, {
            "patterns": ignores,
            "only the walk finds": sorted(found - files_kept),
            "only the walk misses": sorted(files_kept - found),
        }


# --- random patterns and trees --------------------------------------------------------------

NAMES = ["a", "b", "ab", "ba", "aab", "a.b", ".a", "a-b", "b c", "[a]", "a*", "!a", "#a", "\\a", "é", "x"]
PIECES = [
    "a",
    "b",
    "ab",
    ".",
    "-",
    " ",
    "é",
    "/",
    "/",
    "*",
    "*",
    "**",
    "**/",
    "/**",
    "?",
    "[ab]",
    "[!a]",
    "[^b]",
    "[a-c]",
    "[c-a]",
    "[]a]",
    "[!]]",
    "[-a]",
    "[a-]",
    "[[:alpha:]]",
    "[[:punct:][:space:]]",
    "[[:nope:]]",
    "[[:a]",
    "[\\]]",
    "[",
    "\\*",
    "\\?",
    "\\[",
    "\\ ",
    "\\",
    "\\a",
    "\\/",
]

patterns = st.builds(
    lambda neg, body, tail: ("!" if neg else "") + "".join(body) + tail,
    st.booleans(),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=6),
    st.sampled_from(["", "", "", "/", " ", "  ", "\\ ", "\r"]),
)
pattern_files = st.lists(st.one_of(patterns, st.sampled_from(["# c", "", "a", "*", "!*"])), max_size=6).map(
    lambda lines: "\n".join(lines) + "\n"
)
trees = st.lists(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=4).map("/".join), min_size=1, max_size=14
)


@seed(19)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=trees, root_rules=pattern_files, sub_rules=pattern_files)
def test_random_patterns_agree_with_git(files: list[str], root_rules: str, sub_rules: str) -> None:
    sub = files[0].split("/")[0] if "/" in files[0] else ""
    compare(files, {"": root_rules, sub: sub_rules} if sub else {"": root_rules})


# --- chosen cases ---------------------------------------------------------------------------

DEEP = ["a/b/c/d/x", "a/b/x", "a/x", "x", "b/a/x", "a/ab/x", "ab/x", "abc", "a/bc", "a/bx/c", "a/bx/y/c"]


@pytest.mark.parametrize(
    "rules",
    [
        "a/**/x\n",
        "**/b\n",
        "a/**\n",
        "/a\n",
        "a/\n!a/b\n",
        "*\n!*/\n!x\n",
        "a/b**/c\n",  # git's quirk: "**" right after the literal prefix is a boundary
        "a/b**\n",
        "a**/x\n",
        "**\\/x\n",
        "a/**\\/x\n",
        "**/**/x\n",
        "/**/b/**/x\n",
        "b/*/x\n",
        "*/x\n",
        "a/*\n",
        "\\#a\n#a\n",
        "x \nx\\ \n",
        "[a-b]/[!x]\n",
        "a\\/b\n",
    ],
)
def test_chosen_patterns_agree_with_git(rules: str) -> None:
    compare(DEEP, {"": rules})


def test_nested_pattern_files_agree_with_git() -> None:
    compare(
        ["a/b/x", "a/b/y.log", "a/keep.log", "a/c/x.log", "x.log", "b/x"],
        {"": "*.log\n/b\n", "a": "!keep.log\nb/\n"},
    )


CLASS_NAMES = [
    "alnum",
    "alpha",
    "blank",
    "cntrl",
    "digit",
    "graph",
    "lower",
    "print",
    "punct",
    "space",
    "upper",
    "xdigit",
]


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_character_classes_byte_by_byte(name: str) -> None:
    """Every ASCII byte (but NUL and "/") against each [:class:] and its negation."""
    chars = [chr(c) for c in range(1, 128) if chr(c) != "/"]
    with tempfile.TemporaryDirectory(prefix="tether-ignore-") as tmp:
        root = Path(tmp).resolve()
        subprocess.run(["git", "init", "-q", str(root)], check=True, timeout=60)
        for rules in (f"p[[:{name}:]]\n", f"n[![:{name}:]]\n"):
            (root / ".gitignore").write_text(rules)
            paths = {f"{rules[0]}{c}": False for c in chars}
            assert tether_ignored(root, paths) == git_ignored(root, list(paths)), rules


def test_non_ascii_names_match_as_utf8_bytes() -> None:
    # "?" is one byte for git: "é" is two.
    compare(["é", "éa", "a"], {"": "?\n??a\n"})


@pytest.mark.parametrize("seed_", [1, 2, 3])
def test_long_pattern_files_agree_with_git(seed_: int) -> None:
    """Past 64 patterns of a kind, names and endings go to dicts and the rest to chunks."""
    rng = random.Random(seed_)
    lines = []
    for _ in range(400):
        kind = rng.random()
        neg = "!" if rng.random() < 0.2 else ""
        if kind < 0.3:
            lines.append(neg + "/".join(rng.choice(NAMES) for _ in range(rng.randint(1, 2))))
        elif kind < 0.6:
            lines.append(
                f"{neg}*{rng.choice(['a', 'b', '.b', 'ab', 'c'])}" + ("/" if rng.random() < 0.2 else "")
            )
        else:
            lines.append(neg + "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4))))
    files = ["/".join(rng.choice(NAMES) for _ in range(rng.randint(1, 3))) for _ in range(60)]
    compare(files, {"": "\n".join(lines) + "\n"})
