"""``.agent-session.json``: the seed's state file in the workspace root, read and written here.

The file is untrusted input. Nothing in it is ever run; its strings are cleaned of control
characters (terminal escapes) and capped in size; paths must stay inside the workspace; keys
Tether does not know are kept as they are and written back. A malformed file gives a warning
naming the file, the reason and the position, and the last good state stays.

Writing the file must not clobber an agent's concurrent write. On Linux the new content is swapped
in with ``renameat2(RENAME_EXCHANGE)``: the bytes swapped out are exactly what was there at that
instant, so a write that landed after we read is detected (and merged by the session), and the
file is written again. Elsewhere a re-read just before ``os.replace`` narrows the window instead.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat as stat_mod
import time
from pathlib import Path

from tether import jsonsafe
from tether.agent.model import (
    KNOWN_KEYS,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_LIST,
    MAX_TASK,
    TaskState,
    clean_text,
    safe_text,
)
from tether.errors import OutsideWorkspaceError
from tether.paths import normalize_rel
from tether.procs import pid_alive
from tether.record import dataclass, replace
from tether.scan.result import AGENT_FILE
from tether.sha import sha256_hex
from tether.text import has_controls

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    pass

# --- parsing the untrusted file -------------------------------------------------------------


@dataclass
class FilePatch:
    """Validated content of ``.agent-session.json``: only fields present and well-formed."""

    fields: dict[str, Any]
    extra: dict[str, Any]
    warnings: list[str]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_session_file(raw: bytes, root: Path) -> tuple[FilePatch | None, str | None]:
    """Parse and validate the file's bytes. ``(None, reason)`` when the whole file is unusable.

    A well-formed file with a bad field keeps the other fields; the bad one is reported and left
    at its last good value.
    """
    where = AGENT_FILE
    if not raw.strip():
        return None, f"{where}: the file is empty"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"{where}: not UTF-8 text (bad byte at offset {exc.start})"
    try:
        doc = jsonsafe.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return None, f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except (ValueError, RecursionError) as exc:
        return None, f"{where}: not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return None, f"{where}: expected a JSON object at the top level, got {type(doc).__name__}"
    warnings: list[str] = []
    fields: dict[str, Any] = {}

    def text_field(key: str, limit: int) -> None:
        if key not in doc:
            return
        v = doc[key]
        if v is None:
            fields[key] = None
        elif isinstance(v, str):
            fields[key] = safe_text(v, limit) or None
        else:
            warnings.append(
                f"{where}: {key!r} must be a string, not {type(v).__name__}; kept the previous value"
            )

    def list_field(key: str, *, clean: bool = True) -> list[str] | None:
        if key not in doc:
            return None
        v = doc[key]
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            warnings.append(f"{where}: {key!r} must be a list of strings; kept the previous value")
            return None
        if len(v) > MAX_LIST:
            warnings.append(f"{where}: {key!r} has {len(v)} entries; kept the first {MAX_LIST}")
        if not clean:
            return list(v[:MAX_LIST])
        return [c for c in (safe_text(x) for x in v[:MAX_LIST]) if c]

    text_field("current_task", MAX_TASK)
    text_field("environment", 200)
    text_field("last_checkpoint", 64)
    steps = list_field("next_steps")
    if steps is not None:
        fields["next_steps"] = steps
    files = list_field("files_in_progress", clean=False)
    if files is not None:
        good: list[str] = []
        for f in files[:MAX_FILES]:
            try:
                if has_controls(f):
                    # A path is never silently edited into another one: refuse it.
                    raise OutsideWorkspaceError(f"{clean_text(f)!r} contains control characters")
                rel = normalize_rel(root, f)
            except OutsideWorkspaceError as exc:
                warnings.append(f"{where}: files_in_progress: dropped {f!r} ({exc.message})")
                continue
            if rel not in good:
                good.append(rel)
        fields["files_in_progress"] = good
    extra = {k: v for k, v in doc.items() if k not in KNOWN_KEYS}
    return FilePatch(fields, extra, warnings), None


_MISSING: Any = object()


def apply_patch(state: TaskState, patch: FilePatch, base: dict[str, Any] | None = None) -> TaskState:
    """Merge the file into the state. With ``base`` (the file as Tether last saw it), only what
    the agent changed relative to it is taken; without, every field present is."""
    f = {k: v for k, v in patch.fields.items() if base is None or base.get(k, _MISSING) != v}
    if base is None:
        extra = dict(patch.extra)
    else:
        extra = dict(state.extra)
        for k in set(base) | set(patch.extra):
            if k in KNOWN_KEYS:
                continue
            theirs = patch.extra.get(k, _MISSING)
            if theirs == base.get(k, _MISSING):
                continue
            if theirs is _MISSING:
                extra.pop(k, None)
            else:
                extra[k] = theirs
    new = replace(state, extra=extra, warning="; ".join(patch.warnings) or None)
    if "current_task" in f:
        new.task = f["current_task"]
    if "environment" in f:
        new.environment = f["environment"]
    if "next_steps" in f:
        new.next_steps = list(f["next_steps"])
    if "files_in_progress" in f:
        new.files_in_progress = list(f["files_in_progress"])
    # last_checkpoint is Tether's to write; take the file's only when we have none.
    if "last_checkpoint" in f and not new.last_checkpoint:
        new.last_checkpoint = f["last_checkpoint"]
    return new


def file_digest(data: bytes) -> str:
    return sha256_hex(data)


# --- atomic exchange (Linux) ----------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def _load_renameat2() -> Any:
    global _renameat2
    if _renameat2 is None:
        # ctypes is imported here, at the first exchange: `tether hook` reads this file at every
        # tool call and rarely writes it. The process's own symbols include libc's (no
        # ctypes.util.find_library: it runs ldconfig in a subprocess).
        import ctypes

        fn: Any = False
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
        except (OSError, AttributeError):
            fn = False
        _renameat2 = fn
    return _renameat2 or None


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False when the platform or file system cannot."""
    fn = _load_renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    import ctypes

    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class SessionFile:
    """Reading and writing ``.agent-session.json`` (``path``) safely: never through a symlink,
    bounded, and swapped in atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / AGENT_FILE

    def read(self) -> tuple[bytes | None, str | None, int]:
        """:meth:`_read_file` plus the mtime of the inode read (0 when nothing was read)."""
        mtime = 0
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, None, 0
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None, f"{AGENT_FILE}: is a symlink; not followed", 0
            return None, f"{AGENT_FILE}: cannot read it ({exc.strerror})", 0
        try:
            st = os.fstat(fd)
            mtime = st.st_mtime_ns
            if not stat_mod.S_ISREG(st.st_mode):
                return None, f"{AGENT_FILE}: not a regular file", 0
            if st.st_size > MAX_FILE_BYTES:
                return None, f"{AGENT_FILE}: {st.st_size} bytes, more than the {MAX_FILE_BYTES}-byte limit", 0
            chunks = []
            total = 0
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > MAX_FILE_BYTES:
                    return None, f"{AGENT_FILE}: more than the {MAX_FILE_BYTES}-byte limit", 0
            return b"".join(chunks), None, mtime
        except OSError as exc:
            return None, f"{AGENT_FILE}: cannot read it ({exc.strerror})", 0
        finally:
            os.close(fd)

    def remove_stale_temps(self) -> None:
        """Temp files left by a writer killed mid-write would show up as workspace files."""
        prefix = f".{AGENT_FILE}."
        try:
            names = [n for n in os.listdir(self.root) if n.startswith(prefix) and n.endswith(".tmp")]
        except OSError:
            return
        for name in names:
            pid_text = name[len(prefix) :].split(".", 1)[0]
            if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
                continue
            with contextlib.suppress(OSError):
                os.unlink(self.root / name)

    def swap_in(self, data: bytes, before: bytes | None) -> bool | tuple[bytes, int] | None:
        """Put ``data`` in place. True: done; (bytes, mtime_ns): done, but what we replaced was
        not ``before`` (returned for merging); None: the file appeared meanwhile, try again."""
        try:
            mode = stat_mod.S_IMODE(os.lstat(self.path).st_mode)
        except FileNotFoundError:
            mode = 0o644
        tmp = self.path.with_name(f".{AGENT_FILE}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            if before is None:
                try:
                    os.link(tmp, self.path)  # fails if an agent created the file meanwhile
                except FileExistsError:
                    return None
                self._fsync_dir()
                return True
            if exchange(tmp, self.path):
                self._fsync_dir()
                old, old_mtime = self._read_tmp(tmp)
                return True if old == before or old is None else (old, old_mtime)
            current, _ = self._read_current()
            if current != before:
                return None
            os.replace(tmp, self.path)
            self._fsync_dir()
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @staticmethod
    def _read_tmp(path: Path) -> tuple[bytes | None, int]:
        try:
            with open(path, "rb") as fh:
                return fh.read(MAX_FILE_BYTES + 1), os.fstat(fh.fileno()).st_mtime_ns
        except OSError:
            return None, 0

    def _fsync_dir(self) -> None:
        try:
            dfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def _read_current(self) -> tuple[bytes | None, str | None]:
        raw, problem, _ = self.read()
        return raw, problem
