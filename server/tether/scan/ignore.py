"""Git's ignore rules (gitignore(5)): parsing and matching, with git's semantics and a cost
that stays polynomial (at most path length x pattern length) for every pattern.

Pure: bytes in, verdicts out; reading the files is the scanner's job.

Semantics are git's (``dir.c`` and ``wildmatch.c`` with ``WM_PATHNAME``), checked against
``git check-ignore`` by tests/e2e/test_ignore_git.py:

- a line is a pattern unless empty or starting with ``#``; a trailing ``\\r`` is dropped,
  trailing spaces are trimmed unless escaped (``\\ ``); a leading ``!`` negates, a trailing
  ``/`` makes the pattern match directories only;
- a pattern without a ``/`` (after that trailing one is removed) matches the last component
  of a path at any depth; any other is matched against the whole path relative to the
  directory of the file it comes from (one leading ``/`` only anchors it there);
- ``*`` and ``?`` never match ``/``; ``**`` matches across ``/`` only as a whole component
  (``**/x``, ``x/**``, ``x/**/y``; ``x/**/y`` also matches ``x/y``), elsewhere it is ``*``;
- ``[...]`` with ``!`` or ``^`` negation, ranges, ``[:alpha:]``-style classes (ASCII, as git's)
  and ``\\`` escapes; a malformed class makes the pattern match nothing; a class never
  matches ``/``;
- matching is on bytes (a non-ASCII name is matched as its UTF-8 bytes), case-sensitive;
- the last matching pattern of a file decides, a deeper file overrides a shallower one.

Why no blow-up: each pattern is compiled once into a regular expression in which no
quantifier can be retried more than once per position:

- a run of one path component (``*.min.*``) is ``S0 *S1 *S2 ... *Sk`` with fixed-width
  segments; matching ``S1`` … ``S(k-1)`` at their leftmost place within the component is
  never wrong (a later place leaves the following stars less to absorb), so each is an
  atomic group ``(?>[^/]*?Si)``, and the whole component, which must end at a ``/`` or the
  end, is atomic too: O(component length x segment length) per segment;
- a ``**`` stands for whole components, and the components after it up to the next ``**``
  are fixed in number: the earliest place where they match ends earliest, which is never
  wrong for what follows (another ``**`` absorbs the difference), so each ``**`` with the
  components after it is an atomic group too; consecutive ``**`` are merged.

This is git's wildmatch idea (advance, and on failure retry only from the last star) in a
form the C regex engine runs. Git's own matcher is not polynomial everywhere: it recurses
on every ``**/`` (``**/**/**/…/x`` against a deep path runs for minutes), and on stars
before a literal that the name lacks (``*a*a*a*a*a*a*a*a*b`` against 200 "a" and a "c": over
10 s; bench/bench_ignore.py). It is also where its semantics differ from "declarative"
globbing (a ``**`` right after the pattern's literal prefix counts as a component boundary:
``a/b**/c`` matches ``a/bc``); its semantics are kept, not its cost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from tether.record import dataclass

# Bounds for untrusted pattern files (every source: .gitignore at any depth, info/exclude,
# core.excludesFile). Real files stay far below them (GitHub's largest templates: ~400
# lines, lines under 200 characters); past them patterns are not applied and the scan says
# so, instead of spending its time on them.
MAX_PATTERN_BYTES = 1024
MAX_PATTERNS = 10_000
# Exact names and "*.ext" cost a lookup per path whatever their number; a pattern with other
# wildcards costs a match per path (and per name with git too, but git only matches untracked
# files: Tether, which keeps no index, matches every one).
MAX_GLOB_PATTERNS = 1_000
# Compiling is the regex engine's pure-Python compiler: up to ~25 us per byte of a pattern
# dense with stars. This bounds one file's wildcard patterns to well under a second of it.
MAX_GLOB_BYTES = 16 * 1024

_GLOB_SPECIAL = frozenset("*?[\\")
_NEVER = "(?!)"
_ANY_BUT_SLASH = "[^/]"
_SKIP_COMPONENT = "[^/]*+/"


def _ascii_set(test: str) -> frozenset[int]:
    return frozenset(ord(c) for c in map(chr, range(128)) if _CLASS_TESTS[test](c))


# git's ctype (sane_ctype): ASCII only; space is \t \n \r and ' ' (not \v, \f).
_CLASS_TESTS: dict[str, Callable[[str], bool]] = {
    "alnum": lambda c: c.isascii() and c.isalnum(),
    "alpha": lambda c: c.isascii() and c.isalpha(),
    "blank": lambda c: c in " \t",
    "cntrl": lambda c: ord(c) < 32 or ord(c) == 127,
    "digit": lambda c: "0" <= c <= "9",
    "graph": lambda c: 0x21 <= ord(c) <= 0x7E,
    "lower": lambda c: "a" <= c <= "z",
    "print": lambda c: 0x20 <= ord(c) <= 0x7E,
    "punct": lambda c: 0x21 <= ord(c) <= 0x7E and not c.isalnum(),
    "space": lambda c: c in " \t\n\r",
    "upper": lambda c: "A" <= c <= "Z",
    "xdigit": lambda c: c in "0123456789abcdefABCDEF",
}
_CLASSES = {name: _ascii_set(name) for name in _CLASS_TESTS}


class _Malformed(Exception):
    """A class git gives up on (unterminated, unknown ``[:name:]``): the pattern matches nothing."""


@dataclass(frozen=True, slots=True)
class Pattern:
    line: int  # 1-based, in its file
    text: str  # the pattern as written (negation and trailing slash included)
    negated: bool
    dir_only: bool
    basename: bool  # no "/": matched against a path's last component
    regex: str  # anchored at the start; matches the whole name (or relative path)
    literal: str | None = None  # no glob character: the exact name (or relative path)
    suffix: str | None = None  # "*" then no glob character: the name's ending (git's ENDSWITH)
    ending: str | None = None  # what any text it matches ends with (its last literal characters)
    needs: str | None = None  # literal characters any text it matches holds (its longest run)


@dataclass(frozen=True, slots=True)
class Problem:
    line: int  # 0: the file as a whole
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


def as_bytes_text(s: str) -> str:
    """``s`` as git sees it: one character per UTF-8 byte (ASCII is unchanged)."""
    return s if s.isascii() else s.encode("utf-8", "surrogateescape").decode("latin-1")


# --- parsing ---------------------------------------------------------------------------------


def _trim_trailing_spaces(s: str) -> str:
    """git's trim_trailing_spaces: drop trailing spaces unless escaped by a backslash."""
    if not s.endswith(" "):
        return s
    last_space = -1
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == " ":
            if last_space < 0:
                last_space = i
        elif c == "\\":
            i += 1
            if i >= n:
                return s
            last_space = -1
        else:
            last_space = -1
        i += 1
    return s[:last_space] if last_space >= 0 else s


