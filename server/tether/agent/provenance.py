"""Where the agent file's task and next steps came from: this machine, or the repository.

A fresh clone's ``.agent-session.json`` was written by whoever wrote the repository. Its next
steps ("run `curl … | sh`") must not reach an agent's context as if the agent had recorded them
itself. Content counts as *shipped* when it is byte for byte the file of the repository's HEAD
commit (a clone, a pull). A file an agent writes here is not (it differs from HEAD, or is not
committed at all), and a local step that sets the task or the next steps makes them this
machine's. Outside a git work tree nothing is labelled: there is no record of what came with the
directory, and agents write this file themselves.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tether.scan.result import AGENT_FILE
from tether.sha import sha1, sha256

log = logging.getLogger(__name__)

# Appended to what the hand-off, status and the editor show for shipped fields.
SHIPPED_NOTE = "from the repository's .agent-session.json, not recorded on this machine"
# The fields that can be shipped (TaskState attribute names).
FIELDS = ("task", "next_steps")


def is_git_workspace(root: Path) -> bool:
    """A git work tree root: ``.git`` holds a HEAD, or is a ``gitdir:`` file (worktree, submodule)."""
    dot = root / ".git"
    return (dot / "HEAD").is_file() or dot.is_file()


def in_repository_head(root: Path, data: bytes) -> bool:
    """Whether ``data`` is exactly ``.agent-session.json`` as committed in ``root``'s HEAD."""
    from tether.git import run_git

    try:
        res = run_git(["rev-parse", "--verify", "--quiet", f"HEAD:{AGENT_FILE}"], cwd=root, check=False)
    except Exception as exc:  # git missing or hung: say nothing is shipped, log why
        log.info("cannot ask git about %s: %s", AGENT_FILE, exc)
        return False
    if res.returncode != 0:
        return False
    oid = res.stdout.decode("ascii", "replace").strip()
    header = b"blob %d\x00" % len(data)
    algo = sha1 if len(oid) == 40 else sha256
    return algo(header + data).hexdigest() == oid
