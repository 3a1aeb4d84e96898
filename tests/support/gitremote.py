"""Real git repositories for the hand-off tests: a bare remote, clones standing for machines,
a `git daemon` on 127.0.0.1 (cleaned up by PID), and fingerprints of a repo's user-visible state."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.retry import retry_until

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str, check: bool = True, input: bytes | None = None) -> bytes:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | GIT_ENV
    res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env=env, input=input, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {res.stderr.decode()}")
    return res.stdout


def make_project(tmp: Path, files: dict[str, str]) -> tuple[Path, Path]:
    """(bare remote, first clone) with ``files`` committed on main and pushed."""
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    a = tmp / "a"
    git(tmp, "init", "-q", "-b", "main", str(a))
    for rel, text in files.items():
        (a / rel).parent.mkdir(parents=True, exist_ok=True)
        (a / rel).write_text(text)
    git(a, "add", "-A")
    git(a, "commit", "-q", "-m", "init")
    git(a, "remote", "add", "origin", str(remote))
    git(a, "push", "-q", "origin", "main")
    return remote, a


def clone(remote: Path | str, dest: Path) -> Path:
    git(dest.parent, "clone", "-q", "-b", "main", str(remote), str(dest))
    return dest


def user_git_state(repo: Path) -> dict[str, bytes]:
    """Everything a user sees of a repository: refs, HEAD, index bytes, status, config, stash."""
    gd = repo / ".git"
    return {
        "refs": git(repo, "for-each-ref"),
        "HEAD": (gd / "HEAD").read_bytes(),
        "index": (gd / "index").read_bytes() if (gd / "index").exists() else b"",
        "status": git(
            repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all", "--ignored"
        ),
        "config": (gd / "config").read_bytes(),
        "stash": git(repo, "stash", "list"),
        "objects": git(repo, "count-objects", "-v"),
    }


def tree_digest(root: Path) -> str:
    """Work tree fingerprint (paths, modes, bytes), .git excluded."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            p = Path(dirpath) / name
            h.update(str(p.relative_to(root)).encode() + b"\0" + oct(p.lstat().st_mode).encode())
            h.update(p.read_bytes() if not p.is_symlink() else os.readlink(p).encode())
    return h.hexdigest()


def store_digest(state: Path) -> str:
    """Logical fingerprint of every store under ``state`` (SQL dump, read-only)."""
    h = hashlib.sha256()
    for db in sorted(state.rglob("tether.db")):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for line in conn.iterdump():
                h.update(line.encode())
        finally:
            conn.close()
    return h.hexdigest()


def object_count(bare: Path) -> int:
    out = git(bare, "count-objects", "-v").decode()
    fields = dict(line.split(": ") for line in out.splitlines())
    return int(fields["count"]) + int(fields["in-pack"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """``git daemon`` serving ``base`` read-write on 127.0.0.1; yields its git:// URL prefix."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
            f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        retry_until(up, timeout=10, what="git daemon to listen")
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
