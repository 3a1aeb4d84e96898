"""Hand-off of the tmux layout: A's session (real private tmux server) is pushed with a step,
B's `tether handoff --apply` recreates it for B's workspace with the cwds mapped to B's root."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.gitremote import clone, git, make_project
from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tests.tmux.conftest import capture, run_in, wait_prompt
from tether.cli import main
from tether.tmux.link import TmuxLink

MakeLink = Callable[..., TmuxLink]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out) if out.startswith("{") else {"text": out}  # type: ignore[no-any-return]


def _layout(srv: PrivateTmux, session: str, root: Path) -> list[tuple[str, str, str]]:
    fmt = "#{window_name}\t#{pane_index}\t#{pane_current_path}"
    out = srv.cmd("list-panes", "-s", "-t", f"={session}", "-F", fmt).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return sorted((w, i, str(Path(cwd).relative_to(root))) for w, i, cwd in rows)


def test_tmux_layout_crosses_machines_with_mapped_cwd(
    tmp_path: Path,
    tmux_server: PrivateTmux,
    make_link: MakeLink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TETHER_TMUX_SOCKET", tmux_server.socket_path)
    remote, a = make_project(tmp_path, {"README.md": "x\n", "src/app.py": "print(1)\n", "docs/x.md": "d\n"})
    b = clone(remote, tmp_path / "b")
    monkeypatch.chdir(a)
    link_a = make_link(a)
    link_a.ensure_session()
    tmux_server.cmd("rename-window", "-t", f"={link_a.session}:0", "agent")
    tmux_server.cmd("new-window", "-d", "-t", f"={link_a.session}:", "-n", "tests", "-c", str(a / "src"))
    tmux_server.cmd("split-window", "-d", "-t", f"={link_a.session}:tests", "-c", str(a / "docs"))
    wait_prompt(tmux_server, f"={link_a.session}:0.0")
    layout_a = _layout(tmux_server, link_a.session, a)
    assert ("tests", "1", "docs") in layout_a

    sa, sb = ["--state-dir", str(tmp_path / "sa")], ["--state-dir", str(tmp_path / "sb")]
    (a / "src/app.py").write_text("print(2)\n")
    cli(capsys, "-C", str(a), *sa, "step", "--task", "tmux hand-off", "--done", "edit", "--next", "run tests")
    ref = cli(capsys, "-C", str(a), *sa, "--json", "push", "--as", "alice")["ref"]
    # Scrollback and history stay home unless asked for, per pushed checkpoint.
    run_in(tmux_server, f"={link_a.session}:0.0", "echo scrollback-marker-1")
    retry_until(lambda: "scrollback-marker-1" in capture(tmux_server, f"={link_a.session}:0.0"), what="echo")
    (a / "README.md").write_text("y\n")
    cli(capsys, "-C", str(a), *sa, "step", "--done", "second")
    cli(capsys, "-C", str(a), *sa, "--json", "push", "--as", "alice")
    assert "scrollback-marker-1" not in git(remote, "show", f"{ref}:tether/tmux.json").decode()
    (a / "README.md").write_text("z\n")
    cli(capsys, "-C", str(a), *sa, "step", "--done", "third")
    cli(capsys, "-C", str(a), *sa, "--json", "push", "--as", "alice", "--include-terminal")
    assert "scrollback-marker-1" in git(remote, "show", f"{ref}:tether/tmux.json").decode()

    monkeypatch.chdir(b)
    link_b = make_link(b)
    assert link_b.session != link_a.session and not link_b.alive()
    out = cli(
        capsys, "-C", str(b), *sb, "--json", "handoff", "origin/alice", "--as", "bob", "--apply", "--no-run"
    )
    assert out["tmux"] == {"session": link_b.session, "recreated": True}
    assert out["task"] == "tmux hand-off" and out["nextSteps"] == ["run tests"]
    assert (b / "src/app.py").read_text() == "print(2)\n" and (b / "README.md").read_text() == "z\n"
    assert _layout(tmux_server, link_b.session, b) == layout_a  # same windows/panes, cwd under B's root
    assert link_a.alive()  # A's session was left alone
