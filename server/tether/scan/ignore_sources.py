"""Where ignore patterns come from, read safely: every source is untrusted input.

A cloned repository chooses its .gitignore files and may ship a .git directory (info/exclude,
config naming core.excludesFile): none of them may make a scan block or run long. Matching
is tether.scan.ignore's (pure); this module only finds and reads the files.
"""

from __future__ import annotations

import errno
import os
import re
import stat as stat_mod
from pathlib import Path

from tether.safefs import read_upto

# The most of one pattern file read (git reads any size; a pattern file this large is hostile).
MAX_FILE_BYTES = 1024 * 1024


def read_pattern_file(path: str, follow: bool) -> tuple[bytes | None, list[str], tuple[int, int, int]]:
    """A pattern file's bytes (None: absent or unusable), why it was not (wholly) read, and its
    (mtime, size, inode) ((0, 0, 0) when absent).

    The file is untrusted (a cloned repository chooses it): never through a symlink unless
    ``follow`` (git does not follow a symlinked .gitignore in the tree either), never a FIFO or
    device (the open does not block, only regular files are read), at most
    :data:`MAX_FILE_BYTES` of it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        return None, [], (0, 0, 0)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, ["a symbolic link: not read (git does not follow it either)"], (0, 0, 0)
        return None, [f"unreadable: {exc.strerror}"], (0, 0, 0)
    try:
        st = os.fstat(fd)
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stat_mod.S_ISDIR(st.st_mode):
            return None, [], key
        if not stat_mod.S_ISREG(st.st_mode):
            return None, ["not a regular file: not read"], key
        data = read_upto(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, [f"unreadable: {exc.strerror}"], (0, 0, 0)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        data = data[: data.rfind(b"\n", 0, MAX_FILE_BYTES) + 1]
        return data, [f"larger than {MAX_FILE_BYTES} bytes: only the patterns before it applied"], key
    return data, [], key


def excludes_sources(root: Path) -> list[tuple[str, str]]:
    """The pattern files git reads besides .gitignore, lowest precedence first: the user's
    core.excludesFile (default ``$XDG_CONFIG_HOME/git/ignore``) and the repository's
    ``info/exclude``, when the workspace is a repository's top level. (absolute, shown) pairs."""
    out: list[tuple[str, str]] = []
    git_dir = _git_dir(root)
    configured = _core_excludes_file(git_dir)
    if configured:
        out.append((configured, configured))
    if git_dir is not None:
        common = git_dir
        pointer = _small_text(os.path.join(git_dir, "commondir"))  # a worktree's: the shared dir
        if pointer:
            common = os.path.normpath(os.path.join(git_dir, pointer))
        path = os.path.join(common, "info", "exclude")
        out.append((path, os.path.relpath(path, root) if path.startswith(str(root) + os.sep) else path))
    return out


def _git_dir(root: Path) -> str | None:
    dot_git = os.path.join(root, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    line = _small_text(dot_git)  # a worktree or submodule: "gitdir: PATH"
    if not line.startswith("gitdir:"):
        return None
    return os.path.normpath(os.path.join(root, line.removeprefix("gitdir:").strip()))


def _small_text(path: str) -> str:
    data, _, _ = read_pattern_file(path, True)  # never blocks, bounded: it may be untrusted
    return data[:4096].decode("utf-8", "replace").strip() if data else ""


def _core_excludes_file(git_dir: str | None) -> str | None:
    """core.excludesFile as git would find it in the system, global and repository config
    files (the last one set wins; include directives are not followed), else git's default."""
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = [] if os.environ.get("GIT_CONFIG_NOSYSTEM") else ["/etc/gitconfig"]
    global_config = os.environ.get("GIT_CONFIG_GLOBAL")  # as git: it replaces both
    files += (
        [global_config]
        if global_config
        else [os.path.join(xdg, "git", "config"), os.path.join(home, ".gitconfig")]
    )
    if git_dir is not None:
        files.append(os.path.join(git_dir, "config"))
    value = None
    for path in files:
        found = _config_value(path, "core", "excludesfile")
        if found is not None:
            value = found
    if value is None:
        return os.path.join(xdg, "git", "ignore")
    if value.startswith("~/"):
        value = os.path.join(home, value[2:])
    return value if value and os.path.isabs(value) else None


_CONFIG_SECTION = re.compile(r'\s*\[\s*([A-Za-z0-9.-]+)(\s+"[^"]*")?\s*\]\s*(.*)')
_CONFIG_KEY = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?")


def _config_value(path: str, section: str, key: str) -> str | None:
    """The last ``section.key`` in one git config file (simple values: quotes and comments)."""
    data, _, _ = read_pattern_file(path, True)  # bounded, never blocks: it may be untrusted too
    if not data:
        return None
    value = None
    current = ""
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw
        m = _CONFIG_SECTION.match(line)
        if m:
            current = m.group(1).lower() if m.group(2) is None else ""  # [core "x"] is not [core]
            line = m.group(3)
            if not line.strip():
                continue
        if current != section:
            continue
        k = _CONFIG_KEY.match(line)
        if k is None or k.group(1).lower() != key or k.group(2) is None:
            continue
        value = _config_string(k.group(2))
    return value


def _config_string(text: str) -> str:
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            quoted = not quoted
        elif c in "#;" and not quoted:
            break
        elif c == "\\" and i + 1 < len(text):
            i += 1
            out.append({"n": "\n", "t": "\t"}.get(text[i], text[i]))
        else:
            out.append(c)
        i += 1
    return "".join(out).strip()