def parse(
    data: bytes,
    *,
    max_patterns: int = MAX_PATTERNS,
    max_pattern_bytes: int = MAX_PATTERN_BYTES,
    max_glob_patterns: int = MAX_GLOB_PATTERNS,
    max_glob_bytes: int = MAX_GLOB_BYTES,
) -> tuple[list[Pattern], list[Problem]]:
    """The patterns of one file, and what was not applied (over the bounds) with why."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text = data.decode("latin-1")
    patterns: list[Pattern] = []
    problems: list[Problem] = []
    too_long = 0
    over = 0
    globs = over_globs = glob_bytes = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        if not raw or raw[0] == "#":
            continue
        line = _trim_trailing_spaces(raw.removesuffix("\r").partition("\0")[0])
        if len(line) > max_pattern_bytes:
            too_long += 1
            if too_long <= 3:
                problems.append(Problem(lineno, f"longer than {max_pattern_bytes} bytes: not applied"))
            continue
        if len(patterns) >= max_patterns:
            over += 1
            continue
        split = _split(line)
        if split is None:
            continue
        if split[4] == "glob":  # bounded before any work is spent on it
            if globs >= max_glob_patterns or glob_bytes + len(line) > max_glob_bytes:
                over_globs += 1
                continue
            globs += 1
            glob_bytes += len(line)
        pattern = compile_line(line, lineno)
        if pattern is not None:
            patterns.append(pattern)
    if too_long > 3:
        problems.append(Problem(0, f"{too_long} patterns longer than {max_pattern_bytes} bytes: not applied"))
    if over:
        problems.append(Problem(0, f"only the first {max_patterns} patterns applied, {over} more not"))
    if over_globs:
        problems.append(
            Problem(
                0,
                f"{over_globs} patterns with wildcards not applied (at most {max_glob_patterns} "
                f"of them, {max_glob_bytes} bytes in all)",
            )
        )
    return patterns, problems


def _split(line: str) -> tuple[bool, bool, bool, str, str] | None:
    """(negated, directories only, basename, body, shape) of a pattern line, or None when it
    is empty. Shape: "literal" (no glob character), "suffix" ("*" then none), else "glob"."""
    body = line
    negated = body.startswith("!")
    if negated:
        body = body[1:]
    dir_only = body.endswith("/")
    if dir_only:
        body = body[:-1]
    if not body:
        return None  # "", "!", "/": git keeps them, and they match nothing
    basename = "/" not in body
    if not basename and body.startswith("/"):
        body = body[1:]
    if not any(c in _GLOB_SPECIAL for c in body):
        shape = "literal"
    elif basename and len(body) > 1 and body[0] == "*" and not any(c in _GLOB_SPECIAL for c in body[1:]):
        shape = "suffix"
    else:
        shape = "glob"
    return negated, dir_only, basename, body, shape


def compile_line(line: str, lineno: int = 0) -> Pattern | None:
    """One pattern line (already trimmed as git does); None for one that is empty."""
    split = _split(line)
    if split is None:
        return None
    negated, dir_only, basename, body, shape = split
    literal = suffix = ending = needs = None
    if shape == "literal":
        literal = ending = needs = body
        regex = re.escape(body) + r"\Z"
    elif shape == "suffix":
        suffix = ending = needs = body[1:]
        regex = f"[^/]*?{re.escape(suffix)}\\Z"
    else:
        regex = _translate(body, pathname=not basename)
        ending, needs = _literals(body, pathname=not basename)
    return Pattern(lineno, line, negated, dir_only, basename, regex, literal, suffix, ending, needs)


def _literals(p: str, pathname: bool) -> tuple[str | None, str | None]:
    """The literal characters every text matching ``p`` ends with, and its longest run of
    literal characters (which every text matching it holds), if any."""
    try:
        tokens = _tokens(p, pathname)
    except _Malformed:
        return None, None
    runs: list[str] = []
    run: list[str] = []
    for kind, value in tokens:
        if kind == "lit":
            run.append(value)
        elif run:
            runs.append("".join(run))
            run = []
    ending = "".join(run) or None
    if ending:
        runs.append(ending)
    return ending, max(runs, key=len) if runs else None


# --- translation -----------------------------------------------------------------------------

# Tokens: (kind, value). Kinds: "lit" (a character), "any" (?), "set" (a class's regex),
# "star" (* within a component), "dstar" (** as whole components: value "slash" for **/,
# "eslash" for **\/, "trail" for a trailing **).


def _class_regex(members: set[int]) -> str:
    members.discard(ord("/"))
    if not members:
        return _NEVER
    codes = sorted(members)
    parts = []
    start = prev = codes[0]
    for c in [*codes[1:], -2]:
        if c == prev + 1:
            prev = c
            continue
        parts.append(f"\\x{start:02x}" if start == prev else f"\\x{start:02x}-\\x{prev:02x}")
        start = prev = c
    return "[" + "".join(parts) + "]"


def _parse_class(p: str, i: int) -> tuple[str, int]:
    """The class starting at ``p[i] == "["``: its regex and the index after its ``]``."""
    n = len(p)
    i += 1
    c = p[i] if i < n else ""
    negated = c in ("!", "^")
    if negated:
        i += 1
        c = p[i] if i < n else ""
    members: set[int] = set()
    prev = ""
    while True:
        if not c:
            raise _Malformed
        if c == "\\":
            i += 1
            if i >= n:
                raise _Malformed
            c = p[i]
            members.add(ord(c))
        elif c == "-" and prev and i + 1 < n and p[i + 1] != "]":
            i += 1
            c = p[i]
            if c == "\\":
                i += 1
                if i >= n:
                    raise _Malformed
                c = p[i]
            members.update(range(ord(prev), ord(c) + 1))
            c = ""  # no range may start at a range's end
        elif c == "[" and i + 1 < n and p[i + 1] == ":":
            s = i + 2
            k = s
            while k < n and p[k] != "]":
                k += 1
            if k >= n:
                raise _Malformed
            if k - s - 1 < 0 or p[k - 1] != ":":
                c = "["  # no ":]": a plain "[" member, then go on after it
                members.add(ord(c))
            else:
                name = p[s : k - 1]
                if name not in _CLASSES:
                    raise _Malformed
                members.update(_CLASSES[name])
                i = k
                c = ""
        else:
            members.add(ord(c))
        prev = c
        i += 1
        c = p[i] if i < n else ""
        if c == "]":
            break
    if negated:
        members = set(range(256)) - members
    return _class_regex(members), i + 1


def _tokens(p: str, pathname: bool) -> list[tuple[str, str]]:
    n = len(p)
    first_special = next((j for j, ch in enumerate(p) if ch in _GLOB_SPECIAL), n)
    out: list[tuple[str, str]] = []
    i = 0
    while i < n:
        c = p[i]
        if c == "\\":
            if i + 1 >= n:
                raise _Malformed  # a trailing backslash matches nothing
            out.append(("lit", p[i + 1]))
            i += 2
        elif c == "?":
            out.append(("any", ""))
            i += 1
        elif c == "[":
            rx, i = _parse_class(p, i)
            out.append(("set", rx))
        elif c == "*":
            j = i
            while j < n and p[j] == "*":
                j += 1
            # git: a run of two or more stars is "**" when it starts the pattern (or its
            # wildcard part: the first glob character) or follows "/", and ends it or
            # precedes "/" (or an escaped "/").
            at_start = i == first_special or (i > 0 and p[i - 1] == "/")
            if pathname and j - i >= 2 and at_start:
                if j == n:
                    out.append(("dstar", "trail"))
                    i = j
                    continue
                if p[j] == "/":
                    out.append(("dstar", "slash"))
                    i = j + 1
                    continue
                if p[j] == "\\" and j + 1 < n and p[j + 1] == "/":
                    out.append(("dstar", "eslash"))
                    i = j + 2
                    continue
            out.append(("star", ""))
            i = j
        else:
            out.append(("lit", c))
            i += 1
    return out


def _atom(kind: str, value: str) -> str:
    if kind == "lit":
        return re.escape(value)
    if kind == "any":
        return _ANY_BUT_SLASH
    return value  # "set"


def _component(tokens: Sequence[tuple[str, str]], end: str) -> str:
    """One component's tokens (no "/"), to match exactly up to ``end`` (a lookahead or \\Z)."""
    segments: list[list[tuple[str, str]]] = [[]]
    for kind, value in tokens:
        if kind == "star":
            if segments[-1] or len(segments) == 1:
                segments.append([])
            continue
        segments[-1].append((kind, value))
    first = "".join(_atom(*t) for t in segments[0])
    if len(segments) == 1:
        return first + end
    middle = "".join(f"(?>[^/]*?{''.join(_atom(*t) for t in seg)})" for seg in segments[1:-1])
    last = segments[-1]
    tail = f"[^/]*?{''.join(_atom(*t) for t in last)}{end}" if last else f"[^/]*+{end}"
    return f"(?>{first}{middle}{tail})"


