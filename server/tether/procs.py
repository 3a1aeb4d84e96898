"""Process facts: liveness, a process's start, the boot's identity, argv, cwd, environment, its
children and a terminal's foreground job (the tmux fingerprint, the pane snapshot, the agent probe,
the watcher liveness token, the other editor's journal).

Two backends, chosen by capability, never by OS name:

- **/proc** when ``/proc/self/stat`` is readable (Linux): plain file reads, no import, cheap
  enough for the shell hook that runs after every ``cd``;
- else **psutil** (macOS, the BSDs, a Linux without /proc), imported only then, plus one
  ``ps -o pid=,tpgid=`` call for the terminals' foreground groups (psutil has no tpgid; ``ps`` is
  POSIX and the same keyword exists on macOS and procps).

``TETHER_NO_PROCFS=1`` makes a process behave as if /proc were absent (the tests run the
fallback on Linux with it). What neither backend can give is ``None`` here and said by
:func:`report` (``tether doctor``) and by the snapshot's ``missing`` list (resume).

The start token and the boot identity of the two backends never compare equal (a boot id is a
UUID, the fallback's is ``boot-time:<epoch>``): a token written by one backend read by the other
means "not the same process", which costs a walk, never a wrong trust.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NO_PROCFS_ENV = "TETHER_NO_PROCFS"

_procfs_readable: bool | None = None


def procfs() -> bool:
    """Whether /proc answers for this process (and is not turned off by ``TETHER_NO_PROCFS``)."""
    global _procfs_readable
    if os.environ.get(NO_PROCFS_ENV, "") not in ("", "0"):
        return False
    if _procfs_readable is None:
        _procfs_readable = read_proc("/proc/self/stat") is not None
    return _procfs_readable


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_proc(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


# --- the psutil backend -------------------------------------------------------------------------


def _psutil() -> Any:
    """The psutil module, or None when it is not installed (then :func:`report` says so)."""
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    return psutil


def _ps_call(pid: int, what: str) -> Any:
    """``psutil.Process(pid).<what>()``, None when psutil is missing, the process is gone or
    its facts are not ours to read."""
    ps = _psutil()
    if ps is None:
        return None
    try:
        return getattr(ps.Process(pid), what)()
    except (ps.Error, OSError, ValueError):
        return None


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat after the command name (fields 3…), None when gone or unreadable."""
    raw = read_proc(f"/proc/{pid}/stat")
    if not raw:
        return None
    fields = raw.rsplit(b")", 1)[-1].split()
    return fields if len(fields) > 19 else None


def _ps_path() -> str:
    """The system's ``ps`` (macOS and Linux keep it in /bin or /usr/bin), not whatever a PATH
    entry of the moment names ``ps``; PATH only when neither exists."""
    return next((p for p in ("/bin/ps", "/usr/bin/ps") if os.path.exists(p)), "ps")


# --- facts --------------------------------------------------------------------------------------


def boot_id() -> str:
    """This boot's identity (a pid and its start identify a process only within one boot); ""
    when it cannot be had."""
    if procfs():
        raw = read_proc("/proc/sys/kernel/random/boot_id")
        if raw:
            return raw.decode("ascii", "replace").strip()
    ps = _psutil()
    if ps is None:
        return ""
    try:
        return f"boot-time:{int(ps.boot_time())}"
    except (ps.Error, OSError):
        return ""


def start_token(pid: int) -> int | None:
    """When ``pid`` started, as a number that another process later given the same pid does not
    share: clock ticks since boot (/proc), else milliseconds since the epoch (psutil). Only
    compared with a token of the same backend (see :func:`boot_id`). None when gone."""
    if procfs():
        fields = _stat_fields(pid)
        try:
            return int(fields[19]) if fields else None
        except ValueError:
            return None
    created = _ps_call(pid, "create_time")
    return round(created * 1000) if isinstance(created, float) else None


def start_time(pid: int) -> float | None:
    """Wall-clock start time of ``pid`` (seconds since the epoch), None when gone."""
    if procfs():
        fields = _stat_fields(pid)
        btime = next(
            (
                int(ln.split()[1])
                for ln in (read_proc("/proc/stat") or b"").splitlines()
                if ln.startswith(b"btime")
            ),
            None,
        )
        try:
            return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK") if fields and btime else None
        except (ValueError, OSError):
            return None
    created = _ps_call(pid, "create_time")
    return created if isinstance(created, float) else None


def cmdline_bytes(pid: int) -> bytes | None:
    """Raw argv, NUL-separated as /proc gives it; None when gone or unreadable."""
    if procfs():
        return read_proc(f"/proc/{pid}/cmdline")
    argv = _ps_call(pid, "cmdline")
    if not isinstance(argv, list):
        return None
    return b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in argv)


def cmdline(pid: int) -> list[str] | None:
    """``pid``'s argv (decoded, lossy); None when gone, unreadable or empty (a zombie, a kernel
    thread)."""
    raw = cmdline_bytes(pid)
    if not raw:
        return None
    return [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")]


def cwd(pid: int) -> str | None:
    if procfs():
        try:
            return os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return None
    here = _ps_call(pid, "cwd")
    return here if isinstance(here, str) and here else None


def environ_bytes(pid: int, cap: int = 1 << 20) -> bytes | None:
    """``pid``'s environment, NUL-separated ``NAME=value`` as /proc gives it (at most ``cap``
    bytes); None when it cannot be read (gone, another user's, or no backend)."""
    if procfs():
        try:
            fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            chunks: list[bytes] = []
            size = 0
            while size < cap and (chunk := os.read(fd, cap - size)):
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)
        except OSError:
            return None
        finally:
            os.close(fd)
    env = _ps_call(pid, "environ")
    if not isinstance(env, dict):
        return None
    out = b"".join(
        f"{k}={v}".encode("utf-8", "surrogateescape") + b"\0" for k, v in env.items() if isinstance(k, str)
    )
    return out[:cap]


