"""tether.scan.ignore: each gitignore syntax feature, the bounds on untrusted pattern files, and
adversarial patterns that made the old backtracking matcher run for minutes (these complete
here: the suite's timeout is the bound, no timing is asserted). Agreement with git itself on
random patterns is tests/e2e/test_ignore_git.py."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tether.scan.ignore import MAX_PATTERN_BYTES, Rules, compile_line, parse, rules_from_bytes, wildmatch


def ignored(lines: str, rel: str, is_dir: bool = False, base: str = "") -> bool | None:
    patterns, problems = parse(lines.encode("utf-8"))
    assert not problems
    return Rules(patterns, base).verdict(rel, rel.rpartition("/")[2], is_dir)


@pytest.mark.parametrize(
    ("pattern", "text", "pathname", "want"),
    [
        # "*" and "?" within a component
        ("*.log", "a.log", False, True),
        ("*.log", "a.log.1", False, False),
        ("a*b*c", "axxbyyc", False, True),
        ("a*b*c", "acb", False, False),
        ("a?c", "abc", True, True),
        ("a?c", "a/c", True, False),
        ("a*c", "a/c", True, False),
        ("*", "", True, True),
        ("*/b", "a/b", True, True),
        ("*/b", "a/x/b", True, False),
        # "**" as whole components
        ("**/b", "b", True, True),
        ("**/b", "a/x/b", True, True),
        ("a/**", "a/x/y", True, True),
        ("a/**", "a", True, False),
        ("a/**/b", "a/b", True, True),
        ("a/**/b", "a/x/y/b", True, True),
        ("a/**/b", "ab", True, False),
        ("a/**/b", "a/xb", True, False),
        ("**/**/b", "b", True, True),
        ("a/**\\/b", "a/b", True, False),  # "**" before an escaped "/": one or more components
        ("a/**\\/b", "a/x/b", True, True),
        # "**" elsewhere is "*"
        ("a**b", "axxb", True, True),
        ("a**b", "ax/xb", True, False),
        ("x/*a**/b", "x/ay/z/b", True, False),
        ("x/*a**/b", "x/bay/b", True, True),
        # ... except right after the pattern's literal prefix (git's quirk)
        ("a/b**/c", "a/bc", True, True),
        ("a/b**/c", "a/bx/y/c", True, True),
        ("a/b**", "a/bx/y", True, True),
        # classes
        ("[abc]", "b", True, True),
        ("[abc]", "d", True, False),
        ("[!abc]", "d", True, True),
        ("[^abc]", "a", True, False),
        ("[a-c]", "b", True, True),
        ("[c-a]", "b", True, False),  # an empty range
        ("[a-]", "-", True, True),
        ("[-a]", "-", True, True),
        ("[]]", "]", True, True),
        ("[!]]", "a", True, True),
        ("[\\]]", "]", True, True),
        ("[a\\-c]", "b", True, False),
        ("[[:alpha:]]", "Q", True, True),
        ("[[:alpha:]]", "1", True, False),
        ("[[:digit:][:upper:]]", "7", True, True),
        ("[[:space:]]", " ", True, True),
        ("[[:xdigit:]]", "F", True, True),
        ("[[:punct:]]", "_", True, True),
        ("[![:lower:]]", "a", True, False),
        ("[[:a]", ":", True, True),  # no ":]": "[" and ":" and "a" are members
        ("[/]", "/", True, False),  # a class never matches "/"
        ("[!a]", "/", True, False),
        ("a[", "a[", True, False),  # unterminated: matches nothing
        ("[[:nope:]]", "n", True, False),  # unknown class: matches nothing
        ("[[:alpha:]", "a", True, False),
        # escapes
        ("\\*", "*", True, True),
        ("\\*", "x", True, False),
        ("\\?", "?", True, True),
        ("\\[a]", "[a]", True, True),
        ("\\a", "a", True, True),
        ("a\\", "a", True, False),  # a trailing backslash matches nothing
        # bytes: a non-ASCII character is its UTF-8 bytes
        ("?", "é", False, False),
        ("??", "é", False, True),
        ("[é]", "é", False, False),
    ],
)
def test_wildmatch(pattern: str, text: str, pathname: bool, want: bool) -> None:
    assert wildmatch(pattern, text, pathname=pathname) is want


def test_basename_patterns_match_at_any_depth_and_path_patterns_are_anchored() -> None:
    assert ignored("*.log\n", "a/b/c.log")
    assert ignored("build\n", "src/build", is_dir=True)
    assert ignored("b/c\n", "b/c")
    assert ignored("b/c\n", "a/b/c") is None  # a middle "/" anchors
    assert ignored("/c\n", "c")
    assert ignored("/c\n", "a/c") is None  # so does a leading one
    # Relative to the directory of the file the pattern comes from.
    assert ignored("/c\n", "sub/c", base="sub")
    assert ignored("x/c\n", "sub/x/c", base="sub")
    assert ignored("x/c\n", "sub/y/x/c", base="sub") is None


def test_directory_only_patterns() -> None:
    assert ignored("out/\n", "out", is_dir=True)
    assert ignored("out/\n", "out") is None
    assert ignored("a/out/\n", "a/out", is_dir=True)
    assert ignored("a/out/\n", "a/out") is None


def test_negation_last_match_wins() -> None:
    assert ignored("*.log\n!keep.log\n", "keep.log") is False
    assert ignored("!keep.log\n*.log\n", "keep.log") is True
    assert ignored("*.log\n!keep.log\n", "x.log") is True
    # A basename and a path pattern: the later one decides, whatever its kind.
    assert ignored("a/keep.log\n!keep.log\n", "a/keep.log") is False
    assert ignored("!keep.log\na/keep.log\n", "a/keep.log") is True
    assert ignored("\\!keep\n", "!keep") is True  # escaped: a literal "!"


def test_line_syntax() -> None:
    assert ignored("# comment\n\n   \nx\n", "# comment") is None
    assert ignored("\\#x\n", "#x") is True
    assert ignored("x  \n", "x") is True  # trailing spaces trimmed
    assert ignored("x \\ \n", "x  ") is True  # ... unless escaped
    assert ignored("x\\ \n", "x ") is True
    assert ignored("x\r\n", "x") is True  # CRLF files
    assert ignored(" x\n", " x") is True  # leading spaces are part of the pattern
    assert ignored("\ufeffx\n", "x") is True  # a UTF-8 BOM is skipped
    assert ignored("x", "x") is True  # no final newline
    assert ignored("x\0y\n", "x") is True  # git reads a line up to a NUL
    patterns, _ = parse(b"!\n/\n!/\n")
    assert patterns == []


def test_pattern_records_what_it_is() -> None:
    p = compile_line("!/a/b/", 3)
    assert p is not None
    assert (p.line, p.text, p.negated, p.dir_only, p.basename) == (3, "!/a/b/", True, True, False)
    q = compile_line("*.log")
    assert q is not None and q.basename and not q.negated and not q.dir_only


def test_bounds_on_untrusted_files() -> None:
    long = "a" * (MAX_PATTERN_BYTES + 1)
    patterns, problems = parse(f"x\n{long}\ny\n".encode())
    assert [p.text for p in patterns] == ["x", "y"]
    assert [(p.line, "longer than" in p.reason) for p in problems] == [(2, True)]
    many = "".join(f"p{i}\n" for i in range(30)).encode()
    patterns, problems = parse(many, max_patterns=10)
    assert len(patterns) == 10 and patterns[-1].text == "p9"
    assert len(problems) == 1 and "first 10 patterns" in str(problems[0]) and "20 more" in str(problems[0])
    # Exact names and "*.ext" are cheap whatever their number; other wildcards are bounded.
    mixed = "".join(f"n{i}\n*.e{i}\n*x{i}*\n" for i in range(30)).encode()
    patterns, problems = parse(mixed, max_glob_patterns=5)
    assert len(patterns) == 30 + 30 + 5
    assert [str(p) for p in problems] == [
        "25 patterns with wildcards not applied (at most 5 of them, 16384 bytes in all)"
    ]
    patterns, problems = parse(mixed, max_glob_bytes=20)  # "*x0*" … "*x9*": 4 bytes each
    assert len(patterns) == 30 + 30 + 5 and "25 patterns with wildcards not applied" in str(problems[0])
    # Many over-long lines: the first ones named, then counted.
    _, problems = parse((long + "\n").encode() * 6)
    assert len(problems) == 4 and "6 patterns longer" in str(problems[-1])


def test_long_files_match_as_short_ones() -> None:
    """Past 64 patterns of a kind, exact names and endings are looked up in dicts and the
    rest matched in chunks: the last matching pattern still decides."""
    lines = [f"f{i}" for i in range(100)] + [f"*.e{i}" for i in range(100)] + [f"g{i}*" for i in range(100)]
    lines += ["!f7", "!*.e7", "!g7*", "f7", "*.e50", "!x.e50"]
    rules, _ = rules_from_bytes(("\n".join(lines) + "\n").encode())
    small = {n: Rules(parse(f"{p}\n".encode())[0]) for n, p in [("f", "f3"), ("e", "*.e3"), ("g", "g3*")]}
    assert small["f"].verdict("f3", "f3", False) and small["e"].verdict("a.e3", "a.e3", False)
    cases = {
        "f3": True,
        "f7": True,  # re-ignored after its negation
        "a.e3": True,
        "a.e7": False,
        "g3x": True,
        "g7x": False,
        "a.e50": True,
        "x.e50": False,
        "h": None,
        "d/f3": True,
    }
    for path, want in cases.items():
        assert rules.verdict(path, path.rpartition("/")[2], False) is want, path


PIECES = ["a", "b", "ab", ".", "é", "/", "*", "**", "**/", "?", "[ab]", "[!a]", "\\*", "x"]
pattern_lines = st.builds(
    lambda neg, body, slash: ("!" if neg else "") + "".join(body) + slash,
    st.booleans(),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=5),
    st.sampled_from(["", "/"]),
)
entry_names = st.lists(st.text("ab.x*", min_size=1, max_size=6), max_size=8, unique=True)


@settings(max_examples=300, deadline=None)
@example(lines=["a/b"], names=["b", "ab"], where=("", "a/"), is_dir=False)  # a path's ending holds "/"
@example(lines=["**/x/*.b"], names=["a.b"], where=("a", "a/x/"), is_dir=False)
@example(lines=["a*", "!*b"], names=["ab", "ba", "ax", "x"], where=("", ""), is_dir=True)  # a literal run
@given(
    lines=st.one_of(  # short files (prefilters apply) and long ones (dicts, chunks)
        st.lists(pattern_lines, min_size=1, max_size=4), st.lists(pattern_lines, min_size=65, max_size=90)
    ),
    names=entry_names,
    where=st.sampled_from([("", ""), ("", "a/"), ("", "a/b/"), ("a", "a/"), ("a", "a/b/"), ("a", "a/x/")]),
    is_dir=st.booleans(),
)
def test_a_directory_at_once_as_entry_by_entry(
    lines: list[str], names: list[str], where: tuple[str, str], is_dir: bool
) -> None:
    """The walk's Rules.verdicts (names passed over by their endings and literal runs, short
    and long files) says what Rules.verdict says of each entry."""
    base, prefix = where
    rules = Rules(parse(("\n".join(lines) + "\n").encode())[0], base)
    want = {}
    for name in names:
        verdict = rules.verdict(prefix + name, name, is_dir)
        if verdict is not None:
            want[name] = verdict
    assert rules.verdicts(prefix, names, is_dir) == want


def test_compiled_once_per_content() -> None:
    a = rules_from_bytes(b"*.log\n", "")
    assert rules_from_bytes(b"*.log\n", "") is a
    assert rules_from_bytes(b"*.log\n", "sub") is not a


# --- adversarial patterns: no blow-up ---------------------------------------------------------

ADVERSARIAL = [
    ("*a*a*a*a*a*a*a*a*b", "a" * 60, False),
    ("*a" * 40 + "*b", "a" * 255, False),
    ("*a" * 40 + "*", "a" * 255, True),
    ("*[!b]" * 30 + "*b", "a" * 255, False),
    ("*?" * 50 + "*b", "a" * 255, False),
    ("*[" + "abcdefghijklmnopqrstuvwxyz" * 30 + "]" * 1 + "*b", "a" * 255, False),
    ("[[:alpha:][:digit:]]*" * 30 + "b", "a" * 255, False),
    ("*" + "a" * 200 + "b", "a" * 255, False),
    ("**/" * 60 + "b", "/".join(["a"] * 400), False),
    ("/".join(["**/*a"] * 20) + "/b", "/".join(["a"] * 400), False),
    ("/".join(["**/*a*a*a"] * 10) + "/**/b", "/".join(["aaaaaaaa"] * 300), False),
    ("a/" + "*a" * 30 + "*b", "a/" + "a" * 255, False),
    ("**/" + "*a" * 30 + "*b", "/".join(["a" * 200] * 20), False),
    ("**/a/**/a/**/a/**/a/**/b", "/".join(["a"] * 400), False),
    ("**/a/**/a/**/a/**/a/**/b", "/".join(["a"] * 400) + "/b", True),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("pattern", "text", "want"), ADVERSARIAL)
def test_adversarial_patterns_complete(pattern: str, text: str, want: bool) -> None:
    assert wildmatch(pattern, text) is want


@pytest.mark.timeout(60)
def test_adversarial_file_against_many_long_names() -> None:
    lines = "\n".join(p for p, _, _ in ADVERSARIAL) + "\n"
    rules, problems = rules_from_bytes(lines.encode())
    assert not problems
    for n in range(30, 255):
        name = "a" * n
        # Only "*a" x 40 + "*" matches: names with at least 40 "a".
        assert rules.verdict(f"d/{name}", name, False) is (True if n >= 40 else None)
