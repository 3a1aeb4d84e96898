"""What a scan reports (:class:`ScanResult`), the defaults every scanner starts from, and the
names a scan can track (valid UTF-8: a path must be storable as text and nameable over LSP)."""

from __future__ import annotations

from collections.abc import Iterable

from tether.model import FileChange, Skipped, StatEntry
from tether.record import dataclass, field

DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024
# Never tracked, with or without a .gitignore: VCS internals, dependency trees, caches.
DEFAULT_IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".cache",
    }
)
# The agent's session file in the workspace root (agent/session_file.py). It is captured as the
# "agent" attachment; tracking it as a file would make every checkpoint rewrite look like a change.
AGENT_FILE = ".agent-session.json"
DEFAULT_IGNORED_FILES = frozenset({AGENT_FILE, ".DS_Store"})
GITIGNORE = ".gitignore"

BAD_NAME_REASON = "file name is not valid UTF-8 (not tracked)"

IGNORE_RULES_REASON = "ignore rules not all applied"

UNREADABLE_DIR = "unreadable directory"  # a skip's reason starts so: nothing below it was seen

# The stored directory listings' form (scan/listings.py): another value drops the stored ones.
LISTINGS_FORMAT = 3


def scanner_fingerprint(
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ignored_dirs: Iterable[str] = DEFAULT_IGNORED_DIRS,
    ignored_files: Iterable[str] = DEFAULT_IGNORED_FILES,
) -> list[object]:
    """What a scanner's listings (and a file watcher's dirty set) depend on besides the pattern
    files: a command reads a watcher's dirty set only when the watcher's scanner had the same."""
    return [LISTINGS_FORMAT, max_file_bytes, sorted(ignored_dirs), sorted(ignored_files)]


def printable_name(name: str) -> str:
    """A name safe to store and print: undecodable bytes (surrogate escapes) shown as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def valid_name(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Taken:
    """A watcher's dirty set as read (``scan/dirty.py``): path → the batch of its last event."""

    watcher: str
    rows: dict[str, int]

    @property
    def paths(self) -> list[str]:
        return sorted(self.rows)


@dataclass
class ScanResult:
    changes: list[FileChange] = field(default_factory=list)
    stat_updates: list[StatEntry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seen: int = 0
    # None: the whole workspace was walked. Else the paths looked at (a told-paths scan): what
    # it found says nothing about the rest, e.g. about files skipped elsewhere.
    scope: list[str] | None = None
    # False when a walk stopped at its deadline: ``changes`` holds what it found until then,
    # and no deletion is reported (the directories not reached were not looked at).
    complete: bool = True
    # Set when the paths looked at were a file watcher's dirty set: once a checkpoint holds
    # them, they leave it (scan/dirty.done).
    taken: Taken | None = None
    # Directories a walk visited, and listed (not taken from a kept listing): 0 without a walk.
    walked: int = 0
    listed: int = 0
    # Bytes of changed files held in ``changes`` (a streamed scan defers the rest: scan/file.py).
    held: int = 0

    @property
    def changed_paths(self) -> list[str]:
        return sorted(c.path for c in self.changes)

    @property
    def changed_set(self) -> set[str]:
        return {c.path for c in self.changes}