def _run(tokens: Sequence[tuple[str, str]], final: bool, before_dstar: bool) -> str:
    """Tokens between two "**" (or the pattern's ends): components separated by "/"."""
    out: list[str] = []
    piece: list[tuple[str, str]] = []
    for kind, value in tokens:
        if kind == "lit" and value == "/":
            out.append(_component(piece, "(?![^/])") + "/")
            piece = []
        else:
            piece.append((kind, value))
    if final:
        out.append(_component(piece, r"\Z"))
    elif piece:
        # Before a "**" that is not after a "/": only the pattern's literal prefix can be
        # there (git's match_pathname quirk), which is fixed: no end to assert.
        assert before_dstar and all(k == "lit" for k, _ in piece)
        out.append("".join(_atom(*t) for t in piece))
    return "".join(out)


def _translate(p: str, pathname: bool) -> str:
    try:
        tokens = _tokens(p, pathname)
    except _Malformed:
        return _NEVER
    if any(k == "set" and v == _NEVER for k, v in tokens):
        return _NEVER
    # Split at "**": runs and merged groups of consecutive "**".
    runs: list[list[tuple[str, str]]] = [[]]
    stars: list[tuple[int, bool]] = []  # per group: minimum whole components, trailing
    for kind, value in tokens:
        if kind == "dstar":
            minimum = 1 if value == "eslash" else 0
            if not runs[-1] and stars:
                m, _ = stars[-1]
                stars[-1] = (m + minimum, value == "trail")
            else:
                stars.append((minimum, value == "trail"))
                runs.append([])
            continue
        runs[-1].append((kind, value))
    if not stars:
        return _run(runs[0], final=True, before_dstar=False)
    out = [_run(runs[0], final=False, before_dstar=True)]
    for n, (minimum, trail) in enumerate(stars):
        run = runs[n + 1]
        if trail:
            # Everything after matches; "**" merged before it still need their "/"s.
            out.append(f"(?:{_SKIP_COMPONENT}){{{minimum}}}" if minimum else "")
            break
        skip = f"(?:{_SKIP_COMPONENT})" + ("*?" if minimum == 0 else f"{{{minimum},}}?")
        final = n == len(stars) - 1
        out.append(f"(?>{skip}{_run(run, final=final, before_dstar=True)})")
    return "".join(out)