def children(pid: int) -> list[int]:
    """``pid``'s direct children (none when gone or unreadable)."""
    if procfs():
        raw = read_proc(f"/proc/{pid}/task/{pid}/children") or b""
        return [int(x) for x in raw.split() if x.isdigit()]
    kids = _ps_call(pid, "children")
    return [k.pid for k in kids] if isinstance(kids, list) else []


def foreground_groups(pids: Iterable[int]) -> dict[int, int]:
    """For each of ``pids`` (a terminal's session leader, e.g. a pane's shell) the process group
    in the foreground of its terminal (``tpgid``); a pid that is gone, has no terminal or cannot
    be read is left out. The fallback asks ``ps`` once for all of them."""
    want = sorted({p for p in pids if p > 0})
    if not want:
        return {}
    out: dict[int, int] = {}
    if procfs():
        for pid in want:
            fields = _stat_fields(pid)
            try:
                tpgid = int(fields[5]) if fields else -1
            except ValueError:
                tpgid = -1
            if tpgid > 0:
                out[pid] = tpgid
        return out
    res = _ps_tpgid(want)
    if res is None:
        return {}
    # ps exits 1 when one of the pids is gone: the lines it printed still stand.
    for line in res[1].splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].lstrip("-").isdigit():
            pid, tpgid = int(parts[0]), int(parts[1])
            if pid in want and tpgid > 0:
                out[pid] = tpgid
    return out


def foreground_pid(pid: int, groups: dict[int, int] | None = None) -> int:
    """The leader of the foreground process group of ``pid``'s terminal (the job as typed:
    ``npm`` rather than the node children it spawned); ``pid`` itself when idle or unknown.
    ``groups`` is a :func:`foreground_groups` answer computed once for many pids."""
    tpgid = (groups if groups is not None else foreground_groups([pid])).get(pid, -1)
    return tpgid if tpgid > 0 else pid


def foreground_cmdline(pid: int, groups: dict[int, int] | None = None) -> bytes:
    """Raw argv (NUL-separated) of the job in the foreground of ``pid``'s terminal; empty when
    the process is gone. Only system calls with /proc: cheap enough for a fingerprint."""
    return cmdline_bytes(foreground_pid(pid, groups)) or b""


# --- what this machine can tell -----------------------------------------------------------------


def missing_facts() -> list[str]:
    """The process facts this process cannot have, each said for a user ("the panes' running
    commands (…)"); empty when all can be had. Cheap with /proc (nothing to check)."""
    if procfs():
        return []
    if _psutil() is None:
        why = "no /proc on this system and psutil is not installed (pip install psutil)"
        return [
            f"the panes' running commands and the agents' conversations: {why}",
            f"the panes' environment: {why}",
            f"whether another editor's Tether server is alive: {why}",
            f"the file watcher's liveness (CLI commands walk the tree instead): {why}",
        ]
    if _ps_tpgid_works():
        return []
    return ["the panes' running commands: `ps -o tpgid` did not answer (is ps installed? procps on Linux)"]


_ps_works: bool | None = None


def _ps_tpgid_works() -> bool:
    global _ps_works
    if _ps_works is None:
        _ps_works = _ask_ps_tpgid()
    return _ps_works


def _ps_tpgid(pids: Iterable[int]) -> tuple[int, str] | None:
    """``ps -o pid=,tpgid=`` of ``pids``: (exit status, output); None when ps cannot run."""
    import subprocess  # the ps fallback only: hooks on Linux never start a process here

    try:
        res = subprocess.run(
            [_ps_path(), "-o", "pid=,tpgid=", "-p", ",".join(map(str, pids))],
            capture_output=True,
            text=True,
            timeout=5,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.returncode, res.stdout


def _ask_ps_tpgid() -> bool:
    res = _ps_tpgid([os.getpid()])
    return res is not None and res[0] == 0 and str(os.getpid()) in res[1]


def report() -> dict[str, Any]:
    """What ``tether doctor`` says about process facts: the backend and what cannot be had."""
    missing = missing_facts()
    if procfs():
        backend = "/proc"
    else:
        ps = _psutil()
        why = (
            "turned off by TETHER_NO_PROCFS"
            if os.environ.get(NO_PROCFS_ENV, "") not in ("", "0")
            else "no /proc"
        )
        backend = f"psutil {ps.__version__} and ps ({why})" if ps is not None else f"none ({why})"
    samples: dict[str, bool] = {}
    me = os.getpid()
    samples["argv"] = cmdline(me) is not None
    samples["cwd"] = cwd(me) is not None
    samples["environment"] = environ_bytes(me) is not None
    samples["start time"] = start_token(me) is not None
    samples["boot identity"] = bool(boot_id())
    for fact, ok in samples.items():
        if not ok and not any(fact in m for m in missing):
            missing.append(f"{fact} of a process: not readable here")
    return {"backend": backend, "missing": missing}
