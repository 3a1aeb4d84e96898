"""`tether completion bash|zsh|fish`, loaded in the real shells and asked to complete.

bash: the function is called as readline would (COMP_WORDS/COMP_CWORD). zsh: an interactive zsh
in a zpty (its own pseudo-terminal module) after compinit, with Tab typed and every candidate
the completion system adds recorded. fish: ``complete -C``. zsh and fish are skipped when not
installed (scripts/bootstrap.sh installs both).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _script(shell: str, tmp_path: Path) -> Path:
    res = subprocess.run(
        [sys.executable, "-m", "tether", "completion", shell],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    path = tmp_path / f"tether.{shell}"
    path.write_text(res.stdout)
    return path


def _lines(res: subprocess.CompletedProcess[str]) -> list[str]:
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


BASH_DRIVER = """\
source "$1"
complete -p tether
c() {
  COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
  _tether; echo "${COMPREPLY[*]}"
}
c tether lo
c tether log --
c tether setup ''
c tether --json setup co
c tether -C "$2" setup g
c tether -C "$2/su"
c tether list --j
c tether diff --st
c tether completion ''
"""


def test_bash(tmp_path: Path) -> None:
    script = _script("bash", tmp_path)
    (tmp_path / "sub").mkdir()
    res = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "bash", str(script), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = _lines(res)
    assert lines[0] == "complete -o bashdefault -o default -F _tether tether"
    assert lines[1] == "log"
    assert {"--limit", "--all", "--no-pager", "--json", "--workspace", "--help"} <= set(lines[2].split())
    assert lines[3].split() == ["claude", "codex", "gemini", "opencode", "aider"]
    assert lines[4:6] == ["codex", "gemini"]  # global options before the command are skipped
    assert lines[6] == f"{tmp_path}/sub"  # -C completes directories
    assert lines[7:9] == ["--json", "--stat --state-dir"]
    assert lines[9].split() == ["bash", "zsh", "fish"]


ZSH_DRIVER = """\
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT='%% '; autoload -U compinit && compinit -u -d $TMPDIR/zcompdump; source $1"
# Every candidate the completion system adds is also printed, between << >>.
zpty -w z 'compadd () { local -a h; builtin compadd -O h "$@"; print -r -l -- "<<"${^h}">>"; \\
  builtin compadd "$@"; }'
zpty -w z 'print -r -- "$_comps[tether]" READY'
local line out=""
# Blocks until the completion system is loaded (the subprocess timeout bounds it).
zpty -r -m z line '*_tether READY*' && print -r -- "_tether READY"
zpty -w -n z "$2"$'\\t'
local quiet=0
while (( quiet < 20 )); do
  if zpty -r -t z line; then out+="$line"; quiet=0; else sleep 0.1; (( quiet++ )); fi
done
print -r -- "$out" | grep -o '<<[^<>]*>>' | sort -u
zpty -d z
"""


@pytest.mark.skipif(
    shutil.which("zsh") is None, reason="zsh not installed (scripts/bootstrap.sh installs it)"
)
@pytest.mark.parametrize(
    ("typed", "expected", "absent"),
    [
        ("tether lo", {"log"}, {"list", "lsp"}),
        ("tether log --", {"--limit", "--all", "--no-pager", "--json", "--workspace"}, {"--stat"}),
        ("tether setup ", {"claude", "codex", "gemini", "opencode", "aider"}, set()),
        ("tether completion ", {"bash", "zsh", "fish"}, set()),
    ],
)
def test_zsh(tmp_path: Path, typed: str, expected: set[str], absent: set[str]) -> None:
    script = _script("zsh", tmp_path)
    res = subprocess.run(
        ["zsh", "-f", "-c", ZSH_DRIVER, "zsh", str(script), typed],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "xterm"},
    )
    lines = _lines(res)
    assert lines[0].startswith("_tether READY"), lines
    got = {line.strip("<>") for line in lines[1:]}
    assert expected <= got, got
    assert not absent & got


@pytest.mark.skipif(
    shutil.which("fish") is None, reason="fish not installed (scripts/bootstrap.sh installs it)"
)
def test_fish(tmp_path: Path) -> None:
    script = _script("fish", tmp_path)
    driver = (
        f"source {script}; complete -C'tether lo'; echo @; complete -C'tether log -'; echo @; "
        "complete -C'tether setup '; echo @; complete -C'tether -C /tmp list --j'"
    )
    res = subprocess.run(
        ["fish", "--no-config", "-c", driver],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={"HOME": str(tmp_path)},
    )
    parts = "\n".join(_lines(res)).split("@")
    first = [line.split("\t")[0] for part in parts for line in part.strip().splitlines()]
    lo, log, setup, lst = ([line.split("\t")[0] for line in p.strip().splitlines()] for p in parts)
    assert lo == ["log"] and first
    assert {"--limit", "--no-pager", "--json", "-C"} <= set(log) and "--version" not in log
    assert setup == ["aider", "claude", "codex", "gemini", "opencode"]
    assert lst == ["--json"]