# --- matching --------------------------------------------------------------------------------


def wildmatch(pattern: str, text: str, *, pathname: bool = True) -> bool:
    """Whether glob ``pattern`` matches all of ``text`` (git's wildmatch, ``WM_PATHNAME``)."""
    regex = _translate(as_bytes_text(pattern), pathname)
    return _compile(regex).match(as_bytes_text(text)) is not None


@lru_cache(maxsize=4096)
def _compile(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


class Rules:
    """One pattern file's rules, for paths below the directory ``base`` ("" for the root).

    Per path and kind of pattern (against the name, against the path), the last matching
    pattern decides: see :class:`_Combined`.
    """

    __slots__ = ("_name_ends", "_names", "_path_ends", "_paths", "patterns", "prefix")
    _names: tuple[Last | None, Last | None]
    _paths: tuple[Last | None, Last | None]
    _name_ends: tuple[_Prefilter, _Prefilter]
    _path_ends: tuple[_Prefilter, _Prefilter]

    def __init__(self, patterns: Sequence[Pattern], base: str = "") -> None:
        self.patterns = tuple(patterns)
        self.prefix = len(as_bytes_text(base)) + 1 if base else 0
        live = [(i, p) for i, p in enumerate(self.patterns) if p.regex != _NEVER]
        # Per kind, for files and for directories: a function giving the last matching
        # pattern, or None when the kind has no pattern (this runs once per walked entry).
        self._names = (
            _last_matching([(i, p) for i, p in live if p.basename and not p.dir_only]),
            _last_matching([(i, p) for i, p in live if p.basename]),
        )
        self._paths = (
            _last_matching([(i, p) for i, p in live if not p.basename and not p.dir_only]),
            _last_matching([(i, p) for i, p in live if not p.basename]),
        )
        # What the name of an entry must end with for a pattern of the kind to match it (None:
        # anything), for :meth:`verdicts`.
        self._name_ends = (
            _prefilter([p for _, p in live if p.basename and not p.dir_only], False),
            _prefilter([p for _, p in live if p.basename], False),
        )
        self._path_ends = (
            _prefilter([p for _, p in live if not p.basename and not p.dir_only], True),
            _prefilter([p for _, p in live if not p.basename], True),
        )

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def verdict(self, rel: str, name: str, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included by a negation, None: no pattern matched.
        ``rel`` is relative to the workspace root, below this file's directory."""
        if not rel.isascii():
            rel, name = as_bytes_text(rel), as_bytes_text(name)
        names = self._names[is_dir]
        by_name = names(name) if names is not None else None
        paths = self._paths[is_dir]
        by_path = paths(rel[self.prefix :]) if paths is not None else None
        if by_path is None:
            return None if by_name is None else by_name[1]
        if by_name is None or by_path[0] > by_name[0]:
            return by_path[1]
        return by_name[1]

    def verdicts(self, prefix: str, names: Sequence[str], is_dir: bool) -> dict[str, bool]:
        """:meth:`verdict` of the entries ``names`` of one directory (``prefix``: its path and
        "/", or "" for the root) that some pattern matches. Most entries end with no pattern's
        ending: they are passed over in C, not matched one by one."""
        if not (prefix.isascii() and all(map(str.isascii, names))):
            out = {}
            for name in names:
                v = self.verdict(prefix + name, name, is_dir)
                if v is not None:
                    out[name] = v
            return out
        names_last = self._names[is_dir]
        paths_last = self._paths[is_dir]
        by_name: dict[str, tuple[int, bool]] = {}
        if names_last is not None:
            for name in _candidates(names, self._name_ends[is_dir]):
                hit = names_last(name)
                if hit is not None:
                    by_name[name] = hit
        if paths_last is None:
            return {name: hit[1] for name, hit in by_name.items()}
        sub = prefix[self.prefix :]
        out = {}
        for name in _candidates(names, self._path_ends[is_dir]):
            hit = paths_last(sub + name)
            if hit is not None:
                named = by_name.pop(name, None)
                out[name] = hit[1] if named is None or hit[0] > named[0] else named[1]
        for name, hit in by_name.items():
            out[name] = hit[1]
        return out


def _candidates(names: Sequence[str], pre: _Prefilter) -> Sequence[str]:
    """The names that ``pre`` lets through."""
    if pre is None:
        return names
    ends, runs = pre
    if not runs:
        return [n for n in names if n.endswith(ends)]
    if len(runs) == 1:
        (run,) = runs
        return [n for n in names if n.endswith(ends) or run in n]
    return [n for n in names if n.endswith(ends) or any(r in n for r in runs)]


# What the name (last component) of an entry must end with, or hold, for a pattern of a kind
# to match it; None: any name may match.
_Prefilter = tuple[tuple[str, ...], tuple[str, ...]] | None


def _prefilter(patterns: Sequence[Pattern], pathname: bool) -> _Prefilter:
    """What a name must end with or hold for these patterns to match it, as few C calls:
    None when some pattern has neither a literal ending nor (matched against a name) a literal
    run, or when there are too many for those calls to be cheaper than the patterns' own
    lookups. For a pattern matched against a path, the ending's last component (the path's "/"
    before the name is the ending's last "/")."""
    ends: set[str] = set()
    runs: set[str] = set()
    for p in patterns:
        ending = p.ending
        if ending and pathname:
            ending = ending.rpartition("/")[2]
        if ending:
            ends.add(ending)
        elif p.needs and not pathname:
            runs.add(p.needs)
        else:
            return None
    if len(ends) > _CHUNK or len(runs) > _MAX_RUNS:
        return None
    return tuple(sorted(ends)), tuple(sorted(runs))


# A pattern without a literal ending is tried on every name that holds its longest literal
# run: one "in" per pattern and name, worth it for a few such patterns only.
_MAX_RUNS = 4


# Up to this many patterns of a kind, one expression holds them all (one call per path). Past
# it (a long generated file), exact names and "*.ext" endings are looked up in dicts, and the
# other patterns go in expressions of this many: a regex's groups cost the engine per branch
# tried, so one expression with thousands of groups would cost thousands squared per path.
_CHUNK = 64


class _Combined:
    """Patterns of one kind; :meth:`last` finds the last one matching a text.

    Most patterns end with literal characters (``*.log``, ``build``, ``/dist``): a text that
    ends with none of those endings (one C call) cannot match them, so their expressions run
    only for texts that do, and only the expressions of the endings the text has (a name
    ending in "a" is not tried against the patterns ending in "b": each would scan it whole).
    Most entries of a walk end with none.
    """

    __slots__ = ("_by_ending", "_ending_lengths", "_endings", "_lengths", "_literals", "_open", "_suffixes")

    def __init__(self, indexed: Sequence[tuple[int, Pattern]]) -> None:
        self._literals: dict[str, tuple[int, bool]] = {}
        self._suffixes: dict[str, tuple[int, bool]] = {}
        rest = list(indexed)
        if len(rest) > _CHUNK:
            rest = []
            for i, p in indexed:
                if p.literal is not None:
                    self._literals[p.literal] = (i, not p.negated)  # a later duplicate wins
                elif p.suffix is not None:
                    self._suffixes[p.suffix] = (i, not p.negated)
                else:
                    rest.append((i, p))
        self._lengths = sorted({len(k) for k in self._suffixes})
        grouped: dict[str, list[tuple[int, Pattern]]] = {}
        for i, p in rest:
            if p.ending:
                grouped.setdefault(p.ending, []).append((i, p))
        self._by_ending = {ending: _chunks(group) for ending, group in grouped.items()}
        self._endings = tuple(sorted(grouped))
        self._ending_lengths = sorted({len(e) for e in grouped})
        self._open = _chunks([(i, p) for i, p in rest if not p.ending])

    def last(self, text: str) -> tuple[int, bool] | None:
        """(index, ignores) of the last pattern matching ``text``, or None."""
        best = self._literals.get(text) if self._literals else None
        for n in self._lengths:
            if n > len(text):
                break
            hit = self._suffixes.get(text[-n:])
            if hit is not None and (best is None or hit[0] > best[0]):
                best = hit
        if self._endings and text.endswith(self._endings):
            best = self._ended(text, best)
        if self._open:
            best = _newest(self._open, text, best)
        return best

    def _ended(self, text: str, best: tuple[int, bool] | None) -> tuple[int, bool] | None:
        """``best`` or a newer match among the patterns whose ending ``text`` has."""
        by_ending = self._by_ending
        for n in self._ending_lengths:
            if n > len(text):
                break
            chunks = by_ending.get(text[-n:])
            if chunks is not None:
                best = _newest(chunks, text, best)
        return best


_Chunk = tuple[int, Callable[[str], "re.Match[str] | None"], list[tuple[int, bool]]]


def _chunks(indexed: Sequence[tuple[int, Pattern]]) -> list[_Chunk]:
    """Expressions of up to _CHUNK patterns, newest first, so that the first chunk that
    matches has the answer, and in it the group that matched (branches are tried in order)
    is the newest pattern."""
    ordered = list(reversed(indexed))
    out: list[_Chunk] = []
    for start in range(0, len(ordered), _CHUNK):
        part = ordered[start : start + _CHUNK]
        regex = re.compile("|".join(f"({p.regex})" for _, p in part))
        out.append((part[0][0], regex.match, [(-1, False)] + [(i, not p.negated) for i, p in part]))
    return out


def _newest(chunks: list[_Chunk], text: str, best: tuple[int, bool] | None) -> tuple[int, bool] | None:
    for newest, match, groups in chunks:
        if best is not None and newest < best[0]:
            break  # this chunk and the older ones cannot override what was found
        m = match(text)
        if m is not None:
            hit = groups[m.lastindex or 0]
            return hit if best is None or hit[0] > best[0] else best
    return best


Last = Callable[[str], "tuple[int, bool] | None"]


def _last_matching(indexed: Sequence[tuple[int, Pattern]]) -> Last | None:
    """A function giving (index, ignores) of the last of these patterns matching a text."""
    if not indexed:
        return None
    combined = _Combined(indexed)
    endings = combined._endings
    ended = combined._ended
    if combined._literals or combined._suffixes or len(combined._open) > 1:
        return combined.last
    if combined._open:  # one expression for the patterns without an ending: tried on every text
        newest, match_open, groups_open = combined._open[0]

        def last_open(text: str) -> tuple[int, bool] | None:
            best = ended(text, None) if endings and text.endswith(endings) else None
            if best is not None and newest < best[0]:
                return best
            m = match_open(text)
            if m is None:
                return best
            hit = groups_open[m.lastindex or 0]
            return hit if best is None or hit[0] > best[0] else best

        return last_open
    # The usual file: every pattern ends with literal characters.
    (chunks, *more) = combined._by_ending.values()
    if not more and len(chunks) == 1:  # one expression for them all
        _, match, groups = chunks[0]

        def last_one(text: str) -> tuple[int, bool] | None:
            if not text.endswith(endings):
                return None
            m = match(text)
            return None if m is None else groups[m.lastindex or 0]

        return last_one

    def last(text: str) -> tuple[int, bool] | None:
        return ended(text, None) if text.endswith(endings) else None

    return last


# Pattern files up to this size are kept compiled, by content (a long-lived server scans often);
# the bound keeps a hostile tree of huge distinct files from filling memory.
_CACHED_BYTES = 64 * 1024


def rules_from_bytes(data: bytes, base: str = "") -> tuple[Rules, tuple[Problem, ...]]:
    """One pattern file's rules and what was not applied; compiled once per distinct content."""
    if len(data) <= _CACHED_BYTES:
        return _cached_rules(data, base)
    patterns, problems = parse(data)
    return Rules(patterns, base), tuple(problems)


@lru_cache(maxsize=256)
def _cached_rules(data: bytes, base: str) -> tuple[Rules, tuple[Problem, ...]]:
    patterns, problems = parse(data)
    return Rules(patterns, base), tuple(problems)
