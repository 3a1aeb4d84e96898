"""The git calls Tether makes: never the user's hooks, pager, prompts or system config."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tether.errors import HandoffError

GIT_TIMEOUT_S = 300


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    )
    if extra:
        env.update(extra)
    return env


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    what: str = "git",
) -> subprocess.CompletedProcess[bytes]:
    argv = ["git"]
    if git_dir is not None:
        argv += ["--git-dir", str(git_dir)]
    # No hooks, no pager, no credential prompts: Tether's git calls never run the user's code.
    argv += ["-c", "core.hooksPath=/dev/null", "-c", "credential.interactive=false", *args]
    try:
        res = subprocess.run(
            argv,
            cwd=cwd,
            input=input,
            capture_output=True,
            env=clean_env(env),
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise HandoffError("git is not installed (needed for push/pull)") from None
    except subprocess.TimeoutExpired:
        raise HandoffError(f"{what}: git did not finish within {GIT_TIMEOUT_S}s") from None
    if check and res.returncode != 0:
        err = res.stderr.decode("utf-8", "replace").strip()
        raise HandoffError(f"{what} failed: {err or f'git exited {res.returncode}'}")
    return res
