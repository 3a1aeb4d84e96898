"""A stand-in for tmux 2.9, which cannot be installed here.

Debian ships only its current tmux and no registry this machine reaches carries an old tmux
binary or source, so an executable named ``tmux`` plays one: it answers ``-V`` with ``tmux 2.9``
and every other command the way tmux 2.9 answers Tether's: commands against a server that is not
running fail with "no server running", and a ``new-session`` chain fails on the first flag 2.9
does not know (``set-option -p``, ``new-window -e``) with its usage text. Each call is logged
with the calling process id, so a test can count the ``-V`` calls per process.
"""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path

_SCRIPT = """\
#!/bin/sh
echo "$PPID $*" >> {log}
if [ "$1" = -V ]; then echo "tmux 2.9"; exit 0; fi
while [ $# -gt 0 ]; do
  case "$1" in -S|-L|-f) shift 2 ;; -*) shift ;; *) break ;; esac
done
case "$1" in
  new-session)
    echo "usage: set-option [-aFgoqsuw] [-t target-window] option [value]" >&2; exit 1 ;;
  *)
    echo "no server running on /tmp/tmux-$(id -u)/default" >&2; exit 1 ;;
esac
"""


def install_old_tmux(d: Path) -> Path:
    """``d/bin/tmux`` (the stand-in) and its call log ``d/calls``; returns ``d/bin``."""
    bin_dir = d / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = d / "calls"
    log.touch()
    exe = bin_dir / "tmux"
    exe.write_text(_SCRIPT.format(log=shlex.quote(str(log))))
    exe.chmod(0o755)
    return bin_dir


def version_calls_per_process(d: Path) -> Counter[str]:
    """How many times each calling process ran ``tmux -V``."""
    calls = [line.split(" ", 1) for line in (d / "calls").read_text().splitlines()]
    return Counter(pid for pid, *rest in calls if rest == ["-V"])


def calls(d: Path) -> list[str]:
    return [line.split(" ", 1)[1] if " " in line else "" for line in (d / "calls").read_text().splitlines()]
